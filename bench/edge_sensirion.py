"""CPU per reading of the Sensirion drivers (SPS30, SCD30, SCD4x), for bench.edge.

Each driver (Sensirion's package through our transceiver) reads its byte-level simulator on the
simulated I2C bus, in this process, on a fake clock that is moved on by one measurement period
before each reading, as at the agent's 60-s interval: the data-ready poll answers yes at once,
then the measurement is read. CPU time (`time.process_time`) over `n` readings, divided by `n`,
in microseconds; it includes the simulator's side of each transfer (building the answer and its
CRCs), so it is an upper bound of the driver's own cost. A Pi's CPU is several times slower
than a desktop's; the ratio between the drivers carries over.

`sps30_uart_cpu`: the SPS30 on its UART (`edge.drivers.sps30_uart`, Sensirion's
`sensirion-uart-sps30` through pyserial) against `Sps30UartSimulator` on a pty: the read
frame, the 47-byte reply with its stuffing and checksum, the status register, and the ten
values. Measured like bench.edge's PMS5003 figure, with the reading thread's CPU clock
(`time.thread_time`), so the simulator's thread does not count; the device's clock is moved on
one second before each reading, so each finds a new measurement.
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


def timed_reads(name: str, driver: Any, reads: int, before: Any = lambda: None) -> dict[str, Any]:
    """CPU (the calling thread's) and wall time per reading of an open `driver`, over `reads`
    readings after one not counted (it opens buffers); `before()` runs before each."""
    before()
    driver.read()
    values = 0
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(reads):
        before()
        values += len(driver.read())
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return {
        "driver": name,
        "reads": reads,
        "values_per_read": values / reads,
        "cpu_us_per_read": round(cpu / reads * 1e6, 1),
        "wall_ms_per_read": round(wall / reads * 1e3, 2),
    }


def sps30_uart_cpu(reads: int = 300) -> dict[str, Any]:
    """CPU per reading of the UART SPS30's driver, over a pty to its SHDLC simulator."""
    from sensorpipe.edge.drivers.sps30_uart import Sps30Uart
    from sensorpipe.firmware_sim.sps30_uart import Sps30ShdlcDevice, Sps30UartSimulator

    clock = ManualClock(100.0)
    device = Sps30ShdlcDevice(now=clock.now)
    device.warmup_s = 0.0

    def one_second() -> None:  # a new measurement for each reading
        clock.t += 1.0

    with Sps30UartSimulator(device) as sim:
        driver = Sps30Uart(sim.port, sleep=clock.sleep)
        try:
            return timed_reads("sps30_uart", driver, reads, one_second)
        finally:
            driver.close()


if __name__ == "__main__":
    for name, micros in cpu_per_reading().items():
        print(f"{name}: {micros} µs CPU per reading (driver + simulator)")
    uart = sps30_uart_cpu()
    print(
        f"sps30 over its UART: {uart['cpu_us_per_read']} µs CPU per reading (the reading "
        f"thread's; {uart['values_per_read']:g} values, {uart['wall_ms_per_read']} ms wall)"
    )
