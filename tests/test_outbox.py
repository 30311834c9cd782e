"""The outbox contract, run against both implementations."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.edge.outbox import (
    DISK_HEADROOM_BYTES,
    MAX_REJECTED,
    MemoryOutbox,
    Outbox,
    OutboxError,
    OutboxFull,
    SqliteOutbox,
)
from tests.helpers import run_sql


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
    run_sql(
        path,
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "body BLOB NOT NULL, created_at REAL NOT NULL)",
        "INSERT INTO outbox (topic, body, created_at) VALUES ('t/a', x'6f6c64', 1.0)",
    )
    box = SqliteOutbox(path)
    (old,) = box.pending()
    assert old.body == b"old" and old.seq is None
    new = box.put("t/a", b"new", seq=5)
    box.mark_sent(new)
    assert box.confirm([5]) == 1 and box.depth() == 1
    box.close()


def test_rejected_entries_are_kept_aside(outbox: Outbox) -> None:
    entry_id = outbox.put("t/a", b"x", seq=7)
    outbox.reject(entry_id, "broker: Not authorized")
    assert outbox.depth() == 0
    ((entry, reason),) = outbox.rejected()
    assert entry.body == b"x" and entry.seq == 7 and "Not authorized" in reason


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
def test_a_full_outbox_drops_its_oldest_readings_and_counts_them(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
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
    (line,) = [r.getMessage() for r in caplog.records]  # said once, not fifty times
    assert "outbox full: it holds max_entries" in line and "outbox_dropped" in line
    assert box.next_seq() == 151  # numbers are never reused: the loss shows as a gap
    box.close()


class SmallDisk:
    """Free space of a disk of `capacity` bytes that holds nothing but the outbox's files."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.capacity = capacity

    def __call__(self) -> int:
        used = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return self.capacity - used


def test_a_full_disk_makes_room_from_the_oldest_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path, free_bytes=SmallDisk(path, DISK_HEADROOM_BYTES + 400_000))
    body = b"x" * 2000
    for _ in range(400):
        box.put("t", body)  # never raises: the oldest go when there is no room
    assert box.dropped > 0 and 0 < box.depth() < 400
    newest = box.pending(after_id=0, limit=1000)[-1]
    assert newest.id == 400  # the last reading made it in
    box.close()


def test_a_reading_the_disk_has_no_room_for_is_counted_and_keeps_its_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path, free_bytes=SmallDisk(path, DISK_HEADROOM_BYTES + 100_000))
    assert box.put("t", b"small", seq=box.next_seq()) == 1
    seq = box.next_seq()
    with pytest.raises(OutboxFull):
        box.put("t", b"x" * 300_000, seq=seq)  # more than the whole disk
    # Counted (reported as outbox_dropped): the oldest, dropped in vain, and the reading.
    assert box.dropped == 2 and box.depth() == 0
    assert box.next_seq() == seq + 1  # its number stays used: a visible gap
    assert box.put("t", b"after", seq=seq + 1) > 0  # the outbox still works
    box.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_full_outbox_drops_sent_entries_before_unsent_ones(kind: str, tmp_path: Path) -> None:
    box: Outbox = (
        MemoryOutbox(max_entries=100)
        if kind == "memory"
        else SqliteOutbox(tmp_path / "o.sqlite", max_entries=100)
    )
    ids = [box.put("t", str(seq).encode(), seq=seq) for seq in range(1, 101)]
    for entry_id in ids[50:55]:
        box.mark_sent(entry_id)  # the broker has these: most likely not lost when dropped
    for seq in range(101, 108):
        box.put("t", str(seq).encode(), seq=seq)
    assert box.depth() == 100
    assert box.dropped == 2  # the five sent ones went first, then the two oldest unsent
    assert [e.seq for e in box.pending(limit=2)] == [3, 4]
    box.close()


def test_rejected_entries_are_counted_and_only_the_newest_kept(outbox: Outbox) -> None:
    for i in range(MAX_REJECTED + 5):
        outbox.reject(outbox.put("t", f"m{i}".encode(), seq=i + 1), "too large")
    assert outbox.dropped == MAX_REJECTED + 5
    kept = outbox.rejected()
    assert len(kept) == MAX_REJECTED and kept[-1][0].body == f"m{MAX_REJECTED + 4}".encode()
    assert outbox.depth() == 0


def test_a_write_that_fails_raises_an_outbox_error_and_the_outbox_recovers(
    tmp_path: Path,
) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite")
    first = box.put("t", b"a", seq=box.next_seq())
    box._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a broken disk
    box.mark_sent(first)  # kept in memory, written in a batch ...
    with pytest.raises(OutboxError):
        box.flush()  # ... which fails
    assert box.depth() == 1 and box.pending() == []  # still kept, still marked sent
    seq = box.next_seq()  # numbering does not need the database
    with pytest.raises(OutboxError):
        box.put("t", b"b", seq=seq)
    assert box.dropped == 1
    box._db.execute("PRAGMA query_only = OFF")
    assert box.confirm([1]) == 1
    assert box.put("t", b"c", seq=box.next_seq()) > 0  # writes the removal too
    box.close()
    box = SqliteOutbox(tmp_path / "o.sqlite")
    assert [e.body for e in box.pending()] == [b"c"]
    box.close()


def test_the_sequence_number_survives_a_torn_write_and_an_older_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path)
    assert [box.next_seq() for _ in range(5)] == [1, 2, 3, 4, 5]
    box.close()
    raw = bytearray(Path(f"{path}.seq").read_bytes())
    raw[512 + 6] ^= 0xFF  # a power cut tore the slot holding 5
    Path(f"{path}.seq").write_bytes(bytes(raw))
    box = SqliteOutbox(path)
    assert box.next_seq() == 5  # 5 was being written, so it was never handed out
    box.close()
    # An outbox from an agent that kept the counter in the database, without the file.
    Path(f"{path}.seq").unlink()
    run_sql(path, "INSERT OR REPLACE INTO counters (name, value) VALUES ('seq', 41)")
    box = SqliteOutbox(path)
    assert box.next_seq() == 42
    box.close()


def test_a_new_outbox_is_private_to_the_agent_s_user(tmp_path: Path) -> None:
    """Readings (and where the device stands) are the host's, whatever the umask."""
    old = os.umask(0o022)
    try:
        outbox = SqliteOutbox(tmp_path / "var" / "outbox.sqlite")
        outbox.put("sensorpipe/v1/dev-1/air", b"{}", seq=outbox.next_seq())
        outbox.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "var" / "outbox.sqlite").stat().st_mode) == 0o600
