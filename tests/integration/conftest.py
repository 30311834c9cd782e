"""Integration fixtures: a real Mosquitto, a real influxd and the ingest, on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import free_ports
from sensorpipe.stack.local import LocalStack
from tests.helpers import require_binaries

pytestmark = pytest.mark.integration


def _require_binaries() -> None:
    require_binaries("mosquitto", "mosquitto_passwd", "influxd")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    _require_binaries()
    s = LocalStack(tmp_path / "stack")
    s.up(detach=False, serve=False)  # the API has its own fixtures (tests/integration/test_api.py)
    try:
        yield s
    finally:
        s.down()


@pytest.fixture
def influx(stack: LocalStack) -> Iterator[InfluxClient]:
    info = stack.require_info()
    client = InfluxClient(info.influx_url, info.database)
    yield client
    client.close()


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A bare influxd (no broker, no ingest) on free loopback ports, database `x`."""
    http_port, rpc_port = free_ports(2)
    server = Influxd(tmp_path / "influxdb", http_port=http_port, rpc_port=rpc_port, database="x")
    server.start()
    yield server
    server.stop()
