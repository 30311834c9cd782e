"""The SPS30 on its UART (SHDLC): the simulator's framing against the data sheet's frames, the
real driver (Sensirion's `sensirion-uart-sps30` on a pty) reading number concentrations, each
fault ending in its error kind, and the section's bus-or-port rule. The simulated sensor runs
on a fast clock (20 device seconds a second), so its one-second measurements come quickly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sensorpipe.edge.check import Probes, check_sensor
from sensorpipe.edge.drivers.registry import SensorConfig, open_driver
from sensorpipe.edge.drivers.sps30_uart import Sps30Uart
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorOutOfRange,
    SensorTimeout,
)
from sensorpipe.firmware_sim.sensirion import ManualClock
from sensorpipe.firmware_sim.sps30_uart import (
    FAN_CLEANING,
    FLOAT,
    NOT_ALLOWED,
    READ,
    START,
    STOP,
    WAKE_UP,
    Sps30ShdlcDevice,
    Sps30UartSimulator,
    checksum,
    miso_frame,
    mosi_frame,
    stuff,
    unstuff,
)
from sensorpipe.protocol.quantities import QUANTITIES, plausibility_error

SPEED = 20.0
NUMBERS = ("number_pm0_5", "number_pm1", "number_pm2_5", "number_pm4", "number_pm10")


def _fast() -> float:
    return time.monotonic() * SPEED


@pytest.fixture
def device() -> Sps30ShdlcDevice:
    d = Sps30ShdlcDevice(lambda: (12.0, 20.0), now=_fast)
    d.warmup_s = 0.0  # the exact values; warm-up has its own test
    return d


@pytest.fixture
def sim(device: Sps30ShdlcDevice) -> Iterator[Sps30UartSimulator]:
    with Sps30UartSimulator(device) as s:
        yield s


# --- the frames ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (mosi_frame(START, FLOAT), "7E 00 00 02 01 03 F9 7E"),  # start measurement, float
        (mosi_frame(STOP), "7E 00 01 00 FE 7E"),
        (mosi_frame(READ), "7E 00 03 00 FC 7E"),
        (miso_frame(READ, 0), "7E 00 03 00 00 FC 7E"),  # no new data
        (miso_frame(START, NOT_ALLOWED), "7E 00 00 43 00 BC 7E"),
        # A real SPS30's reply to wake-up while awake: 0x11 stuffed as 7D 31.
        (miso_frame(WAKE_UP, NOT_ALLOWED), "7E 00 7D 31 43 00 AB 7E"),
    ],
)
def test_frames_are_those_of_the_data_sheet_and_a_real_sensor(frame: bytes, wire: str) -> None:
    assert frame == bytes.fromhex(wire)


def test_stuffing_covers_the_four_bytes_and_undoes() -> None:
    assert stuff(bytes([0x7E, 0x7D, 0x11, 0x13, 0x12])) == bytes.fromhex("7D5E 7D5D 7D31 7D33 12")
    body = bytes(range(256))
    assert unstuff(stuff(body)) == body and 0x7E not in stuff(body)
    assert checksum(bytes.fromhex("00 00 02 01 03")) == 0xF9
    with pytest.raises(ValueError, match="no escape"):
        unstuff(bytes.fromhex("7D 00"))


def test_the_simulator_answers_state_bytes_and_no_new_data() -> None:
    clock = ManualClock(100.0)
    d = Sps30ShdlcDevice(now=clock.now)
    clock.sleep(1.0)  # powered up
    assert d.receive(mosi_frame(READ)) == miso_frame(READ, NOT_ALLOWED)  # idle: not allowed
    assert d.receive(mosi_frame(FAN_CLEANING)) == miso_frame(FAN_CLEANING, NOT_ALLOWED)
    assert d.receive(mosi_frame(START, FLOAT)) == miso_frame(START, 0)
    assert d.receive(mosi_frame(START, FLOAT)) == miso_frame(START, NOT_ALLOWED)
    assert d.receive(mosi_frame(READ)) == bytes.fromhex("7E 00 03 00 00 FC 7E")  # no new data
    clock.sleep(1.0)
    reply = d.receive(mosi_frame(READ))
    assert len(unstuff(reply[1:-1])) == 5 + 40  # header, ten floats, checksum
    assert d.receive(mosi_frame(FAN_CLEANING)) == miso_frame(FAN_CLEANING, 0)
    assert d.fan_cleanings == 1
    # A frame with a wrong checksum is not answered.
    bad = bytearray(mosi_frame(STOP))
    bad[-2] ^= 0xFF
    assert d.receive(bytes(bad)) == b"" and d.frames_ignored == 1


def test_a_sleeping_sensor_wakes_on_a_pulse_then_wake_up_within_100_ms() -> None:
    clock = ManualClock(100.0)
    d = Sps30ShdlcDevice(now=clock.now)
    clock.sleep(1.0)  # powered up
    d.receive(mosi_frame(0x10))  # sleep
    assert d.sleeping
    assert d.receive(mosi_frame(0x01)) == b""  # asleep: not heard
    d.receive(b"\xff")  # the low pulse
    clock.sleep(0.2)  # too late: the interface sleeps again
    assert d.receive(mosi_frame(WAKE_UP)) == b"" and d.sleeping
    assert d.receive(b"\xff" + mosi_frame(WAKE_UP)) == miso_frame(WAKE_UP, 0)
    assert not d.sleeping


# --- the driver ----------------------------------------------------------------------------
def _one_reading(port: str, **options: Any) -> dict[str, float]:
    """Open the driver on `port`, read once, close it."""
    driver = Sps30Uart(port, **options)
    try:
        return driver.read()
    finally:
        driver.close()


def test_the_driver_reads_mass_and_number_concentrations_over_the_pty(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator
) -> None:
    reading = _one_reading(sim.port)
    assert reading["pm2_5"] == 12.0 and reading["pm10"] == 20.0
    numbers = [reading[q] for q in NUMBERS]
    assert numbers == sorted(numbers) and numbers[0] > 0  # each holds the smaller sizes
    assert reading["particle_size_typical"] == 0.55
    assert all(plausibility_error(q, v) is None for q, v in reading.items())
    # On the wire: the data sheet's start (float) and read frames; closed, it sleeps.
    frames = [f.hex(" ").upper() for f in device.frames_received]
    assert "7E 00 00 02 01 03 F9 7E" in frames and "7E 00 03 00 FC 7E" in frames
    assert frames[0] == "7E 00 7D 31 00 EE 7E"  # wake-up (0x11 stuffed) after the 0xFF pulse
    assert device.sleeping and not device.measuring


def test_number_concentrations_can_be_left_out(sim: Sps30UartSimulator) -> None:
    reading = _one_reading(sim.port, number_concentrations=False)
    assert set(reading) == {"pm1", "pm2_5", "pm4", "pm10"}


def test_a_sleeping_sensor_is_woken_by_the_next_open(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator
) -> None:
    Sps30Uart(sim.port).close()
    assert device.sleeping
    driver = Sps30Uart(sim.port, fan_cleaning_interval_s=345_600)
    try:
        assert not device.sleeping and device.measuring
        assert device.auto_cleaning_interval_s == 345_600
        driver.clean_fan()
        assert device.fan_cleanings == 1
    finally:
        driver.close()


def test_warm_up_values_come_after_no_new_data() -> None:
    d = Sps30ShdlcDevice(lambda: (12.0, 20.0), now=_fast, seed=4)  # 8 s start-up time
    with Sps30UartSimulator(d) as s:
        reading = _one_reading(s.port)  # waits out the first second's empty answers
    assert reading["pm2_5"] != 12.0  # unstable while the fan and laser settle
    assert any(r == miso_frame(READ, 0) for r in d.replies)


@pytest.mark.parametrize(
    ("fault", "error", "kind", "words"),
    [
        ("crc", SensorChecksumError, "checksum", "bad checksum"),
        ("silent", SensorTimeout, "timeout", "no answer on"),
        ("range", SensorOutOfRange, "out_of_range", "outside the data sheet's range"),
        ("fan", SensorError, "sensor_fault", "fan error"),
        ("power_cut", SensorError, "state", "not measuring"),
    ],
)
def test_each_fault_ends_in_its_error_kind(
    device: Sps30ShdlcDevice,
    sim: Sps30UartSimulator,
    fault: str,
    error: type[SensorError],
    kind: str,
    words: str,
) -> None:
    driver = Sps30Uart(sim.port)
    try:
        if fault == "crc":
            device.crc_burst(3)
        elif fault == "silent":
            device.go_silent(3600.0 * SPEED)
        elif fault == "range":
            device.out_of_range = True
        elif fault == "fan":
            device.status_register = 1 << 4
        else:  # after a power cut: awake, idle
            device.measuring = False
        with pytest.raises(error, match=words) as caught:
            driver.read()
        assert caught.value.kind == kind and "\n" not in str(caught.value)
        if fault in ("crc", "power_cut"):  # a burst passes; a restarted sensor reads again
            device.crc_errors_left = 0
            assert driver.read()["pm2_5"] == 12.0
    finally:
        device.silent_until = 0.0
        driver.close()


def test_stuck_values_are_read_as_they_are(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator
) -> None:
    """A stuck sensor is no read error: the quality checks flag the run of equal values."""
    driver = Sps30Uart(sim.port)
    try:
        first = driver.read()
        device.stuck = True
        device.read = lambda: (30.0, 40.0)
        assert driver.read() == first
    finally:
        driver.close()


def test_no_sensor_on_the_port_is_a_configuration_error(device: Sps30ShdlcDevice) -> None:
    device.go_silent(3600.0 * SPEED)
    with Sps30UartSimulator(device) as s, pytest.raises(SensorConfigError, match="SEL"):
        Sps30Uart(s.port)
    with pytest.raises(SensorConfigError, match="cannot open /nonexistent/tty"):
        Sps30Uart("/nonexistent/tty")


# --- the configuration -----------------------------------------------------------------------
def test_a_section_with_a_port_opens_the_uart_driver(sim: Sps30UartSimulator) -> None:
    config = TypeAdapter(SensorConfig).validate_python({"driver": "sps30", "port": sim.port})
    driver = open_driver(config)
    try:
        assert isinstance(driver, Sps30Uart) and "number_pm2_5" in driver.read()
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("section", "given"),
    [
        ({"bus": 1, "port": "/dev/serial0"}, "both `bus` and `port`"),
        ({}, "neither `bus` nor `port`"),
    ],
)
def test_a_section_names_its_bus_or_its_port(section: dict[str, object], given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(SensorConfig).validate_python({"driver": "sps30", **section})
    (error,) = caught.value.errors()
    assert error["msg"].startswith(given) and "give exactly one" in error["msg"]


def test_the_quantities_say_what_they_count() -> None:
    for q in NUMBERS:
        assert QUANTITIES[q].unit == "1/cm3" and "0.3 to" in QUANTITIES[q].description
        assert QUANTITIES[q].maximum == 3000.0  # the data sheet's number concentration range
    assert "larger than" in QUANTITIES["particles_0_5"].description  # the PMS counts differ
    assert QUANTITIES["particle_size_typical"].unit == "um"


# --- edge check --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("none", ("pm1 ", "number_pm2_5 ", "particle_size_typical 0.55")),
        ("silent", ("no answer", "SEL", "power")),
        ("crc", ("bad checksum",)),
        ("range", ("outside the data sheet's range",)),
        ("fan", ("fan error",)),
        ("port", ("no such port", "USB adapter")),
        ("pi_uart", ("no such port", "enable_uart=1")),
    ],
)
def test_edge_check_names_each_fault_of_the_uart_sps30_in_one_line(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator, fault: str, words: tuple[str, ...]
) -> None:
    if fault == "silent":
        device.go_silent(3600.0 * SPEED)
    elif fault == "crc":
        device.crc_burst(1000)
    elif fault == "range":
        device.out_of_range = True
    elif fault == "fan":
        device.status_register = 1 << 4
    ports = {"port": "/dev/ttyNOSUCHPORT9", "pi_uart": "/dev/serial9"}
    port = ports.get(fault, sim.port)
    config = TypeAdapter(SensorConfig).validate_python({"driver": "sps30", "port": port})
    check, ok = check_sensor(config, Probes())
    line = check.line()
    assert ok == (fault == "none") and "\n" not in line
    assert line.startswith("ok" if ok else "FAIL") and f"{port}: " in line
    for word in words:
        assert word in line, line


def test_number_concentrations_get_the_fog_flag_and_their_own_range() -> None:
    from sensorpipe.quality.config import QualityConfig

    rules = QualityConfig().rules("sps30", "number_pm2_5")
    assert rules.humidity and rules.warmup_s == 120.0 and rules.high == 3000.0
    assert rules.spike_factor == 0.0  # no spike rule for counts
    from sensorpipe.quality.checker import QualityChecker

    out = QualityChecker().flag(
        "d1", "sps30", 1_700_000_000_000, [("number_pm2_5", 80.0), ("pm2_5", 12.0)], humidity=99.0
    )
    assert out == {"number_pm2_5": "fog,humidity", "pm2_5": "fog,humidity"}


def test_a_sensor_that_falls_silent_and_comes_back_is_started_again(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator
) -> None:
    driver = Sps30Uart(sim.port)
    try:
        driver.read()
        device.go_silent(10.0)  # device seconds: a brown-out of 0.5 s
        with pytest.raises(SensorTimeout):
            driver.read()
        while device.now() < device.silent_until + device.power_up_s:
            time.sleep(0.05)  # until it is back, as after a power cut: awake and idle
        with pytest.raises(SensorError, match="measurement restarted") as caught:
            driver.read()
        assert caught.value.kind == "state" and device.measuring
        assert driver.read()["pm2_5"] == 12.0
    finally:
        driver.close()


def test_counts_beyond_the_data_sheet_leave_the_mass_reading_alone(
    device: Sps30ShdlcDevice, sim: Sps30UartSimulator
) -> None:
    """Dense smoke: PM within 0-1000 µg/m³, NC beyond 3000 #/cm³. The reading keeps the PM;
    the counts fail the quantity's plausible range, which the agent applies value by value."""
    device.read = lambda: (500.0, 900.0)
    reading = _one_reading(sim.port)
    assert reading["pm2_5"] == 500.0 and reading["pm10"] == 900.0
    implausible = {q for q, v in reading.items() if plausibility_error(q, v) is not None}
    assert implausible and implausible <= set(NUMBERS)
