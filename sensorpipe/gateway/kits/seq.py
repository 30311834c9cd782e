"""Sequence numbers for kits that have none: a counter per kit, kept by the gateway on disk.

The ingest finds gaps and replays by each device's sequence number, so a kit's numbers must
only ever grow, across gateway restarts too. Each number is committed (SQLite, synchronous
FULL) before the message that carries it is published; a post that then fails (the broker is
away) leaves its number unused, which the ingest shows as a gap: a reading the kit sent that
was not taken.

A kit's first number is the Unix time in seconds at its first post, not 1: should the state
file be lost, the counter starts again from the time then, above every number used before as
long as the kit posted less than once a second on average (its rate limit allows one per
10 s), so the ingest never takes new readings for replays.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sensorpipe.protocol.files import create_private


class SeqStore:
    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        create_private(self.path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kit_seq (device_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)"
        )
        self._lock = threading.Lock()

    def next(self, device_id: str) -> int:
        """The kit's next number, committed to disk before it is returned."""
        with self._lock:
            row = self._db.execute(
                "INSERT INTO kit_seq (device_id, seq) VALUES (?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET seq = seq + 1 RETURNING seq",
                (device_id, int(self._clock())),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
