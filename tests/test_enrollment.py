"""Joining a device (protocol.enrollment): the join code, the key store, the enrollment's proof
and how the ingest's checks use an enrolled key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.ingest.validate import RegistryView, Rejection, Validator
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.enrollment import (
    BadJoinCode,
    JoinCode,
    KeyEnrollment,
    KeyStore,
    decode_join_code,
    enroll_topic,
    enrollment_payload,
    fingerprint,
)
from sensorpipe.protocol.messages import AirMessage, Link, Reading
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair
from tests.helpers import join_code

CA = "-----BEGIN CERTIFICATE-----\n" + "A" * 900 + "\n-----END CERTIFICATE-----\n"


def _code(**changes: object) -> JoinCode:
    return join_code(**{"ca_pem": CA, **changes})


def test_a_join_code_is_one_line_that_survives_wrapping_and_indenting() -> None:
    code = _code()
    text = code.encode()
    assert text.startswith("spj1.") and "\n" not in text and " " not in text
    wrapped = "  " + "\n   ".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n"
    assert decode_join_code(wrapped) == code


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no join code given"),
        ("hello", "not a join code (it starts with 'spj1.')"),
        ("spj1.@@@@", "the join code is incomplete or mistyped"),
        ("spj1.AAAA", "the join code is incomplete or mistyped"),
        ("spj1." + "A" * 20_000, "characters long: not a join code"),
    ],
)
def test_a_bad_join_code_says_what_to_do(text: str, reason: str) -> None:
    with pytest.raises(BadJoinCode, match=None) as caught:
        decode_join_code(text)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t[: len(t) // 2],  # cut in half
        lambda t: t[:-1],  # its last character lost
        lambda t: t[:40] + t[41:],  # one character lost in the middle
        lambda t: t[:40] + ("B" if t[40] != "B" else "C") + t[41:],  # one mistyped
    ],
)
def test_a_code_cut_short_or_mistyped_is_refused_not_half_read(spoil: Any) -> None:
    with pytest.raises(BadJoinCode, match="incomplete or mistyped"):
        decode_join_code(spoil(_code().encode()))


def test_the_first_key_a_device_enrols_is_kept(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "state" / "keys.sqlite")
    assert store.get("pi-1") is None and store.all() == {}
    _, first = generate_keypair()
    _, second = generate_keypair()
    kept, accepted = store.enroll("pi-1", first)
    assert accepted and kept.public_key == first
    assert (tmp_path / "state" / "keys.sqlite").stat().st_mode & 0o777 == 0o600
    again, accepted = store.enroll("pi-1", first)  # a join run again: the same key
    assert accepted and again.enrolled_at == kept.enrolled_at
    other, accepted = store.enroll("pi-1", second)  # someone else with the code
    assert not accepted and other.public_key == first
    assert store.forget("pi-1") and store.get("pi-1") is None
    assert not store.forget("pi-1")
    assert store.enroll("pi-1", second)[1]


def test_an_enrollment_proves_the_sender_holds_the_key() -> None:
    private, public = generate_keypair()
    good = KeyEnrollment.model_validate_json(
        enrollment_payload("pi-1", private, public, "n0nce-123")
    )
    assert good.proves_possession()
    other_private, _ = generate_keypair()
    forged = KeyEnrollment.model_validate_json(
        enrollment_payload("pi-1", other_private, public, "n0nce-123")
    )
    assert not forged.proves_possession()


def _registry(tmp_path: Path, **entry: object) -> RegistryView:
    path = tmp_path / "registry.toml"
    fields: dict[str, object] = {"site": "s", "password_hash": "x", **entry}
    save_registry(Registry(devices={"pi-1": DeviceEntry.model_validate(fields)}), path)
    return RegistryView(path, KeyStore(tmp_path / "keys.sqlite"))


def _signed_air(private_key: str) -> bytes:
    now = datetime.now(UTC)
    message = AirMessage(
        device_id="pi-1",
        seq=1,
        observed_at=now,
        clock_synced=True,
        sent_at=now,
        link=Link(uptime_s=1.0, firmware="t"),
        readings=[Reading(sensor="sds011", quantity="pm2_5", value=4.0, unit="ug/m3")],
    )
    return encode(message, Signer(private_key).sign)


def test_a_device_without_a_key_is_set_aside_until_it_enrols_one(tmp_path: Path) -> None:
    view = _registry(tmp_path)
    validator = Validator(view)
    private, public = generate_keypair()
    with pytest.raises(Rejection) as caught:
        validator.check("sensorpipe/v1/pi-1/air", _signed_air(private))
    assert caught.value.code == "no_key" and "edge join" in str(caught.value)

    payload = enrollment_payload("pi-1", private, public, "n0nce-123")
    enrollment = validator.check_enrollment(enroll_topic("pi-1"), payload)
    assert view.keys is not None
    view.keys.enroll("pi-1", enrollment.public_key)
    assert validator.check("sensorpipe/v1/pi-1/air", _signed_air(private)).seq == 1
    other, _ = generate_keypair()
    with pytest.raises(Rejection) as caught:
        validator.check("sensorpipe/v1/pi-1/air", _signed_air(other))
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize(
    ("topic", "change", "code"),
    [
        ("sensorpipe/v1/pi-1/key", {"nonce": "other-nonce"}, "bad_signature"),
        ("sensorpipe/v1/pi-2/key", {}, "device_mismatch"),
        ("sensorpipe/v1/pi-1/key", {"public_key": "short"}, "schema"),
    ],
)
def test_an_enrollment_that_is_not_sound_is_refused(
    tmp_path: Path, topic: str, change: dict[str, str], code: str
) -> None:
    validator = Validator(_registry(tmp_path))
    private, public = generate_keypair()
    body = json.loads(enrollment_payload("pi-1", private, public, "n0nce-123"))
    with pytest.raises(Rejection) as caught:
        validator.check_enrollment(topic, json.dumps({**body, **change}).encode())
    assert caught.value.code == code


def test_a_device_with_a_key_in_the_registry_cannot_enrol_another(tmp_path: Path) -> None:
    _, registered = generate_keypair()
    validator = Validator(_registry(tmp_path, public_key=registered))
    private, public = generate_keypair()
    with pytest.raises(Rejection) as caught:
        validator.check_enrollment(
            enroll_topic("pi-1"), enrollment_payload("pi-1", private, public, "n0nce-123")
        )
    assert caught.value.code == "key_taken"


def test_a_fingerprint_is_short_and_stable() -> None:
    _, public = generate_keypair()
    assert fingerprint(public) == fingerprint(public)
    assert len(fingerprint(public)) == 19 and fingerprint(public).count(":") == 3
