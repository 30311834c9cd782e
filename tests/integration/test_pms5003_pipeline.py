"""A PMS5003 end to end on a real stack: the byte-level simulator on a pty (checksum bursts on
its line), the real driver and agent duty-cycling it, the broker, the ingest, InfluxDB and the
API. Its PM and particle counts are stored and served, its bad frames counted, its laser hours
stored with its sensor status."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import Pms5003Config, duty_cycle, open_driver
from sensorpipe.edge.duty import HOURS_FILE, LaserHours
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.pms5003 import ChecksumBursts, Pms5003Device, Pms5003Simulator
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.register import LASER_LIFE_H
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.test_edge_failures import RunningAgent

pytestmark = pytest.mark.integration


def test_a_duty_cycled_pms5003_reaches_the_api(stack: LocalStack, tmp_path: Path) -> None:
    device_id = "garden-pms"
    (creds,) = stack.add_devices([(device_id, {"site": "garden", "sensors": ["pms5003"]})])
    street = Street(3)
    device = Pms5003Device(read_pm=lambda: street.pm_now(), warmup_s=0.3, seed=3)
    device.checksum_bursts = ChecksumBursts(every=5, length=2)
    sim = Pms5003Simulator(device)
    sim.start()
    config = Pms5003Config.model_validate(
        {
            "driver": "pms5003",
            "port": sim.port,
            "timeout_s": 1.0,
            "interval_s": 1.0,
            "warmup_s": 0.3,
            "duty": {"wake_s": 0.3},
        }
    )
    hours_path = tmp_path / HOURS_FILE
    opener = SensorOpener(
        "pms5003",
        functools.partial(open_driver, config),
        config.interval_s,
        duty_cycle(config, LaserHours(hours_path)),
    )
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", [opener], status_interval_s=1.0)
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)

    def stored() -> bool:
        air = influx.query(
            f"SELECT count(pm2_5), count(particles_0_3) FROM air WHERE device_id = '{device_id}'"
        )
        status = influx.query(
            f"SELECT last(laser_hours), max(frames_bad) FROM sensor_status "
            f"WHERE device_id = '{device_id}' AND sensor = 'pms5003'"
        )
        return bool(
            air
            and min(air[0]["values"][0][1:]) >= 4
            and status
            and status[0]["values"][0][1] > 0
            and status[0]["values"][0][2] > 0
        )

    try:
        wait_for(stored, what="PMS5003 readings, and its status with laser hours, stored")
    finally:
        edge.close()
        sim.stop()
        influx.close()
    assert device.bad_frames_sent > 0 and device.sleeping  # slept between readings, and at stop
    assert hours_path.exists()

    serve = ServeConfig(
        registry_path=str(stack.registry_path),
        influx=InfluxSettings(url=info.influx_url, database=info.database),
    )
    with TestClient(create_app(ApiContext(serve))) as client:
        params = {
            "device": device_id,
            "quantity": ["pm2_5", "pm1", "particles_0_3", "particles_10"],
            "from": "-1h",
            "every": "1h",
            "agg": "count",
        }
        answer = client.get("/api/v1/air", params=params)
        assert answer.status_code == 200, answer.text
        (series,) = answer.json()["series"]
        for quantity in params["quantity"]:
            assert sum(v or 0 for v in series["values"][quantity]) >= 4, quantity
        # The register shows the laser's running hours against its expected life.
        devices = {e["device_id"]: e for e in client.get("/api/v1/devices").json()["devices"]}
        (health,) = devices[device_id]["sensor_health"]
        assert health["sensor"] == "pms5003"
        assert health["laser_hours"] > 0 and health["laser_life_h"] == LASER_LIFE_H["pms5003"]
