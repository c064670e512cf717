"""gunicorn settings and hooks for ``itemseal serve`` (loaded with ``-c python:...``)."""

from __future__ import annotations

import os

from gunicorn.glogging import Logger
from uvicorn_worker import UvicornWorker

from verify_api.http_writes import OneWriteHttpProtocol

keepalive = 30  # clients (SMS gateways, load balancers) reuse connections
graceful_timeout = 10
# gunicorn's most: a code of 512 characters (the spec's limit) percent-encoded as 4-byte UTF-8
# makes a request line of about 6,200 bytes, which the default 4,094 refuses with a 414.
limit_request_line = 8190


def child_exit(server, worker) -> None:
    """Let /metrics drop the live gauges of a worker that is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class ServeLogger(Logger):
    """gunicorn's logger, but its "Listening at:" line names the addresses with --reuse-port.

    With one socket per worker (``itemseal serve`` on TCP) the arbiter holds no
    listener of its own, so gunicorn logs ``Listening at:  (PID)`` with a blank
    address; this fills in the configured binds.
    """

    def info(self, msg, *args, **kwargs) -> None:
        if msg.startswith("Listening at:") and args and not args[0]:
            bound = ",".join(_url(address) for address in self.cfg.address)
            args = (f"{bound} (a socket per worker)", *args[1:])
        super().info(msg, *args, **kwargs)


def _url(address: tuple[str, int] | str) -> str:
    """A parsed bind as gunicorn's own sockets print it: (host, port), or a unix path."""
    return f"http://{address[0]}:{address[1]}" if isinstance(address, tuple) else f"unix:{address}"


logger_class = ServeLogger


class ItemsealWorker(UvicornWorker):
    """uvicorn's gunicorn worker, without uvicorn's own reading of proxy headers, without its
    ``server: uvicorn`` header, and with a response's head and body in one write
    (``verify_api/http_writes.py``).

    The server header told every caller, counterfeiters' scripts included, which HTTP
    stack answers, and nothing a client needs.

    uvicorn believes X-Forwarded-For and -Proto from 127.0.0.1 by default
    (``forwarded_allow_ips``) and knows nothing of X-Forwarded-Host or
    ``Forwarded``. Forwarded headers are read in one place, the app
    (``verify_api/proxies.py``), from the proxies the operator named with
    ``--trusted-proxies`` only; so uvicorn's middleware is off.
    """

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False,
                     "server_header": False, "http": OneWriteHttpProtocol}
