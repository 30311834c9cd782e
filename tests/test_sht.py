"""SHT3x/SHT4x drivers against the byte-level simulators: the data sheets' CRC example, the
commands on the wire, the conversions, heater off, and every fault mode of the simulators, each
raised as the kind the agent counts it by."""

from __future__ import annotations

import errno
import re
from typing import Any

import pytest

from sensorpipe.edge.check import FAIL, OK, Probes, check_sensor
from sensorpipe.edge.drivers.registry import Sht3xConfig, Sht4xConfig
from sensorpipe.edge.drivers.sensirion_crc import CrcError, crc8, pack_words, unpack_words
from sensorpipe.edge.drivers.sht import Sht3x, Sht4x
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorIOError,
    SensorOutOfRange,
    SensorTimeout,
)
from sensorpipe.edge.sensorloop import error_kind
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sht import Sht3xDevice, Sht4xDevice


def test_the_data_sheets_crc_example_and_the_computed_vectors() -> None:
    assert crc8(b"\xbe\xef") == 0x92  # SHT3x DS Table 20, SCD4x DS Table 32
    assert crc8(b"\x00\x00") == 0x81 and crc8(b"\x00\x01") == 0xB0  # research28 section 0
    assert pack_words(0xBEEF, 0x0000) == bytes.fromhex("beef92 000081")
    assert unpack_words(bytes.fromhex("beef92"), "x") == [0xBEEF]
    with pytest.raises(CrcError, match="bad CRC in word 1"):
        unpack_words(bytes.fromhex("beef92 000080"), "x")


def _bus(device: object, address: int = 0x44) -> SimulatedI2CBus:
    bus = SimulatedI2CBus(1)
    bus.attach(address, device)  # type: ignore[arg-type]
    return bus


def test_sht4x_bytes_on_the_wire_and_conversion() -> None:
    device = Sht4xDevice(lambda: (21.5, 55.0), serial=0x0BADCAFE)
    sht = Sht4x(_bus(device), 0x44, precision="high")
    assert sht.serial_number == 0x0BADCAFE
    device.wire.clear()
    values = sht.read()
    # One byte 0xFD (high precision), then 6 bytes: T MSB LSB CRC, RH MSB LSB CRC.
    assert device.wire[0] == ("w", b"\xfd")
    t_ticks = round((21.5 + 45) * 65535 / 175)
    rh_ticks = round((55.0 + 6) * 65535 / 125)
    assert device.wire[1] == ("r", pack_words(t_ticks, rh_ticks))
    assert values["temperature"] == pytest.approx(21.5, abs=0.01)
    assert values["relative_humidity"] == pytest.approx(55.0, abs=0.01)
    assert device.heater_used == 0  # the heater commands are never sent


@pytest.mark.parametrize(("precision", "command"), [("medium", b"\xf6"), ("low", b"\xe0")])
def test_sht4x_precision_setting_picks_the_command(precision: str, command: bytes) -> None:
    device = Sht4xDevice()
    sht = Sht4x(_bus(device), 0x44, precision=precision)  # type: ignore[arg-type]
    sht.read()
    assert device.wire[-2] == ("w", command)


def test_sht4x_crops_humidity_just_past_100_as_the_data_sheet_says() -> None:
    sht = Sht4x(_bus(Sht4xDevice(lambda: (10.0, 102.0))), 0x44)
    assert sht.read()["relative_humidity"] == 100.0


def test_sht3x_bytes_heater_off_and_conversion() -> None:
    device = Sht3xDevice(lambda: (-5.25, 80.0), heater_at_power_up=True)
    sht = Sht3x(_bus(device, 0x45), 0x45, precision="medium")
    # Soft reset, heater off, status read (heater bit clear), clear status.
    writes = [data for kind, data in device.wire if kind == "w"]
    assert writes == [b"\x30\xa2", b"\x30\x66", b"\xf3\x2d", b"\x30\x41"]
    assert not device.heater
    device.wire.clear()
    values = sht.read()
    assert device.wire[0] == ("w", b"\x24\x0b")  # no clock stretching, medium repeatability
    assert values["temperature"] == pytest.approx(-5.25, abs=0.01)
    assert values["relative_humidity"] == pytest.approx(80.0, abs=0.01)
    sht.close()
    assert device.wire[-1] == ("w", b"\x30\x66")  # heater off again on close


def test_sht3x_whose_heater_will_not_turn_off_is_refused() -> None:
    device = Sht3xDevice()
    device._command = lambda data: (  # type: ignore[method-assign]
        device._answer((1 << 13,)) if data == b"\xf3\x2d" else None
    )
    with pytest.raises(SensorConfigError, match=r"heater .* stays on"):
        Sht3x(_bus(device), 0x44)


def test_crc_errors_in_a_burst_fail_their_reads_and_the_sensor_recovers() -> None:
    device = Sht4xDevice()
    sht = Sht4x(_bus(device), 0x44)
    device.crc_burst(3)
    for _ in range(3):
        with pytest.raises(SensorChecksumError) as raised:
            sht.read()
        assert error_kind(raised.value) == "checksum"
    # Each bad CRC fails its read, which the agent counts: not also a skipped frame.
    assert sht.frames_bad == 0
    assert "temperature" in sht.read()


def test_random_crc_bursts_with_a_seed() -> None:
    device = Sht3xDevice(burst_rate=0.2, burst_length=4, seed=3)
    sht = Sht3x(_bus(device), 0x44)
    outcomes = []
    for _ in range(60):
        try:
            sht.read()
            outcomes.append(".")
        except SensorChecksumError:
            outcomes.append("x")
    assert "xxxx" in "".join(outcomes) and sht.frames_bad == 0


def test_a_sensor_that_stops_answering_and_comes_back() -> None:
    device = Sht4xDevice()
    sht = Sht4x(_bus(device), 0x44)
    device.silent = True
    with pytest.raises(SensorError, match="no answer at 0x44"):
        sht.read()
    device.silent = False
    assert sht.read()["temperature"] == pytest.approx(21.5, abs=0.01)


def test_humidity_stuck_at_99_9_is_left_out_after_a_run_and_comes_back() -> None:
    device = Sht3xDevice(lambda: (12.0, 70.0))
    sht = Sht3x(_bus(device), 0x44, stuck_after=3)
    device.stuck_humidity = True
    seen = [sht.read() for _ in range(4)]
    assert [("relative_humidity" in v) for v in seen] == [True, True, False, False]
    assert all("temperature" in v for v in seen)
    assert sht.note is not None and "stuck" in sht.note
    device.stuck_humidity = False
    assert sht.read()["relative_humidity"] == pytest.approx(70.0, abs=0.01)
    assert sht.note is None


@pytest.mark.parametrize("kind", [Sht3xDevice, Sht4xDevice])
def test_a_value_out_of_the_data_sheets_range_is_an_error(kind: type) -> None:
    device = kind()
    sht = (Sht3x if kind is Sht3xDevice else Sht4x)(_bus(device), 0x44)
    device.out_of_range = True
    with pytest.raises(SensorError, match="outside the sensor's range"):
        sht.read()


def test_sht4x_humidity_far_past_100_is_an_error_not_cropped() -> None:
    sht = Sht4x(_bus(Sht4xDevice(lambda: (10.0, 113.0))), 0x44)
    with pytest.raises(SensorError, match=r"outside 0\.\.100"):
        sht.read()


def test_wrong_address_names_the_address_that_answers() -> None:
    with pytest.raises(
        SensorConfigError, match=r"no answer at I2C address 0x44.*set address = 0x45"
    ):
        Sht4x(_bus(Sht4xDevice(), 0x45), 0x44)


def test_an_sht3x_configured_as_sht4x_is_named() -> None:
    with pytest.raises(SensorConfigError, match=r'is it an SHT3X.*driver = "sht3x"'):
        Sht4x(_bus(Sht3xDevice()), 0x44)


def test_config_refuses_an_address_an_sht_cannot_have() -> None:
    with pytest.raises(ValueError, match=r"0x46: an SHT3X answers only at 0x44 or 0x45"):
        Sht3xConfig(driver="sht3x", address=0x46)
    assert Sht4xConfig(driver="sht4x", address=0x46).address == 0x46


def _probes(device: object, address: int = 0x44) -> Probes:
    return Probes(i2c_bus_factory=lambda number: _bus(device, address))


SHT4X = Sht4xConfig(driver="sht4x", address=0x44)


def test_edge_check_names_each_sht_fault_in_one_line() -> None:
    ok, good = check_sensor(SHT4X, _probes(Sht4xDevice()))
    assert good and ok.status == OK and ok.detail.startswith("/dev/i2c-1 at 0x44: temperature ")

    lines = {}
    crc = Sht4xDevice()
    crc.crc_burst(2)  # serial number read at open and the measurement both bad
    lines["crc"] = check_sensor(SHT4X, _probes(crc))[0]
    silent = Sht4xDevice()
    silent.silent = True
    lines["silent"] = check_sensor(SHT4X, _probes(silent))[0]
    lines["address"] = check_sensor(SHT4X, _probes(Sht4xDevice(), 0x45))[0]
    hot = Sht4xDevice()
    hot.out_of_range = True
    lines["range"] = check_sensor(SHT4X, _probes(hot))[0]
    stuck = Sht4xDevice()
    stuck.stuck_humidity = True
    lines["stuck"] = check_sensor(SHT4X.model_copy(update={"stuck_after": 1}), _probes(stuck))[0]
    saturated = Sht4xDevice()
    saturated.stuck_humidity = True
    lines["saturated"] = check_sensor(SHT4X, _probes(saturated))[0]
    for check in lines.values():
        assert "\n" not in check.line()
    assert lines["crc"].status == FAIL and "bad CRC" in lines["crc"].detail
    assert (
        lines["silent"].status == FAIL and "no answer at I2C address 0x44" in lines["silent"].detail
    )
    assert "set address = 0x45" in lines["address"].detail
    assert lines["range"].status == FAIL and "outside the sensor's range" in lines["range"].detail
    assert lines["stuck"].status == OK and "stuck at >= 99.9 %" in lines["stuck"].detail
    assert "relative_humidity" not in lines["stuck"].detail  # left out, temperature shown
    saturated_line = lines["saturated"]  # one reading at 100 % with the default stuck_after
    assert saturated_line.status == OK
    assert re.search(
        r"relative_humidity 99\.\d+ \(relative humidity at saturation: fog or dew, or, if it "
        r"stays there for hours, a condensed sensor\)",
        saturated_line.detail,
    )


def test_an_sht4x_configured_as_sht3x_is_named() -> None:
    with pytest.raises(SensorConfigError, match=r'is it an SHT4X.*driver = "sht4x"'):
        Sht3x(_bus(Sht4xDevice()), 0x44)


class _CountingBus(SimulatedI2CBus):
    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_a_failed_open_closes_the_bus_it_owns() -> None:
    from sensorpipe.edge.drivers.registry import open_driver

    bus = _CountingBus(1)
    bus.attach(0x45, Sht4xDevice())
    with pytest.raises(SensorConfigError, match="set address = 0x45"):
        open_driver(SHT4X, i2c_bus_factory=lambda _n: bus)
    assert bus.closed == 1  # the agent opens it again later: no descriptor left behind


class _BrokenBus(SimulatedI2CBus):
    """A bus whose transfers fail with `error` once `broken` is set (an I2C fault, not a NACK)."""

    broken = False
    error = errno.EIO

    def i2c_rdwr(self, *msgs: Any) -> None:
        if self.broken:
            raise OSError(self.error, "Input/output error")
        super().i2c_rdwr(*msgs)


@pytest.mark.parametrize("model", ["sht3x", "sht4x"])
def test_each_read_fault_is_raised_as_its_kind(model: str) -> None:
    device = Sht3xDevice() if model == "sht3x" else Sht4xDevice()
    bus = _BrokenBus(1)
    bus.attach(0x44, device)
    sht = Sht3x(bus, 0x44) if model == "sht3x" else Sht4x(bus, 0x44)
    faults: list[tuple[str, type[SensorError], str]] = []
    device.crc_burst(1)
    with pytest.raises(SensorChecksumError) as crc:
        sht.read()
    faults.append(("checksum", SensorChecksumError, str(crc.value)))
    device.silent = True
    with pytest.raises(SensorTimeout, match="no answer at 0x44") as nack:
        sht.read()
    faults.append(("timeout", SensorTimeout, str(nack.value)))
    device.silent = False
    bus.broken = True
    with pytest.raises(SensorIOError, match="I2C error at 0x44") as broken:
        sht.read()
    faults.append(("io", SensorIOError, str(broken.value)))
    bus.broken = False
    device.out_of_range = True
    with pytest.raises(SensorOutOfRange, match="outside the sensor's range") as hot:
        sht.read()
    assert error_kind(crc.value) == "checksum" and error_kind(nack.value) == "timeout"
    assert error_kind(broken.value) == "io" and error_kind(hot.value) == "out_of_range"
    assert all(text.startswith(f"{model}: ") and "\n" not in text for _k, _c, text in faults)


@pytest.mark.parametrize(
    ("model", "attached", "kind"),
    [
        ("sht4x", {}, "timeout"),  # nothing answers anywhere
        ("sht4x", {0x45: Sht4xDevice}, "wrong_address"),
        ("sht3x", {0x45: Sht3xDevice}, "wrong_address"),
        ("sht4x", {0x44: Sht3xDevice}, "wrong_model"),
        ("sht3x", {0x44: Sht4xDevice}, "wrong_model"),
    ],
)
def test_a_sensor_that_cannot_be_opened_says_why_in_its_kind(
    model: str, attached: dict[int, type], kind: str
) -> None:
    bus = SimulatedI2CBus(1)
    for address, make in attached.items():
        bus.attach(address, make())
    with pytest.raises(SensorConfigError) as raised:
        (Sht3x if model == "sht3x" else Sht4x)(bus, 0x44)
    assert raised.value.kind == kind, str(raised.value)


def test_a_bad_crc_in_the_first_answer_is_an_open_failure_of_kind_checksum() -> None:
    device = Sht4xDevice()
    device.crc_burst(1)  # the serial number read at open
    with pytest.raises(SensorConfigError, match="bad CRC") as raised:
        Sht4x(_bus(device), 0x44)
    assert raised.value.kind == "checksum"
