"""A real HTTP server for an ASGI app, for clients that need a URL (a browser, frost-sta-client).

    with live_server(app) as base_url:
        httpx.get(f"{base_url}/sta/v1.1")

uvicorn runs in a daemon thread on a free loopback port; leaving the block stops it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(app: Any, *, start_timeout_s: float = 15.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 while the block runs; yields the base URL (no trailing /)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"live-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on port {port} stopped before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server on port {port} did not start in {start_timeout_s} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
