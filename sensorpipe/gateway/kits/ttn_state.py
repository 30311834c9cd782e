"""What the gateway remembers about The Things Stack nodes across restarts (a SQLite file).

Sequence numbers. A LoRaWAN node's frame counter (`f_cnt`) starts again at 0 at every join
(a new session, with a new `session_key_id`), and some ABP nodes reset it when they reboot.
The ingest needs a sequence number that never goes backwards (a lower number reads as a replay:
its delivery metadata is left out) and shows gaps. So each session of a node gets a base, and
`seq = base + f_cnt`: the first session's base is 1 (the first uplink, `f_cnt` 0, is number 1,
as an edge device's first message), and a new session starts right after the highest number
the node's earlier sessions reached. Lost uplinks show as gaps within a session; the uplink
that opens a new session follows the last one known without a gap (what was lost between the
last uplink of a session and the join cannot be known).

A session is known by its `session_key_id`. Uplinks without one (ABP nodes, uplinks simulated
in the console) share sessions told apart by time: an uplink newer than the session's last one
but with a lower `f_cnt` opens a new session. The same uplink delivered again (MQTT
redelivery, webhook retry, gap filling from the Storage Integration) gets the same number,
whenever and in whatever order it comes.

Uplinks handled. Which uplinks were published or dead-lettered lately (a week), so that one
that comes again (the gap filling's overlap, a redelivery after a restart) is not published or
dead-lettered a second time. Uplinks of nodes that are no kit of this gateway are written here
only when their letter was kept (within the budget of unknown nodes' letters): anyone may
invent node ids, and a row for each of their uplinks would grow the file for a week.

Progress. Per application, the `received_at` of the newest uplink handled (published or
dead-lettered) from the live stream: after a restart or an outage, uplinks since then are
fetched from the Storage Integration.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sensorpipe.protocol.files import create_private

UNKEYED = "time:"  # prefix of sessions without a session_key_id, followed by their start (ms)
# Uplinks handled are remembered this long (the ingest's backlog window: anything older it
# refuses anyway), so that one delivered again after a restart is not handled twice.
KEEP_HANDLED_MS = 7 * 86400 * 1000
PRUNE_EVERY = 1000
# An uplink: the node's TTN device id, its reception time (ms), f_cnt, whether simulated.
UplinkKey = tuple[str, int, int, bool]


@dataclass(frozen=True, slots=True)
class _Session:
    name: str
    base: int
    started_ms: int
    max_f_cnt: int
    last_ms: int


class TtnState:
    """Thread-safe; every change is committed before the call returns."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (application TEXT NOT NULL, device TEXT NOT "
            "NULL, session TEXT NOT NULL, base INTEGER NOT NULL, started_ms INTEGER NOT NULL, "
            "max_f_cnt INTEGER NOT NULL, last_ms INTEGER NOT NULL, "
            "PRIMARY KEY (application, device, session))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS progress (application TEXT PRIMARY KEY, "
            "handled_until_ms INTEGER NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS handled (application TEXT NOT NULL, device TEXT NOT NULL, "
            "received_ms INTEGER NOT NULL, f_cnt INTEGER NOT NULL, simulated INTEGER NOT NULL, "
            "PRIMARY KEY (application, device, received_ms, f_cnt, simulated))"
        )
        self._since_prune = 0

    def seq(
        self,
        application: str,
        device: str,
        *,
        session_key: str | None,
        f_cnt: int,
        received_ms: int,
    ) -> int:
        """The sequence number of the uplink `f_cnt` of `device`, received at `received_ms`
        (the Network Server's `received_at`, epoch ms)."""
        with self._lock:
            sessions = self._sessions(application, device)
            session = self._session_for(sessions, session_key, f_cnt, received_ms)
            if session is None:
                top = max((s.base + s.max_f_cnt for s in sessions), default=0)
                name = f"key:{session_key}" if session_key else f"{UNKEYED}{received_ms}"
                session = _Session(name, top + 1, received_ms, f_cnt, received_ms)
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(application, device, session) DO UPDATE SET "
                "max_f_cnt = max(max_f_cnt, excluded.max_f_cnt), "
                "last_ms = max(last_ms, excluded.last_ms)",
                (
                    application,
                    device,
                    session.name,
                    session.base,
                    session.started_ms,
                    f_cnt,
                    received_ms,
                ),
            )
            return session.base + f_cnt

    def _sessions(self, application: str, device: str) -> list[_Session]:
        rows = self._db.execute(
            "SELECT session, base, started_ms, max_f_cnt, last_ms FROM sessions "
            "WHERE application = ? AND device = ?",
            (application, device),
        ).fetchall()
        return [_Session(*row) for row in rows]

    @staticmethod
    def _session_for(
        sessions: list[_Session], session_key: str | None, f_cnt: int, received_ms: int
    ) -> _Session | None:
        """The known session this uplink belongs to; None: it opens a new one."""
        if session_key:
            return next((s for s in sessions if s.name == f"key:{session_key}"), None)
        unkeyed = sorted(
            (s for s in sessions if s.name.startswith(UNKEYED)), key=lambda s: s.started_ms
        )
        if not unkeyed:
            return None
        earlier = [s for s in unkeyed if s.started_ms <= received_ms]
        if not earlier:
            return unkeyed[0]  # older than every session known: the first one's
        session = earlier[-1]
        # Newer than anything this session received, yet a lower counter: the node reset it.
        if session is unkeyed[-1] and received_ms > session.last_ms and f_cnt < session.max_f_cnt:
            return None
        return session

    def was_handled(self, application: str, key: UplinkKey) -> bool:
        """Whether this uplink was published or dead-lettered before (within KEEP_HANDLED_MS
        of the newest one)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM handled WHERE application = ? AND device = ? AND received_ms = ? "
                "AND f_cnt = ? AND simulated = ?",
                (application, *key),
            ).fetchone()
        return row is not None

    def handled_at(self, application: str, device: str, received_ms: int) -> list[int]:
        """The f_cnt of each uplink of `device` received at `received_ms` that was handled."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f_cnt FROM handled WHERE application = ? AND device = ? "
                "AND received_ms = ?",
                (application, device, received_ms),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def set_was_handled(self, application: str, key: UplinkKey) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO handled VALUES (?, ?, ?, ?, ?)", (application, *key)
            )
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                self._db.execute(
                    "DELETE FROM handled WHERE received_ms < "
                    "(SELECT max(received_ms) FROM handled) - ?",
                    (KEEP_HANDLED_MS,),
                )

    def handled_until(self, application: str) -> int | None:
        """The newest live uplink handled for `application` (epoch ms), if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT handled_until_ms FROM progress WHERE application = ?", (application,)
            ).fetchone()
        return None if row is None else int(row[0])

    def set_handled(self, application: str, received_ms: int) -> None:
        """Note that live uplinks up to `received_ms` are handled; never moves back."""
        with self._lock:
            self._db.execute(
                "INSERT INTO progress VALUES (?, ?) ON CONFLICT (application) DO UPDATE SET "
                "handled_until_ms = max(handled_until_ms, excluded.handled_until_ms)",
                (application, received_ms),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
