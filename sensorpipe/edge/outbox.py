"""The outbox: readings wait here, on disk, until they are known to be kept.

Contract (both implementations pass the same tests):
- `put` returns once the entry is durable (SQLite: committed with synchronous=FULL).
- What the publisher learns about entries (`mark_sent`, `remove`, `confirm`) takes effect at
  once for `pending` and `depth`, but SQLite writes it to disk in batches (`flush`): with the
  next `put`, in the same transaction, or once `FLUSH_ENTRIES` wait or the oldest has waited
  `FLUSH_AFTER_S`, once every entry is delivered (the file is then empty too), and at
  `close`. A power cut before that loses only bookkeeping: an entry
  acknowledged or confirmed comes back as unsent and is sent again, which is harmless (the
  ingest stores a point under the device's sequence number and observation time, so a
  repeated message overwrites itself; DESIGN.md, invariant 2). Nothing queued is ever lost
  for it. One commit per reading instead of three, and one per batch when an outbox drains
  after an outage instead of one per message: fewer writes to the SD card, and a faster
  replay.
- `pending` lists entries not yet handed to the broker, oldest first. An entry the broker
  acknowledged is `mark_sent` and stays in the outbox until the ingest confirms it
  (`confirm`, by sequence number; see protocol.ack) or the publisher decides to send it again
  (`requeue`). `remove` takes an entry out at once, for brokers without an ingest that confirms.
  `reject` sets an entry that will never be delivered aside (the newest `MAX_REJECTED` are
  kept for inspection).
- `next_seq` hands out the device's sequence numbers; the counter survives restarts and never
  hands out a number twice, so a gap in stored sequence numbers means a reading was lost
  before it reached the ingest, never that it was overwritten. It works on a full disk too,
  so that a reading the outbox cannot keep still leaves its gap.
- `dropped` counts, since start, the readings the outbox gave up: the oldest ones dropped to
  make room, new ones it could not keep (`next_seq` or `put` raised `OutboxError`), and rejected
  ones. The agent reports it in every message's link metadata as `outbox_dropped`, so a loss is
  visible centrally both as a count and as a sequence gap.
- A write that fails raises `OutboxError` (retryable: the next write may work); the outbox
  itself stays usable and works again once the disk has room.
- Safe to call from the sampler and the publisher threads at once.
- Order is the entries' ids (and sequence numbers), never wall-clock time: a clock that jumps
  back (a Pi without a real-time clock after a power cut, until NTP steps it) neither reorders
  nor drops anything. The wall clock (`clock`, injectable) only stamps `created_at` and when an
  entry was sent; an entry whose sent mark lies ahead of the clock (it was set back since) is
  offered again by `requeue` as if it had waited long enough, rather than waiting for the
  clock to catch up.

When full (`max_entries` waiting, or the disk itself full), the oldest entries make room for
the new one: a device that is offline for weeks keeps its most recent readings. Entries
already sent are dropped before unsent ones: the broker most likely has them, while an unsent
entry exists nowhere else. If even that fails, `put` raises `OutboxFull`, which the agent
counts and survives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sensorpipe.edge.errors import EdgeError
from sensorpipe.edge.problems import RepeatedProblem
from sensorpipe.protocol.files import create_private

log = logging.getLogger(__name__)

MAX_ENTRIES = 500_000  # at one reading a minute, almost a year of readings
MAX_REJECTED = 100  # entries set aside that are kept for inspection, newest first
# SQLite's write-ahead log is copied into the database every this many pages (default 1000,
# 4 MiB) and cut back to WAL_KEEP_BYTES afterwards. A small log matters on a nearly full disk:
# a log that took the last free blocks cannot be copied into a database that must grow.
WAL_CHECKPOINT_PAGES = 128
WAL_KEEP_BYTES = 1024 * 1024
# Acknowledgements and confirmations kept in memory before they are written (see above).
FLUSH_ENTRIES = 1000
FLUSH_AFTER_S = 10.0
# A new outbox's database pages. Each commit appends the pages it changed to the log, and a
# reading changes three or four (the table, its indexes, the id counter): 1 KiB pages write
# about half the bytes of SQLite's 4 KiB default per reading (measured: 11.7 against 21 KB
# per message with its bookkeeping), and an outbox entry (about 800 bytes) fits one. An outbox
# made by an older agent keeps its page size (changing it needs a VACUUM, a full rewrite).
PAGE_SIZE = 1024
# Free space the database leaves to its log and index files: it grows into the rest only.
DISK_HEADROOM_BYTES = 2 * 1024 * 1024


class OutboxError(EdgeError):
    """The outbox could not write (disk full, I/O error). Retryable: a later write may work."""

    retryable = True


class OutboxFull(OutboxError):
    """No room for the entry, even after dropping the oldest: the reading is lost (counted)."""


def _disk_full(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


def _free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _making_room() -> RepeatedProblem:
    return RepeatedProblem(log, "outbox full", level=logging.ERROR)


def _report_dropped(problem: RepeatedProblem, why: str, n: int, total: int) -> None:
    problem.report(
        f"it {why}: the oldest unsent readings make room for new ones",
        f"; {n} dropped now, {total} since the start (a gap centrally, and counted in "
        "outbox_dropped)",
    )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    topic: str
    body: bytes
    created_at: float
    seq: int | None = None


class Outbox(Protocol):
    def put(self, topic: str, body: bytes, *, seq: int | None = None) -> int: ...

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxEntry]: ...

    def remove(self, entry_id: int) -> None: ...

    def remove_many(self, entry_ids: Iterable[int]) -> None:
        """`remove` each, at once."""
        ...

    def mark_sent(self, entry_id: int) -> None:
        """The broker has it; keep it until `confirm`, or until `requeue` offers it again."""
        ...

    def mark_sent_many(self, entry_ids: Iterable[int]) -> None:
        """`mark_sent` each, at once."""
        ...

    def confirm(self, seqs: Iterable[int]) -> int:
        """The ingest kept these sequence numbers: remove them; how many were here."""
        ...

    def requeue(self, *, sent_before: float = math.inf) -> int:
        """Offer entries sent before that time (all by default) again; how many."""
        ...

    def reject(self, entry_id: int, reason: str) -> None:
        """The entry will never be delivered (the broker refused it for good, it is too large
        to send): set it aside, counted in `dropped`."""
        ...

    def rejected(self) -> list[tuple[OutboxEntry, str]]: ...

    def depth(self) -> int: ...

    def next_seq(self) -> int: ...

    @property
    def dropped(self) -> int:
        """Readings given up since start: dropped for room, not kept, rejected."""
        ...

    def flush(self) -> None:
        """Write what `mark_sent`, `remove` and `confirm` kept in memory, now."""
        ...

    def close(self) -> None: ...


class MemoryOutbox:
    """For tests and for devices that accept losing the queue on reboot."""

    def __init__(
        self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, OutboxEntry] = {}
        self._sent: dict[int, float] = {}  # entry id -> when the broker acknowledged it
        self._rejected: list[tuple[OutboxEntry, str]] = []
        self._last_id = 0
        self._seq = 0
        self.max_entries = max_entries
        self.dropped = 0
        self._making_room = _making_room()

    def put(self, topic: str, body: bytes, *, seq: int | None = None) -> int:
        with self._lock:
            while len(self._entries) >= self.max_entries:
                sent = [i for i in self._entries if i in self._sent]
                oldest = min(sent) if sent else min(self._entries)
                if oldest not in self._sent:
                    self.dropped += 1
                    _report_dropped(self._making_room, "holds max_entries", 1, self.dropped)
                self._pop(oldest)
            self._last_id += 1
            entry = OutboxEntry(self._last_id, topic, body, self._clock(), seq)
            self._entries[self._last_id] = entry
            return self._last_id

    def _pop(self, entry_id: int) -> OutboxEntry | None:
        self._sent.pop(entry_id, None)
        return self._entries.pop(entry_id, None)

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxEntry]:
        with self._lock:
            ids = sorted(i for i in self._entries if i > after_id and i not in self._sent)
            return [self._entries[i] for i in ids[:limit]]

    def remove(self, entry_id: int) -> None:
        with self._lock:
            self._pop(entry_id)

    def remove_many(self, entry_ids: Iterable[int]) -> None:
        for entry_id in entry_ids:
            self.remove(entry_id)

    def mark_sent(self, entry_id: int) -> None:
        with self._lock:
            if entry_id in self._entries:
                self._sent[entry_id] = self._clock()

    def mark_sent_many(self, entry_ids: Iterable[int]) -> None:
        for entry_id in entry_ids:
            self.mark_sent(entry_id)

    def confirm(self, seqs: Iterable[int]) -> int:
        wanted = set(seqs)
        with self._lock:
            ids = [i for i, e in self._entries.items() if e.seq is not None and e.seq in wanted]
            for i in ids:
                self._pop(i)
            return len(ids)

    def requeue(self, *, sent_before: float = math.inf) -> int:
        with self._lock:
            now = self._clock()  # a mark ahead of it: the clock was set back since
            ids = [i for i, at in self._sent.items() if at < sent_before or at > now]
            for i in ids:
                del self._sent[i]
            return len(ids)

    def reject(self, entry_id: int, reason: str) -> None:
        with self._lock:
            entry = self._pop(entry_id)
            if entry is not None:
                self._rejected = [*self._rejected, (entry, reason)][-MAX_REJECTED:]
                self.dropped += 1

    def rejected(self) -> list[tuple[OutboxEntry, str]]:
        with self._lock:
            return list(self._rejected)

    def depth(self) -> int:
        with self._lock:
            return len(self._entries)

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SequenceFile:
    """The last sequence number handed out, in a small file that is overwritten in place.

    Numbering a reading must work on a full disk, so that a reading the outbox cannot keep
    still consumes its number and shows as a gap. Overwriting bytes of a file whose blocks
    exist needs no new blocks (ext4, f2fs, tmpfs; not copy-on-write file systems such as btrfs
    or ZFS). Two slots in separate sectors are written in turn, each with a checksum, so a
    write torn by a power cut leaves the other slot's number; a number is handed out only
    once its write is on the disk.
    """

    _SLOT = struct.Struct("<4sQI")  # magic, number, CRC-32 of magic and number
    _MAGIC = b"SPSQ"
    _OFFSETS = (0, 512)
    _SIZE = 4096

    def __init__(self, path: Path, *, at_least: int = 0) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            stored = self._read()
            if os.fstat(self._fd).st_size < self._SIZE:  # new: take the blocks now
                os.pwrite(self._fd, bytes(self._SIZE), 0)
                os.fsync(self._fd)
                if stored:
                    self._write(stored)
            self.last = max(stored, at_least)
            if self.last != stored:
                self._write(self.last)
        except OSError:
            os.close(self._fd)
            raise

    def _read(self) -> int:
        numbers = [0]
        for offset in self._OFFSETS:
            raw = os.pread(self._fd, self._SLOT.size, offset)
            if len(raw) < self._SLOT.size:
                continue
            magic, number, crc = self._SLOT.unpack(raw)
            if magic == self._MAGIC and crc == zlib.crc32(raw[:12]):
                numbers.append(number)
        return max(numbers)

    def _write(self, number: int) -> None:
        body = self._MAGIC + struct.pack("<Q", number)
        os.pwrite(self._fd, body + struct.pack("<I", zlib.crc32(body)), self._OFFSETS[number % 2])
        os.fdatasync(self._fd)

    def next(self) -> int:
        self._write(self.last + 1)
        self.last += 1
        return self.last

    def close(self) -> None:
        os.close(self._fd)


@contextlib.contextmanager
def _writing(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot {what}: {exc}") from exc


class SqliteOutbox:
    """The outbox in a SQLite file (`path`), its sequence counter beside it (`path`.seq).

    The database grows only into the disk's free space less `DISK_HEADROOM_BYTES` (checked
    every 100 entries and whenever the disk is full): SQLite copies its write-ahead log into
    the database, and a database that cannot grow for that can neither take nor drop an entry.
    Kept within the limit, a full database makes room from the oldest entries instead.
    `free_bytes` reports the free space (a seam for tests).

    Entries removed or confirmed (`_gone`) and marked sent (`_sent`) are kept in memory until
    they are written in one transaction (module docstring): `pending` and `depth` account for
    them meanwhile, and the number of rows is counted here, not by SQLite, so that `depth` is
    not a scan of the table for every message handed to the broker.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_entries: int = MAX_ENTRIES,
        free_bytes: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path = Path(path)
        self._clock = clock
        self.max_entries = max_entries
        self.dropped = 0
        self._making_room = _making_room()
        self._puts = 0
        self._lock = threading.Lock()
        self._free_bytes = free_bytes or (lambda: _free_bytes(path.parent))
        self._gone: set[int] = set()  # removed or confirmed; the DELETE not yet written
        self._sent: dict[int, float] = {}  # marked sent (when); sent_at not yet written
        self._unwritten_since: float | None = None  # monotonic time of the oldest of those
        self._rows = 0  # rows in the table, those in _gone included
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The readings (and where the device stands) are the host's: 0600 from the first
            # byte, whatever the umask; SQLite gives its log files the same mode.
            create_private(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open {path}: {exc}") from exc
        try:
            self._setup()
            self._rows = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            self._seq = SequenceFile(Path(f"{path}.seq"), at_least=self._legacy_last_seq())
            self._fit_to_disk()
        except (OSError, sqlite3.Error) as exc:
            self._db.close()
            raise OutboxError(f"cannot open {path}: {exc}") from exc

    def _setup(self) -> None:
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new database only
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a put that returned survives power loss, not only a crash of the agent.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL,
                seq INTEGER, sent_at REAL);
            CREATE TABLE IF NOT EXISTS rejected (
                id INTEGER PRIMARY KEY, topic TEXT NOT NULL, body BLOB NOT NULL,
                created_at REAL NOT NULL, reason TEXT NOT NULL, seq INTEGER);
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        for table, column, kind in (
            ("outbox", "seq", "INTEGER"),
            ("outbox", "sent_at", "REAL"),
            ("rejected", "seq", "INTEGER"),
        ):
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:  # an outbox written by an older agent
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq)")
        # Finds the sent entries to drop first when the outbox is full.
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (id) WHERE sent_at IS NOT NULL"
        )

    def _legacy_last_seq(self) -> int:
        """Numbers handed out before the counter moved to its own file (older agents kept it
        in the database), or by entries still waiting: never hand those out again."""
        row = self._db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        waiting = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
        return max(int(row[0]) if row else 0, int(waiting or 0))

    def _fit_to_disk(self) -> None:
        """Let the database grow into the disk's free space less the headroom, no further."""
        try:
            free = self._free_bytes()
        except OSError:
            return  # keep the limit there is
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        spare = max(0, free - DISK_HEADROOM_BYTES) // page_size
        self._db.execute(f"PRAGMA max_page_count = {pages + spare}")

    def put(self, topic: str, body: bytes, *, seq: int | None = None) -> int:
        with self._lock:
            try:
                return self._put(topic, body, seq)
            except OutboxError:
                self.dropped += 1
                raise

    def _put(self, topic: str, body: bytes, seq: int | None) -> int:
        self._puts += 1
        if self._puts % 100 == 0:
            with _writing("check the free disk space"):
                self._fit_to_disk()
        over = self._depth() - self.max_entries + 1
        if over > 0:
            self._drop_oldest(over, "holds max_entries")
        try:
            return self._insert(topic, body, seq)
        except sqlite3.Error as exc:
            if not _disk_full(exc):
                raise OutboxError(f"cannot keep the entry: {exc}") from exc
        # The disk is full, or was: first see whether it has room again, then make room
        # from the oldest entries (1 %, at least 100) and try once more.
        with contextlib.suppress(sqlite3.Error):
            self._fit_to_disk()
            return self._insert(topic, body, seq)
        self._drop_oldest(max(100, self._depth() // 100), "has no room left on the disk")
        try:
            return self._insert(topic, body, seq)
        except sqlite3.Error as exc:
            if _disk_full(exc):
                raise OutboxFull(f"no room even after dropping the oldest entries: {exc}") from exc
            raise OutboxError(f"cannot keep the entry: {exc}") from exc

    def _insert(self, topic: str, body: bytes, seq: int | None) -> int:
        """Insert and commit, with the bookkeeping that waits in the same transaction; if that
        fails, the entry alone (the bookkeeping stays in memory): it must not cost a reading."""
        if self._gone or self._sent:
            with contextlib.suppress(sqlite3.Error):
                return self._commit_insert(topic, body, seq, bookkeeping=True)
        return self._commit_insert(topic, body, seq, bookkeeping=False)

    def _commit_insert(self, topic: str, body: bytes, seq: int | None, *, bookkeeping: bool) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._write_bookkeeping() if bookkeeping else 0
            cur = self._db.execute(
                "INSERT INTO outbox (topic, body, created_at, seq) VALUES (?, ?, ?, ?)",
                (topic, body, self._clock(), seq),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        if bookkeeping:
            self._bookkeeping_written(deleted)
        self._rows += 1
        return int(cur.lastrowid or 0)

    def _write_bookkeeping(self) -> int:
        """Within a transaction: the DELETEs and sent marks kept in memory; rows deleted."""
        deleted = 0
        gone = sorted(self._gone)
        for start in range(0, len(gone), 500):  # SQLite's limit on bound parameters
            chunk = gone[start : start + 500]
            cur = self._db.execute(
                f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            deleted += max(cur.rowcount, 0)
        if self._sent:
            self._db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ?",
                [(at, i) for i, at in self._sent.items()],
            )
        return deleted

    def _bookkeeping_written(self, deleted: int) -> None:
        self._rows -= deleted
        self._gone.clear()
        self._sent.clear()
        self._unwritten_since = None

    def _flush(self) -> None:
        if not (self._gone or self._sent):
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._write_bookkeeping()
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._bookkeeping_written(deleted)

    def _kept(self) -> None:
        """Bookkeeping was kept in memory: write it if enough waits, or for long enough."""
        now = time.monotonic()
        if self._unwritten_since is None:
            self._unwritten_since = now
        if (
            len(self._gone) + len(self._sent) >= FLUSH_ENTRIES
            or now - self._unwritten_since >= FLUSH_AFTER_S
            or self._depth() == 0  # all delivered: the file says so too
        ):
            self._flush()

    def flush(self) -> None:
        with self._lock, _writing("write which entries were delivered"):
            self._flush()

    def _depth(self) -> int:
        return self._rows - len(self._gone)

    def _oldest_ids(self, where: str, n: int, skip: set[int] | dict[int, float]) -> list[int]:
        rows = self._db.execute(
            f"SELECT id FROM outbox WHERE {where} ORDER BY id LIMIT ?", (n + len(skip),)
        ).fetchall()
        return [r[0] for r in rows if r[0] not in skip][:n]

    def _drop_oldest(self, n: int, why: str) -> None:
        """Drop n entries, sent ones first (the broker most likely has them), oldest first;
        unsent ones dropped are counted in `dropped` and logged. Those already delivered
        (`_gone`) go too, uncounted: the room they take is not needed."""
        try:
            sent = self._oldest_ids("sent_at IS NOT NULL", n, self._gone)
            sent = sorted({*sent, *self._sent})[:n]
            unsent: list[int] = []
            if len(sent) < n:
                skip = {*self._gone, *self._sent}
                unsent = self._oldest_ids("sent_at IS NULL", n - len(sent), skip)
            victims = sorted({*self._gone, *sent, *unsent})
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for start in range(0, len(victims), 500):
                    chunk = victims[start : start + 500]
                    deleted += self._db.execute(
                        f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk
                    ).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            return  # nothing to gain: the insert will say what is wrong
        self._rows -= max(deleted, 0)
        self._gone.clear()
        for entry_id in sent:
            self._sent.pop(entry_id, None)
        if unsent:
            self.dropped += len(unsent)
            _report_dropped(self._making_room, why, len(unsent), self.dropped)

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxEntry]:
        with self._lock, _writing("read the outbox"):
            hidden = [i for i in (*self._gone, *self._sent) if i > after_id]
            rows = self._db.execute(
                "SELECT id, topic, body, created_at, seq FROM outbox "
                "WHERE id > ? AND sent_at IS NULL ORDER BY id LIMIT ?",
                (after_id, limit + len(hidden)),
            ).fetchall()
            if hidden:
                rows = [r for r in rows if r[0] not in self._gone and r[0] not in self._sent]
        return [OutboxEntry(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows[:limit]]

    def _here(self, entry_ids: Iterable[int]) -> list[int]:
        """Those of the entries still waiting (one read: a PUBACK may come twice)."""
        wanted = sorted({i for i in entry_ids if i not in self._gone})
        here: list[int] = []
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"SELECT id FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            here += [r[0] for r in rows]
        return here

    def remove(self, entry_id: int) -> None:
        self.remove_many((entry_id,))

    def remove_many(self, entry_ids: Iterable[int]) -> None:
        with self._lock, _writing("remove delivered entries"):
            here = self._here(entry_ids)
            for entry_id in here:
                self._gone.add(entry_id)
                self._sent.pop(entry_id, None)
            if here:
                self._kept()

    def mark_sent(self, entry_id: int) -> None:
        self.mark_sent_many((entry_id,))

    def mark_sent_many(self, entry_ids: Iterable[int]) -> None:
        with self._lock, _writing("mark entries sent"):
            here = self._here(entry_ids)
            now = self._clock()
            for entry_id in here:
                self._sent[entry_id] = now
            if here:
                self._kept()

    def confirm(self, seqs: Iterable[int]) -> int:
        numbers = sorted(set(seqs))
        removed = 0
        with self._lock, _writing("remove confirmed entries"):
            for start in range(0, len(numbers), 500):  # SQLite's limit on bound parameters
                chunk = numbers[start : start + 500]
                rows = self._db.execute(
                    f"SELECT id FROM outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for (entry_id,) in rows:
                    if entry_id not in self._gone:
                        self._gone.add(entry_id)
                        self._sent.pop(entry_id, None)
                        removed += 1
            if removed:
                self._kept()
        return removed

    def requeue(self, *, sent_before: float = math.inf) -> int:
        with self._lock, _writing("offer sent entries again"):
            self._flush()  # rare (a reconnect, a missing confirmation): all in the table
            # A mark ahead of the clock: the clock was set back since; offered again too.
            cur = self._db.execute(
                "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL "
                "AND (sent_at < ? OR sent_at > ?)",
                (min(sent_before, 1e300), self._clock()),
            )
        return max(cur.rowcount, 0)

    def reject(self, entry_id: int, reason: str) -> None:
        with self._lock, _writing("set an entry aside"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected (id, topic, body, created_at, reason, seq) "
                    "SELECT id, topic, body, created_at, ?, seq FROM outbox WHERE id = ?",
                    (reason, entry_id),
                )
                moved = self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)).rowcount
                self._db.execute(
                    "DELETE FROM rejected WHERE id NOT IN "
                    "(SELECT id FROM rejected ORDER BY id DESC LIMIT ?)",
                    (MAX_REJECTED,),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._rows -= max(moved, 0)
            if entry_id in self._gone:  # delivered after all: not a loss
                self._gone.discard(entry_id)
                moved = 0
            self._sent.pop(entry_id, None)
        self.dropped += max(moved, 0)

    def rejected(self) -> list[tuple[OutboxEntry, str]]:
        with self._lock, _writing("read the rejected entries"):
            rows = self._db.execute(
                "SELECT id, topic, body, created_at, reason, seq FROM rejected ORDER BY id"
            ).fetchall()
        return [(OutboxEntry(r[0], r[1], bytes(r[2]), r[3], r[5]), r[4]) for r in rows]

    def depth(self) -> int:
        with self._lock:
            return self._depth()

    def next_seq(self) -> int:
        with self._lock:
            try:
                return self._seq.next()
            except OSError as exc:
                self.dropped += 1  # the caller gives the reading up
                raise OutboxError(f"cannot number the reading: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # unwritten: those entries go again
                self._flush()
            self._db.close()
            self._seq.close()
