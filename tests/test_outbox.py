"""The outbox contract, run against both implementations."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.edge.outbox import MemoryOutbox, Outbox, SqliteOutbox


@pytest.fixture(params=["memory", "sqlite"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    box: Outbox = MemoryOutbox() if request.param == "memory" else SqliteOutbox(tmp_path / "o.db")
    yield box
    box.close()


def test_entries_wait_in_order_until_removed(outbox: Outbox) -> None:
    ids = [outbox.put("t/a", f"m{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    assert [e.body for e in outbox.pending()] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [e.id for e in outbox.pending(after_id=ids[1], limit=2)] == ids[2:4]
    outbox.remove(ids[0])
    outbox.remove(ids[3])
    assert [e.body for e in outbox.pending()] == [b"m1", b"m2", b"m4"]
    assert outbox.depth() == 3
    outbox.remove(ids[0])  # removing twice is harmless (a duplicate PUBACK)
    assert outbox.depth() == 3


def test_sent_entries_wait_for_confirmation_by_sequence_number(outbox: Outbox) -> None:
    ids = [outbox.put("t/a", f"m{i}".encode(), seq=10 + i) for i in range(4)]
    for entry_id in ids[:3]:
        outbox.mark_sent(entry_id)  # the broker has them
    assert [e.seq for e in outbox.pending()] == [13]  # not offered again ...
    assert outbox.depth() == 4  # ... but still kept
    assert outbox.confirm([10, 12, 99]) == 2  # 99: not ours, or already confirmed
    assert outbox.depth() == 2
    assert outbox.requeue() == 1  # no confirmation for 11: offer it again
    assert [e.seq for e in outbox.pending()] == [11, 13]
    assert outbox.confirm([11, 13]) == 2 and outbox.depth() == 0


def test_requeue_takes_only_entries_sent_before_the_given_time(outbox: Outbox) -> None:
    early, late = outbox.put("t/a", b"a", seq=1), outbox.put("t/a", b"b", seq=2)
    outbox.mark_sent(early)
    cutoff = time.time() + 0.001
    time.sleep(0.01)
    outbox.mark_sent(late)
    assert outbox.requeue(sent_before=cutoff) == 1
    assert [e.seq for e in outbox.pending()] == [1]


def test_sqlite_outbox_of_an_older_agent_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "body BLOB NOT NULL, created_at REAL NOT NULL)"
    )
    db.execute("INSERT INTO outbox (topic, body, created_at) VALUES ('t/a', x'6f6c64', 1.0)")
    db.commit()
    db.close()
    box = SqliteOutbox(path)
    (old,) = box.pending()
    assert old.body == b"old" and old.seq is None
    new = box.put("t/a", b"new", seq=5)
    box.mark_sent(new)
    assert box.confirm([5]) == 1 and box.depth() == 1
    box.close()


def test_rejected_entries_are_kept_aside(outbox: Outbox) -> None:
    entry_id = outbox.put("t/a", b"x")
    outbox.reject(entry_id, "broker: Not authorized")
    assert outbox.depth() == 0
    ((entry, reason),) = outbox.rejected()
    assert entry.body == b"x" and "Not authorized" in reason


def test_sequence_numbers_are_unique_under_concurrency(outbox: Outbox) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            n = outbox.next_seq()
            with lock:
                seen.append(n)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 801))


def test_sqlite_outbox_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    first = SqliteOutbox(path)
    first.put("t/a", b"queued before the reboot")
    assert [first.next_seq() for _ in range(3)] == [1, 2, 3]
    first.close()
    second = SqliteOutbox(path)
    assert [e.body for e in second.pending()] == [b"queued before the reboot"]
    assert second.next_seq() == 4  # never reused after a reboot
    second.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_full_outbox_drops_its_oldest_readings_and_counts_them(kind: str, tmp_path: Path) -> None:
    box: Outbox = (
        MemoryOutbox(max_entries=100)
        if kind == "memory"
        else SqliteOutbox(tmp_path / "o.sqlite", max_entries=100)
    )
    seqs = [box.next_seq() for _ in range(150)]
    for seq in seqs:
        box.put("t", str(seq).encode())
    assert box.depth() == 100 and box.dropped == 50
    assert [e.body for e in box.pending(limit=1)] == [b"51"]  # the newest are kept
    assert box.next_seq() == 151  # numbers are never reused: the loss shows as a gap
    box.close()


def test_a_full_disk_makes_room_from_the_oldest_instead_of_failing(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite")
    # SQLite's own size cap stands in for a full disk: the same "database or disk is full".
    box._db.execute("PRAGMA max_page_count = 40")
    body = b"x" * 2000
    for _ in range(400):
        box.put("t", body)  # never raises: the oldest go when there is no room
    assert box.dropped > 0 and 0 < box.depth() < 400
    newest = box.pending(after_id=0, limit=1000)[-1]
    assert newest.id == 400  # the last reading made it in
    box.close()
