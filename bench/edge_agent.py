"""`sensorpipe edge run` with its I2C sensors on a bus simulated in the benchmark's process.

    SENSORPIPE_BENCH_I2C=/path/to/socket python -m bench.edge_agent --config edge.toml

`sensorpipe edge run --config ...` as the `sensorpipe` command starts it (sensorpipe.cli.entry),
in the same process; the only difference is the I2C bus factory behind the I2C drivers
(`bme280`, `sht3x`, `sht4x`, `soil_ads1115`, `sps30`, `scd30`, `scd4x`): a
`bench.remote_i2c.RemoteI2CBus` talking to the simulated devices that bench.edge serves
(`I2CServer`), instead of smbus2 on /dev/i2c-N (this machine has no I2C bus). The simulators
stay out of the agent's process, so its memory is that of an agent on a Pi.
The SDS011 and the PMS5003 need no such seam: they are simulated on ptys by the benchmark.
"""

from __future__ import annotations

import sys
from typing import Any

from bench.remote_i2c import remote_bus_from_env
from sensorpipe.cli.entry import main
from sensorpipe.edge.drivers import registry
from sensorpipe.edge.drivers.base import SensorDriver

I2C_DRIVERS = ("bme280", "sht3x", "sht4x", "soil_ads1115", "sps30", "scd30", "scd4x")


def _remote(name: str) -> Any:
    opener = registry.DRIVERS[name]

    def open_on_remote_bus(config: Any, _i2c: registry.I2CBusFactory) -> SensorDriver:
        return opener(config, remote_bus_from_env)

    return open_on_remote_bus


if __name__ == "__main__":
    for name in I2C_DRIVERS:
        registry.DRIVERS[name] = _remote(name)
    main(["edge", "run", *sys.argv[1:]])
