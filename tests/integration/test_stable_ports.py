"""Issue 25: the stack's addresses are stable. `stack up` keeps the broker's, the API's and the
kit gateway's ports across `stack down` / `stack up`, and a kept port that something else
holds is an error naming the holder, never a silent move (real Mosquitto, influxd, ingest,
kit gateway and API)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.stack.local import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    s = LocalStack(tmp_path / "st")
    yield s
    s.down()


def addresses(s: LocalStack) -> dict[str, object]:
    info = s.require_info()
    return {
        "mqtt": info.broker_port,
        "api": info.api_url,
        "kits": info.kits_url,
        "metrics": info.metrics_url,
    }


def test_ports_are_kept_and_a_taken_one_is_an_error_naming_its_holder(
    stack: LocalStack,
) -> None:
    stack.up(detach=True, serve=True, kits=True)
    first = addresses(stack)
    stack.down()
    stack.up(detach=True, serve=True, kits=True)
    assert addresses(stack) == first
    info = stack.require_info()
    stack.down()
    # Chosen below the ephemeral range: no outgoing connection's local port can hold them.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert info.broker_port < low and info.api_port is not None and info.api_port < low

    kits_port = int(str(info.kits_url).rstrip("/").rsplit(":", 1)[1])
    for port in (info.broker_port, info.api_port, kits_port):
        assert port is not None
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        try:
            up = subprocess.run(
                [sys.executable, "-m", "sensorpipe", "stack", "up", "--dir", str(stack.directory)],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            holder.close()
        assert up.returncode == 1, up.stdout + up.stderr
        assert f"port {port} " in up.stderr
        assert f"pid {os.getpid()} (" in up.stderr  # this test's listener, by pid and command
        assert "pytest" in up.stderr or "python" in up.stderr
        assert "Traceback" not in up.stderr
        assert stack.info() is None  # nothing started
    # The records still name the old ports: nothing moved.
    assert json.loads(stack.ports_path.read_text())["mqtt"] == info.broker_port
    stack.up(detach=True, serve=True, kits=True)
    assert addresses(stack) == first
