"""CPU per reading of each I2C (and the 1-Wire DS18B20) sensor driver, against its simulator.

    python -m bench.edge_drivers [--reads N] [--json]

Each driver is opened through the registry (as the agent opens it) on a `SimulatedI2CBus`, and
`read()` is called N times (default 200); `time.process_time()` over those calls, divided by N,
is the CPU one reading costs (the waits for the sensor's measurement are sleeps: they cost time,
not CPU). The simulator answers in the same process, so its own work is counted too: the figures
are an upper bound on what the driver costs a Pi. The BME280 driver is the baseline, measured in
the same run. `bench.edge` prints these figures with its others.

The DS18B20 (`ds18b20_cpu`) is on 1-Wire, not I2C: its driver reads the w1_slave file the
kernel writes; here the simulator writes one conversion into a temporary sysfs-like folder
before each read (on a Pi that is the kernel's work, not the agent's), counted too.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sensorpipe.edge.drivers.registry import (
    Bme280Config,
    Ds18b20Config,
    Sht3xConfig,
    Sht4xConfig,
    SoilProbeConfig,
    open_driver,
)
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus
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


def _figures(reads: int, values: int, cpu: float, wall: float) -> dict[str, float]:
    return {
        "reads": reads,
        "cpu_us_per_read": round(cpu / reads * 1e6, 1),
        "cpu_us_per_reading": round(cpu / values * 1e6, 1),
        "wall_ms_per_read": round(wall / reads * 1e3, 2),
    }


def ds18b20_cpu(reads: int = 200) -> dict[str, float]:
    """The DS18B20 driver: one simulated conversion written to w1_slave, then read(); and
    read() alone (the same file again: what the agent's process spends on a Pi)."""
    with tempfile.TemporaryDirectory(prefix="w1-bench-") as folder:
        bus = W1Bus(folder, [Ds18b20Probe("28-0000072a4b1c", lambda: 11.5)])
        driver = open_driver(Ds18b20Config(driver="ds18b20", w1_root=folder))
        values = 0
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(reads):
            bus.convert()
            values += len(driver.read())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        alone = time.process_time()
        for _ in range(reads):
            driver.read()
        alone = time.process_time() - alone
        driver.close()
    return {
        **_figures(reads, values, cpu, wall),
        "driver_cpu_us_per_read": round(alone / reads * 1e6, 1),
    }


def driver_cpu(reads: int = 200) -> dict[str, dict[str, float]]:
    """Per driver: CPU µs per read() and per reading (one quantity's value), and wall ms per
    read() (mostly the measurement waits); the I2C drivers of CASES, then the DS18B20."""
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
        result[name] = _figures(reads, values, cpu, wall)
    result["ds18b20"] = ds18b20_cpu(reads)
    return result


def report(result: dict[str, dict[str, float]]) -> list[str]:
    lines = ["CPU per reading, driver + its simulator in one process (upper bound):"]
    for name, r in result.items():
        base = " (baseline)" if name == "bme280" else ""
        if "driver_cpu_us_per_read" in r:
            base = f" (driver alone {r['driver_cpu_us_per_read']} µs)"
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
