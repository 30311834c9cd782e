"""`sensorpipe edge run` with a BME280 simulated on its I2C bus, for bench.edge.

    python -m bench.edge_agent --config edge.toml

`sensorpipe edge run --config ...` as the `sensorpipe` command starts it (sensorpipe.cli.entry),
in the same process; the only difference is the I2C bus factory behind the `bme280`, `sht4x`
and `soil_ads1115` drivers: a `SimulatedI2CBus` with a `Bme280Device` at 0x76/0x77, an
`Sht4xDevice` at 0x44 and an `Ads1115Device` with a soil probe at 0x48 instead of smbus2 on
/dev/i2c-N (this machine has no I2C bus).
The SDS011 needs no such seam: it is simulated on a pty by the benchmark process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from sensorpipe.cli.entry import main
from sensorpipe.edge.drivers import registry
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sht import Sht4xDevice


def simulated_bus(_number: int) -> SimulatedI2CBus:
    """BME280s at 0x76/0x77, an SHT4x at 0x44 and an ADS1115 with a soil probe on AIN0 at 0x48:
    whichever of them the configuration names is read."""
    bus = SimulatedI2CBus(1)
    for address in (0x76, 0x77):
        bus.attach(address, Bme280Device())
    bus.attach(0x44, Sht4xDevice())
    bus.attach(0x48, Ads1115Device({0: SoilProbe()}))
    return bus


def _simulated(name: str) -> Callable[[Any, registry.I2CBusFactory], SensorDriver]:
    opener = registry.DRIVERS[name]
    return lambda config, _i2c: opener(config, simulated_bus)


if __name__ == "__main__":
    for name in ("bme280", "sht4x", "soil_ads1115"):
        registry.DRIVERS[name] = _simulated(name)
    main(["edge", "run", *sys.argv[1:]])
