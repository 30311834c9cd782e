"""The public register entry: what it says about personal data and legal basis."""

from __future__ import annotations

from sensorpipe.protocol.register import (
    LEGAL_BASIS_NONE,
    LEGAL_BASIS_UNSTATED,
    PERSONAL_DATA_CAMERA,
    PERSONAL_DATA_UNDECLARED,
    register_entry,
)
from sensorpipe.protocol.registry import DeviceEntry, NetworkInfo


def _entry(**fields: object) -> DeviceEntry:
    return DeviceEntry.model_validate(
        {"site": "s", "public_key": "k", "password_hash": "h", **fields}
    )


def test_a_camera_processes_personal_data_on_the_device_and_needs_a_stated_basis() -> None:
    e = register_entry("cam", _entry(sensors=["camera"]), NetworkInfo())
    assert e.personal_data and e.counts and e.personal_data_note == PERSONAL_DATA_CAMERA
    assert e.legal_basis == LEGAL_BASIS_UNSTATED
    assert e.count_classes  # every class sensorpipe counts, unless declared
    stated = register_entry(
        "cam", _entry(sensors=["camera"]), NetworkInfo(legal_basis="public task (AVG 6.1e)")
    )
    assert stated.legal_basis == "public task (AVG 6.1e)"


def test_an_air_device_has_no_personal_data_and_no_basis_is_needed() -> None:
    e = register_entry("air", _entry(sensors=["sds011", "bme280"]), NetworkInfo())
    assert not e.personal_data
    assert e.personal_data_note == (
        "no: the device measures particulate matter, temperature, humidity and air pressure only"
    )
    assert e.legal_basis == LEGAL_BASIS_NONE
    assert e.quantities == ["pm2_5", "pm10", "temperature", "relative_humidity", "pressure"]


def test_a_device_without_declared_sensors_does_not_claim_to_measure_air_only() -> None:
    e = register_entry("x", _entry(), NetworkInfo())
    assert e.quantities == [] and e.personal_data_note == PERSONAL_DATA_UNDECLARED
    seen = register_entry("x", _entry(), NetworkInfo(), seen_sensors={"sds011"})
    assert seen.personal_data_note == "no: the device measures particulate matter only"
    assert "pm2_5" in seen.quantities
