"""The ledger of imported files (`<stack dir>/imports/ledger.sqlite`), by the sha256 of their
bytes: what makes importing a file twice store nothing twice.

Points need no ledger: each is keyed by measurement, tags and time, so writing a file's points
again overwrites them. Dead letters and the `imports` record do: a file's rejected rows come
in the same order every time it is read, so the ledger counts how many of them are in the
dead-letter store (`letters_kept`, raised after each committed chunk) and a second reading
skips that many; the `imports` points carry the time of the file's first import, so they are
overwritten too. A file whose import completed is skipped (`--force` reads it again, and still
adds no letter twice). A crash between committing a chunk of letters and raising the count
leaves at most that chunk twice in the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sensorpipe.protocol.files import create_private


@dataclass(frozen=True)
class LedgerEntry:
    sha256: str
    format: str
    file_name: str
    user: str
    first_ms: int  # when it was first imported: the time of its `imports` points
    completed_ms: int | None
    letters_kept: int
    rows: int
    stored: int
    rejected: int


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        create_private(path)  # file names and user names: the stack's own business
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (sha256 TEXT PRIMARY KEY, format TEXT NOT NULL, "
            "file_name TEXT NOT NULL, user TEXT NOT NULL, first_ms INTEGER NOT NULL, "
            "completed_ms INTEGER, letters_kept INTEGER NOT NULL DEFAULT 0, "
            "rows INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0, "
            "rejected INTEGER NOT NULL DEFAULT 0)"
        )

    def get(self, sha256: str) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT sha256, format, file_name, user, first_ms, completed_ms, letters_kept, "
            "rows, stored, rejected FROM files WHERE sha256 = ?",
            (sha256,),
        ).fetchone()
        return None if row is None else LedgerEntry(*row)

    def begin(self, sha256: str, fmt: str, file_name: str, user: str, first_ms: int) -> None:
        """Note a file whose import starts (kept as it is when it was begun before)."""
        self._db.execute(
            "INSERT OR IGNORE INTO files (sha256, format, file_name, user, first_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (sha256, fmt, file_name, user, first_ms),
        )

    def letters_kept(self, sha256: str, count: int) -> None:
        self._db.execute("UPDATE files SET letters_kept = ? WHERE sha256 = ?", (count, sha256))

    def complete(
        self, sha256: str, *, completed_ms: int, rows: int, stored: int, rejected: int
    ) -> None:
        self._db.execute(
            "UPDATE files SET completed_ms = ?, rows = ?, stored = ?, rejected = ? "
            "WHERE sha256 = ?",
            (completed_ms, rows, stored, rejected, sha256),
        )

    def close(self) -> None:
        self._db.close()
