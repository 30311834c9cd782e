"""The quarantine book: devices taken off the network for exceeding their quota, until an
operator lifts it.

One SQLite file that every part of a deployment reads and writes: the ingest quarantines an
MQTT device (or a kit whose gateway publishes for it) that exceeds its quota for a sustained
period, the kit gateway one whose HTTP posts or uplinks keep being refused for their rate, and
an operator quarantines or lifts by hand (`sensorpipe devices quarantine|lift`). Each event is
kept in a log beside the current state, so who did what and why can be read afterwards.

What a quarantine means is enforced where the bytes arrive: the broker account of an MQTT
device is disabled (gateway.brokeradmin), the kit gateway refuses a quarantined kit's posts and
drops its uplinks, and `stack up` generates the broker's security with quarantined accounts
disabled. The book is the record those enforcements are made from and restored from.

Readers on the hot path (the gateway per request) use `is_quarantined`, which re-reads the
table at most every `cache_s` seconds and only when another connection changed the file
(SQLite's data_version), so a lookup costs a dictionary access.

A lift is two steps that cannot be one transaction: the book, then the broker account. The book
therefore keeps a lift as *pending* (table `pending_lifts`) until the broker has confirmed the
account enabled (`lift_done`). A lift whose broker could not be reached is not forgotten: it is
shown (`stack status`, `devices list`), retried by the ingest (which holds the broker's admin
account) and by `devices lift` again, and applied by the next `stack up`. Quarantining the
device again drops its pending lift.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from sensorpipe.protocol.files import create_private

# How often the ingest tries again to enable the broker account of a pending lift.
LIFT_RETRY_S = 5.0

# Why a device was quarantined (stable codes; `detail` says the figures).
REASONS = {
    "over_rate": "sent more messages a second than its quota, for a sustained period",
    "over_bytes": "sent more bytes a second than its quota, for a sustained period",
    "over_rejects": "kept sending messages that were rejected, for a sustained period",
    "kit_flood": "its kit kept posting above its rate limit (answered 429), for a sustained period",
    "manual": "quarantined by an operator",
}


@dataclass(frozen=True, slots=True)
class Quarantine:
    device_id: str
    since: float  # epoch s
    reason: str
    detail: str
    by: str  # who quarantined it: an ingest worker, a gateway, an operator

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PendingLift:
    """A lift the book has made but the broker has not confirmed: the device's broker account
    may still be disabled."""

    device_id: str
    lifted_at: float  # epoch s
    by: str
    reason: str  # why it had been quarantined
    attempts: int  # failed tries to enable the account
    last_error: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class QuarantineEvent:
    at: float  # epoch s
    device_id: str
    event: str  # "quarantined", "lifted" or "enabled" (the broker confirmed a lift)
    reason: str
    detail: str
    by: str


class QuarantineBook:
    def __init__(
        self,
        path: Path | str,
        *,
        cache_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        create_private(self.path)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS quarantined (device_id TEXT PRIMARY KEY, "
                "since REAL NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, "
                "by TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "at REAL NOT NULL, device_id TEXT NOT NULL, event TEXT NOT NULL, "
                "reason TEXT NOT NULL, detail TEXT NOT NULL, by TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS pending_lifts (device_id TEXT PRIMARY KEY, "
                "lifted_at REAL NOT NULL, by TEXT NOT NULL, reason TEXT NOT NULL, "
                "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '')"
            )
        except BaseException:
            self._db.close()
            raise
        self._cached: dict[str, Quarantine] = {}
        self._cached_version: int | None = None
        self._next_read = 0.0

    def quarantine(self, device_id: str, *, reason: str, detail: str = "", by: str) -> bool:
        """Quarantine `device_id`: True if it was not quarantined before (and the event is
        logged), False if it already was (nothing changes)."""
        if reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")
        now = time.time()
        with self._transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO quarantined (device_id, since, reason, detail, by) "
                "VALUES (?, ?, ?, ?, ?)",
                (device_id, now, reason, detail[:2000], by),
            )
            added = cur.rowcount == 1
            if added:
                # Quarantined again before the broker confirmed a lift: the account stays
                # disabled, so that lift is no longer pending.
                self._db.execute("DELETE FROM pending_lifts WHERE device_id = ?", (device_id,))
                self._log(now, device_id, "quarantined", reason, detail, by)
        return added

    def lift(self, device_id: str, *, by: str) -> Quarantine | None:
        """End `device_id`'s quarantine: the entry it had, or None if it was not quarantined.
        The lift stays pending (`pending_lifts`) until `lift_done` says the broker account is
        enabled (or that the device has none)."""
        now = time.time()
        with self._transaction():
            row = self._db.execute(
                "SELECT device_id, since, reason, detail, by FROM quarantined WHERE device_id = ?",
                (device_id,),
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM quarantined WHERE device_id = ?", (device_id,))
                self._db.execute(
                    "INSERT OR REPLACE INTO pending_lifts (device_id, lifted_at, by, reason) "
                    "VALUES (?, ?, ?, ?)",
                    (device_id, now, by, row[2]),
                )
                self._log(now, device_id, "lifted", row[2], "", by)
        return None if row is None else Quarantine(row[0], row[1], row[2], row[3], row[4])

    def lift_done(self, device_id: str, *, by: str, detail: str = "", enabled: bool = True) -> bool:
        """The broker has enabled `device_id`'s account (`enabled`; False: there was no account
        or broker to enable it at): its lift is no longer pending. True if a pending lift ended
        here; an enabled account is logged as an "enabled" event."""
        now = time.time()
        with self._transaction():
            row = self._db.execute(
                "SELECT reason FROM pending_lifts WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM pending_lifts WHERE device_id = ?", (device_id,))
                if enabled:
                    self._log(now, device_id, "enabled", row[0], detail, by)
        return row is not None

    def lift_failed(self, device_id: str, error: str) -> None:
        """A try to enable `device_id`'s broker account failed: counted, and why kept."""
        with self._transaction():
            self._db.execute(
                "UPDATE pending_lifts SET attempts = attempts + 1, last_error = ? "
                "WHERE device_id = ?",
                (error[:500], device_id),
            )

    def pending_lifts(self) -> dict[str, PendingLift]:
        """Lifts the broker has not confirmed yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, lifted_at, by, reason, attempts, last_error "
                "FROM pending_lifts ORDER BY lifted_at"
            ).fetchall()
        return {r[0]: PendingLift(*r) for r in rows}

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, under the lock; the cache is read again afterwards."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._forget()

    def _forget(self) -> None:
        # data_version changes only for other connections' commits: read again after our own.
        self._cached_version = None
        self._next_read = 0.0

    def _log(
        self, at: float, device_id: str, event: str, reason: str, detail: str, by: str
    ) -> None:
        self._db.execute(
            "INSERT INTO events (at, device_id, event, reason, detail, by) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (at, device_id, event, reason, detail[:2000], by),
        )

    def active(self) -> dict[str, Quarantine]:
        """Every quarantined device now, read from the file."""
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, Quarantine]:
        rows = self._db.execute(
            "SELECT device_id, since, reason, detail, by FROM quarantined ORDER BY since"
        ).fetchall()
        self._cached = {r[0]: Quarantine(r[0], r[1], r[2], r[3], r[4]) for r in rows}
        self._cached_version = self._data_version()
        self._next_read = self._clock() + self.cache_s
        return dict(self._cached)

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def is_quarantined(self, device_id: str) -> bool:
        """Whether `device_id` is quarantined, as of at most `cache_s` seconds ago."""
        if self._clock() >= self._next_read:
            with self._lock:
                if self._data_version() != self._cached_version:
                    self._read()
                else:
                    self._next_read = self._clock() + self.cache_s
        return device_id in self._cached

    def events(self, *, device_id: str | None = None, limit: int = 100) -> list[QuarantineEvent]:
        """The newest events first."""
        sql = "SELECT at, device_id, event, reason, detail, by FROM events"
        args: list[object] = []
        if device_id is not None:
            sql += " WHERE device_id = ?"
            args.append(device_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [QuarantineEvent(*r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
