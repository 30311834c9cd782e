"""Integration fixtures: a real Mosquitto, a real influxd and the ingest, on free loopback ports."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import free_ports
from sensorpipe.stack.local import LocalStack

pytestmark = pytest.mark.integration


def _require_binaries() -> None:
    missing = [
        b
        for b in ("mosquitto", "mosquitto_passwd", "influxd")
        if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()
    ]
    if missing:
        # A missing broker or database is a broken setup, not a reason to skip: fail loudly.
        pytest.fail(
            f"integration tests need {', '.join(missing)}: run `make test` as root "
            f"or apt-get install mosquitto influxdb"
        )


@contextlib.contextmanager
def stack_and_influx(folder: Path) -> Iterator[tuple[LocalStack, InfluxClient]]:
    """A stack (no API, no kit gateway) in `folder` and a client of its InfluxDB, for a
    module's fixture; both ended afterwards."""
    _require_binaries()
    stack = LocalStack(folder / "stack")
    info = stack.up(detach=False, serve=False, kits=False)
    influx = InfluxClient(info.influx_url, info.database)
    try:
        yield stack, influx
    finally:
        influx.close()
        stack.down()


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
