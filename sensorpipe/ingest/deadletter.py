"""The dead-letter store: every rejected message, with its reason, kept for inspection.

A rejected message is acknowledged to the broker only after its row here is committed, so a
crash of the ingest between the two redelivers it instead of losing it.

A letter is often the only copy: it was confirmed to its device, which then dropped it. So the
store never removes a letter to make room for another. Instead it is bounded where the letters
come from:
- each letter belongs to the device whose topic it came on (`device`; the broker lets only that
  device publish there), and a device may keep at most `per_device_letters` letters and
  `per_device_bytes` bytes. Beyond that its further letters are refused (`AddResult.refused`):
  the ingest then neither keeps nor confirms them, so a device that waits for confirmations
  still has them. One device's flood therefore never costs another device a letter;
- the same payload on the same topic rejected for the same reason again (a flood of one bad
  message, a redelivery) is not stored again: its letter's `repeats` goes up, which costs no
  quota. A payload rejected for several reasons (a kit's post with a value that is no number
  and a value type nobody knows) has a letter per reason, each findable by its reason, and
  each letter's `repeats` counts the deliveries rejected for it;
- in all the store keeps at most `max_letters`; a full store refuses further letters;
- a payload is kept up to `max_payload_bytes` (longer ones are cut, with their full length and
  sha256 noted in the detail).
A device passing `warn_fraction` of its quota is reported once (`AddResult.near_full`), for the
ingest to say loudly. A letter may also name the registered device it belongs to
(`device_id`: a kit's sensorpipe device, the device an import's row was for), where the topic
does not (`airrohr:<chip>`, `ttn:<app>/<node>`, `import:...`): `list`/`purge` with `device`
find a letter by either name. Letters leave only when replayed successfully, when an operator
removes them (`purge`), or, only where configured, when older than `max_age_s` (`pruned`).

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
from sensorpipe.protocol.topics import parse_topic

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
    repeats: int = 1  # how often this same payload came on this topic for this reason
    # The registered sensorpipe device the letter belongs to, where its sender knows it and
    # the topic does not name it ("" otherwise).
    device_id: str = ""

    @property
    def device(self) -> str:
        """Whose quota the letter counts against: the device its topic names."""
        return letter_device(self.topic)


def letter_device(topic: str) -> str:
    """Whose letter this is: the device of a message topic, the chip id, node or file of a
    kit's or an import's (`airrohr:<chip>`, `ttn:<app>/<node>`, `import:<format>:<file>:<line>`);
    "" for a topic that names none."""
    parsed = parse_topic(topic)
    if parsed is not None:
        return parsed[0]
    if topic.startswith("import:"):
        return ":".join(topic.split(":")[:3])[:200]
    if topic.startswith(("airrohr:", "ttn:")):
        return topic[:200]
    return ""


@dataclass
class AddResult:
    """What `add_many` did not keep, and which devices just passed `warn_fraction` of their
    quota (each device once, until it is below again)."""

    refused: list[int]  # positions in the letters given
    near_full: list[str]


@dataclass
class DeviceUsage:
    letters: int = 0
    bytes: int = 0


MAX_PAYLOAD_BYTES = 64 * 1024
MAX_LETTERS = 1_000_000
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
        max_age_s: float | None = None,
        per_device_letters: int | None = None,
        per_device_bytes: int | None = None,
        warn_fraction: float = 0.8,
        probe_interval_s: float = PROBE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self.max_letters = max_letters
        self.max_age_s = max_age_s
        self.per_device_letters = per_device_letters
        self.per_device_bytes = per_device_bytes
        self.warn_fraction = warn_fraction
        self.refused = 0  # letters not kept: their device's quota or the store was full
        self._usage: dict[str, DeviceUsage] = {}
        self._total = 0
        self._warned: set[str] = set()
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
            self._migrate(db)
            self._load_usage(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Stores written before letters had a device, a digest and a repeat count get them;
        stores written before letters named their registered device get an empty one (their
        letters stay findable by the device their topic names)."""
        columns = {r[1] for r in db.execute("PRAGMA table_info(dead_letters)")}
        if "device" not in columns:
            DeadLetterStore._add_devices(db)
        if "device_id" not in columns:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("ALTER TABLE dead_letters ADD COLUMN device_id TEXT NOT NULL DEFAULT ''")
                db.execute(
                    "CREATE INDEX IF NOT EXISTS dead_letters_device_id ON dead_letters (device_id)"
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @staticmethod
    def _add_devices(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql in (
                "ALTER TABLE dead_letters ADD COLUMN device TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE dead_letters ADD COLUMN digest BLOB",
                "ALTER TABLE dead_letters ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1",
                "ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
            ):
                db.execute(sql)
            rows = db.execute("SELECT id, topic, payload, detail FROM dead_letters").fetchall()
            db.executemany(
                "UPDATE dead_letters SET device = ?, digest = ?, size = ? WHERE id = ?",
                [
                    (letter_device(t), _digest(t, bytes(p)), _size(t, bytes(p), d), i)
                    for i, t, p, d in rows
                ],
            )
            db.execute("CREATE INDEX IF NOT EXISTS dead_letters_digest ON dead_letters (digest)")
            db.execute("CREATE INDEX IF NOT EXISTS dead_letters_device ON dead_letters (device)")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _load_usage(self, db: sqlite3.Connection) -> None:
        rows = db.execute(
            "SELECT device, COUNT(*), COALESCE(SUM(size), 0) FROM dead_letters GROUP BY device"
        ).fetchall()
        self._usage = {r[0]: DeviceUsage(int(r[1]), int(r[2])) for r in rows}
        self._total = sum(u.letters for u in self._usage.values())

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
        return self._db

    def add_many(self, letters: Sequence[DeadLetter]) -> AddResult:
        """Keep these letters, except those their device's quota (or a full store) refuses,
        which `AddResult.refused` lists. All or none of the rest: raises
        `DeadLetterStoreUnavailable` when they could not be committed, and at once, without
        trying, while the store is known to be unavailable and its next try is not due."""
        result = AddResult([], [])
        if not letters:
            return result
        rows = [self._capped(d) for d in letters]
        with self._lock:
            self._unless_unavailable()
            # Changes to the usage are made on a copy, kept only once the transaction commits.
            usage = {k: DeviceUsage(u.letters, u.bytes) for k, u in self._usage.items()}
            total = self._total

            def insert(db: sqlite3.Connection) -> None:
                nonlocal total
                result.refused.clear()
                if self.max_age_s is not None:  # first: what is too old makes room
                    total -= self._prune(db, max(d.received_at for d in letters), usage)
                for i, row in enumerate(rows):
                    device, digest, size = row[5], row[6], row[7]
                    cur = db.execute(
                        "UPDATE dead_letters SET repeats = repeats + 1 "
                        "WHERE digest = ? AND topic = ? AND code = ?",
                        (digest, row[1], row[3]),
                    )
                    if cur.rowcount > 0:
                        continue  # the same payload again: counted, not stored twice
                    u = usage.setdefault(device, DeviceUsage())
                    if not self._room(u, size, total):
                        result.refused.append(i)
                        continue
                    db.execute(
                        "INSERT INTO dead_letters (received_at, topic, payload, code, detail, "
                        "device, digest, size, device_id, repeats) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                        row,
                    )
                    u.letters += 1
                    u.bytes += size
                    total += 1

            self._write(insert)
            self._usage = usage
            self._total = total
            self.refused += len(result.refused)
            for device in {rows[i][5] for i in range(len(rows))}:
                if self._near_full(usage.get(device, DeviceUsage())):
                    if device not in self._warned:
                        self._warned.add(device)
                        result.near_full.append(device)
                else:
                    self._warned.discard(device)
        return result

    def _room(self, u: DeviceUsage, size: int, total: int) -> bool:
        if total >= self.max_letters:
            return False
        if self.per_device_letters is not None and u.letters >= self.per_device_letters:
            return False
        return self.per_device_bytes is None or u.bytes + size <= self.per_device_bytes

    def _near_full(self, u: DeviceUsage) -> bool:
        f = self.warn_fraction
        return (
            self.per_device_letters is not None and u.letters >= f * self.per_device_letters
        ) or (self.per_device_bytes is not None and u.bytes >= f * self.per_device_bytes)

    def usage(self, device: str) -> DeviceUsage:
        """Letters and bytes `device` keeps here now."""
        with self._lock:
            u = self._usage.get(device, DeviceUsage())
            return DeviceUsage(u.letters, u.bytes)

    def usage_by_device(self) -> dict[str, DeviceUsage]:
        with self._lock:
            return {k: DeviceUsage(u.letters, u.bytes) for k, u in self._usage.items() if u.letters}

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

    def _capped(self, d: DeadLetter) -> tuple[float, str, bytes, str, str, str, bytes, int, str]:
        """The row: received_at, topic, payload, code, detail, device, digest, size,
        device_id."""
        topic = d.topic[:1024]
        digest = _digest(topic, d.payload)  # of the whole payload, before it is cut
        payload, detail = d.payload, d.detail
        if len(payload) > self.max_payload_bytes:
            sha256 = hashlib.sha256(payload).hexdigest()
            detail = (
                f"{detail} [payload cut to {self.max_payload_bytes} of {len(payload)} bytes, "
                f"sha256 {sha256}]"
            )
            payload = payload[: self.max_payload_bytes]
        detail = detail[:2000]
        return (
            d.received_at,
            topic,
            payload,
            d.code,
            detail,
            letter_device(topic),
            digest,
            _size(topic, payload, detail),
            d.device_id[:200],
        )

    def _prune(self, db: sqlite3.Connection, now: float, usage: dict[str, DeviceUsage]) -> int:
        """Older than max_age_s (only where configured); how many went. Inside the
        transaction."""
        assert self.max_age_s is not None
        gone = db.execute(
            "SELECT device, COUNT(*), COALESCE(SUM(size), 0) FROM dead_letters "
            "WHERE received_at < ? GROUP BY device",
            (now - self.max_age_s,),
        ).fetchall()
        if not gone:
            return 0
        db.execute("DELETE FROM dead_letters WHERE received_at < ?", (now - self.max_age_s,))
        removed = 0
        for device, n, size in gone:
            u = usage.setdefault(device, DeviceUsage())
            u.letters -= int(n)
            u.bytes -= int(size)
            removed += int(n)
        self.pruned += removed
        return removed

    def list(
        self,
        *,
        limit: int = 50,
        code: str | None = None,
        since: float | None = None,
        ids: Sequence[int] | None = None,
        device: str | Sequence[str] | None = None,
    ) -> list[DeadLetter]:
        """Newest first; filtered by rejection code, receive time (epoch s), row ids and
        device."""
        sql = (
            "SELECT id, received_at, topic, payload, code, detail, repeats, device_id "
            "FROM dead_letters"
        )
        where, args = _where(code=code, since=since, ids=ids, device=device)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._connection().execute(sql, (*args, limit)).fetchall()
        return [DeadLetter(r[1], r[2], bytes(r[3]), r[4], r[5], r[0], r[6], r[7]) for r in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Letters whose messages are now stored (after a replay)."""
        if not ids:
            return
        self._delete(*_where(ids=ids))

    def purge(
        self,
        *,
        code: str | None = None,
        device: str | Sequence[str] | None = None,
        before: float | None = None,
        topic_prefix: str | None = None,
    ) -> int:
        """An operator's removal of the letters that match (all of them with no filter): how
        many went. `topic_prefix`: those whose topic starts with it (an imported file's
        letters: `import:<format>:<file name>:`)."""
        return self._delete(
            *_where(code=code, device=device, before=before, topic_prefix=topic_prefix)
        )

    def _delete(self, where: Sequence[str], args: Sequence[object]) -> int:
        cond = " WHERE " + " AND ".join(where) if where else ""
        removed = 0
        with self._lock:
            usage = {k: DeviceUsage(u.letters, u.bytes) for k, u in self._usage.items()}

            def delete(db: sqlite3.Connection) -> None:
                nonlocal removed
                gone = db.execute(
                    "SELECT device, COUNT(*), COALESCE(SUM(size), 0) FROM dead_letters"
                    + cond
                    + " GROUP BY device",
                    args,
                ).fetchall()
                db.execute("DELETE FROM dead_letters" + cond, args)
                for device, n, size in gone:
                    u = usage.setdefault(device, DeviceUsage())
                    u.letters -= int(n)
                    u.bytes -= int(size)
                    removed += int(n)

            self._write(delete)
            self._usage = usage
            self._total -= removed
        return removed

    def update_reason(self, letter_id: int, code: str, detail: str) -> None:
        """A replayed letter that was rejected again, perhaps for another reason now. Where
        the same payload already has a letter for that reason, the two become one (their
        repeats added up)."""
        with self._lock:
            usage = {k: DeviceUsage(u.letters, u.bytes) for k, u in self._usage.items()}
            merged = 0

            def update(db: sqlite3.Connection) -> None:
                nonlocal merged
                row = db.execute(
                    "SELECT digest, topic, repeats, device, size FROM dead_letters WHERE id = ?",
                    (letter_id,),
                ).fetchone()
                if row is None:
                    return
                digest, topic, repeats, device, size = row
                other = db.execute(
                    "SELECT id FROM dead_letters WHERE digest = ? AND topic = ? AND code = ? "
                    "AND id != ? ORDER BY id LIMIT 1",
                    (digest, topic, code, letter_id),
                ).fetchone()
                if other is None:
                    db.execute(
                        "UPDATE dead_letters SET code = ?, detail = ? WHERE id = ?",
                        (code, detail, letter_id),
                    )
                    return
                db.execute(
                    "UPDATE dead_letters SET repeats = repeats + ?, detail = ? WHERE id = ?",
                    (int(repeats), detail, other[0]),
                )
                db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
                u = usage.setdefault(device, DeviceUsage())
                u.letters -= 1
                u.bytes -= int(size)
                merged = 1

            self._write(update)
            self._usage = usage
            self._total -= merged

    def count(self) -> int:
        with self._lock:
            return int(
                self._connection().execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            )

    def deliveries(self) -> int:
        """Messages rejected, not letters: a payload that came again counts each time (its
        letter's `repeats`)."""
        with self._lock:
            total = self._connection().execute("SELECT SUM(repeats) FROM dead_letters").fetchone()
        return int(total[0] or 0)

    def deliveries_by_code(self) -> dict[str, int]:
        """`deliveries` per reason code."""
        return self._per_code("SUM(repeats)")

    def counts_by_code(self) -> dict[str, int]:
        """Letters per reason code."""
        return self._per_code("COUNT(*)")

    def _per_code(self, aggregate: str) -> dict[str, int]:
        with self._lock:
            rows = (
                self._connection()
                .execute(f"SELECT code, {aggregate} FROM dead_letters GROUP BY code ORDER BY code")
                .fetchall()
            )
        return {r[0]: int(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _digest(topic: str, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16, person=b"sp-deadletter").digest()


def _size(topic: str, payload: bytes, detail: str) -> int:
    """What a letter takes, as counted against its device's quota."""
    return len(payload) + len(topic) + len(detail) + 64


def _where(
    *,
    code: str | None = None,
    since: float | None = None,
    before: float | None = None,
    ids: Sequence[int] | None = None,
    device: str | Sequence[str] | None = None,
    topic_prefix: str | None = None,
) -> tuple[list[str], list[object]]:
    where: list[str] = []
    args: list[object] = []
    if topic_prefix is not None:
        where.append("substr(topic, 1, ?) = ?")
        args += [len(topic_prefix), topic_prefix]
    if device is not None:
        # The device its topic names (the quota's), or the registered device it carries; any
        # of several names.
        names = [device] if isinstance(device, str) else list(device)
        marks = ",".join("?" * len(names))
        where.append(f"(device IN ({marks}) OR device_id IN ({marks}))" if names else "0")
        args += names + names
    if before is not None:
        where.append("received_at < ?")
        args.append(before)
    if code:
        where.append("code = ?")
        args.append(code)
    if since is not None:
        where.append("received_at >= ?")
        args.append(since)
    if ids is not None:
        where.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0")
        args += list(ids)
    return where, args
