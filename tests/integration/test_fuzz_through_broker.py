"""The hostile corpus through a real Mosquitto into a real ingest and InfluxDB."""

from __future__ import annotations

import pytest

from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import pid_alive
from sensorpipe.protocol.signing import Signer
from sensorpipe.stack.local import LocalStack
from tests.fuzz.corpus import corpus, valid_messages
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice


@pytest.mark.timeout(300)
def test_hostile_corpus_is_dead_lettered_and_valid_messages_interleaved_are_stored(
    stack: LocalStack, influx: InfluxClient
) -> None:
    info = stack.require_info()
    # This is about validation, not quotas (integration/test_isolation): the device may send
    # the whole corpus at once.
    (creds,) = stack.add_devices(
        [("fuzz-1", {"site": "fuzz", "max_messages_per_s": 10_000.0, "max_bytes_per_s": 10**9})]
    )
    sign = Signer(creds.private_key).sign
    hostile = corpus(sign, "fuzz-1")
    valid = list(valid_messages(sign, "fuzz-1", len(hostile) // 10))
    device = TestDevice(creds, info.broker_port)
    topic = "sensorpipe/v1/fuzz-1/air"
    try:
        for i, (_label, payload) in enumerate(hostile):
            assert not device.publish(topic, payload).is_failure
            if i % 10 == 0 and valid:
                _seq, good = valid.pop(0)
                assert not device.publish(topic, good).is_failure
        for _seq, good in valid:
            assert not device.publish(topic, good).is_failure
    finally:
        device.close()
    expected_valid = len(hostile) // 10
    # The same payload twice is one letter, its `repeats` counting both.
    distinct = {p for _label, p in hostile}
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    try:
        wait_for(lambda: store.count() >= len(distinct), timeout_s=120, what="all dead letters")
        letters = store.list(limit=10_000)
    finally:
        store.close()
    assert len(letters) == len(distinct)
    wait_for(
        lambda: sum(d.repeats for d in _letters(stack)) == len(hostile),
        timeout_s=30,
        what="every repeat counted",
    )
    assert all(d.code and d.detail for d in letters)
    assert {d.payload for d in letters} == {p for _label, p in hostile}  # byte for byte

    def stored() -> int:
        series = influx.query("SELECT count(seq) FROM link WHERE device_id = 'fuzz-1'")
        return int(series[0]["values"][0][1]) if series else 0

    wait_for(lambda: stored() == expected_valid, timeout_s=60, what="every valid message")
    assert pid_alive(stack.require_info().pids["ingest"])  # the ingest stayed up


def _letters(stack: LocalStack) -> list[DeadLetter]:
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    try:
        return store.list(limit=10_000)
    finally:
        store.close()
