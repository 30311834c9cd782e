"""`sensorpipe edge run` with a BME280 simulated on its I2C bus, for bench.edge.

    python -m bench.edge_agent --config edge.toml

`sensorpipe edge run --config ...` as the `sensorpipe` command starts it (sensorpipe.cli.entry),
in the same process; the only difference is the I2C bus factory behind the `bme280` driver: a
`SimulatedI2CBus` with a `Bme280Device` at 0x76/0x77 instead of smbus2 on /dev/i2c-N (this
machine has no I2C bus).
The SDS011 needs no such seam: it is simulated on a pty by the benchmark process.
"""

from __future__ import annotations

import sys
from typing import Any

from sensorpipe.cli.entry import main
from sensorpipe.edge.drivers import registry
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus


def simulated_bus(_number: int) -> SimulatedI2CBus:
    bus = SimulatedI2CBus(1)
    for address in (0x76, 0x77):
        bus.attach(address, Bme280Device())
    return bus


def _open_bme280(config: Any, _i2c: registry.I2CBusFactory) -> SensorDriver:
    return registry._open_bme280(config, simulated_bus)


if __name__ == "__main__":
    registry.DRIVERS["bme280"] = _open_bme280
    main(["edge", "run", *sys.argv[1:]])
