"""The faults the agent counts per sensor and kind reach the central health view, on a real
stack: an SDS011 simulator sending bad frames (checksum errors) and a BME280 that never
answers (a fault-injecting driver: timeouts, backed off), through the real agent, broker,
ingest and InfluxDB, shown by `devices list --json` and /api/v1/devices, and named in the
not-ok sensor's note."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import Sds011Config, open_driver
from sensorpipe.edge.errors import SensorTimeout
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.test_edge_failures import RunningAgent

pytestmark = pytest.mark.integration


class SilentBme280:
    model = "bme280"
    frames_bad = 0

    def read(self) -> dict[str, float]:
        raise SensorTimeout("bme280: measurement did not finish within 100 ms")

    def close(self) -> None:
        pass


def _newest_status(influx: InfluxClient, device_id: str, sensor: str) -> dict[str, Any]:
    series = influx.query(
        f"SELECT * FROM sensor_status WHERE device_id = '{device_id}' AND sensor = '{sensor}' "
        "ORDER BY time DESC LIMIT 1"
    )
    if not series or not series[0].get("values"):
        return {}
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=False))


def _errors(status: dict[str, Any]) -> dict[str, int]:
    return {
        k.removeprefix("errors_"): v
        for k, v in status.items()
        if k.startswith("errors_") and v is not None
    }


def test_fault_counts_reach_the_central_health_view(stack: LocalStack, tmp_path: Path) -> None:
    device_id = "faulty-01"
    (creds,) = stack.add_devices(
        [(device_id, {"site": "balcony", "sensors": ["sds011", "bme280"]})]
    )
    sds = Sds011Simulator(Sds011Device(read_pm=Street(2).pm_now, bad_frame_rate=0.5, seed=7))
    sds.start()
    read_sds011 = functools.partial(
        open_driver, Sds011Config(driver="sds011", port=sds.port, timeout_s=1.0)
    )
    openers = [SensorOpener("sds011", read_sds011, 0.3), SensorOpener("bme280", SilentBme280, 0.3)]
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", openers, status_interval_s=1.0)
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:

        def counted() -> bool:
            sds_status = _newest_status(influx, device_id, "sds011")
            bme_status = _newest_status(influx, device_id, "bme280")
            return (
                (sds_status.get("errors_checksum") or 0) > 0
                and (bme_status.get("errors_timeout") or 0) >= 2
                and (bme_status.get("backoff_s") or 0) > 0
            )

        wait_for(counted, what="checksum and timeout counts stored", timeout_s=60)
    finally:
        edge.close()
        sds.stop()
    sds_status = _newest_status(influx, device_id, "sds011")
    bme_status = _newest_status(influx, device_id, "bme280")
    influx.close()
    assert sds_status["errors_checksum"] == sds_status["frames_bad"]  # bad frames, counted

    d = str(stack.directory)
    listed = CliRunner().invoke(main, ["devices", "list", "--dir", d, "--json"])
    assert listed.exit_code == 0, listed.output
    (entry,) = [e for e in json.loads(listed.output) if e["device_id"] == device_id]
    health = {h["sensor"]: h for h in entry["sensor_health"]}
    assert health["sds011"]["errors"] == _errors(sds_status)  # checksum, maybe a timeout too
    assert health["bme280"]["ok"] is False
    assert health["bme280"]["errors"] == {"timeout": bme_status["errors_timeout"]}
    assert health["bme280"]["backoff_s"] == bme_status["backoff_s"]
    (note,) = entry["notes"]
    assert note.startswith("bme280 not ok since ")
    assert f"(errors: {bme_status['errors_timeout']} timeout; tried every " in note

    config = ServeConfig(
        registry_path=str(stack.registry_path),
        influx=InfluxSettings(url=info.influx_url, database=info.database),
    )
    with TestClient(create_app(ApiContext(config))) as client:
        devices = {e["device_id"]: e for e in client.get("/api/v1/devices").json()["devices"]}
        api_health = {h["sensor"]: h for h in devices[device_id]["sensor_health"]}
        assert api_health["sds011"]["errors"] == health["sds011"]["errors"]
        assert api_health["bme280"]["errors"] == health["bme280"]["errors"]
        assert devices[device_id]["notes"] == entry["notes"]
