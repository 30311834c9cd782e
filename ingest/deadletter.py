"""The dead-letter store: every rejected message, with its reason, kept for inspection.

A rejected message is acknowledged to the broker only after its row here is committed, so a
crash of the ingest between the two redelivers it instead of losing it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol.files import create_private

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


class DeadLetterStore:
    def __init__(self, path: Path | str) -> None:
        path = Path(path)
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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO dead_letters (received_at, topic, payload, code, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                [(d.received_at, d.topic, d.payload, d.code, d.detail) for d in letters],
            )
            self._db.execute("COMMIT")

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
