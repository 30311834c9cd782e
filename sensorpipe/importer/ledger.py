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

Where a file's points lie is kept too (`spans`: per measurement and device, the first and last
time written), so that an import can be undone (`sensorpipe import remove`): its points are
deleted by device, source and time range, which is exact as long as no other file of the same
format wrote the same device at the same times (`overlapping` finds those).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
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


@dataclass(frozen=True)
class Span:
    """Where a file wrote: one device's points in one measurement, first to last time (ms)."""

    measurement: str
    device_id: str
    first_ms: int
    last_ms: int


SpanKey = tuple[str, str]  # (measurement, device_id)


def line_spans(lines: Iterable[str], into: dict[SpanKey, list[int]]) -> None:
    """Widen `into` by the lines' (line protocol, times in ms) measurements, devices and
    times. A device id never holds a comma or a space (topics.is_valid_device_id)."""
    for line in lines:
        comma = line.find(",")
        measurement = line[:comma]
        at = line.find(",device_id=", comma - 1) + 11
        if at == 10:
            continue
        end = min(i for i in (line.find(",", at), line.find(" ", at)) if i != -1)
        t = int(line[line.rfind(" ") + 1 :])
        key = (measurement, line[at:end])
        span = into.get(key)
        if span is None:
            into[key] = [t, t]
        elif t < span[0]:
            span[0] = t
        elif t > span[1]:
            span[1] = t


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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        if "options" not in columns:  # a ledger of an earlier sensorpipe: options unknown
            self._db.execute("ALTER TABLE files ADD COLUMN options TEXT")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spans (sha256 TEXT NOT NULL, measurement TEXT NOT NULL, "
            "device_id TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, "
            "PRIMARY KEY (sha256, measurement, device_id))"
        )

    def get(self, sha256: str) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT sha256, format, file_name, user, first_ms, completed_ms, letters_kept, "
            "rows, stored, rejected FROM files WHERE sha256 = ?",
            (sha256,),
        ).fetchone()
        return None if row is None else LedgerEntry(*row)

    def begin(
        self,
        sha256: str,
        fmt: str,
        file_name: str,
        user: str,
        first_ms: int,
        options: Mapping[str, str] | None = None,
    ) -> None:
        """Note a file whose import starts, with the options that shaped its points (kept as
        it is when it was begun before)."""
        self._db.execute(
            "INSERT OR IGNORE INTO files (sha256, format, file_name, user, first_ms, options) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                sha256,
                fmt,
                file_name,
                user,
                first_ms,
                None if options is None else json.dumps(options),
            ),
        )

    def options(self, sha256: str) -> dict[str, str] | None:
        """The options a file was first imported with; None where not noted (an earlier
        sensorpipe's import)."""
        row = self._db.execute("SELECT options FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

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

    def widen(self, sha256: str, spans: Mapping[SpanKey, list[int]]) -> None:
        """Note where a file's points were written (each span only ever grows)."""
        self._db.executemany(
            "INSERT INTO spans (sha256, measurement, device_id, first_ms, last_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256, measurement, device_id) DO UPDATE SET "
            "first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms)",
            [(sha256, m, d, lo, hi) for (m, d), (lo, hi) in spans.items()],
        )

    def spans(self, sha256: str) -> list[Span]:
        rows = self._db.execute(
            "SELECT measurement, device_id, first_ms, last_ms FROM spans WHERE sha256 = ? "
            "ORDER BY measurement, device_id",
            (sha256,),
        ).fetchall()
        return [Span(*row) for row in rows]

    def entries(self) -> list[LedgerEntry]:
        """Every file, in the order they were first imported."""
        rows = self._db.execute(
            "SELECT sha256, format, file_name, user, first_ms, completed_ms, letters_kept, "
            "rows, stored, rejected FROM files ORDER BY first_ms, sha256"
        ).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def overlapping(self, entry: LedgerEntry, span: Span) -> list[LedgerEntry]:
        """Other files of the same format whose points share a device, measurement and times
        with `span` (the same source: removing one's points by time range removes theirs)."""
        rows = self._db.execute(
            "SELECT DISTINCT f.sha256 FROM spans s JOIN files f ON f.sha256 = s.sha256 "
            "WHERE f.format = ? AND s.sha256 != ? AND s.measurement = ? AND s.device_id = ? "
            "AND s.first_ms <= ? AND s.last_ms >= ?",
            (
                entry.format,
                entry.sha256,
                span.measurement,
                span.device_id,
                span.last_ms,
                span.first_ms,
            ),
        ).fetchall()
        return [e for (sha,) in rows if (e := self.get(sha)) is not None]

    def forget(self, sha256: str) -> None:
        """The file was removed: it may be imported again as new."""
        self._db.execute("DELETE FROM spans WHERE sha256 = ?", (sha256,))
        self._db.execute("DELETE FROM files WHERE sha256 = ?", (sha256,))

    def close(self) -> None:
        self._db.close()
