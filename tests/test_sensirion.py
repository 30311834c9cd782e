"""SPS30, SCD30 and SCD4x: Sensirion's drivers (through our transceiver) against the byte-level
simulators, down to the bytes on the wire, the data sheets' worked examples, and every fault
mode of the simulators. Time is a fake clock that the drivers' waits advance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import TypeAdapter, ValidationError
from smbus2 import i2c_msg

from sensorpipe.edge import errors
from sensorpipe.edge.drivers.registry import SensorConfig
from sensorpipe.edge.drivers.scd4x import Scd4x
from sensorpipe.edge.drivers.scd30 import Scd30
from sensorpipe.edge.drivers.sensirion import SensirionDriver
from sensorpipe.edge.drivers.sensirion_crc import crc8
from sensorpipe.edge.drivers.sps30 import Sps30
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sensirion import (
    ManualClock as Clock,
)
from sensorpipe.firmware_sim.sensirion import (
    Scd4xDevice,
    Scd30Device,
    SensirionDevice,
    Sps30Device,
    encode_words,
)


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


def _bus(address: int, device: object, bme280_hpa: float | None = None) -> SimulatedI2CBus:
    bus = SimulatedI2CBus(1)
    bus.attach(address, device)  # type: ignore[arg-type]
    if bme280_hpa is not None:
        bus.attach(0x76, Bme280Device(lambda: (21.0, 50.0, bme280_hpa)))
    return bus


D = TypeVar("D", bound=SensirionDevice)


def _powered(device: D, clock: Clock) -> D:
    clock.t += device.power_up_s
    return device


# --- CRC: the data sheets' example and the command bytes they quote ---------------------------
@pytest.mark.parametrize(
    ("word", "crc"),
    [
        (b"\xbe\xef", 0x92),  # SCD4x data sheet Table 32, SHT3x, SGP40
        (b"\x00\x00", 0x81),  # SCD30 start measurement without pressure
        (b"\x01\xe0", 0xB4),  # SCD4x forced recalibration to 480 ppm (data sheet §3.7)
        (b"\x00\x01", 0xB0),  # SCD4x ASC enable (data sheet §3.7)
        (b"\x03\x00", 0xAC),  # SPS30 start measurement, float output
    ],
)
def test_sensirion_crc8_matches_the_data_sheets(word: bytes, crc: int) -> None:
    assert crc8(word) == crc


def test_words_on_the_wire_carry_their_crc() -> None:
    assert encode_words([0xBEEF, 0x0000]).hex() == "beef92000081"


# --- SCD30 ----------------------------------------------------------------------------------
def test_scd30_start_command_is_the_interface_descriptions_example(clock: Clock) -> None:
    device = _powered(Scd30Device(now=clock.now), clock)
    driver = Scd30(_bus(0x61, device), bme280_address=None, sleep=clock.sleep)
    # Interface description: "C2 00 10 00 00 81" (write header 0x61 << 1, no pressure)
    start = [w for w in device.written if w[:2] == b"\x00\x10"]
    assert (bytes([0x61 << 1]) + start[0]).hex() == "c20010000081"
    reading = driver.read()
    # 439.1 ppm as the float 0x43DB8C2E, each word with its CRC
    assert device.read_back[-1][:6].hex() == "43dbcb8c2e8f"
    assert reading == {"co2": 439.1, "temperature": 22.25, "relative_humidity": 48.0}


def test_scd30_settings_are_written_only_when_they_differ(clock: Clock) -> None:
    device = _powered(Scd30Device(now=clock.now), clock)
    bus = _bus(0x61, device)
    Scd30(bus, self_calibration=True, altitude_m=40, bme280_address=None, sleep=clock.sleep)
    assert (device.self_calibration, device.altitude_m, device.nv_writes) == (1, 40, 2)
    written = [w.hex() for w in device.written]
    assert "53060001b0" in written  # ASC on
    Scd30(bus, self_calibration=True, altitude_m=40, bme280_address=None, sleep=clock.sleep)
    assert device.nv_writes == 2  # the second start spares the sensor's flash


def test_scd30_takes_the_pressure_of_a_bme280_on_the_same_bus(clock: Clock) -> None:
    hpa = [987.0]
    device = _powered(Scd30Device(now=clock.now), clock)
    bus = SimulatedI2CBus(1)
    bus.attach(0x61, device)
    bus.attach(0x76, Bme280Device(lambda: (21.0, 50.0, hpa[0])))
    driver = Scd30(bus, sleep=clock.sleep)
    assert device.pressure_mbar == 987
    assert "001003db42" in [w.hex() for w in device.written]  # 987 mbar = 0x03DB, CRC 0x42
    hpa[0] = 1001.0
    driver.read()
    assert device.pressure_mbar == 1001  # restarted with the new pressure


# --- SCD4x ----------------------------------------------------------------------------------
def test_scd4x_reads_the_data_sheets_example_values(clock: Clock) -> None:
    device = _powered(Scd4xDevice(now=clock.now), clock)
    driver = Scd4x(_bus(0x62, device), sleep=clock.sleep)
    reading = driver.read()
    # 500 ppm, 25 °C, 37 %RH: words 01F4 6667 5EB9 with their CRCs 33 A2 3C
    assert device.read_back[-1].hex() == "01f433" + "6667a2" + "5eb93c"
    assert reading == {"co2": 500.0, "temperature": 25.0, "relative_humidity": 37.0}
    assert "24160001b0" in [w.hex() for w in device.written]  # the data sheet's ASC enable


def test_scd4x_self_calibration_off_and_altitude_without_a_bme280(clock: Clock) -> None:
    device = _powered(Scd4xDevice(now=clock.now), clock)
    Scd4x(_bus(0x62, device), self_calibration=False, altitude_m=120, sleep=clock.sleep)
    assert not device.self_calibration and device.altitude_m == 120
    assert not device.pressure_set
    assert "24160000" + f"{crc8(bytes(2)):02x}" in [w.hex() for w in device.written]


def test_scd4x_ambient_pressure_from_the_bme280_while_measuring(clock: Clock) -> None:
    device = _powered(Scd4xDevice(now=clock.now), clock)
    Scd4x(_bus(0x62, device, bme280_hpa=987.0), sleep=clock.sleep)
    assert device.measuring and device.pressure_pa == 98_700
    assert device.written[-1].hex() == "e00003db42"  # research table: 987 hPa = 0x03DB, CRC 42


def test_scd4x_forced_recalibration_bytes_of_the_data_sheet(clock: Clock) -> None:
    device = _powered(Scd4xDevice(lambda: (530.0, 25.0, 37.0), now=clock.now), clock)
    bus = _bus(0x62, device)
    bus.i2c_rdwr(i2c_msg.write(0x62, bytes.fromhex("362f01e0b4")))
    answer = i2c_msg.read(0x62, 3)
    bus.i2c_rdwr(answer)
    assert bytes(answer.buf[:3]).hex() == "7fce7b"  # correction 0x7FCE - 0x8000 = -50 ppm


def test_scd4x_waits_out_its_power_up_time(clock: Clock) -> None:
    device = Scd4xDevice(now=clock.now)  # just powered: 1000 ms before it answers
    driver = Scd4x(_bus(0x62, device), sleep=clock.sleep)
    assert clock.t - device.powered_at >= 1.0
    assert driver.read()["co2"] == 500.0


def test_scd4x_refuses_commands_while_it_measures(clock: Clock) -> None:
    device = _powered(Scd4xDevice(now=clock.now), clock)
    Scd4x(_bus(0x62, device), sleep=clock.sleep)
    with pytest.raises(OSError):
        device.i2c_write(bytes.fromhex("36f6"))  # wake_up is not allowed while measuring


# --- SPS30 ----------------------------------------------------------------------------------
# The simulator's number concentrations (#/cm³) and typical size (µm) for PM2.5 12, PM10 20.
NUMBERS = {
    "number_pm0_5": 62.4,
    "number_pm1": 72.96,
    "number_pm2_5": 74.16,
    "number_pm4": 74.63,
    "number_pm10": 75.36,
    "particle_size_typical": 0.55,
}


def test_sps30_float_output_is_read_as_60_bytes_in_one_transfer(clock: Clock) -> None:
    device = _powered(Sps30Device(lambda: (12.0, 20.0), now=clock.now), clock)
    driver = Sps30(_bus(0x69, device), sleep=clock.sleep)
    assert "00100300ac" in [w.hex() for w in device.written]  # start, float output
    reading = driver.read()
    assert len(device.read_back[-1]) == 60  # an SMBus block read would stop at 32
    assert reading == {"pm1": 9.6, "pm2_5": 12.0, "pm4": 15.2, "pm10": 20.0, **NUMBERS}
    with pytest.raises(ValueError, match="over 32"):
        _bus(0x69, device).read_i2c_block_data(0x69, 0x03, 60)


def test_sps30_fan_cleaning_and_its_interval(clock: Clock) -> None:
    device = _powered(Sps30Device(now=clock.now), clock)
    driver = Sps30(_bus(0x69, device), fan_cleaning_interval_s=345_600, sleep=clock.sleep)
    assert device.auto_cleaning_interval_s == 345_600
    interval = "8004" + encode_words([0x0005, 0x4600]).hex()  # 345 600 s as a uint32
    assert interval in [w.hex() for w in device.written]
    driver.clean_fan()
    assert device.fan_cleanings == 1 and device.written[-1].hex() == "5607"


def test_sps30_sleeps_on_close_and_wakes_on_open(clock: Clock) -> None:
    device = _powered(Sps30Device(now=clock.now), clock)
    bus = _bus(0x69, device)
    Sps30(bus, sleep=clock.sleep).close()
    assert device.sleeping and not device.measuring
    driver = Sps30(bus, sleep=clock.sleep)
    assert not device.sleeping and driver.read()["pm2_5"] == 12.0


def test_sps30_fan_and_laser_errors_of_its_status_register_fail_the_reading(
    clock: Clock,
) -> None:
    device = _powered(Sps30Device(now=clock.now), clock)
    driver = Sps30(_bus(0x69, device), sleep=clock.sleep)
    device.status_register = 1 << 21  # fan speed warning only: the reading stands
    assert driver.read()["pm10"] == 20.0
    device.status_register = 1 << 4
    fan = "fan error: the fan is switched on but not running"
    with pytest.raises(errors.SensorError, match=fan) as caught:
        driver.read()
    assert caught.value.kind == "sensor_fault"
    device.status_register = 1 << 5
    with pytest.raises(errors.SensorError, match="laser error"):
        driver.read()


def test_an_sps30_before_firmware_2_2_is_read_without_its_status_register(clock: Clock) -> None:
    device = _powered(Sps30Device(now=clock.now), clock)
    device.firmware = (2, 0)
    driver = Sps30(_bus(0x69, device), sleep=clock.sleep)
    device.status_register = 1 << 4
    assert driver.read()["pm2_5"] == 12.0


# --- faults, the same for the three sensors ---------------------------------------------------
SENSORS = {
    "sps30": (Sps30Device, Sps30, 0x69),
    "scd30": (Scd30Device, Scd30, 0x61),
    "scd4x": (Scd4xDevice, Scd4x, 0x62),
}


def _open(name: str, clock: Clock, **device_kw: Any) -> tuple[SensirionDevice, SensirionDriver]:
    device_class, driver_class, address = SENSORS[name]
    device = _powered(device_class(now=clock.now, **device_kw), clock)
    return device, driver_class(_bus(address, device), sleep=clock.sleep)


@pytest.mark.parametrize("name", SENSORS)
def test_a_burst_of_bad_crcs_is_counted_and_then_reading_goes_on(clock: Clock, name: str) -> None:
    device, driver = _open(name, clock)
    device.crc_burst(3)
    for _ in range(3):
        with pytest.raises(errors.SensorChecksumError, match="bad checksum"):
            driver.read()
    assert driver.frames_bad == 0  # each bad CRC fails its read: counted once, by its kind
    assert driver.read()


@pytest.mark.parametrize("name", SENSORS)
def test_a_sensor_that_goes_silent_and_comes_back(clock: Clock, name: str) -> None:
    device, driver = _open(name, clock)
    driver.read()
    device.go_silent(60.0)
    with pytest.raises(errors.SensorTimeout, match="no answer"):
        driver.read()
    clock.t += 61.0 + device.power_up_s
    # Back as after a power cut: idle. The driver notices and starts it again.
    with pytest.raises(errors.SensorTimeout, match="restarted"):
        driver.read()
    assert driver.read()


@pytest.mark.parametrize("name", SENSORS)
def test_stuck_values_repeat_while_the_air_changes(clock: Clock, name: str) -> None:
    level = [10.0]
    if name == "sps30":
        device, driver = _open(name, clock, read=lambda: (level[0], level[0] * 2))
    else:
        device, driver = _open(name, clock, read=lambda: (400 + level[0], level[0], 40.0))
    first = driver.read()
    device.stuck = True
    level[0] = 30.0
    assert driver.read() == first
    device.stuck = False
    assert driver.read() != first


@pytest.mark.parametrize("name", SENSORS)
def test_a_value_outside_the_data_sheets_range_is_refused(clock: Clock, name: str) -> None:
    device, driver = _open(name, clock)
    device.out_of_range = True
    with pytest.raises(errors.SensorOutOfRange, match="outside the data sheet's range"):
        driver.read()


@pytest.mark.parametrize("name", SENSORS)
def test_a_sensor_at_another_address_is_a_configuration_error(clock: Clock, name: str) -> None:
    device_class, driver_class, address = SENSORS[name]
    device = _powered(device_class(now=clock.now), clock)
    with pytest.raises(errors.SensorConfigError, match=f"no {name} answers at 0x{address:02x}"):
        driver_class(_bus(address + 1, device), sleep=clock.sleep)


# --- configuration ----------------------------------------------------------------------------
def test_the_configuration_knows_the_sensors_and_their_fixed_addresses() -> None:
    adapter: TypeAdapter[SensorConfig] = TypeAdapter(SensorConfig)
    scd = adapter.validate_python({"driver": "scd4x", "self_calibration": False})
    assert (scd.address, scd.bme280_address, scd.self_calibration) == (0x62, 0x76, False)  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="an sps30 answers only at 0x69"):
        adapter.validate_python({"driver": "sps30", "address": 0x70})
    with pytest.raises(ValidationError, match="measurement_interval_s"):
        adapter.validate_python({"driver": "scd30", "measurement_interval_s": 1})


def test_the_sample_edge_config_sections_load_when_uncommented(tmp_path: Path) -> None:
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.edge.drivers.sensirion import Scd4xConfig, Sps30Config
    from sensorpipe.resources import EXAMPLE_CONFIG_DIR

    text = (EXAMPLE_CONFIG_DIR / "edge.example.toml").read_text()
    ours = text[text.index("# Sensirion SPS30") :]
    uncommented = [line.removeprefix("#") for line in ours.splitlines() if line[:2] != "# "]
    path = tmp_path / "edge.toml"
    path.write_text(text + "\n".join(uncommented) + "\n")
    sensors = load_edge_config(path).sensors
    sps = next(s for s in sensors if isinstance(s, Sps30Config))
    scd = next(s for s in sensors if isinstance(s, Scd4xConfig))
    assert (sps.address, sps.fan_cleaning_interval_s) == (0x69, 604_800)
    assert (scd.address, scd.altitude_m, scd.self_calibration) == (0x62, 5, True)


def test_an_agent_without_sensirion_sensors_loads_none_of_their_code() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from sensorpipe.edge.config import load_edge_config\n"
        "from sensorpipe.edge.drivers.registry import open_driver\n"
        "import sensorpipe.edge.run, sensorpipe.edge.check\n"
        "print(sorted(m for m in sys.modules if m.startswith('sensirion')\n"
        "      or m in ('sensorpipe.edge.drivers.sps30', 'sensorpipe.edge.drivers.scd30',\n"
        "               'sensorpipe.edge.drivers.scd4x', 'sensorpipe.firmware_sim.sensirion')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", SENSORS)
def test_a_bus_glitch_without_a_power_cut_needs_no_restart(clock: Clock, name: str) -> None:
    device, driver = _open(name, clock)
    driver.read()
    device.go_silent(0.5, power_cycle=False)
    with pytest.raises(errors.SensorError, match="no answer"):
        driver.read()
    clock.t += 10.0
    assert driver.read()
    assert device.measuring  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SENSORS)
def test_a_bus_error_other_than_a_nack_is_an_io_fault(clock: Clock, name: str) -> None:
    import errno

    device, driver = _open(name, clock)

    def broken(length: int) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "bus driver refuses the transfer")

    device.i2c_read = broken  # type: ignore[method-assign]
    with pytest.raises(errors.SensorIOError, match="I2C error") as caught:
        driver.read()
    assert caught.value.kind == "io"
