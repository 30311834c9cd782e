"""The dead-letter store: every rejected message, with its reason, kept for inspection.

A rejected message is acknowledged to the broker only after its row here is committed, so a
crash of the ingest between the two redelivers it instead of losing it.

Limits, so that a hostile or broken device cannot fill the disk: a payload is kept up to
`max_payload_bytes` (longer ones are cut, with their full length and sha256 noted in the
detail), and the store keeps at most `max_letters` letters and none older than `max_age_s`;
the oldest go first. Both are counted (`pruned`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


class DeadLetterStore:
    def __init__(
        self,
        path: Path | str,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_letters: int = MAX_LETTERS,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self.max_letters = max_letters
        self.max_age_s = max_age_s
        self.pruned = 0
        create_private(path)  # raw payloads: private; SQLite gives its -wal/-shm the same mode
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "received_at REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, "
            "code TEXT NOT NULL, detail TEXT NOT NULL)"
        )

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [self._capped(d) for d in letters]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO dead_letters (received_at, topic, payload, code, detail) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._prune(max(d.received_at for d in letters))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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

    def _prune(self, now: float) -> None:
        """Oldest first: beyond max_letters, and older than max_age_s. Inside the transaction."""
        cur = self._db.execute(
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
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [DeadLetter(r[1], r[2], bytes(r[3]), r[4], r[5], r[0]) for r in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Letters whose messages are now stored (after a replay)."""
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def update_reason(self, letter_id: int, code: str, detail: str) -> None:
        """A replayed letter that was rejected again, perhaps for another reason now."""
        with self._lock:
            self._db.execute(
                "UPDATE dead_letters SET code = ?, detail = ? WHERE id = ?",
                (code, detail, letter_id),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def counts_by_code(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT code, COUNT(*) FROM dead_letters GROUP BY code ORDER BY code"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
