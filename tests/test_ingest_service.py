"""The ingest's writer loop against a fake InfluxDB (unit level: the real one is in integration).

What must hold: the loop never dies, a message that always fails never blocks the ones behind
it, InfluxDB's refusals are isolated by splitting the batch, and Retry-After is honoured.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.errors import StorageRejected, StorageUnavailable
from sensorpipe.ingest.link import Incoming
from sensorpipe.ingest.service import IngestService
from sensorpipe.protocol.ack import ack_topic, decode_ack
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import air_message

KEYS = {d: generate_keypair() for d in ("good", "bad")}


class FakeInflux:
    """Records written lines; `fail(lines)` may raise for a write."""

    def __init__(self, fail: Callable[[Sequence[str]], None] = lambda _lines: None) -> None:
        self.fail = fail
        self.lines: list[str] = []
        self.writes = 0

    def write(self, lines: Sequence[str], *, precision: str = "ms") -> None:
        self.writes += 1
        self.fail(lines)
        self.lines += lines

    def delete(self, measurement: str, tags: Any, time_ms: int) -> None:
        pass

    def close(self) -> None:
        pass


class FakeMqtt:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []
        self.calls: list[str] = []  # "ack" and "publish", in the order they were made

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)
        self.calls.append("ack")

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.published.append((topic, payload))
        self.calls.append("publish")

    def confirmed(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic, payload in self.published:
            out.setdefault(topic, []).extend(decode_ack(payload).numbers())
        return out


def _service(tmp_path: Path, influx: FakeInflux, **config: Any) -> IngestService:
    registry = Registry(
        devices={
            d: DeviceEntry(site="s", public_key=public, password_hash="x")
            for d, (_private, public) in KEYS.items()
        }
    )
    save_registry(registry, tmp_path / "registry.toml")
    cfg = IngestConfig.model_validate(
        {
            "broker": {"password": "x"},
            "registry_path": str(tmp_path / "registry.toml"),
            "deadletter_path": str(tmp_path / "dl.sqlite"),
            **config,
        }
    )
    service = IngestService(cfg, influx=influx)  # type: ignore[arg-type]
    service._link.client = FakeMqtt()  # type: ignore[assignment]
    return service


def _item(device: str, seq: int) -> Incoming:
    signer = Signer(KEYS[device][0])
    payload = encode(air_message(device, seq), signer.sign)
    return Incoming(
        0,
        mid=seq if device == "good" else 1000 + seq,
        topic=topic_for(device, "air"),
        payload=payload,
        dup=False,
        received_at=0.0,
        device=device,
    )


def _run(service: IngestService, items: list[Incoming], until: Callable[[], bool]) -> None:
    for item in items:
        service._queue.put(item.device, item)
    thread = threading.Thread(target=service._work, daemon=True)
    thread.start()
    try:
        wait_for(until, timeout_s=20, what="the writer to get through")
    finally:
        service._stop.set()
        thread.join(5)
    assert not thread.is_alive()


def _letters(tmp_path: Path) -> list[Any]:
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    letters = store.list()
    store.close()
    return letters


def test_a_message_that_always_fails_is_dead_lettered_and_the_rest_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(lines: Sequence[str]) -> None:
        if any("device_id=bad" in line for line in lines):
            raise RuntimeError("a bug that this message triggers every time")

    influx = FakeInflux(fail)
    service = _service(tmp_path, influx)
    monkeypatch.setattr(service._stop, "wait", lambda _s=None: service._stop.is_set())
    items = [_item("good", 1), _item("bad", 1), _item("good", 2), _item("good", 3)]
    mqtt = service._link.client
    _run(service, items, lambda: len(mqtt.acked) == 4)  # type: ignore[attr-defined]
    stored = {line.split("seq=")[1].split("i")[0] for line in influx.lines if "seq=" in line}
    assert stored == {"1", "2", "3"}
    (letter,) = _letters(tmp_path)
    assert letter.code == "internal_error" and "RuntimeError" in letter.detail
    assert letter.payload == items[1].payload  # raw bytes kept
    assert service.stats.internal_errors >= 3


def test_a_refused_write_is_split_until_the_refused_message_is_found(tmp_path: Path) -> None:
    def fail(lines: Sequence[str]) -> None:
        if any("device_id=bad" in line for line in lines):
            raise StorageRejected('partial write: field type conflict: input field "pm2_5"', 400)

    influx = FakeInflux(fail)
    service = _service(tmp_path, influx)
    items = [_item("good", i) for i in range(1, 16)] + [_item("bad", 1)]
    assert service.process(items)
    assert len(service._link.client.acked) == 16  # type: ignore[attr-defined]
    (letter,) = _letters(tmp_path)
    assert letter.code == "storage_rejected" and "field type conflict" in letter.detail
    assert service.stats.stored_messages == 15
    assert influx.writes <= 2 * 5 + 1  # halving: about 2 log2(n) writes, not one per message


def test_the_writer_survives_a_stats_file_it_cannot_write_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    influx = FakeInflux()
    # One message per batch: the stats file is written (and fails) between the two.
    stats = tmp_path / "missing-dir" / "stats.json"
    service = _service(tmp_path, influx, batch_max=1, stats_path=str(stats))
    mqtt = service._link.client
    with caplog.at_level(logging.DEBUG, logger="sensorpipe.ingest.service"):
        _run(service, [_item("good", 1), _item("good", 2)], lambda: len(mqtt.acked) == 2)  # type: ignore[attr-defined]
    assert service.stats.stored_messages == 2
    # Said once (it used to be a traceback at every turn of the loop), with the reason.
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in said] == [
        f"stats file {stats} not written: No such file or directory"
    ]
    assert said[0].levelno == logging.ERROR and said[0].exc_info is None
    stats.parent.mkdir()
    service._tend_stats()
    assert caplog.records[-1].getMessage().startswith(f"stats file {stats} written again")
    assert json.loads(stats.read_text())["stored_messages"] == 2


def test_a_stats_file_in_a_missing_directory_stops_the_start_with_one_line(
    tmp_path: Path,
) -> None:
    stats = tmp_path / "run" / "sensorpipe" / "stats.json"
    service = _service(tmp_path, FakeInflux(), stats_path=str(stats))
    try:
        with pytest.raises(ConfigError) as caught:
            service.start()
    finally:
        service.close()
    assert str(caught.value) == (
        f"ingest configuration: stats_path: the directory {stats.parent} does not exist: "
        f"create it or correct stats_path"
    )
    assert not service._worker.is_alive()  # nothing started


def test_a_registry_that_does_not_exist_is_an_error_not_an_empty_registry(
    tmp_path: Path,
) -> None:
    cfg = IngestConfig.model_validate(
        {
            "broker": {"password": "x"},
            "registry_path": str(tmp_path / "registy.toml"),
            "deadletter_path": str(tmp_path / "dl.sqlite"),
        }
    )
    with pytest.raises(ConfigError, match=r"registy\.toml: file not found"):
        IngestService(cfg, influx=FakeInflux())  # type: ignore[arg-type]


def test_a_registry_removed_while_running_keeps_the_devices_it_had(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service(tmp_path, FakeInflux())
    (tmp_path / "registry.toml").unlink()
    with caplog.at_level(logging.ERROR, logger="sensorpipe.ingest.validate"):
        service._registry.refresh()
        service._registry.refresh()
    assert service._registry.device("good") is not None
    (line,) = caplog.records  # once, not at every refresh
    assert "registry not reloaded, keeping the previous one" in line.getMessage()
    service.close()


def test_a_dead_letter_store_that_cannot_be_opened_names_its_key(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(ConfigError) as caught:
        _service(tmp_path, FakeInflux(), deadletter_path=str(tmp_path / "not-a-dir" / "dl.sqlite"))
    assert str(caught.value).startswith("ingest configuration: deadletter_path: cannot open")


def test_retry_after_is_honoured_and_backoff_is_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = iter(
        [StorageUnavailable("429", retry_after_s=7.0)] + [StorageUnavailable("down")] * 12 + [None]
    )

    def fail(_lines: Sequence[str]) -> None:
        exc = next(attempts)
        if exc is not None:
            raise exc

    service = _service(tmp_path, FakeInflux(fail))
    waits: list[float] = []

    def record(seconds: float | None = None) -> bool:
        waits.append(seconds or 0.0)
        return False

    monkeypatch.setattr(service._stop, "wait", record)
    assert service.process([_item("good", 1)])
    assert waits[0] >= 7.0  # the server asked for 7 s
    assert max(waits[1:]) <= 10.0 and len(set(waits)) > 3  # capped and jittered


def test_a_full_dead_letter_disk_does_not_stop_storage_for_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    influx = FakeInflux()
    service = _service(tmp_path, influx)
    monkeypatch.setattr(service._stop, "wait", lambda _s=None: service._stop.is_set())

    def full(letters: Any) -> None:
        if letters:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(service._deadletters, "add_many", full)
    bad = Incoming(0, 500, topic_for("good", "air"), b"{not json", False, 0.0)
    items = [_item("good", 1), bad, _item("good", 2), _item("good", 3)]
    mqtt = service._link.client
    _run(service, items, lambda: sorted(mqtt.acked) == [1, 2, 3])  # type: ignore[attr-defined]
    # The rejected message is not acknowledged (it was not kept): the broker still holds it.
    assert 500 not in mqtt.acked  # type: ignore[attr-defined]
    assert service.stats.stored_messages == 3


def _link_line(influx: FakeInflux, seq: int) -> str:
    return [x for x in influx.lines if x.startswith("link,") and f"seq={seq}i" in x][-1]


def test_a_replay_keeps_the_recorded_gap_and_latency(tmp_path: Path) -> None:
    influx = FakeInflux()
    service = _service(tmp_path, influx)
    assert service.process([_item("good", 1), _item("good", 3)])
    first = _link_line(influx, 3)
    assert "seq_gap=1i" in first and "latency_ms=" in first and "redelivered=false" in first
    assert service.process([_item("good", 3)])  # the same message again, not flagged DUP
    again = _link_line(influx, 3)
    assert "seq_gap" not in again and "latency_ms" not in again and "received_at_ms" not in again
    assert "redelivered=true" in again


def test_with_a_shared_stream_no_worker_claims_a_gap(tmp_path: Path) -> None:
    influx = FakeInflux()
    broker = {"password": "x", "shared_group": "workers-Xq3vT9kLm2Pz"}
    service = _service(tmp_path, influx, broker=broker)
    assert service.process([_item("good", 1), _item("good", 3)])
    assert "seq_gap" not in _link_line(influx, 3)


def test_devices_are_told_which_messages_are_kept_stored_or_dead_lettered(
    tmp_path: Path,
) -> None:
    influx = FakeInflux()
    service = _service(tmp_path, influx)
    forged = Incoming(0, 900, topic_for("good", "air"), _item("bad", 7).payload, False, 0.0)
    broken = Incoming(0, 901, topic_for("good", "air"), b'{"seq": 5, "device_id": "go', False, 0.0)
    items = [_item("good", 1), _item("good", 2), _item("bad", 4), forged, broken, _item("good", 3)]
    mqtt = service._link.client
    _run(service, items, lambda: len(mqtt.acked) == 6)  # type: ignore[attr-defined]
    confirmed = mqtt.confirmed()  # type: ignore[attr-defined]
    # Stored: good 1-3 and bad 4. The forged message came on good's topic but names "bad": no
    # confirmation to either (it is not good's message, and bad did not send it). The broken
    # one names no number. Both are dead letters.
    assert sorted(confirmed[ack_topic("good")]) == [1, 2, 3]
    assert confirmed[ack_topic("bad")] == [4]
    assert {letter.code for letter in _letters(tmp_path)} == {"device_mismatch", "malformed_json"}


def test_a_rejected_message_of_the_device_itself_is_confirmed(tmp_path: Path) -> None:
    """Kept as a dead letter, so the device need not send it again (it would be refused the
    same way, for ever)."""
    service = _service(tmp_path, FakeInflux())
    unsigned = encode(air_message("good", 8))  # no signature
    items = [Incoming(0, 1, topic_for("good", "air"), unsigned, False, 0.0)]
    mqtt = service._link.client
    _run(service, items, lambda: len(mqtt.acked) == 1)  # type: ignore[attr-defined]
    assert mqtt.confirmed() == {ack_topic("good"): [8]}  # type: ignore[attr-defined]
    assert [letter.code for letter in _letters(tmp_path)] == ["unsigned"]


def test_checking_in_several_threads_keeps_each_verdict_with_its_message(
    tmp_path: Path,
) -> None:
    """Messages are checked in interleaved shares side by side; every verdict must land on
    its own message, in arrival order, as a single-threaded check gives it."""
    forger = Signer(KEYS["bad"][0])
    items = []
    for i in range(1, 12):
        item = _item("good", i)
        if i % 3 == 0:  # every third one signed with another device's key
            forged = encode(air_message("good", i), forger.sign)
            item = Incoming(0, i, item.topic, forged, False, 0.0)
        items.append(item)
    verdicts = {}
    for threads in (1, 3):
        service = _service(tmp_path / str(threads), FakeInflux(), validate_threads=threads)
        outcomes = service._checker.evaluate_all(items)
        verdicts[threads] = [
            (o.item.mid, o.rejection.code if o.rejection else o.message and o.message.seq)
            for o in outcomes
        ]
        service.close()
    assert verdicts[1] == verdicts[3]
    assert [v for _mid, v in verdicts[3]] == [
        "bad_signature" if i % 3 == 0 else i for i in range(1, 12)
    ]


def test_the_next_batch_is_checked_while_one_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signature checks of the next batch overlap the InfluxDB write of the one in hand; the
    results, acknowledgements and their order are those of one batch after the other."""
    checked: list[int] = []
    next_checked = threading.Event()
    overlapped: list[bool] = []

    def write(lines: Sequence[str]) -> None:
        if not overlapped:  # the first write: is batch 2 checked before it returns?
            overlapped.append(next_checked.wait(5.0))

    influx = FakeInflux(write)
    service = _service(tmp_path, influx, batch_max=2, batch_wait_ms=0, validate_threads=2)
    original = service._checker.check

    def check(item: Incoming) -> Any:
        result = original(item)
        checked.append(item.mid)
        if item.mid in (3, 4):
            next_checked.set()
        return result

    monkeypatch.setattr(service._checker, "check", check)
    mqtt = service._link.client
    _run(service, [_item("good", s) for s in range(1, 7)], lambda: len(mqtt.acked) == 6)  # type: ignore[attr-defined]
    assert overlapped == [True]
    assert mqtt.acked == [1, 2, 3, 4, 5, 6]  # type: ignore[attr-defined]
    assert sorted(checked) == [1, 2, 3, 4, 5, 6]  # each checked once
    stored = [line.split("seq=")[1].split("i")[0] for line in influx.lines if "seq=" in line]
    assert stored == ["1", "2", "3", "4", "5", "6"]
    assert service.stats.stored_messages == 6 and service.stats.received == 6


def test_devices_are_told_before_the_broker_is(tmp_path: Path) -> None:
    """The confirmations to the devices are published before the broker's acknowledgements.
    An ingest killed after acknowledging but before confirming left the devices holding
    messages that were stored, which the broker would never deliver again (found with SIGKILL
    in tests/integration/test_shared_workers.py)."""
    service = _service(tmp_path, FakeInflux())
    mqtt = service._link.client
    assert service.process([_item("good", 1), _item("bad", 1), _item("good", 2)])
    assert mqtt.calls == ["publish", "publish", "ack", "ack", "ack"]  # type: ignore[attr-defined]
