"""soil_temperature, the quantity a buried DS18B20 measures, in every table that lists quantities:
its plausible range and decimals, the register's labels, the sensor model's quantities, its
data-sheet uncertainty (banded: ±0.5 °C from -10 to +85 °C, ±2 °C outside) and quality rules."""

from __future__ import annotations

import pytest

from sensorpipe.importer.fields import quantity_named
from sensorpipe.protocol.messages import Reading
from sensorpipe.protocol.quantities import DECIMALS, QUANTITIES, plausibility_error
from sensorpipe.protocol.register import SENSOR_QUANTITIES
from sensorpipe.protocol.registry import KNOWN_SENSORS
from sensorpipe.quality.config import QualityConfig
from sensorpipe.query import uncertainty as u
from sensorpipe.query.health import _main_field
from sensorpipe.query.register_page import QUANTITY_NAMES


def test_quantity_range_is_the_data_sheets_measuring_range() -> None:
    q = QUANTITIES["soil_temperature"]
    assert (q.unit, q.minimum, q.maximum, DECIMALS["soil_temperature"]) == ("degC", -55, 125, 1)
    assert plausibility_error("soil_temperature", -55.0) is None
    assert plausibility_error("soil_temperature", 125.0) is None
    assert "outside the plausible range" in (plausibility_error("soil_temperature", 127.9) or "")
    reading = Reading(quantity="soil_temperature", value=8.5, unit="°C", sensor="ds18b20")
    assert reading.unit == "degC"


def test_labels_and_the_sensor_models_quantities() -> None:
    assert QUANTITY_NAMES["en"]["soil_temperature"] == "soil temperature"
    assert QUANTITY_NAMES["nl"]["soil_temperature"] == "bodemtemperatuur"
    assert set(SENSOR_QUANTITIES["ds18b20"]) == {"soil_temperature", "temperature"}
    assert "ds18b20" in KNOWN_SENSORS
    # Its quantity is configured: uptime counts whichever field it sends.
    assert _main_field("ds18b20") is None and _main_field("sht4x") == "temperature"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-10.0, 0.5), (8.0, 0.5), (85.0, 0.5), (-10.5, 2.0), (-30.0, 2.0), (90.0, 2.0)],
)
def test_data_sheet_uncertainty_is_banded(value: float, expected: float) -> None:
    for quantity in ("soil_temperature", "temperature"):
        got = u.of_value(quantity, value, sensor="ds18b20", reference=False)
        assert got == u.Uncertainty(expected, f"data-sheet:ds18b20:{quantity}")
    sentence = u.basis_sentence("data-sheet:ds18b20:soil_temperature", {})
    assert "±0.5 °C from -10 to 85 °C, ±2 °C outside" in sentence
    assert u.of_value("temperature", 90.0, sensor="bme280", reference=False).value == 1.0


def test_quality_rules_for_soil_temperature() -> None:
    rules = QualityConfig().rules("ds18b20", "soil_temperature")
    assert (rules.low, rules.high) == (-55.0, 125.0)
    assert rules.stuck_readings == 720  # deep soil holds a value for hours
    assert QualityConfig().rules("ds18b20", "temperature").stuck_readings == 30


def test_imported_files_name_soil_temperature_in_their_languages() -> None:
    for name in ("Soil temperature", "soil_temperature", "Bodentemperatur", "bodemtemperatuur"):
        assert quantity_named(name) == "soil_temperature"
    assert quantity_named("Temperatur") == "temperature"
