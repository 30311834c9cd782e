"""A device's second soil probe, DS18B20 or PMS5003 has its own sensor tag `<model>.<name>`
(docs/edge.md: `soil_probe.bed2`): `devices add` takes it, and its values are judged as its
model's (data-sheet uncertainty, quality thresholds). `devices add` notes a model the edge agent
cannot read by the register's model names, not by its drivers' names."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.edge.drivers.registry import DRIVERS, MODEL_DRIVERS, READ_AS
from sensorpipe.protocol.registry import KNOWN_SENSORS, TAGGED_MODELS, load_registry
from sensorpipe.quality.config import QualityConfig
from sensorpipe.query import uncertainty


def _add(directory: Path, device: str, *sensors: str) -> tuple[int, str]:
    args = ["devices", "add", device, "--dir", str(directory)]
    for sensor in sensors:
        args += ["--sensor", sensor]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


@pytest.mark.parametrize("tag", ["soil_probe.bed2", "ds18b20.deep", "pms5003.indoor"])
def test_a_second_probe_of_a_device_is_registered_with_its_own_tag(
    tmp_path: Path, tag: str
) -> None:
    model = tag.split(".")[0]
    code, output = _add(tmp_path, "garden-02", model, tag)
    assert code == 0, output
    assert "not a model sensorpipe knows" not in output and "note: --sensor" not in output
    assert load_registry(tmp_path / "registry.toml").devices["garden-02"].sensors == [model, tag]


def test_only_models_a_device_may_have_several_of_take_a_name(tmp_path: Path) -> None:
    for tag in ("bme280.b", "soil_probe.", "sds012.x"):
        code, output = _add(tmp_path, "g-1", tag)
        assert code == 1 and "not a model sensorpipe knows" in output, output
    assert TAGGED_MODELS <= KNOWN_SENSORS


def test_a_second_probes_values_get_its_models_data_sheet_uncertainty() -> None:
    deep = uncertainty.rule("soil_temperature", sensor="ds18b20.deep", reference=False)
    assert deep == uncertainty.rule("soil_temperature", sensor="ds18b20", reference=False)
    assert deep.at(10.0) == uncertainty.Uncertainty(0.5, "data-sheet:ds18b20:soil_temperature")
    assert deep.at(-20.0).value == 2.0  # outside the data sheet's band
    assert "DS18B20 data sheet" in uncertainty.basis_sentence(str(deep.basis), {})


def test_a_second_probes_values_get_its_models_quality_thresholds() -> None:
    assert QualityConfig().rules("pms5003.indoor", "pm2_5").high == 500.0  # Plantower's range
    config = QualityConfig.model_validate(
        {
            "sensors": {
                "soil_probe": {"soil_moisture": {"stuck_readings": 100, "high": 90.0}},
                "soil_probe.bed2": {"soil_moisture": {"stuck_readings": 50}},
            }
        }
    )
    bed2 = config.rules("soil_probe.bed2", "soil_moisture")
    assert (bed2.stuck_readings, bed2.high) == (50, 90.0)  # its own keys over its model's
    bed3 = config.rules("soil_probe.bed3", "soil_moisture")
    assert (bed3.stuck_readings, bed3.high) == (100, 90.0)


def test_no_note_for_a_model_the_agent_reads_under_another_driver_name(tmp_path: Path) -> None:
    for i, model in enumerate(sorted(MODEL_DRIVERS)):
        code, output = _add(tmp_path, f"pi-{i}", model)
        assert code == 0 and "note: --sensor" not in output, (model, output)
    code, output = _add(tmp_path, "pi-tagged", "soil_probe.bed2", "ds18b20.deep")
    assert code == 0 and "note: --sensor" not in output, output


def test_the_note_for_a_model_without_a_driver_names_the_models_it_reads(tmp_path: Path) -> None:
    code, output = _add(tmp_path, "kit-1", "hpma115", "sht31")
    assert code == 0, output
    (hpma,) = [line for line in output.splitlines() if "--sensor hpma115" in line]
    assert "no driver for it (it reads: " in hpma and "soil_probe" in hpma
    assert "soil_ads1115" not in hpma  # a driver's name, not a model one can declare
    (sht,) = [line for line in output.splitlines() if "--sensor sht31" in line]
    assert "declare --sensor sht3x" in sht


def test_every_model_maps_to_a_driver_and_every_driver_reads_a_model() -> None:
    assert set(MODEL_DRIVERS.values()) == set(DRIVERS)
    assert set(MODEL_DRIVERS) <= KNOWN_SENSORS
    assert all(model in KNOWN_SENSORS and tag in MODEL_DRIVERS for model, tag in READ_AS.items())


def test_a_second_probes_tag_shows_its_models_quantities_and_laser_life() -> None:
    from sensorpipe.protocol.register import register_entry
    from sensorpipe.protocol.registry import DeviceEntry, NetworkInfo
    from sensorpipe.query.health import SensorState, _main_field

    entry = DeviceEntry(
        site="garden", sensors=["soil_probe.bed2", "pms5003.indoor"], password_hash="h"
    )
    public = register_entry("garden-02", entry, NetworkInfo())
    assert {"soil_moisture", "soil_probe_voltage", "pm2_5"} <= set(public.quantities)
    assert _main_field("pms5003.indoor") == "pm2_5"  # its readings show it has data
    life = SensorState("pms5003.indoor", laser_hours=100.0).as_json()["laser_life_h"]
    assert life == 3 * 8_760.0  # Plantower's MTTF, as for a `pms5003`
