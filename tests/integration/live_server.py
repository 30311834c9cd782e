"""A real HTTP server for an ASGI app, for clients that need a URL (a browser, frost-sta-client).

    with live_server(app) as base_url:
        httpx.get(f"{base_url}/sta/v1.1")

uvicorn runs in a daemon thread on a free loopback port; leaving the block stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def serve_process(config: Path, port: int, *, start_timeout_s: float = 30.0) -> Iterator[None]:
    """`sensorpipe serve --config CONFIG` as its own process (its own uvicorn settings, as a
    user runs it), waited for until PORT accepts connections; stopped when the block ends."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sensorpipe", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    out = server.stdout.read().decode() if server.stdout else ""
                    raise RuntimeError(f"serve did not start: {out[-2000:]}") from None
                time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(15)
