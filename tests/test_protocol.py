"""The wire contract: models, topics, canonical encoding and signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sensorpipe.protocol.codec import DecodeError, canonical_bytes, decode, encode, parse_json
from sensorpipe.protocol.messages import (
    AirMessage,
    CountMessage,
    Link,
    Location,
    Reading,
    StatusMessage,
)
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.signing import Signer, Verifier, generate_keypair
from sensorpipe.protocol.topics import parse_topic, subscription, topic_for

NOW = datetime(2026, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)


def _air(**changes: object) -> AirMessage:
    fields: dict[str, object] = {
        "device_id": "balcony-01",
        "seq": 7,
        "observed_at": NOW,
        "clock_synced": True,
        "sent_at": NOW,
        "link": Link(uptime_s=5.0, firmware="t/1"),
        "readings": [Reading(quantity="pm2_5", value=9.5, unit="ug/m3", sensor="sds011")],
    }
    fields.update(changes)
    return AirMessage(**fields)  # type: ignore[arg-type]


def test_every_declared_quantity_has_unit_and_sane_range() -> None:
    for name, q in QUANTITIES.items():
        assert q.name == name and q.unit and q.minimum < q.maximum
    for required in ("pm1", "pm2_5", "pm10", "temperature", "relative_humidity", "pressure"):
        assert required in QUANTITIES


@pytest.mark.parametrize(
    ("quantity", "value", "unit", "message"),
    [
        ("pm2_5", 12.0, "mg/m3", "must be in 'µg/m³' or 'ug/m3', got 'mg/m3'"),
        ("pm2_5", -1.0, "ug/m3", "plausible range"),
        ("relative_humidity", 100.5, "%", "plausible range"),
        ("radon", 1.0, "Bq/m3", "unknown quantity"),
        ("temperature", float("nan"), "degC", "plausible range"),
    ],
)
def test_reading_rejects_wrong_unit_range_and_unknown_quantity(
    quantity: str, value: float, unit: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Reading(quantity=quantity, value=value, unit=unit, sensor="x")


def test_air_message_rejects_two_values_of_one_quantity_from_one_sensor() -> None:
    r = Reading(quantity="pm2_5", value=1.0, unit="ug/m3", sensor="sds011")
    with pytest.raises(ValidationError, match="duplicate reading"):
        _air(readings=[r, r])


def test_encode_decode_round_trip_with_location_and_signature() -> None:
    private, public = generate_keypair()
    message = _air(location=Location(lat=52.0907, lon=5.1214))
    payload = encode(message, Signer(private).sign)
    obj = json.loads(payload)
    assert Verifier(public).verify(canonical_bytes(obj), obj["sig"])
    decoded = decode(payload)
    assert decoded.model_dump(exclude={"sig"}) == message.model_dump(exclude={"sig"})
    assert decoded.observed_at == NOW


def test_signature_fails_when_anything_changes() -> None:
    private, public = generate_keypair()
    obj = json.loads(encode(_air(), Signer(private).sign))
    obj["readings"][0]["value"] = 95.0
    assert not Verifier(public).verify(canonical_bytes(obj), obj["sig"])
    other_public = generate_keypair()[1]
    obj = json.loads(encode(_air(), Signer(private).sign))
    assert not Verifier(other_public).verify(canonical_bytes(obj), obj["sig"])
    assert not Verifier(public).verify(canonical_bytes(obj), "not base64!")


def test_canonical_bytes_ignore_key_order_and_whitespace() -> None:
    a = json.loads('{"b": 1, "a": [1, 2], "sig": "x"}')
    b = json.loads('{"a":[1,2],"b":1}')
    assert canonical_bytes(a) == canonical_bytes(b) == b'{"a":[1,2],"b":1}'


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"v": 2, "kind": "air"}', "unsupported_version"),
        (b'{"v": 1, "kind": "weather"}', "schema"),
        (b" " * (64 * 1024 + 1), "too_large"),
    ],
)
def test_decode_errors_carry_a_stable_code(payload: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(payload)
    assert err.value.code == code


def test_schema_errors_name_the_field() -> None:
    obj = json.loads(encode(_air()))
    obj["seq"] = -3
    obj["surprise"] = True
    with pytest.raises(DecodeError) as err:
        decode(json.dumps(obj).encode())
    assert "air.seq" in err.value.detail and "surprise" in err.value.detail


def test_status_message_round_trip() -> None:
    msg = StatusMessage(
        device_id="d1",
        seq=1,
        observed_at=NOW,
        clock_synced=False,
        sent_at=NOW,
        link=Link(uptime_s=1, firmware="f"),
        sensors=[],
    )
    assert decode(encode(msg)) == msg


def test_topics_carry_the_device_id() -> None:
    assert topic_for("balcony-01", "air") == "sensorpipe/v1/balcony-01/air"
    assert parse_topic("sensorpipe/v1/balcony-01/air") == ("balcony-01", "air")
    for bad in (
        "sensorpipe/v1/balcony-01/air/extra",
        "other/v1/x/air",
        "sensorpipe/v1/X!/air",
        "sensorpipe/v1/x/weather",
    ):
        assert parse_topic(bad) is None
    with pytest.raises(ValueError, match="invalid device id"):
        topic_for("a/b", "air")
    assert subscription("ingest") == "$share/ingest/sensorpipe/v1/+/+"


def test_parse_json_needs_an_object() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}


def _count(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "v": 1,
        "kind": "count",
        "device_id": "cam-1",
        "seq": 3,
        "observed_at": "2026-11-22T12:00:00.000+00:00",
        "clock_synced": True,
        "sent_at": "2026-11-22T12:01:00.100+00:00",
        "link": {"uptime_s": 60.0, "firmware": "f"},
        "interval_end": "2026-11-22T12:01:00.000+00:00",
        "model_id": "street-detector@abc",
        "running_fraction": 0.98,
        "frames": 294,
        "counts": [
            {"count_class": "cyclist", "direction": "left_to_right", "count": 4},
            {"count_class": "cyclist", "direction": "right_to_left", "count": 0},
        ],
    }
    body.update(changes)
    return body


def test_count_message_round_trip() -> None:
    message = decode(json.dumps(_count()).encode())
    assert isinstance(message, CountMessage)
    assert message.counts[0].count == 4 and message.running_fraction == 0.98
    assert decode(encode(message)) == message


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        (
            {"counts": [{"count_class": "horse", "direction": "in", "count": 1}]},
            "unknown count class",
        ),
        ({"interval_end": "2026-11-22T11:59:00.000+00:00"}, "interval_end must be after"),
        ({"running_fraction": 1.5}, "running_fraction"),
        ({"counts": [{"count_class": "car", "direction": "in", "count": 1}] * 2}, "appear once"),
        ({"counts": [{"count_class": "car", "direction": "In Bound", "count": 1}]}, "direction"),
        ({"counts": [{"count_class": "car", "direction": "in", "count": -1}]}, "count"),
    ],
)
def test_count_message_rejections(changes: dict[str, object], text: str) -> None:
    with pytest.raises(DecodeError, match=text):
        decode(json.dumps(_count(**changes)).encode())
