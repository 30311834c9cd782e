"""The calibration book (calibrations.sqlite in the stack's state directory, beside the
quarantine book): every calibration fitted, and which devices it applies to when.

A calibration is written once and never changed: a new fit is a new calibration with the next
id (`cal-1`, `cal-2`, ...), so a value calibrated yesterday can be explained by the id it
names today. Its record holds the method, coefficients, quantity, sensor model, training
devices, reference, period, statistics and creation time. An assignment (`calibrate apply`)
says that a calibration applies to a device's readings, for a validity period or for all time;
assignments are added, never removed: where several cover a reading, the latest made applies.
A group calibration (`group`) keeps its hourly factors in `group_factors`: a factor once stored
is never changed; an hour stored without one (no reference yet, too few members) may be filled
by a later `calibrate update`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorpipe.calibration.group import HourFactor

SCHEMA = """
CREATE TABLE IF NOT EXISTS calibrations (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    calibration_id TEXT NOT NULL REFERENCES calibrations(id),
    device_id TEXT NOT NULL,
    valid_from_ms INTEGER,
    valid_to_ms INTEGER,
    created REAL NOT NULL,
    by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_device ON assignments(device_id);
CREATE TABLE IF NOT EXISTS group_factors (
    calibration_id TEXT NOT NULL REFERENCES calibrations(id),
    hour_ms INTEGER NOT NULL,
    factor REAL,
    members INTEGER NOT NULL,
    group_mean REAL,
    reference REAL,
    reason TEXT NOT NULL,
    PRIMARY KEY (calibration_id, hour_ms)
);
"""


@dataclass(frozen=True)
class Assignment:
    seq: int
    calibration_id: str
    device_id: str
    valid_from_ms: int | None
    valid_to_ms: int | None
    created: float
    by: str

    def covers(self, t_ms: int) -> bool:
        return (self.valid_from_ms is None or t_ms >= self.valid_from_ms) and (
            self.valid_to_ms is None or t_ms < self.valid_to_ms
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "calibration_id": self.calibration_id,
            "device_id": self.device_id,
            "from": _iso(self.valid_from_ms),
            "to": _iso(self.valid_to_ms),
            "created": _iso(int(self.created * 1000)),
            "by": self.by,
        }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class CalibrationBook:
    """The calibrations and assignments at `path` (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=10)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new calibration; the record as stored, with its `id` and `created`."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM calibrations").fetchone()
            seq = int(last) + 1
            created = time.time()
            stored = {"id": f"cal-{seq}", "created": _iso(int(created * 1000)), **record}
            self._db.execute(
                "INSERT INTO calibrations (seq, id, created, record) VALUES (?, ?, ?, ?)",
                (seq, stored["id"], created, json.dumps(stored)),
            )
        return stored

    def get(self, calibration_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT record FROM calibrations WHERE id = ?", (calibration_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT record FROM calibrations ORDER BY seq").fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def methods_in_use(self) -> set[str]:
        """The methods of the calibrations assigned to at least one device (the algorithm
        register calls those in use)."""
        used = {a.calibration_id for a in self._assignments("", ())}
        return {r["method"] for r in self.all() if r.get("id") in used}

    def ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM calibrations ORDER BY seq")]

    def assign(
        self,
        calibration_id: str,
        device_id: str,
        valid_from_ms: int | None,
        valid_to_ms: int | None,
        by: str,
    ) -> Assignment:
        with self._db:
            cur = self._db.execute(
                "INSERT INTO assignments (calibration_id, device_id, valid_from_ms, "
                "valid_to_ms, created, by) VALUES (?, ?, ?, ?, ?, ?)",
                (calibration_id, device_id, valid_from_ms, valid_to_ms, time.time(), by),
            )
        seq = cur.lastrowid
        assert seq is not None
        return self._assignments("WHERE seq = ?", (seq,))[0]

    def assignments(
        self, devices: Sequence[str] = (), calibration_id: str | None = None
    ) -> list[Assignment]:
        """Assignments (oldest first) of these devices (all: none given), or of one
        calibration."""
        if calibration_id is not None:
            return self._assignments("WHERE calibration_id = ?", (calibration_id,))
        if not devices:
            return self._assignments("", ())
        marks = ", ".join("?" for _ in devices)
        return self._assignments(f"WHERE device_id IN ({marks})", tuple(devices))

    def _assignments(self, where: str, args: tuple[Any, ...]) -> list[Assignment]:
        rows = self._db.execute(
            "SELECT seq, calibration_id, device_id, valid_from_ms, valid_to_ms, created, by "
            f"FROM assignments {where} ORDER BY seq",
            args,
        ).fetchall()
        return [Assignment(*row) for row in rows]

    def add_factors(self, calibration_id: str, factors: Iterable[HourFactor]) -> int:
        """Store hourly factors of a group calibration: new hours, and hours stored without a
        factor; an hour with a factor is kept as it is. How many rows were written."""
        rows = [
            (calibration_id, f.hour_ms, f.factor, f.members, f.group_mean, f.reference, f.reason)
            for f in factors
        ]
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT INTO group_factors (calibration_id, hour_ms, factor, members, "
                "group_mean, reference, reason) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (calibration_id, hour_ms) DO UPDATE SET factor = excluded.factor, "
                "members = excluded.members, group_mean = excluded.group_mean, "
                "reference = excluded.reference, reason = excluded.reason "
                "WHERE group_factors.factor IS NULL",
                rows,
            )
            return self._db.total_changes - before

    def factors(
        self, calibration_id: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[HourFactor]:
        """The stored hours of a group calibration in [start_ms, end_ms), in time order."""
        rows = self._db.execute(
            "SELECT hour_ms, factor, members, group_mean, reference, reason FROM group_factors "
            "WHERE calibration_id = ? AND hour_ms >= ? AND hour_ms < ? ORDER BY hour_ms",
            (
                calibration_id,
                -(2**62) if start_ms is None else start_ms,
                2**62 if end_ms is None else end_ms,
            ),
        ).fetchall()
        return [HourFactor(*row) for row in rows]


def open_book(path: Path, *, create: bool) -> CalibrationBook | None:
    """The book at `path`; None where there is none and `create` is false (nothing to read)."""
    if not create and not path.exists():
        return None
    return CalibrationBook(path)
