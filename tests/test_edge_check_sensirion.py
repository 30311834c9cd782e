"""`edge check` on the SPS30, SCD30 and SCD4x: one reading each through the registry (real
drivers, real waits), and each simulator fault named in the one line it prints. The simulated
sensors run on a fast clock (20 device seconds a second), so an SCD4x's 5 s period is short."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from sensorpipe.edge.check import FAIL, OK, Probes, check_sensor
from sensorpipe.edge.drivers.registry import SensorConfig
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sensirion import (
    Scd4xDevice,
    Scd30Device,
    SensirionDevice,
    Sps30Device,
)

SPEED = 20.0
SENSORS: dict[str, tuple[type[SensirionDevice], int]] = {
    "sps30": (Sps30Device, 0x69),
    "scd30": (Scd30Device, 0x61),
    "scd4x": (Scd4xDevice, 0x62),
}


def _fast() -> float:
    return time.monotonic() * SPEED


def _check(
    name: str, fault: Callable[[Any], None] | None = None, at: int | None = None
) -> tuple[str, bool]:
    device_class, address = SENSORS[name]
    device = device_class(now=_fast)
    device.powered_at -= device.power_up_s  # powered up a while ago
    if fault is not None:
        fault(device)

    def factory(bus_number: int) -> SimulatedI2CBus:
        bus = SimulatedI2CBus(bus_number)
        bus.attach(address if at is None else at, device)
        return bus

    link = {"bus": 1} if name == "sps30" else {}  # an SPS30 names its bus or its port
    config = TypeAdapter(SensorConfig).validate_python({"driver": name, **link})
    check, ok = check_sensor(config, Probes(i2c_bus_factory=factory))
    assert check.status == (OK if ok else FAIL)
    return check.line(), ok


@pytest.mark.parametrize("name", SENSORS)
def test_a_working_sensor_shows_its_values(name: str) -> None:
    line, ok = _check(name)
    first = "pm1" if name == "sps30" else "co2"
    assert ok and f"/dev/i2c-1 at {hex(SENSORS[name][1])}: {first} " in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("address", ("no answer", "answers at 0x", "wiring")),
        ("silent", ("no answer", "not acknowledged", "power")),
        ("crc", ("bad checksum",)),
        ("range", ("outside the data sheet's range",)),
    ],
)
@pytest.mark.parametrize("name", SENSORS)
def test_each_fault_is_named_in_one_line(name: str, fault: str, words: tuple[str, ...]) -> None:
    faults: dict[str, Callable[[Any], None]] = {
        "address": lambda d: None,
        "silent": lambda d: d.go_silent(3600.0),
        "crc": lambda d: d.crc_burst(1000),
        "range": lambda d: setattr(d, "out_of_range", True),
    }
    at = SENSORS[name][1] + 1 if fault == "address" else None
    line, ok = _check(name, faults[fault], at)
    assert not ok and line.startswith("FAIL") and "\n" not in line
    for word in words:
        assert word in line, line


def test_an_scd4x_just_powered_up_is_waited_for() -> None:
    line, ok = _check("scd4x", lambda d: setattr(d, "powered_at", _fast()))
    assert ok, line


def test_an_sps30_whose_fan_stopped_says_so() -> None:
    line, ok = _check("sps30", lambda d: setattr(d, "status_register", 1 << 4))
    assert not ok and "fan error: the fan is switched on but not running" in line
