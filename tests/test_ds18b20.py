"""DS18B20 on 1-Wire: the driver against its sysfs simulator, down to the bytes of w1_slave.

Test vectors:
- CRC: Maxim application note 27 ("Understanding and Using Cyclic Redundancy Checks with Maxim
  1-Wire and iButton Products"), its example ROM code: family 02, serial 00 00 00 01 B8 1C, CRC
  A2 (02 1C B8 01 00 00 00 -> A2; the 8 bytes with their CRC -> 0), as stored at
  github.com/MarcosYonamine963/MarcosYonamine963/files/14208742/AN27_Maxim_CRC.pdf and quoted by
  1-Wire libraries' tests. And the w1_slave lines people post from a Pi (23.125 °C:
  `72 01 4b 46 7f ff 0e 10 57 : crc=57 YES`), which the simulator reproduces byte for byte.
- Temperature: the DS18B20 data sheet's temperature/data relationship table (Table 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sensorpipe.edge.check import FAIL, OK, Probes, check_sensor
from sensorpipe.edge.drivers.ds18b20 import (
    Ds18b20,
    celsius,
    crc8,
    parse_w1_slave,
)
from sensorpipe.edge.drivers.registry import Ds18b20Config, open_driver, sensor_tag
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorIOError,
    SensorOutOfRange,
)
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus, temperature_bytes

ID = "28-0000072a4b1c"
OTHER = "28-3c01d607e4ff"

# DS18B20 data sheet, Table 1 (temperature/data relationship), 12-bit resolution.
DATA_SHEET = [
    (125.0, 0x07D0),
    (85.0, 0x0550),
    (25.0625, 0x0191),
    (10.125, 0x00A2),
    (0.5, 0x0008),
    (0.0, 0x0000),
    (-0.5, 0xFFF8),
    (-10.125, 0xFF5E),
    (-25.0625, 0xFE6F),
    (-55.0, 0xFC90),
]


def test_crc8_gives_application_note_27s_example() -> None:
    rom = bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00])
    assert crc8(rom) == 0xA2
    assert crc8(rom + b"\xa2") == 0  # a block with its own CRC checks to zero
    assert crc8(rom + b"\xa3") != 0


@pytest.mark.parametrize(("degc", "word"), DATA_SHEET)
def test_data_sheet_temperature_table(degc: float, word: int) -> None:
    pad = word.to_bytes(2, "little") + bytes([0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
    assert celsius(pad + bytes([crc8(pad)])) == degc
    assert temperature_bytes(degc) == word.to_bytes(2, "little")


def test_lower_resolution_masks_the_undefined_bits() -> None:
    # +25.0625 °C = 0191h at 12 bits; at 9 bits (config 1F) bits 2-0 are undefined: 25.0 °C.
    pad = bytes([0x91, 0x01, 0x4B, 0x46, 0x1F, 0xFF, 0x0F, 0x10])
    assert celsius(pad + bytes([crc8(pad)])) == 25.0
    assert celsius(pad[:4] + b"\x5f" + pad[5:] + b"\x00") == 25.0  # 11 bits: bit 0 undefined
    assert temperature_bytes(25.0625, 9) == b"\x90\x01"


def _bus(tmp_path: Path, *probes: Ds18b20Probe) -> W1Bus:
    return W1Bus(tmp_path / "w1", list(probes or [Ds18b20Probe(ID)]))


def test_simulator_writes_w1_slave_as_the_kernel_does(tmp_path: Path) -> None:
    bus = _bus(tmp_path, Ds18b20Probe(ID, lambda: 23.125))
    text = (bus.root / ID / "w1_slave").read_text()
    assert text == ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n")
    assert (bus.root / "w1_bus_master1" / "w1_master_slaves").read_text() == f"{ID}\n"
    scratchpad, kernel_ok, t_milli = parse_w1_slave(text)
    assert (scratchpad[8], kernel_ok, t_milli) == (0x57, True, 23125)
    bus.disconnect(bus.probes[0])
    assert (bus.root / "w1_bus_master1" / "w1_master_slaves").read_text() == "not found.\n"
    assert not (bus.root / ID).exists()


def test_reads_soil_temperature_and_follows_the_soil(tmp_path: Path) -> None:
    soil = [9.5, -0.5, -10.125]
    bus = _bus(tmp_path, Ds18b20Probe(ID, lambda: soil[0]))
    driver = Ds18b20(bus.root)  # the only DS18B20: no sensor_id needed
    assert driver.sensor_id == ID and driver.model == "ds18b20"
    for degc in list(soil):
        soil[0] = degc
        bus.convert()
        assert driver.read() == {"soil_temperature": degc}
    assert driver.frames_bad == 0


def test_crc_bursts_are_checksum_errors_then_it_reads_again(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    driver = Ds18b20(bus.root, ID)
    bus.probes[0].crc_burst(2)
    for _ in range(2):
        bus.convert()
        assert "crc=" in (bus.root / ID / "w1_slave").read_text().split("\n")[0]
        with pytest.raises(SensorChecksumError, match=r"CRC mismatch.*kernel NO") as caught:
            driver.read()
        assert caught.value.kind == "checksum"
    bus.convert()
    assert driver.read() == {"soil_temperature": 12.5}


def test_a_torn_read_the_kernel_passed_is_caught_by_our_own_crc(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    driver = Ds18b20(bus.root, ID)
    bus.probes[0].torn(1)
    bus.convert()
    assert "YES" in (bus.root / ID / "w1_slave").read_text()
    with pytest.raises(SensorChecksumError, match=r"CRC mismatch.*kernel YES"):
        driver.read()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n",  # cut after the first line
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=",
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n73 01 4b 46 7f ff 0e 10 57 t=23125\n",
    ],
)
def test_malformed_or_mismatched_lines_are_checksum_errors(tmp_path: Path, text: str) -> None:
    bus = _bus(tmp_path)
    driver = Ds18b20(bus.root, ID)
    (bus.root / ID / "w1_slave").write_text(text)
    with pytest.raises(SensorChecksumError):
        driver.read()


def test_t_that_disagrees_with_the_scratchpad_is_refused(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    driver = Ds18b20(bus.root, ID)
    line = "72 01 4b 46 7f ff 0e 10 57 "
    (bus.root / ID / "w1_slave").write_text(f"{line}: crc=57 YES\n{line}t=24125\n")
    with pytest.raises(SensorChecksumError, match=r"t=24125 disagrees"):
        driver.read()


def test_power_on_85_is_withheld_and_counted_but_a_real_85_is_kept(tmp_path: Path) -> None:
    heat = [12.5]
    bus = _bus(tmp_path, Ds18b20Probe(ID, lambda: heat[0]))
    driver = Ds18b20(bus.root, ID, quantity="temperature")
    bus.probes[0].power_up()
    bus.convert()
    assert (bus.root / ID / "w1_slave").read_text().startswith("50 05 4b 46 7f ff 0c 10 1c")
    with pytest.raises(SensorError, match=r"85.000 °C, its power-on value") as caught:
        driver.read()
    assert caught.value.kind == "power_on_reset" and driver.power_on_resets == 1
    bus.convert()
    assert driver.read() == {"temperature": 12.5}
    # An air probe near a heat source: 84 °C, then exactly 85 °C is believed.
    heat[0] = 84.0
    bus.convert()
    driver = Ds18b20(bus.root, ID, quantity="soil_temperature")
    assert driver.read() == {"soil_temperature": 84.0}
    heat[0] = 85.0
    bus.convert()
    assert driver.read() == {"soil_temperature": 85.0} and driver.power_on_resets == 0


@pytest.mark.parametrize("t_of_ff", [-62, 127937])
def test_all_ff_is_a_probe_not_answering(tmp_path: Path, t_of_ff: int) -> None:
    probe = Ds18b20Probe(ID, t_of_ff=t_of_ff)
    bus = _bus(tmp_path, probe)
    driver = Ds18b20(bus.root, ID)
    probe.all_ff = True
    bus.convert()
    assert f"ff ff ff ff ff ff ff ff ff t={t_of_ff}" in (bus.root / ID / "w1_slave").read_text()
    with pytest.raises(SensorIOError, match=r"probe not answering.*all FF") as caught:
        driver.read()
    assert caught.value.kind == "io"


def test_all_zero_scratchpad_is_not_a_ds18b20s(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    driver = Ds18b20(bus.root, ID)
    zeros = "00 " * 9
    (bus.root / ID / "w1_slave").write_text(f"{zeros}: crc=00 YES\n{zeros}t=0\n")
    with pytest.raises(SensorIOError, match=r"probe not answering.*data line is held low"):
        driver.read()


def test_unplugged_probe_is_named_with_what_the_bus_has_and_comes_back(tmp_path: Path) -> None:
    probe, other = Ds18b20Probe(ID), Ds18b20Probe(OTHER, lambda: 3.0)
    bus = _bus(tmp_path, probe, other)
    driver = Ds18b20(bus.root, ID)
    bus.disconnect(probe)
    with pytest.raises(SensorError, match=f"{ID} not found on the 1-Wire bus.*found: {OTHER}") as e:
        driver.read()
    assert e.value.kind == "not_found"
    bus.disconnect(other)
    with pytest.raises(SensorError, match=r"\(found: none\)"):
        driver.read()
    bus.reconnect(probe)  # plugged in again: powered up, so 85 °C first
    with pytest.raises(SensorError, match=r"power-on value"):
        driver.read()
    bus.convert()
    assert driver.read() == {"soil_temperature": 12.5}


def test_out_of_range_values(tmp_path: Path) -> None:
    probe = Ds18b20Probe(ID)
    bus = _bus(tmp_path, probe)
    driver = Ds18b20(bus.root, ID)
    probe.out_of_range = True
    bus.convert()
    with pytest.raises(SensorOutOfRange, match=r"127.938 °C .*lacked power") as caught:
        driver.read()
    assert caught.value.kind == "out_of_range"
    # An air probe at 100 °C: within the data sheet's range, past air temperature's.
    probe.out_of_range, probe.temperature = False, lambda: 100.0
    bus.convert()
    assert Ds18b20(bus.root, ID).read() == {"soil_temperature": 100.0}
    with pytest.raises(SensorOutOfRange, match=r"outside -55..85 °C"):
        Ds18b20(bus.root, ID, quantity="temperature").read()


def test_stuck_probe_repeats_its_last_conversion(tmp_path: Path) -> None:
    soil = [8.0]
    probe = Ds18b20Probe(ID, lambda: soil[0])
    bus = _bus(tmp_path, probe)
    driver = Ds18b20(bus.root, ID)
    probe.stuck = True
    soil[0] = 9.0
    bus.convert()
    assert driver.read() == {"soil_temperature": 8.0}  # the central stuck check flags runs
    probe.stuck = False
    bus.convert()
    assert driver.read() == {"soil_temperature": 9.0}


def test_opening_says_what_is_on_the_bus(tmp_path: Path) -> None:
    with pytest.raises(SensorConfigError, match=r"no 1-Wire bus at .*dtoverlay=w1-gpio"):
        Ds18b20(tmp_path / "absent")
    empty = W1Bus(tmp_path / "empty")
    with pytest.raises(SensorConfigError, match=r"no DS18B20 on the 1-Wire bus"):
        Ds18b20(empty.root)
    bus = _bus(tmp_path, Ds18b20Probe(ID), Ds18b20Probe(OTHER))
    with pytest.raises(SensorConfigError, match=f"2 DS18B20 probes \\({ID}, {OTHER}\\).*sensor_id"):
        Ds18b20(bus.root)
    (bus.root / "00-800000000000").mkdir()  # a ghost from a noisy bus is no DS18B20
    with pytest.raises(SensorConfigError, match=f"28-00000000beef not found.*found: {ID}, {OTHER}"):
        Ds18b20(bus.root, "28-00000000beef")
    assert Ds18b20(bus.root, OTHER).read() == {"soil_temperature": 12.5}


def test_config_and_registry(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    config = Ds18b20Config.model_validate(
        {"driver": "ds18b20", "w1_root": str(bus.root), "quantity": "temperature",
         "sensor": "ds18b20.air"}
    )  # fmt: skip
    assert sensor_tag(config) == "ds18b20.air"
    driver = open_driver(config)
    assert driver.model == "ds18b20.air" and driver.read() == {"temperature": 12.5}
    default = Ds18b20Config(driver="ds18b20")
    assert (default.w1_root, default.quantity, default.sensor_id) == (
        "/sys/bus/w1/devices", "soil_temperature", None
    )  # fmt: skip
    with pytest.raises(ValidationError, match=r"28-ABC: a DS18B20's folder is 28- and 12 hex"):
        Ds18b20Config.model_validate({"driver": "ds18b20", "sensor_id": "28-ABC"})
    with pytest.raises(ValidationError, match=r"soil_temperature"):
        Ds18b20Config.model_validate({"driver": "ds18b20", "quantity": "soil_moisture"})


def test_edge_check_names_each_fault_in_one_line(tmp_path: Path) -> None:
    probe = Ds18b20Probe(ID, lambda: 7.25)
    bus = _bus(tmp_path, probe)
    config = Ds18b20Config(driver="ds18b20", w1_root=str(bus.root), sensor_id=ID)

    def line() -> tuple[str, str]:
        bus.convert()
        check, ok = check_sensor(config, Probes())
        assert "\n" not in check.line() and ok == (check.status == OK)
        return check.status, check.detail

    assert line() == (OK, f"1-Wire {bus.root}/{ID}: soil_temperature 7.25")
    faults = {
        "crc": (lambda: probe.crc_burst(1), "CRC mismatch"),
        "torn": (lambda: probe.torn(1), "CRC mismatch"),
        "85": (probe.power_up, "85.000 °C, its power-on value"),
        "ff": (lambda: setattr(probe, "all_ff", True), "probe not answering"),
        "range": (lambda: setattr(probe, "out_of_range", True), "outside -55..125 °C"),
    }
    for cause, says in faults.values():
        cause()
        status, detail = line()
        assert status == FAIL and says in detail, detail
        probe.all_ff = probe.out_of_range = False
    bus.disconnect(probe)
    gone = check_sensor(config, Probes())[0]
    status, detail = gone.status, gone.detail
    assert status == FAIL and f"{ID} not found on the 1-Wire bus" in detail
    assert gone.kind == "not_found"  # the kind docs/edge.md's table gives
    assert "i2c" not in detail.lower()


def test_the_example_configs_ds18b20_section_loads_once_uncommented(tmp_path: Path) -> None:
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.resources import EXAMPLE_CONFIG_DIR

    text = (EXAMPLE_CONFIG_DIR / "edge.example.toml").read_text()
    section = '#[[sensors]]\n#driver = "ds18b20"\n'
    start = text.index(section)
    end = text.find("\n\n", start)
    end = len(text) if end < 0 else end  # the next blank line, or the end of the file
    block = "\n".join(line.removeprefix("#") for line in text[start:end].splitlines())
    uncommented = text[:start] + block
    path = tmp_path / "edge.toml"
    path.write_text(uncommented + text[end:])
    (probe,) = [s for s in load_edge_config(path).sensors if isinstance(s, Ds18b20Config)]
    assert (probe.sensor_id, probe.quantity, probe.interval_s) == (ID, "soil_temperature", 900)
