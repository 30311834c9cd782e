"""CPU per reading of each I2C sensor driver, against its byte-level simulator, in-process.

    python -m bench.edge_drivers [--reads N] [--json]

Each driver is opened through the registry (as the agent opens it) on a `SimulatedI2CBus`, and
`read()` is called N times (default 200); `time.process_time()` over those calls, divided by N,
is the CPU one reading costs (the waits for the sensor's measurement are sleeps: they cost time,
not CPU). The simulator answers in the same process, so its own work is counted too: the figures
are an upper bound on what the driver costs a Pi. The BME280 driver is the baseline, measured in
the same run. `bench.edge` prints these figures with its others.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from sensorpipe.edge.drivers.registry import (
    Bme280Config,
    Sht3xConfig,
    Sht4xConfig,
    SoilProbeConfig,
    open_driver,
)
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sht import Sht3xDevice, Sht4xDevice


def _on_bus(address: int, device: Any) -> Callable[[int], SimulatedI2CBus]:
    bus = SimulatedI2CBus(1)
    bus.attach(address, device)
    return lambda _n: bus


# name: (its configuration, a bus factory with its simulator attached)
CASES: dict[str, Callable[[], tuple[Any, Callable[[int], SimulatedI2CBus]]]] = {
    "bme280": lambda: (Bme280Config(driver="bme280"), _on_bus(0x76, Bme280Device())),
    "sht3x": lambda: (Sht3xConfig(driver="sht3x"), _on_bus(0x44, Sht3xDevice())),
    "sht4x": lambda: (Sht4xConfig(driver="sht4x"), _on_bus(0x44, Sht4xDevice())),
    "soil_ads1115": lambda: (
        SoilProbeConfig(driver="soil_ads1115", v_dry=2.6, v_wet=1.2),
        _on_bus(0x48, Ads1115Device({0: SoilProbe()})),
    ),
}


def driver_cpu(reads: int = 200) -> dict[str, dict[str, float]]:
    """Per driver: CPU µs per read() and per reading (one quantity's value), and wall ms per
    read() (mostly the measurement waits)."""
    result: dict[str, dict[str, float]] = {}
    for name, case in CASES.items():
        config, factory = case()
        driver = open_driver(config, i2c_bus_factory=factory)
        values = 0
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(reads):
                values += len(driver.read())
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            driver.close()
        result[name] = {
            "reads": reads,
            "cpu_us_per_read": round(cpu / reads * 1e6, 1),
            "cpu_us_per_reading": round(cpu / values * 1e6, 1),
            "wall_ms_per_read": round(wall / reads * 1e3, 2),
        }
    return result


def report(result: dict[str, dict[str, float]]) -> list[str]:
    lines = ["CPU per reading, driver + its simulator in one process (upper bound):"]
    for name, r in result.items():
        base = " (baseline)" if name == "bme280" else ""
        lines.append(
            f"  {name:<14}: {r['cpu_us_per_read']:>8} µs CPU per read, "
            f"{r['cpu_us_per_reading']:>8} µs per reading, {r['wall_ms_per_read']:>6} ms wall "
            f"per read{base}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200, help="read() calls per driver")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.reads < 1:
        parser.error("--reads must be at least 1")
    result = driver_cpu(args.reads)
    print(json.dumps(result) if args.json else "\n".join(report(result)))


if __name__ == "__main__":
    main()
