"""ADS1115 driver and the capacitive soil probe against the byte-level ADC simulator: the
config word on the wire, conversions, the bounded wait, calibration, and each fault."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sensorpipe.edge.check import FAIL, OK, Probes, check_sensor
from sensorpipe.edge.drivers.ads1115 import Ads1115, SoilProbe, config_word
from sensorpipe.edge.drivers.registry import SoilProbeConfig, open_driver
from sensorpipe.edge.errors import SensorConfigError, SensorError, SensorIOError, SensorTimeout
from sensorpipe.edge.sensorloop import error_kind
from sensorpipe.firmware_sim.ads1115 import Ads1115Device
from sensorpipe.firmware_sim.ads1115 import SoilProbe as SimProbe
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus


def _bus(device: Ads1115Device, address: int = 0x48) -> SimulatedI2CBus:
    bus = SimulatedI2CBus(1)
    bus.attach(address, device)
    return bus


def test_the_data_sheet_config_word_and_conversion_on_the_wire() -> None:
    # AIN0 against GND, ±4.096 V, single shot, 128 SPS, comparator off: 0xC383 (research 6.1).
    assert config_word(0, 4.096, 128) == 0xC383
    assert config_word(3, 2.048, 860) == 0xF5E3
    device = Ads1115Device({0: lambda: 1.5})
    volts = Ads1115(_bus(device)).read_voltage(0)
    writes = [data for kind, data in device.wire if kind == "w"]
    reads = [data for kind, data in device.wire if kind == "r"]
    assert writes[0] == bytes.fromhex("01c383")  # pointer 1, config MSB, LSB
    assert writes[-1] == b"\x00"  # pointer to the conversion register
    assert reads[-1] == bytes.fromhex("2ee0")  # 12000 * 4.096 / 32768 = 1.500 V
    assert volts == pytest.approx(1.5)


def test_a_conversion_that_never_finishes_is_a_bounded_error() -> None:
    device = Ads1115Device({0: lambda: 1.5})
    device.never_finishes = True
    adc = Ads1115(_bus(device), data_rate=860)
    with pytest.raises(SensorError, match="did not finish within"):
        adc.read_voltage(0)


def _probe(sim: SimProbe, channel: int = 1) -> tuple[Ads1115Device, SoilProbe]:
    device = Ads1115Device({channel: sim})
    probe = SoilProbe(Ads1115(_bus(device)), channel, v_dry=2.6, v_wet=1.2)
    return device, probe


def test_soil_moisture_from_the_probes_own_calibration_with_the_voltage_kept() -> None:
    _, probe = _probe(SimProbe(lambda: 40.0, v_dry=2.6, v_wet=1.2))
    values = probe.read()
    assert values["soil_probe_voltage"] == pytest.approx(2.6 - 1.4 * 0.4, abs=0.001)
    assert values["soil_moisture"] == pytest.approx(40.0, abs=0.1)
    assert probe.note is None


def test_drift_is_cropped_and_noted_and_the_voltage_tells_by_how_much() -> None:
    sim = SimProbe(lambda: 0.0, v_dry=2.6, v_wet=1.2, drift_v_per_read=0.04)
    _, probe = _probe(sim)
    first = probe.read()
    assert first["soil_moisture"] == 0.0 and probe.note is None  # 2.64 V: within the margin
    second = probe.read()
    assert second["soil_moisture"] == 0.0 and second["soil_probe_voltage"] > 2.65
    assert probe.note is not None and "drifted, calibrate it again" in probe.note
    wet = SimProbe(lambda: 100.0, v_dry=2.6, v_wet=1.2, drift_v_per_read=-0.1)
    _, probe = _probe(wet)
    assert probe.read()["soil_moisture"] == 100.0 and "wetter than v_wet" in (probe.note or "")


def test_a_disconnected_probe_reads_the_rail_and_is_an_error() -> None:
    sim = SimProbe()
    _, probe = _probe(sim)
    sim.disconnected = True
    with pytest.raises(SensorError, match="at the rail: the probe is disconnected"):
        probe.read()
    sim.disconnected = False
    assert 0 < probe.read()["soil_moisture"] < 100


def test_an_unpowered_probe_reads_zero() -> None:
    device = Ads1115Device({0: lambda: 0.0})
    probe = SoilProbe(Ads1115(_bus(device)), 0, v_dry=2.6, v_wet=1.2)
    with pytest.raises(SensorError, match="no power or its output is shorted"):
        probe.read()


def test_an_adc_that_stops_answering_and_comes_back() -> None:
    device, probe = _probe(SimProbe())
    device.silent = True
    with pytest.raises(SensorError, match="no answer from the ADS1115 at 0x48"):
        probe.read()
    device.silent = False
    assert "soil_moisture" in probe.read()


def test_wrong_address_is_refused_at_open() -> None:
    with pytest.raises(SensorConfigError, match="no ADS1115 answers at I2C address 0x49"):
        SoilProbe(Ads1115(_bus(Ads1115Device(), 0x48), 0x49), 0, v_dry=2.6, v_wet=1.2)


def test_each_fault_is_raised_as_the_kind_the_agent_counts() -> None:
    """Typed, not told apart by their words: the agent and `edge check` count the kind."""
    sim = SimProbe()
    device, probe = _probe(sim)
    kinds = []
    sim.disconnected = True
    with pytest.raises(SensorError) as rail:
        probe.read()
    kinds.append(rail.value.kind)
    sim.disconnected = False
    sim.v_dry = sim.v_wet = 0.0  # no power: the output reads 0 V
    with pytest.raises(SensorError) as unpowered:
        probe.read()
    kinds.append(unpowered.value.kind)
    sim.v_dry, sim.v_wet = 2.6, 1.2
    device.silent = True
    with pytest.raises(SensorTimeout) as nack:
        probe.read()
    kinds.append(error_kind(nack.value))
    device.silent = False
    device.never_finishes = True
    with pytest.raises(SensorTimeout, match="did not finish") as stuck:
        probe.read()
    kinds.append(error_kind(stuck.value))
    assert kinds == ["disconnected", "disconnected", "timeout", "timeout"]


def test_a_bus_error_is_an_io_fault_and_an_absent_adc_a_timeout_at_open() -> None:
    class Broken(SimulatedI2CBus):
        def read_i2c_block_data(self, *args: object, **kw: object) -> list[int]:
            raise OSError(5, "Input/output error")

        def write_i2c_block_data(self, *args: object, **kw: object) -> None:
            raise OSError(5, "Input/output error")

    adc = Ads1115(_bus(Ads1115Device({0: lambda: 1.5})))
    probe = SoilProbe(adc, 0, v_dry=2.6, v_wet=1.2)
    adc._bus = Broken(1)
    with pytest.raises(SensorIOError, match="I2C error at the ADS1115 at 0x48"):
        probe.read()
    with pytest.raises(SensorConfigError) as absent:
        SoilProbe(Ads1115(_bus(Ads1115Device(), 0x48), 0x49), 0, v_dry=2.6, v_wet=1.2)
    assert absent.value.kind == "timeout"
    with pytest.raises(SensorConfigError) as broken:
        SoilProbe(Ads1115(Broken(1)), 0, v_dry=2.6, v_wet=1.2)
    assert broken.value.kind == "io" and "I2C error at 0x48" in str(broken.value)


def _config(**kw: object) -> SoilProbeConfig:
    return SoilProbeConfig.model_validate(
        {"driver": "soil_ads1115", "v_dry": 2.6, "v_wet": 1.2, **kw}
    )


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"v_dry": 1.0, "v_wet": 1.2}, "v_dry (1.0 V) must be above v_wet (1.2 V)"),
        ({"address": 0x50}, "0x50: an ADS1115 answers only at 0x48"),
        ({"fsr_v": 5.0}, "5.0: the ADS1115 ranges are 6.144, 4.096"),
        ({"data_rate": 100}, "100: the ADS1115 samples at 8, 16"),
        ({"channel": 4}, "less than or equal to 3"),
    ],
)
def test_config_refuses_what_cannot_work(bad: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        _config(**bad)


def test_registry_opens_a_probe_with_its_own_sensor_tag_and_pga() -> None:
    device = Ads1115Device({2: SimProbe(lambda: 50.0)})
    driver = open_driver(
        _config(channel=2, fsr_v=6.144, sensor="soil_probe.bed2"),
        i2c_bus_factory=lambda _n: _bus(device),
    )
    assert driver.model == "soil_probe.bed2"
    assert driver.read()["soil_moisture"] == pytest.approx(50.0, abs=0.2)
    writes = [data for kind, data in device.wire if kind == "w" and len(data) == 3]
    assert writes == [bytes([0x01, 0xE1, 0x83])]  # MUX 110 (AIN2), PGA 000


def test_edge_check_names_each_soil_fault_in_one_line() -> None:
    def probes(device: Ads1115Device, address: int = 0x48) -> Probes:
        return Probes(i2c_bus_factory=lambda _n: _bus(device, address))

    config = _config(channel=0)
    ok, good = check_sensor(config, probes(Ads1115Device({0: SimProbe()})))
    assert good and ok.status == OK and "soil_moisture 40, soil_probe_voltage" in ok.detail
    unplugged = SimProbe()
    unplugged.disconnected = True
    line = check_sensor(config, probes(Ads1115Device({0: unplugged})))[0]
    assert line.status == FAIL and "the probe is disconnected" in line.detail
    line = check_sensor(config, probes(Ads1115Device({0: SimProbe()}), 0x49))[0]
    assert line.status == FAIL and "no ADS1115 answers at I2C address 0x48" in line.detail
    drifted = SimProbe(v_dry=2.9, v_wet=1.5, moisture=lambda: 0.0)
    line = check_sensor(config, probes(Ads1115Device({0: drifted})))[0]
    assert line.status == OK and "drifted, calibrate it again" in line.detail
    stuck = Ads1115Device({0: SimProbe()})
    stuck.never_finishes = True
    line = check_sensor(config, probes(stuck))[0]
    assert line.status == FAIL and "did not finish" in line.detail
    assert all("\n" not in c.line() for c in [ok, line])


def test_the_example_config_has_an_sht4x_and_a_soil_probe() -> None:
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.edge.drivers.registry import Sht4xConfig
    from sensorpipe.resources import EXAMPLE_CONFIG_DIR

    sensors = load_edge_config(EXAMPLE_CONFIG_DIR / "edge.example.toml").sensors
    sht = next(s for s in sensors if isinstance(s, Sht4xConfig))
    soil = next(s for s in sensors if isinstance(s, SoilProbeConfig))
    assert (sht.address, sht.precision) == (0x44, "high")
    assert (soil.channel, soil.v_dry, soil.v_wet, soil.sensor) == (0, 2.6, 1.2, "soil_probe")


def test_the_probe_voltage_is_a_quantity_with_a_plausible_range_and_its_unit() -> None:
    from sensorpipe.protocol.messages import Reading
    from sensorpipe.protocol.quantities import plausibility_error

    reading = Reading(quantity="soil_probe_voltage", value=2.11, unit="volt", sensor="soil_probe")
    assert reading.unit == "V"
    assert plausibility_error("soil_probe_voltage", 3.3) is None
    assert "outside the plausible range" in (plausibility_error("soil_probe_voltage", 9.0) or "")
    assert plausibility_error("soil_moisture", 100.5) is not None


def test_the_agent_tags_a_probe_s_readings_and_status_with_its_sensor_key() -> None:
    """The tag the device is registered with (`soil_probe`, or its own `sensor`), never the
    driver's name: the ingest sets aside a message naming a sensor the device did not declare."""
    from sensorpipe.edge.drivers.registry import sensor_tag

    assert sensor_tag(_config()) == "soil_probe"
    assert sensor_tag(_config(sensor="soil_probe.bed2")) == "soil_probe.bed2"
