"""The outbox: readings wait here, on disk, until they are known to be kept.

Contract (both implementations pass the same tests):
- `put` returns once the entry is durable (SQLite: committed with synchronous=FULL).
- `pending` lists entries not yet handed to the broker, oldest first. An entry the broker
  acknowledged is `mark_sent` and stays in the outbox until the ingest confirms it
  (`confirm`, by sequence number; see protocol.ack) or the publisher decides to send it again
  (`requeue`). `remove` takes an entry out at once, for brokers without an ingest that confirms.
  `reject` moves an entry the broker refused for good aside.
- `next_seq` hands out the device's sequence numbers; the counter survives restarts and never
  hands out a number twice, so a gap in stored sequence numbers means a reading was lost
  before it reached the outbox, never that it was overwritten.
- Safe to call from the sampler and the publisher threads at once.

When full (`max_entries` pending, or the disk itself full), the oldest pending entries make
room for the new one: a device that is offline for weeks keeps its most recent readings, the
loss is counted in `dropped` (reported in every message's link metadata as `outbox_dropped`)
and shows as a gap in the stored sequence numbers. If even that fails, `put` raises
`OutboxFull`, which the agent counts and survives.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MAX_ENTRIES = 500_000  # at one reading a minute, almost a year of readings


class OutboxFull(RuntimeError):
    """No room for the entry, even after dropping the oldest: the reading is lost (counted)."""


def _disk_full(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


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

    def mark_sent(self, entry_id: int) -> None:
        """The broker has it; keep it until `confirm`, or until `requeue` offers it again."""
        ...

    def confirm(self, seqs: Iterable[int]) -> int:
        """The ingest kept these sequence numbers: remove them; how many were here."""
        ...

    def requeue(self, *, sent_before: float = math.inf) -> int:
        """Offer entries sent before that time (all by default) again; how many."""
        ...

    def reject(self, entry_id: int, reason: str) -> None:
        """The broker refused the entry for good (e.g. not authorised): keep it aside."""
        ...

    def rejected(self) -> list[tuple[OutboxEntry, str]]: ...

    def depth(self) -> int: ...

    def next_seq(self) -> int: ...

    @property
    def dropped(self) -> int:
        """Oldest entries dropped to make room since start."""
        ...

    def close(self) -> None: ...


class MemoryOutbox:
    """For tests and for devices that accept losing the queue on reboot."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, OutboxEntry] = {}
        self._sent: dict[int, float] = {}  # entry id -> when the broker acknowledged it
        self._rejected: list[tuple[OutboxEntry, str]] = []
        self._last_id = 0
        self._seq = 0
        self.max_entries = max_entries
        self.dropped = 0

    def put(self, topic: str, body: bytes, *, seq: int | None = None) -> int:
        with self._lock:
            while len(self._entries) >= self.max_entries:
                self._pop(min(self._entries))
                self.dropped += 1
            self._last_id += 1
            entry = OutboxEntry(self._last_id, topic, body, time.time(), seq)
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

    def mark_sent(self, entry_id: int) -> None:
        with self._lock:
            if entry_id in self._entries:
                self._sent[entry_id] = time.time()

    def confirm(self, seqs: Iterable[int]) -> int:
        wanted = set(seqs)
        with self._lock:
            ids = [i for i, e in self._entries.items() if e.seq is not None and e.seq in wanted]
            for i in ids:
                self._pop(i)
            return len(ids)

    def requeue(self, *, sent_before: float = math.inf) -> int:
        with self._lock:
            ids = [i for i, at in self._sent.items() if at < sent_before]
            for i in ids:
                del self._sent[i]
            return len(ids)

    def reject(self, entry_id: int, reason: str) -> None:
        with self._lock:
            entry = self._pop(entry_id)
            if entry is not None:
                self._rejected.append((entry, reason))

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

    def close(self) -> None:
        pass


class SqliteOutbox:
    def __init__(self, path: Path | str, *, max_entries: int = MAX_ENTRIES) -> None:
        path = Path(path)
        self.max_entries = max_entries
        self.dropped = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a put that returned survives power loss, not only a crash of the agent.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL,
                seq INTEGER, sent_at REAL);
            CREATE TABLE IF NOT EXISTS rejected (
                id INTEGER PRIMARY KEY, topic TEXT NOT NULL, body BLOB NOT NULL,
                created_at REAL NOT NULL, reason TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for column, kind in (("seq", "INTEGER"), ("sent_at", "REAL")):
            if column not in columns:  # an outbox written by an older agent
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {kind}")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq)")

    def put(self, topic: str, body: bytes, *, seq: int | None = None) -> int:
        with self._lock:
            over = self._depth() - self.max_entries + 1
            if over > 0:
                self._drop_oldest(over)
            try:
                return self._insert(topic, body, seq)
            except sqlite3.Error as exc:
                if not _disk_full(exc):
                    raise
            # The disk is full: make room from the oldest readings (1 %, at least 100), retry.
            self._drop_oldest(max(100, self._depth() // 100))
            try:
                return self._insert(topic, body, seq)
            except sqlite3.Error as exc:
                if _disk_full(exc):
                    raise OutboxFull(
                        f"outbox full even after dropping old readings: {exc}"
                    ) from exc
                raise

    def _insert(self, topic: str, body: bytes, seq: int | None) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (topic, body, created_at, seq) VALUES (?, ?, ?, ?)",
            (topic, body, time.time(), seq),
        )
        return int(cur.lastrowid or 0)

    def _depth(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _drop_oldest(self, n: int) -> None:
        try:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (n,)
            )
        except sqlite3.Error:
            return  # nothing to gain: the insert will say what is wrong
        self.dropped += max(cur.rowcount, 0)

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, body, created_at, seq FROM outbox "
                "WHERE id > ? AND sent_at IS NULL ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxEntry(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def remove(self, entry_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def mark_sent(self, entry_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (time.time(), entry_id))

    def confirm(self, seqs: Iterable[int]) -> int:
        numbers = sorted(set(seqs))
        removed = 0
        with self._lock:
            for start in range(0, len(numbers), 500):  # SQLite's limit on bound parameters
                chunk = numbers[start : start + 500]
                cur = self._db.execute(
                    f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk
                )
                removed += max(cur.rowcount, 0)
        return removed

    def requeue(self, *, sent_before: float = math.inf) -> int:
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL AND sent_at < ?",
                (min(sent_before, 1e300),),
            )
        return max(cur.rowcount, 0)

    def reject(self, entry_id: int, reason: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO rejected (id, topic, body, created_at, reason) "
                "SELECT id, topic, body, created_at, ? FROM outbox WHERE id = ?",
                (reason, entry_id),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))
            self._db.execute("COMMIT")

    def rejected(self) -> list[tuple[OutboxEntry, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, body, created_at, reason FROM rejected ORDER BY id"
            ).fetchall()
        return [(OutboxEntry(r[0], r[1], bytes(r[2]), r[3]), r[4]) for r in rows]

    def depth(self) -> int:
        with self._lock:
            return self._depth()

    def next_seq(self) -> int:
        with self._lock:
            try:
                return self._next_seq()
            except sqlite3.Error as exc:
                if not _disk_full(exc):
                    raise
                self._drop_oldest(max(100, self._depth() // 100))
                try:
                    return self._next_seq()
                except sqlite3.Error as again:
                    raise OutboxFull(f"cannot number the reading: {again}") from again

    def _next_seq(self) -> int:
        row = self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('seq', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
