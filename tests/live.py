"""The real API over real HTTP: uvicorn in a background thread, for tests whose client is another process or a
browser (schemathesis, Playwright)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_app(app: ASGIApp, *, host: str = "127.0.0.1", startup_timeout: float = 120) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of ``host`` in a background thread (lifespan included) and yield its
    base URL; the server stops when the block ends. Raises if the server does not start (a failing lifespan)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-live-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped while starting the app (its log is above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start the app within {startup_timeout} s")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
