"""The ingest's checks, one rejection reason at a time (no broker needed)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensorpipe.ingest.validate import RegistryView, Rejection, Validator
from sensorpipe.protocol.codec import canonical_bytes, encode
from sensorpipe.protocol.messages import AirMessage, Link, Reading
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRIVATE, PUBLIC = generate_keypair()


@pytest.fixture
def validator(tmp_path: Path) -> Validator:
    registry = Registry(devices={"d1": DeviceEntry(site="s", public_key=PUBLIC, password_hash="x")})
    save_registry(registry, tmp_path / "registry.toml")
    return Validator(RegistryView(tmp_path / "registry.toml"), clock=lambda: NOW.timestamp())


def _message(**changes: object) -> dict[str, object]:
    m = AirMessage(
        device_id="d1",
        seq=1,
        observed_at=NOW,
        clock_synced=True,
        sent_at=NOW,
        link=Link(uptime_s=1, firmware="f"),
        readings=[Reading(quantity="pm10", value=20.0, unit="ug/m3", sensor="sds011")],
    )
    obj: dict[str, object] = m.model_dump(mode="json", exclude={"sig"})
    obj.update(changes)
    return obj


def _signed(obj: dict[str, object], key: str = PRIVATE) -> bytes:
    obj = {**obj, "sig": Signer(key).sign(canonical_bytes(obj))}
    return json.dumps(obj).encode()


def test_valid_message_passes(validator: Validator) -> None:
    message = validator.check("sensorpipe/v1/d1/air", _signed(_message()))
    assert isinstance(message, AirMessage)
    assert message.device_id == "d1" and message.readings[0].value == 20.0


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("weather/d1", _signed(_message()), "bad_topic"),
        ("sensorpipe/v1/d1/air", b"{", "malformed_json"),
        ("sensorpipe/v1/d1/air", _signed(_message(device_id="d2")), "device_mismatch"),
        ("sensorpipe/v1/d1/status", _signed(_message()), "kind_mismatch"),
        ("sensorpipe/v1/d9/air", _signed(_message(device_id="d9")), "unknown_device"),
        ("sensorpipe/v1/d1/air", json.dumps(_message()).encode(), "unsigned"),
        ("sensorpipe/v1/d1/air", _signed(_message(), generate_keypair()[0]), "bad_signature"),
        ("sensorpipe/v1/d1/air", _signed(_message(seq="seven")), "schema"),
        ("sensorpipe/v1/d1/air", _signed(_message(v=3)), "unsupported_version"),
        (
            "sensorpipe/v1/d1/air",
            _signed(_message(observed_at=(NOW + timedelta(hours=2)).isoformat())),
            "future_timestamp",
        ),
    ],
)
def test_each_defect_has_its_reason(
    validator: Validator, topic: str, payload: bytes, code: str
) -> None:
    with pytest.raises(Rejection) as err:
        validator.check(topic, payload)
    assert err.value.code == code
    assert err.value.detail


def test_tampered_payload_fails_the_signature(validator: Validator) -> None:
    obj = json.loads(_signed(_message()))
    obj["readings"][0]["value"] = 2.0  # a gateway "correcting" a value
    with pytest.raises(Rejection) as err:
        validator.check("sensorpipe/v1/d1/air", json.dumps(obj).encode())
    assert err.value.code == "bad_signature"


def test_devices_added_to_the_registry_file_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    save_registry(Registry(), path)
    view = RegistryView(path)
    validator = Validator(view, clock=lambda: NOW.timestamp())
    payload = encode(AirMessage.model_validate(_message()), Signer(PRIVATE).sign)
    with pytest.raises(Rejection):
        validator.check("sensorpipe/v1/d1/air", payload)
    save_registry(
        Registry(devices={"d1": DeviceEntry(site="s", public_key=PUBLIC, password_hash="x")}), path
    )
    os.utime(path, (NOW.timestamp() + 10, NOW.timestamp() + 10))  # a visibly newer file
    view.refresh()
    assert validator.check("sensorpipe/v1/d1/air", payload).seq == 1


def test_a_broken_registry_edit_keeps_the_last_good_registry(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    save_registry(
        Registry(devices={"d1": DeviceEntry(site="s", public_key=PUBLIC, password_hash="x")}), path
    )
    view = RegistryView(path)
    path.write_text("[devices.d1\nsite = ")  # someone saved half an edit
    os.utime(path, (NOW.timestamp() + 10, NOW.timestamp() + 10))
    view.refresh()
    assert view.device("d1") is not None


@pytest.mark.parametrize(
    ("observed_at", "code"),
    [
        ("1677-09-20T00:00:00+00:00", "too_old"),  # before InfluxDB's time range
        ("0001-01-01T00:00:00+00:00", "too_old"),
        ((NOW - timedelta(days=365)).isoformat(), "too_old"),  # a year old is not backlog
        ((NOW - timedelta(days=7, seconds=1)).isoformat(), "too_old"),
        ("2263-01-01T00:00:00+00:00", "future_timestamp"),  # after InfluxDB's range
    ],
)
def test_times_outside_the_backlog_window_are_rejected(
    validator: Validator, observed_at: str, code: str
) -> None:
    with pytest.raises(Rejection) as err:
        validator.check(
            "sensorpipe/v1/d1/air", _signed(_message(observed_at=observed_at, sent_at=observed_at))
        )
    assert err.value.code == code


def test_outbox_backlog_inside_the_window_is_accepted(validator: Validator) -> None:
    six_days = (NOW - timedelta(days=6, hours=23)).isoformat()
    message = validator.check(
        "sensorpipe/v1/d1/air", _signed(_message(observed_at=six_days, sent_at=NOW.isoformat()))
    )
    assert message.observed_at.isoformat() == six_days


def test_sensor_names_are_limited_to_the_registry_or_known_models(
    validator: Validator, tmp_path: Path
) -> None:
    invented = _message(
        readings=[{"quantity": "pm10", "value": 5.0, "unit": "ug/m3", "sensor": "x-0001"}]
    )
    with pytest.raises(Rejection) as err:
        validator.check("sensorpipe/v1/d1/air", _signed(invented))
    assert err.value.code == "undeclared_sensor" and "x-0001" in err.value.detail
    # A known model passes without a declaration; a declared list is then the only one.
    validator.check("sensorpipe/v1/d1/air", _signed(_message()))
    registry = Registry(
        devices={
            "d1": DeviceEntry(site="s", public_key=PUBLIC, password_hash="x", sensors=["pms5003"])
        }
    )
    save_registry(registry, tmp_path / "registry.toml")
    os.utime(tmp_path / "registry.toml", (NOW.timestamp() + 10, NOW.timestamp() + 10))
    validator.registry.refresh()
    with pytest.raises(Rejection) as err:
        validator.check("sensorpipe/v1/d1/air", _signed(_message()))  # sds011: not declared
    assert err.value.code == "undeclared_sensor" and "pms5003" in err.value.detail


def test_count_directions_are_limited_to_the_registry(validator: Validator) -> None:
    from sensorpipe.protocol.messages import ClassCount, CountMessage

    def counts(direction: str) -> bytes:
        m = CountMessage(
            device_id="d1",
            seq=3,
            observed_at=NOW - timedelta(minutes=1),
            interval_end=NOW,
            clock_synced=True,
            sent_at=NOW,
            link=Link(uptime_s=1, firmware="f"),
            model_id="m",
            running_fraction=1.0,
            frames=300,
            counts=[ClassCount(count_class="car", direction=direction, count=4)],
        )
        obj: dict[str, object] = m.model_dump(mode="json", exclude={"sig"})
        return _signed(obj)

    validator.check("sensorpipe/v1/d1/count", counts("left_to_right"))
    with pytest.raises(Rejection) as err:
        validator.check("sensorpipe/v1/d1/count", counts("north_x17"))
    assert err.value.code == "undeclared_direction"


@pytest.mark.parametrize(
    ("unit", "quantity", "value"),
    [
        ("µg/m³", "pm10", 20.0),
        ("μg/m3", "pm10", 20.0),
        ("ug/m^3", "pm10", 20.0),
        ("°C", "temperature", 11.5),
        ("℃", "temperature", 11.5),
        ("%RH", "relative_humidity", 80.0),
    ],
)
def test_units_as_people_write_them_are_accepted_and_stored_canonically(
    validator: Validator, unit: str, quantity: str, value: float
) -> None:
    reading = {"quantity": quantity, "value": value, "unit": unit, "sensor": "bme280"}
    message = validator.check("sensorpipe/v1/d1/air", _signed(_message(readings=[reading])))
    assert isinstance(message, AirMessage)
    canonical = {"pm10": "ug/m3", "temperature": "degC", "relative_humidity": "%"}[quantity]
    assert message.readings[0].unit == canonical


def test_a_unit_of_another_dimension_is_refused_with_the_unit_expected(
    validator: Validator,
) -> None:
    reading = {"quantity": "pm10", "value": 0.02, "unit": "mg/m³", "sensor": "sds011"}
    with pytest.raises(Rejection) as info:
        validator.check("sensorpipe/v1/d1/air", _signed(_message(readings=[reading])))
    assert info.value.code == "schema"
    assert "pm10 must be in 'µg/m³' or 'ug/m3', got 'mg/m³'" in info.value.detail
