"""The dead-letter store on a full disk: the real error, fast failing, recovery by itself; and
the ingest holding back only the rejected messages meanwhile (fake InfluxDB and broker).

A real full disk (a small tmpfs, so these tests need root), not a simulated error: what SQLite
does when COMMIT finds no room is what is tested.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore, DeadLetterStoreUnavailable
from sensorpipe.ingest.link import Incoming
from sensorpipe.ingest.service import IngestService
from sensorpipe.protocol.ack import ack_topic
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.topics import topic_for
from tests.integration.mqtt_helpers import air_message
from tests.small_disk import fill, small_disk
from tests.test_ingest_service import FakeInflux, FakeMqtt, _item, _service


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", size_kib=512) as path:
        yield path


_serial = itertools.count()


def _letter(payload: bytes | None = None) -> DeadLetter:
    # Each letter its own payload: the same payload again would only count a repeat.
    body = payload if payload is not None else b"{not json %d" % next(_serial)
    return DeadLetter(time.time(), "sensorpipe/v1/x/air", body, "malformed_json", "test")


def test_a_commit_without_room_reports_the_real_error(disk: Path) -> None:
    """A COMMIT that fails for want of space has rolled back already; the ROLLBACK after it
    failed too, and its "no transaction is active" used to be what was reported."""
    store = DeadLetterStore(disk / "dl.sqlite")
    store.add_many([_letter()])
    fill(disk)
    with pytest.raises(DeadLetterStoreUnavailable) as caught:
        store.add_many([_letter(bytes(3000))])
    assert "database or disk is full" in str(caught.value)
    assert "rollback" not in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert not store.available and store.error == "database or disk is full"
    assert store.unavailable_since is not None
    assert store.count() == 1  # what was kept before is still there, readable
    store.close()


def test_while_unavailable_the_store_fails_at_once_and_recovers_by_itself(
    disk: Path, tmp_path: Path
) -> None:
    clock = Clock()
    store = DeadLetterStore(disk / "dl.sqlite", probe_interval_s=5.0, clock=clock)
    store.add_many([_letter()])
    filler = fill(disk)
    with pytest.raises(DeadLetterStoreUnavailable):
        store.add_many([_letter()])
    filler.unlink()  # room again, but the store does not look before its next try is due
    with pytest.raises(DeadLetterStoreUnavailable, match="database or disk is full"):
        store.add_many([_letter()])
    assert not store.probe()
    clock.now += 5.0
    assert store.probe() and store.available and store.error is None
    store.add_many([_letter()])
    assert store.count() == 2
    # The WAL was checkpointed into the database file: a copy of that file alone (no WAL)
    # holds the letter kept before the disk filled.
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(disk / "dl.sqlite", copy)
    db = sqlite3.connect(copy)
    assert db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] >= 1
    db.close()
    store.close()


def test_a_store_opened_on_a_full_disk_starts_unavailable_and_opens_later(disk: Path) -> None:
    clock = Clock()
    path = disk / "dl.sqlite"
    first = DeadLetterStore(path)
    first.add_many([_letter()])
    first.close()
    filler = fill(disk)
    store = DeadLetterStore(path, clock=clock)  # an ingest (re)started while the disk is full
    assert not store.available and store.error
    filler.unlink()
    clock.now += 5.0
    assert store.probe()
    store.add_many([_letter()])
    assert store.count() == 2
    store.close()


def _unsigned(device: str, seq: int, mid: int) -> Incoming:
    """Rejected (`unsigned`), but names its device and number: a confirmation would name it."""
    return Incoming(0, mid, topic_for(device, "air"), encode(air_message(device, seq)), False, 0.0)


def _malformed(mid: int) -> Incoming:
    """Rejected, and too broken for any confirmation to name it."""
    return Incoming(0, mid, topic_for("good", "air"), b"{not json", False, 0.0)


def _full_service(tmp_path: Path, disk: Path, clock: Clock, **config: Any) -> IngestService:
    service = _service(tmp_path, FakeInflux(), deadletter_path=str(disk / "dl.sqlite"), **config)
    service._deadletters._clock = clock
    return service


def test_a_full_store_holds_back_only_the_rejected_messages(
    tmp_path: Path, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sensorpipe.ingest")
    clock = Clock()
    service = _full_service(tmp_path, disk, clock)
    mqtt: FakeMqtt = service._link.client  # type: ignore[assignment]
    influx: FakeInflux = service._influx  # type: ignore[assignment]
    filler = fill(disk)
    assert service.process([_item("good", 1), _unsigned("good", 8, 500), _item("good", 2)])
    assert service.process([_item("good", 3), _malformed(501)])  # fails at once now
    # Stored, confirmed and acknowledged as usual; the rejected ones neither confirmed nor
    # acknowledged (held: the broker keeps them too), and no batch retried or split.
    assert mqtt.confirmed() == {ack_topic("good"): [1, 2, 3]}
    assert sorted(mqtt.acked) == [1, 2, 3]
    assert influx.writes == 2 and service.stats.internal_errors == 0
    s = service.stats
    assert (s.stored_messages, s.rejected, s.held_back, s.held_back_waiting) == (3, 0, 2, 2)
    assert not s.deadletter_available and s.deadletter_error == "database or disk is full"
    assert s.as_dict()["held_back"] == 2
    got = service.metrics.registry.get_sample_value
    assert got("sensorpipe_ingest_deadletter_available") == 0
    assert got("sensorpipe_ingest_held_back_total") == 2
    assert got("sensorpipe_ingest_held_back_waiting") == 2

    service._tend_deadletters()  # not due yet: nothing changes
    assert service.stats.held_back_waiting == 2
    # Said once, loudly, with SQLite's own error; not once per message or batch.
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in loud] == ["ERROR"]
    assert "database or disk is full" in loud[0].getMessage()
    caplog.clear()
    filler.unlink()
    clock.now += 5.0
    service._tend_deadletters()  # due: the store writes again and keeps the held ones
    assert service.stats.deadletter_available and service.stats.held_back_waiting == 0
    assert sorted(mqtt.acked) == [1, 2, 3, 500, 501]
    assert sorted(mqtt.confirmed()[ack_topic("good")]) == [1, 2, 3, 8]
    assert service.stats.rejected_by_code == {"unsigned": 1, "malformed_json": 1}
    assert mqtt.calls[-3:] == ["publish", "ack", "ack"]  # the device is told first
    assert any(
        r.levelname == "WARNING" and "writes again" in r.getMessage() for r in caplog.records
    )
    store = DeadLetterStore(disk / "dl.sqlite")
    assert sorted(letter.code for letter in store.list()) == ["malformed_json", "unsigned"]
    store.close()
    service.close()


def test_the_hold_is_bounded_and_keeps_what_no_confirmation_names(
    tmp_path: Path, disk: Path
) -> None:
    """Past `hold_max` held messages, the ingest acknowledges further ones unconfirmed, so
    that they never fill the broker's in-flight window. Those a confirmation names go first:
    a device that waits for confirmations sends them again; nobody sends a broken one again."""
    service = _full_service(tmp_path, disk, Clock(), batch_max=4)
    assert service.hold_max == 2
    mqtt: FakeMqtt = service._link.client  # type: ignore[assignment]
    fill(disk)
    batch = [_malformed(900), _unsigned("good", 8, 901), _item("good", 1)]
    batch += [_unsigned("good", 9, 902), _malformed(903), _unsigned("good", 10, 904)]
    assert service.process(batch)
    assert sorted(mqtt.acked) == [1, 901, 902, 904]  # 900 and 903 held
    assert mqtt.confirmed() == {ack_topic("good"): [1]}
    s = service.stats
    assert (s.held_back, s.held_back_waiting, s.left_to_sender) == (5, 2, 3)
    service.close()


def test_the_writer_loop_neither_retries_nor_splits_while_the_store_is_full(
    tmp_path: Path, disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The regression: each batch with a reject failed three times and was split, each bad
    message costing seconds; here every batch goes through once."""
    from tests.test_ingest_service import _run

    service = _full_service(tmp_path, disk, Clock(), batch_max=5, batch_wait_ms=0)
    waits: list[float | None] = []

    def record(seconds: float | None = None) -> bool:
        waits.append(seconds)
        return service._stop.is_set()

    monkeypatch.setattr(service._stop, "wait", record)
    mqtt: FakeMqtt = service._link.client  # type: ignore[assignment]
    fill(disk)
    items = []
    for seq in range(1, 41):
        items.append(_item("good", seq))
        items.append(_unsigned("bad", seq, 1000 + seq))
    _run(service, items, lambda: service.stats.stored_messages == 40)
    assert service.stats.internal_errors == 0 and waits == []
    assert service.stats.held_back == 40
    assert sorted(mqtt.confirmed()[ack_topic("good")]) == list(range(1, 41))
    assert ack_topic("bad") not in mqtt.confirmed()
    service.close()


def test_messages_held_on_a_lost_connection_are_left_to_the_broker(
    tmp_path: Path, disk: Path
) -> None:
    """After a reconnect the broker delivers the unacknowledged messages again, on the new
    connection: the ingest lets go of its copies, and acknowledges nothing on the old one."""
    clock = Clock()
    service = _full_service(tmp_path, disk, clock)
    mqtt: FakeMqtt = service._link.client  # type: ignore[assignment]
    filler = fill(disk)
    assert service.process([_malformed(700), _unsigned("good", 8, 701)])
    assert service.stats.held_back_waiting == 2
    service._link.generation += 1  # what on_connect does
    filler.unlink()
    clock.now += 5.0
    service._tend_deadletters()
    assert service.stats.deadletter_available and service.stats.held_back_waiting == 0
    assert mqtt.acked == [] and mqtt.published == []
    service.close()
