"""The dead-letter store: every rejected message, with its reason, kept for inspection.

A rejected message is acknowledged to the broker only after its row here is committed, so a
crash of the ingest between the two redelivers it instead of losing it.

Limits, so that a hostile or broken device cannot fill the disk: a payload is kept up to
`max_payload_bytes` (longer ones are cut, with their full length and sha256 noted in the
detail), and the store keeps at most `max_letters` letters and none older than `max_age_s`;
the oldest go first. Both are counted (`pruned`).

When the store cannot write (its disk is full, an I/O error), `add_many` raises
`DeadLetterStoreUnavailable` with SQLite's own error and the store is marked unavailable.
While it is, `add_many` fails at once without touching the disk, and every
`probe_interval_s` the store tries again (`probe`, or the next `add_many` that is due): it
opens its database anew, checkpoints the WAL into the database file (which frees the WAL's
space) and writes. Once that succeeds it is available again, without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sensorpipe.ingest.errors import IngestError
from sensorpipe.protocol.files import create_private

SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite_file(path: Path) -> bool:
    """An existing SQLite database (by its 16-byte header); empty files are not."""
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: float
    topic: str
    payload: bytes
    code: str
    detail: str
    id: int = 0


MAX_PAYLOAD_BYTES = 64 * 1024
MAX_LETTERS = 100_000
MAX_AGE_S = 90 * 86400.0
PROBE_INTERVAL_S = 5.0  # while unavailable: how often the store tries to write again

# Opening may fail for want of space (the WAL index, a new WAL); the store then starts
# unavailable and opens later. Other errors at opening (no such directory, not a database)
# are a wrong configuration and raised.
_NO_ROOM = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


class DeadLetterStoreUnavailable(IngestError):
    """The store kept nothing of this call: it cannot write now (disk full, I/O error).

    Retryable: the store tries again by itself every `probe_interval_s`. The message is
    SQLite's own error."""

    retryable = True


class DeadLetterStore:
    def __init__(
        self,
        path: Path | str,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_letters: int = MAX_LETTERS,
        max_age_s: float = MAX_AGE_S,
        probe_interval_s: float = PROBE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self.max_letters = max_letters
        self.max_age_s = max_age_s
        self.probe_interval_s = probe_interval_s
        self.pruned = 0
        # Why the store cannot write, and since when (epoch s); None while it can.
        self.error: str | None = None
        self.unavailable_since: float | None = None
        self._clock = clock
        self._next_try = 0.0
        create_private(self.path)  # raw payloads: private; SQLite gives -wal/-shm the same mode
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._connect()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _NO_ROOM:
                raise
            self._failed(exc)

    @property
    def available(self) -> bool:
        return self.error is None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "received_at REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, "
                "code TEXT NOT NULL, detail TEXT NOT NULL)"
            )
        except BaseException:
            db.close()
            raise
        return db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
        return self._db

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        """Keep these letters, all or none. Raises `DeadLetterStoreUnavailable` when they
        could not be committed, and at once, without trying, while the store is known to be
        unavailable and its next try is not due."""
        if not letters:
            return
        rows = [self._capped(d) for d in letters]
        with self._lock:
            self._unless_unavailable()

            def insert(db: sqlite3.Connection) -> None:
                db.executemany(
                    "INSERT INTO dead_letters (received_at, topic, payload, code, detail) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._prune(db, max(d.received_at for d in letters))

            self._write(insert)

    def probe(self) -> bool:
        """Whether the store can write. While it is unavailable, cheap until its next try is
        due (every `probe_interval_s`); then it reopens, checkpoints and writes for real."""
        with self._lock:
            if self.available:
                return True
            try:
                self._unless_unavailable()
                self._write(self._probe_write)
            except DeadLetterStoreUnavailable:
                return False
            return True

    @staticmethod
    def _probe_write(db: sqlite3.Connection) -> None:
        """One row rewritten: a commit that needs room on the disk, as letters do."""
        db.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL)")
        db.execute("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time(),))

    def _unless_unavailable(self) -> None:
        """Raise while unavailable and not due; when due, reopen and checkpoint first."""
        if self.available:
            return
        if self._clock() < self._next_try:
            raise DeadLetterStoreUnavailable(self.error or "unavailable")
        self._next_try = self._clock() + self.probe_interval_s
        # A connection that failed mid-write may hold a broken state: start from a new one.
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        try:
            db = self._connection()
            # Move what the WAL holds into the database file and cut the WAL to nothing: a
            # WAL that grew while the disk was full is never checkpointed otherwise.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            self._failed(exc)
            raise DeadLetterStoreUnavailable(str(exc)) from exc

    def _write(self, operation: Callable[[sqlite3.Connection], object]) -> None:
        """One write transaction; any SQLite error makes the store unavailable."""
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                operation(db)
                db.execute("COMMIT")
            except BaseException:
                # A COMMIT that fails for want of space has already rolled back, and a
                # ROLLBACK now would fail too ("no transaction is active") and hide why.
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed(exc)
            raise DeadLetterStoreUnavailable(str(exc)) from exc
        if not self.available:
            self.error = None
            self.unavailable_since = None

    def _failed(self, exc: sqlite3.Error) -> None:
        if self.available:
            self.unavailable_since = time.time()
            self._next_try = self._clock() + self.probe_interval_s
        self.error = str(exc) or type(exc).__name__

    def _capped(self, d: DeadLetter) -> tuple[float, str, bytes, str, str]:
        payload, detail = d.payload, d.detail
        if len(payload) > self.max_payload_bytes:
            digest = hashlib.sha256(payload).hexdigest()
            detail = (
                f"{detail} [payload cut to {self.max_payload_bytes} of {len(payload)} bytes, "
                f"sha256 {digest}]"
            )
            payload = payload[: self.max_payload_bytes]
        return (d.received_at, d.topic[:1024], payload, d.code, detail[:2000])

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        """Oldest first: beyond max_letters, and older than max_age_s. Inside the transaction."""
        cur = db.execute(
            "DELETE FROM dead_letters WHERE received_at < ? OR id <= "
            "(SELECT MAX(id) FROM dead_letters) - ?",
            (now - self.max_age_s, self.max_letters),
        )
        self.pruned += max(cur.rowcount, 0)

    def list(
        self,
        *,
        limit: int = 50,
        code: str | None = None,
        since: float | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[DeadLetter]:
        """Newest first; filtered by rejection code, receive time (epoch s) and row ids."""
        sql = "SELECT id, received_at, topic, payload, code, detail FROM dead_letters"
        where: list[str] = []
        args: list[object] = []
        if code:
            where.append("code = ?")
            args.append(code)
        if since is not None:
            where.append("received_at >= ?")
            args.append(since)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0")
            args += list(ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._connection().execute(sql, (*args, limit)).fetchall()
        return [DeadLetter(r[1], r[2], bytes(r[3]), r[4], r[5], r[0]) for r in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Letters whose messages are now stored (after a replay)."""
        if not ids:
            return
        with self._lock:
            self._write(
                lambda db: db.executemany(
                    "DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids]
                )
            )

    def update_reason(self, letter_id: int, code: str, detail: str) -> None:
        """A replayed letter that was rejected again, perhaps for another reason now."""
        with self._lock:
            self._write(
                lambda db: db.execute(
                    "UPDATE dead_letters SET code = ?, detail = ? WHERE id = ?",
                    (code, detail, letter_id),
                )
            )

    def count(self) -> int:
        with self._lock:
            return int(
                self._connection().execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            )

    def counts_by_code(self) -> dict[str, int]:
        with self._lock:
            rows = (
                self._connection()
                .execute("SELECT code, COUNT(*) FROM dead_letters GROUP BY code ORDER BY code")
                .fetchall()
            )
        return {r[0]: int(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
