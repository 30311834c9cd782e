"""The alerts kept (SQLite, `alerts.sqlite` beside ingest.toml): every alert raised, the dead
letters of those a webhook would not take (with the reason), the webhook deliveries still to
be made (`Pending`: the webhook worker's, `webhookworker`), and each area's alert state between
the ingest's runs (`alerts.AreaAlerts.state`).

An alert is stored once by its id: a run repeated after a restart does not list it twice, and
`add` says whether it is new (only a new one is delivered). Its webhook deliveries are stored in
the same transaction as the alert, so neither a clean stop nor a crash loses one: a delivery
leaves the store only when the webhook took it or it became a dead letter. Readers (`sensorpipe
crowd alerts`, /api/v1/alerts) open it read-only. The ingest's schedule thread and its webhook
worker share one writable store; a lock keeps their statements apart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
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
CREATE TABLE IF NOT EXISTS webhook_pending (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    url TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
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


@dataclass(frozen=True)
class Pending:
    """A webhook delivery still to be made: `tries` made so far, the last one's `reason`."""

    n: int
    alert_id: str
    url: str
    tries: int
    reason: str
    payload: dict[str, Any]


class AlertStore:
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._read_only = read_only
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
        with self._lock:
            self._db.close()

    def add(self, alert: Alert, raised_ms: int, *, webhooks: Sequence[str] = ()) -> bool:
        """Store `alert` and, in the same transaction, a pending delivery to each of
        `webhooks`; False: it was stored before (and nothing is added)."""
        payload = {**alert.payload(), "raised": iso(raised_ms)}
        with self._lock, self._db:
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
            if cur.rowcount != 1:
                return False
            body = json.dumps(alert.payload())
            self._db.executemany(
                "INSERT INTO webhook_pending (alert_id, url, payload) VALUES (?, ?, ?)",
                [(alert.id, url, body) for url in webhooks],
            )
        return True

    def alerts(
        self, *, area: str | None = None, from_ms: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alerts of `area` at or after `from_ms`, oldest first by their time: the newest
        `limit` of them where there are more (a control room polling wants the latest)."""
        where, args = _where(area=area, from_ms=from_ms)
        with self._lock:
            rows = self._db.execute(
                f"SELECT payload FROM alerts {where} ORDER BY time_ms DESC, id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [json.loads(p) for (p,) in reversed(rows)]

    def add_dead_letter(self, letter: DeadLetter, *, pending: int | None = None) -> None:
        """Keep `letter`; `pending`: the delivery (`Pending.n`) it ends, removed with it."""
        with self._lock, self._db:
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
            if pending is not None:
                self._db.execute("DELETE FROM webhook_pending WHERE n = ?", (pending,))

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_id, url, attempts, reason, at_ms, payload FROM dead_letters "
                "ORDER BY n"
            ).fetchall()
        return [DeadLetter(a, u, n, r, t, json.loads(p)) for a, u, n, r, t, p in rows]

    def pending(self, alert_id: str | None = None) -> list[Pending]:
        """The webhook deliveries still to be made (of `alert_id`), oldest first."""
        where, args = ("WHERE alert_id = ?", (alert_id,)) if alert_id is not None else ("", ())
        with self._lock:
            if self._read_only and not self._has_table("webhook_pending"):
                return []  # a store an older ingest made: nothing is ever pending there
            rows = self._db.execute(
                "SELECT n, alert_id, url, tries, reason, payload FROM webhook_pending "
                f"{where} ORDER BY n",
                args,
            ).fetchall()
        return [Pending(n, a, u, t, r, json.loads(p)) for n, a, u, t, r, p in rows]

    def _has_table(self, name: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    def tried(self, n: int, tries: int, reason: str) -> None:
        """Delivery `n` failed its try number `tries` for `reason` (kept for the next start)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE webhook_pending SET tries = ?, reason = ? WHERE n = ?", (tries, reason, n)
            )

    def delivered(self, n: int) -> None:
        """Delivery `n` was taken by its webhook."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM webhook_pending WHERE n = ?", (n,))

    def state(self, area: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM state WHERE area = ?", (area,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_state(self, area: str, state: dict[str, Any]) -> None:
        with self._lock, self._db:
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
