"""One device cannot hurt the others, at the unit level: lanes, quotas, cheap repeats,
dead-letter quotas and quarantine in the ingest (the real broker is in integration/test_isolation).
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sensorpipe.ingest.config import QuotaConfig
from sensorpipe.ingest.fair import FairQueue
from sensorpipe.ingest.link import Incoming, topic_device
from sensorpipe.ingest.quota import OVER_BYTES, OVER_RATE, OVER_REJECTS, QuotaKeeper
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.quarantine import QuarantineBook
from sensorpipe.protocol.registry import load_registry, save_registry
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for
from tests.integration.mqtt_helpers import air_message
from tests.test_ingest_service import KEYS, FakeInflux, FakeMqtt, _run, _service


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the queue ---------------------------------------------------------------------------------
def test_devices_are_taken_in_turn_and_each_lane_keeps_its_order() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(400):
        q.put("flood", f"flood-{i}")
    for d in ("a", "b", "c"):
        q.put(d, f"{d}-0")
        q.put(d, f"{d}-1")
    first = q.take(8)
    # Every other device's first message is in the first batch, whatever the flood queued.
    assert {"a-0", "b-0", "c-0"} <= set(first)
    assert first[:4] == ["flood-0", "a-0", "b-0", "c-0"]
    rest = q.take(1000)
    flood = [x for x in first + rest if x.startswith("flood")]
    assert flood == [f"flood-{i}" for i in range(400)]  # in the order sent
    assert len(q) == 0 and q.take(5) == []


def test_a_batch_waits_for_the_first_item_then_fills() -> None:
    q: FairQueue[int] = FairQueue()
    assert q.get_batch(10, first_timeout_s=0.01, fill_s=0.01) == []
    threading.Timer(0.05, lambda: q.put("d", 1)).start()
    assert q.get_batch(10, first_timeout_s=5.0, fill_s=0.0) == [1]


# --- the quotas --------------------------------------------------------------------------------
def _keeper(clock: Clock, **quota: Any) -> QuotaKeeper:
    return QuotaKeeper(QuotaConfig(**quota), clock=clock)


def test_a_device_over_its_message_rate_is_refused_and_others_are_not() -> None:
    clock = Clock()
    keeper = _keeper(clock, messages_per_s=10, burst_messages=20)
    verdicts = [keeper.admit("flood", 500) for _ in range(100)]
    assert verdicts[:20] == [None] * 20 and set(verdicts[20:]) == {OVER_RATE}
    assert keeper.admit("good", 500) is None
    clock.now += 1.0  # ten more a second
    assert [keeper.admit("flood", 500) for _ in range(11)].count(None) == 10


def test_bytes_are_a_quota_of_their_own() -> None:
    clock = Clock()
    keeper = _keeper(clock, bytes_per_s=10_000, burst_bytes=100_000)
    assert keeper.admit("big", 64_000) is None
    assert keeper.admit("big", 64_000) == OVER_BYTES
    assert keeper.admit("small", 500) is None


def test_a_message_refused_for_its_bytes_uses_none_of_the_message_quota() -> None:
    keeper = _keeper(Clock(), messages_per_s=1, burst_messages=2, burst_bytes=100_000)
    assert [keeper.admit("big", 200_000) for _ in range(5)] == [OVER_BYTES] * 5
    assert [keeper.admit("big", 500) for _ in range(3)] == [None, None, OVER_RATE]


def test_sustained_excess_is_due_for_quarantine_and_a_burst_is_not() -> None:
    clock = Clock()
    keeper = _keeper(clock, messages_per_s=20, burst_messages=600, quarantine_after_s=10)
    # An outbox draining at the edge agent's pace (10/s) after an outage: never refused.
    for _ in range(120):
        for _ in range(10):
            assert keeper.admit("draining", 800) is None
        clock.now += 1.0
    assert keeper.due() == []
    # A flood: refused in every second; due after ten of them, reported once.
    for second in range(12):
        for _ in range(1000):  # beyond the burst within the first second
            keeper.admit("flood", 600)
        clock.now += 1.0
        due = keeper.due()
        if second < 9:
            assert due == []
        elif second == 9:
            assert [(d.device, d.reason) for d in due] == [("flood", OVER_RATE)]
            assert "20 messages" in due[0].detail and "refused" in due[0].detail
        else:
            assert due == []


def test_rejected_messages_have_their_own_quota() -> None:
    clock = Clock()
    keeper = _keeper(clock, rejects_per_s=1, burst_rejects=5, quarantine_after_s=3)
    assert [keeper.rejected("buggy") for _ in range(6)] == [False] * 5 + [True]
    for _ in range(3):
        clock.now += 1.0
        keeper.rejected("buggy")
        keeper.rejected("buggy")
    (due,) = keeper.due()
    assert due.reason == OVER_REJECTS and "rejected" in due.detail
    # One rejection a minute (a forgotten sensor declaration) is never due.
    for _ in range(30):
        clock.now += 60.0
        assert not keeper.rejected("forgotten")
    assert [d.device for d in keeper.due()] == []


def test_a_device_with_its_own_quota_from_the_registry() -> None:
    clock = Clock()
    limits: dict[str, tuple[float | None, int | None]] = {"fast": (200.0, 1_000_000)}
    keeper = QuotaKeeper(
        QuotaConfig(messages_per_s=10, burst_messages=20),
        limits_for=lambda d: limits.get(d, (None, None)),
        clock=clock,
    )
    assert [keeper.admit("fast", 500) for _ in range(400)].count(None) == 400
    assert [keeper.admit("slow", 500) for _ in range(400)].count(None) == 20
    limits["slow"] = (200.0, None)  # the operator raises it
    keeper.refresh_limits()
    clock.now += 1.0
    assert [keeper.admit("slow", 500) for _ in range(400)].count(None) >= 200


def test_topic_device() -> None:
    assert topic_device("sensorpipe/v1/dev-1/air") == "dev-1"
    assert topic_device("sensorpipe/v1//air") == ""
    assert topic_device("other/dev/air") == ""


# --- the service -------------------------------------------------------------------------------
def _msg(device: str, seq: int, *, qos: int = 1, mid: int | None = None, sign: bool = True) -> Any:
    signer = Signer(KEYS[device if sign else "bad"][0])
    payload = encode(air_message(device, seq), signer.sign)
    return SimpleNamespace(
        topic=topic_for(device, "air"),
        payload=payload,
        qos=qos,
        mid=mid if mid is not None else seq,
        dup=False,
    )


def test_over_quota_messages_are_acknowledged_at_once_and_go_no_further(tmp_path: Path) -> None:
    service = _service(tmp_path, FakeInflux(), quota={"messages_per_s": 1, "burst_messages": 5})
    mqtt = FakeMqtt()
    for seq in range(1, 21):
        service._link.on_message(mqtt, None, _msg("bad", seq))
    service._link.on_message(mqtt, None, _msg("good", 1))
    assert len(service._queue) == 6  # five of the flood, the good device's one
    assert mqtt.acked == list(range(6, 21))  # the rest acknowledged, nothing else done
    assert service.stats.shed == 15 and service.stats.shed_by_device["bad"] == 15
    assert service.stats.shed_by_reason[OVER_RATE] == 15
    # QoS 0 has nothing to acknowledge (a PUBACK for message id 0 breaks the connection).
    service._link.on_message(mqtt, None, _msg("bad", 99, qos=0, mid=0))
    assert 0 not in mqtt.acked
    service.close()


def test_a_repeated_bad_payload_is_verified_once(tmp_path: Path, monkeypatch: Any) -> None:
    influx = FakeInflux()
    service = _service(tmp_path, influx)
    verified: list[int] = []
    real = service._checker.validator.check

    def counting(topic: str, payload: bytes) -> Any:
        verified.append(1)
        return real(topic, payload)

    monkeypatch.setattr(service._checker.validator, "check", counting)
    forged = _msg("good", 1, sign=False)  # signed with another key
    items = [
        Incoming(0, i + 1, forged.topic, forged.payload, False, 0.0, 1, "good") for i in range(50)
    ]
    _run(service, items, lambda: len(service._link.client.acked) == 50)  # type: ignore[attr-defined]
    assert len(verified) == 1
    assert service.stats.rejected_by_code["bad_signature"] == 50
    (letter,) = service._deadletters.list()
    assert letter.repeats == 50


def test_a_full_dead_letter_quota_leaves_the_rest_unconfirmed(tmp_path: Path) -> None:
    service = _service(
        tmp_path, FakeInflux(), quota={"deadletters_per_device": 10, "rejects_per_s": 1000}
    )
    items = []
    for seq in range(1, 31):
        m = _msg("good", seq, sign=False)
        items.append(Incoming(0, seq, m.topic, m.payload, False, 0.0, 1, "good"))
    ok = _msg("bad", 1)
    items.append(Incoming(0, 99, ok.topic, ok.payload, False, 0.0, 1, "bad"))
    mqtt = service._link.client
    _run(service, items, lambda: len(mqtt.acked) == 31)  # type: ignore[attr-defined]
    confirmed = mqtt.confirmed()  # type: ignore[attr-defined]
    assert len(confirmed["sensorpipe/ack/v1/good"]) == 10  # only those kept
    assert confirmed["sensorpipe/ack/v1/bad"] == [1]
    assert service.stats.deadletter_refused == 20
    assert "good" in service.stats.deadletter_near_full


def test_a_device_over_its_quota_for_long_enough_is_quarantined(tmp_path: Path) -> None:
    book_path = tmp_path / "quarantine.sqlite"
    clock = Clock()
    service = _service(
        tmp_path,
        FakeInflux(),
        quarantine_path=str(book_path),
        quota={"messages_per_s": 5, "burst_messages": 5, "quarantine_after_s": 3},
    )
    service._guard.quota._clock = clock
    mqtt = FakeMqtt()
    for second in range(4):
        for seq in range(50):
            service._link.on_message(mqtt, None, _msg("bad", second * 100 + seq + 1))
        clock.now += 1.0
        service._guard.tend()
    book = QuarantineBook(book_path)
    entry = book.active()["bad"]
    assert entry.reason == OVER_RATE and entry.by.startswith("ingest")
    assert service.stats.quarantines == 1
    # From now on its messages are refused on arrival, the other device's are not.
    queued = len(service._queue)
    shed = service.stats.shed_by_reason["quarantined"]
    assert shed > 0  # the last second's flood came after the quarantine
    service._guard.book.cache_s = 0  # type: ignore[union-attr]  # no second's wait for each change
    service._link.on_message(mqtt, None, _msg("bad", 1000))
    service._link.on_message(mqtt, None, _msg("good", 1))
    assert len(service._queue) == queued + 1
    assert service.stats.shed_by_reason["quarantined"] == shed + 1
    # Lifted (and its quota meter started afresh, as `devices lift` has the ingest do once
    # the quarantine is gone): its messages go on again.
    book.lift("bad", by="operator")
    service._guard.book._next_read = 0.0  # type: ignore[union-attr]
    clock.now += 10.0
    service._link.on_message(mqtt, None, _msg("bad", 1001))
    assert len(service._queue) == queued + 2
    service.close()


def test_a_registry_quota_is_read_again_when_the_registry_changes(tmp_path: Path) -> None:
    service = _service(tmp_path, FakeInflux(), quota={"messages_per_s": 1, "burst_messages": 2})
    mqtt = FakeMqtt()
    assert [service._guard.quota.admit("good", 100) for _ in range(10)].count(None) == 2
    registry = load_registry(tmp_path / "registry.toml")
    registry.devices["good"] = registry.devices["good"].model_copy(
        update={"max_messages_per_s": 1000.0}
    )
    save_registry(registry, tmp_path / "registry.toml")
    import os

    os.utime(tmp_path / "registry.toml", (2_000_000_000, 2_000_000_000))
    service._refresh_registry()
    assert [service._guard.quota.admit("good", 100) for _ in range(10)].count(None) == 10
    del mqtt
    service.close()
