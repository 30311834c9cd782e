"""The alerts kept (SQLite, `alerts.sqlite` beside ingest.toml): every alert raised, the dead
letters of those a webhook would not take (with the reason), and each area's alert state
between the ingest's runs (`alerts.AreaAlerts.state`).

An alert is stored once by its id: a run repeated after a restart does not list it twice, and
`add` says whether it is new (only a new one is delivered). Readers (`sensorpipe crowd alerts`,
/api/v1/alerts) open it read-only.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorpipe.crowd.alerts import Alert, iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    area TEXT NOT NULL,
    kind TEXT NOT NULL,
    threshold REAL NOT NULL,
    time_ms INTEGER NOT NULL,
    raised_ms INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_area_time ON alerts (area, time_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    url TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    area TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class DeadLetter:
    alert_id: str
    url: str
    attempts: int
    reason: str
    at_ms: int
    payload: dict[str, Any]


class AlertStore:
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=5.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            # Readers (the CLI, the API) read while the ingest writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, alert: Alert, raised_ms: int) -> bool:
        """Store `alert`; False: it was stored before."""
        payload = {**alert.payload(), "raised": iso(raised_ms)}
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.area,
                    alert.kind,
                    alert.threshold,
                    alert.time_ms,
                    raised_ms,
                    json.dumps(payload),
                ),
            )
        return cur.rowcount == 1

    def alerts(
        self, *, area: str | None = None, from_ms: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alerts, oldest first by their time, of `area` and at or after `from_ms`."""
        where, args = _where(area=area, from_ms=from_ms)
        rows = self._db.execute(
            f"SELECT payload FROM alerts {where} ORDER BY time_ms, id LIMIT ?", (*args, limit)
        )
        return [json.loads(p) for (p,) in rows]

    def add_dead_letter(self, letter: DeadLetter) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO dead_letters (alert_id, url, attempts, reason, at_ms, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    letter.alert_id,
                    letter.url,
                    letter.attempts,
                    letter.reason,
                    letter.at_ms,
                    json.dumps(letter.payload),
                ),
            )

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT alert_id, url, attempts, reason, at_ms, payload FROM dead_letters ORDER BY n"
        )
        return [DeadLetter(a, u, n, r, t, json.loads(p)) for a, u, n, r, t, p in rows]

    def state(self, area: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state FROM state WHERE area = ?", (area,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_state(self, area: str, state: dict[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO state VALUES (?, ?)", (area, json.dumps(state))
            )


def _where(*, area: str | None, from_ms: int | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    if area is not None:
        clauses.append("area = ?")
        args.append(area)
    if from_ms is not None:
        clauses.append("time_ms >= ?")
        args.append(from_ms)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
