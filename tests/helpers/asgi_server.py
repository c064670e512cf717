"""A real ASGI server for an app built in a test: uvicorn with uvloop and the workers' httptools
protocol, as in ``itemseal serve``'s workers (``verify_api/gunicorn_conf.py``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from verify_api.gunicorn_conf import ItemsealWorker


@contextlib.contextmanager
def serving_app(app, *, timeout: float = 10.0, http=None) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL.

    ``http`` is the protocol class, the workers' own unless a test gives another.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", loop="uvloop",
                            http=http or ItemsealWorker.CONFIG_KWARGS["http"])
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
