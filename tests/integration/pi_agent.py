"""`python tests/integration/pi_agent.py edge check|run --config F`: the real `sensorpipe` CLI as
a Pi runs it, in a process of its own (tests/integration/test_pi_on_a_network.py runs it in a
network namespace), with what a test machine lacks put in place: a BME280 on the simulated I2C
bus (the one tests/integration/test_edge_check.py uses) and a clock taken as synchronised (a
container's clock is not NTP-disciplined; `PI_CLOCK_SYNCED=0` in the environment: taken as not
synchronised). The SDS011 is the configured serial port, a pty."""

from __future__ import annotations

import os
import sys
from typing import Any

from sensorpipe.cli.main import main
from sensorpipe.edge.check import Probes
from sensorpipe.edge.drivers import registry
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus


def run() -> None:
    bus = SimulatedI2CBus(1)
    bus.attach(0x76, Bme280Device(Street(1).climate_now))
    open_bme280 = registry.DRIVERS["bme280"]

    def simulated(config: Any, _smbus: Any) -> Any:
        return open_bme280(config, lambda _n: bus)

    registry.DRIVERS["bme280"] = simulated  # `edge run` opens its sensors through this table
    synced = os.environ.get("PI_CLOCK_SYNCED", "1") != "0"
    probes = Probes(clock_synced=lambda: synced, i2c_bus_factory=lambda _n: bus)
    main(args=sys.argv[1:], prog_name="sensorpipe", obj=probes)


if __name__ == "__main__":
    run()
