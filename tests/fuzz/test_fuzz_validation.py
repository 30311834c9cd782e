"""Hostile input against the ingest's validation: only `Rejection`, never anything else."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorpipe.ingest.validate import RegistryView, Rejection, Validator
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair
from tests.fuzz.corpus import corpus, valid_messages

PRIVATE, PUBLIC = generate_keypair()
TOPIC = "sensorpipe/v1/fuzz-1/air"


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Validator:
    path: Path = tmp_path_factory.mktemp("fuzz") / "registry.toml"
    registry = Registry(
        devices={"fuzz-1": DeviceEntry(site="s", public_key=PUBLIC, password_hash="x")}
    )
    save_registry(registry, path)
    return Validator(RegistryView(path))


def test_every_corpus_entry_is_rejected_with_a_reason(validator: Validator) -> None:
    entries = corpus(Signer(PRIVATE).sign, "fuzz-1")
    assert len(entries) >= 1000
    reasons: Counter[str] = Counter()
    for label, payload in entries:
        with pytest.raises(Rejection) as err:
            validator.check(TOPIC, payload)
        assert err.value.code and err.value.detail, label
        reasons[err.value.code] += 1
    # The corpus reaches many different checks, not one.
    assert len(reasons) >= 8, reasons
    for _seq, payload in valid_messages(Signer(PRIVATE).sign, "fuzz-1", 5):
        validator.check(TOPIC, payload)  # and the valid ones pass


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_rejected_never_crash(validator: Validator, payload: bytes) -> None:
    with pytest.raises(Rejection):
        validator.check(TOPIC, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "kind",
                "device_id",
                "seq",
                "observed_at",
                "sent_at",
                "link",
                "readings",
                "sig",
                "x",
            ]
        ),
        json_values,
        max_size=9,
    )
)
def test_arbitrary_json_objects_are_rejected_never_crash(
    validator: Validator, obj: dict[str, object]
) -> None:
    with pytest.raises(Rejection):
        validator.check(TOPIC, json.dumps(obj).encode())
