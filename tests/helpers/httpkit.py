"""A local HTTP receiver for tests of what itemseal sends out (CRM webhooks, SMS gateways)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[dict, bytes], tuple]
"""(headers, body) -> (status, body) or (status, body, extra response headers)."""


@contextmanager
def serve_posts(answer: Answer, path: str, gets: list | None = None,
                keep_alive: bool = False) -> Iterator[str]:  # fmt: skip
    """Answer each POST with ``answer(headers, body)`` on a free port; yield ``path``'s URL.

    A GET is answered 200 and its path appended to ``gets``: what a client that
    follows a redirect of a POST with a GET (urllib does) would be told.
    ``keep_alive`` answers in HTTP/1.1, connections kept open (load generators
    send many requests on each), each answer in one write with Nagle off (its
    head and body written apart waited ~40 ms for the client's delayed ACK);
    otherwise HTTP/1.0, one request a connection.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        wbufsize = -1 if keep_alive else 0  # flushed after each request by http.server
        disable_nagle_algorithm = keep_alive

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, out, *more = answer(dict(self.headers), body)
            self.send_response(status)
            for name, value in (more[0] if more else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:  # noqa: N802
            if gets is not None:
                gets.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
