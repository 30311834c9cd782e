"""A registered device whose BME280 never opens (nothing answers at its I2C address) while its
SDS011 delivers: the real agent, a simulated SDS011 on a pty, a simulated I2C bus with no
device on it, the stack's real broker, ingest and InfluxDB."""

from __future__ import annotations

import functools
from pathlib import Path

from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import Bme280Config, Sds011Config, open_driver
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.test_edge_failures import RunningAgent

BME280_ERROR = "bme280: no device answers at I2C address 0x76"


def deliver_with_a_silent_bme280(stack: LocalStack, workdir: Path, device_id: str) -> None:
    """Register `device_id` (an SDS011 and a BME280) and run its agent until the SDS011's
    readings and both sensors' status are stored; the agent is stopped again."""
    (creds,) = stack.add_devices(
        [(device_id, {"site": "balcony", "sensors": ["sds011", "bme280"]})]
    )
    sds = Sds011Simulator(Sds011Device(read_pm=Street(2).pm_now, bad_frame_rate=0.0))
    sds.start()
    empty_bus = SimulatedI2CBus(1)  # no BME280 attached: every read is OSError 121
    bme_config = Bme280Config(driver="bme280")
    sds_config = Sds011Config(driver="sds011", port=sds.port, timeout_s=1.0)
    edge = RunningAgent(
        stack,
        creds,
        workdir / f"{device_id}-outbox.sqlite",
        [
            SensorOpener("sds011", functools.partial(open_driver, sds_config), 0.3),
            SensorOpener(
                "bme280",
                functools.partial(open_driver, bme_config, i2c_bus_factory=lambda _n: empty_bus),
                0.3,
            ),
        ],
        status_interval_s=1.0,
        reopen_after_s=0.5,
    )
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)

    def stored() -> bool:
        readings = influx.query(f"SELECT count(pm2_5) FROM air WHERE device_id = '{device_id}'")
        status = influx.query(
            f"SELECT count(ok) FROM sensor_status WHERE device_id = '{device_id}' "
            f"AND ok = true AND sensor = 'sds011'"
        )
        return bool(readings and readings[0]["values"][0][1] >= 3 and status)

    try:
        wait_for(stored, what="SDS011 readings and both sensors' status stored")
    finally:
        edge.close()
        sds.stop()
        influx.close()
