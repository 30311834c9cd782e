"""CPU per reading of the Sensirion drivers (SPS30, SCD30, SCD4x), for bench.edge.

Each driver (Sensirion's package through our transceiver) reads its byte-level simulator on the
simulated I2C bus, in this process, on a fake clock that is moved on by one measurement period
before each reading, as at the agent's 60-s interval: the data-ready poll answers yes at once,
then the measurement is read. CPU time (`time.process_time`) over `n` readings, divided by `n`,
in microseconds; it includes the simulator's side of each transfer (building the answer and its
CRCs), so it is an upper bound of the driver's own cost. A Pi's CPU is several times slower
than a desktop's; the ratio between the drivers carries over.
"""

from __future__ import annotations

import time
from typing import Any

from sensorpipe.edge.drivers.scd4x import Scd4x
from sensorpipe.edge.drivers.scd30 import Scd30
from sensorpipe.edge.drivers.sps30 import Sps30
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sensirion import (
    SCD4X_ADDRESS,
    SCD30_ADDRESS,
    SPS30_ADDRESS,
    ManualClock,
    Scd4xDevice,
    Scd30Device,
    Sps30Device,
)

SENSORS: dict[str, tuple[Any, Any, int, float, dict[str, Any]]] = {
    # name: simulator, driver, address, measurement period (s), driver options
    "sps30": (Sps30Device, Sps30, SPS30_ADDRESS, 1.0, {}),
    "scd30": (Scd30Device, Scd30, SCD30_ADDRESS, 2.0, {"bme280_address": None}),
    "scd4x": (Scd4xDevice, Scd4x, SCD4X_ADDRESS, 5.0, {"bme280_address": None}),
}


def cpu_per_reading(n: int = 500) -> dict[str, float]:
    """Microseconds of CPU per reading, per driver."""
    result = {}
    for name, (device_class, driver_class, address, period_s, options) in SENSORS.items():
        clock = ManualClock()
        device = device_class(now=clock.now)
        clock.t += device.power_up_s
        bus = SimulatedI2CBus(1)
        bus.attach(address, device)
        driver = driver_class(bus, sleep=clock.sleep, **options)
        clock.t += period_s
        driver.read()  # warm: the first reading after the start
        started = time.process_time()
        for _ in range(n):
            clock.t += period_s
            driver.read()
        result[name] = round((time.process_time() - started) / n * 1e6, 1)
        driver.close()
    return result


if __name__ == "__main__":
    for name, micros in cpu_per_reading().items():
        print(f"{name}: {micros} µs CPU per reading (driver + simulator)")
