"""The register's privacy note names what a device measures: a soil probe is not "air and
weather", a classroom's CO2 sensor says CO2; in English and Dutch, on the register page and in
the API's device entry."""

from __future__ import annotations

from sensorpipe.api.v1 import device_infos
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.register import (
    MEASURED_WORDS,
    _measured_key,
    personal_data_none,
    register_entry,
)
from sensorpipe.protocol.registry import DeviceEntry, NetworkInfo, Registry
from sensorpipe.query.export import register_records, to_html
from sensorpipe.query.register import RegisterStats


def _entry(*sensors: str) -> DeviceEntry:
    return DeviceEntry.model_validate(
        {"site": "s", "public_key": "k", "password_hash": "h", "sensors": list(sensors)}
    )


GARDEN = _entry("sht4x", "soil_probe")
CLASSROOM = _entry("scd30")


def test_the_note_names_soil_and_co2_not_air_and_weather() -> None:
    garden = register_entry("garden", GARDEN, NetworkInfo())
    assert not garden.personal_data
    assert garden.personal_data_note == (
        "no: the device measures temperature, humidity and soil moisture only"
    )
    classroom = register_entry("class", CLASSROOM, NetworkInfo())
    assert classroom.personal_data_note == (
        "no: the device measures temperature, humidity and CO2 only"
    )
    # The SPS30's four PM sizes and a PMS5003's counts are one word, said once.
    pm = register_entry("pm", _entry("sps30", "pms5003"), NetworkInfo())
    assert pm.personal_data_note == "no: the device measures particulate matter only"


def test_the_dutch_note_follows_the_same_quantities() -> None:
    assert personal_data_none(["temperature", "soil_moisture", "soil_probe_voltage"], "nl") == (
        "nee: het apparaat meet alleen temperatuur en bodemvocht"
    )
    # A quantity without a word of its own is named by its description, not left out.
    assert personal_data_none(["soil_salinity"]) == "no: the device measures soil salinity only"


def test_the_register_page_shows_it_in_english_and_dutch() -> None:
    registry = Registry(devices={"garden": GARDEN, "class": CLASSROOM})
    records = register_records(registry, None)
    english = to_html(records, registry.network, lang="en")
    dutch = to_html(records, registry.network, lang="nl")
    assert "the device measures temperature, humidity and soil moisture only" in english
    assert "het apparaat meet alleen temperatuur, luchtvochtigheid en bodemvocht" in dutch
    assert "het apparaat meet alleen temperatuur, luchtvochtigheid en CO2" in dutch
    assert "air and weather" not in english and "lucht en weer" not in dutch


def test_the_api_device_entry_shows_it() -> None:
    registry = Registry(devices={"garden": GARDEN})
    (info,) = device_infos(registry, RegisterStats(devices={}, computed_at_ms=0))
    assert info.personal_data_note == (
        "no: the device measures temperature, humidity and soil moisture only"
    )


def test_every_quantity_has_its_words_in_both_languages() -> None:
    """A new quantity must be given words here, or residents read its English description in
    the Dutch register."""
    assert set(MEASURED_WORDS["en"]) == set(MEASURED_WORDS["nl"])
    missing = [q for q in QUANTITIES if _measured_key(q) not in MEASURED_WORDS["en"]]
    assert missing == []
