"""Undoing an import (`sensorpipe import remove`): a file's points, its `imports` records and
its dead letters go, and the ledger forgets the file, so that it can be imported again (with
other options: a corrected time zone, another device).

A file's points are found by what the ledger noted while they were written (`Span`: per
measurement and device, the first and last time) and deleted by device, `source` tag and time
range. That is exact unless another file of the same format wrote the same device at the same
times: such a file is named and the removal refused, unless it is removed in the same run. A
file imported before the ledger noted spans cannot be removed until it is imported once more
with `--force` (the same points, now noted). After deleting, each span is read back: a point
still there is an error, never a success. The devices the import registered stay registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sensorpipe.importer.ledger import Ledger, LedgerEntry, Span
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import SOURCE_TAG, import_source

SHA_PREFIX_MIN = 8  # hex digits of a sha256 that name an imported file


class RemovalProblem(Exception):
    """Nothing was removed: why, in one line."""


# InfluxDB 1.x's in-memory series index (`index-version = "inmem"`, the default of Debian's
# influxdb 1.6) has a fault, reproduced here with influxd 1.6.7: once a DELETE (or DROP SERIES)
# has removed a series whole, a later DELETE restricted by tags removes the points of every
# series of the measurement in its time range. Deleting by time range is safe only on the
# on-disk index (`tsi1`), which the stacks sensorpipe starts use; a shard's folder holds an
# `index` folder exactly when it uses tsi1.
INMEM_ADVICE = (
    'set index-version = "tsi1" under [data] in InfluxDB\'s configuration, stop influxd, '
    "convert the shards with `influx_inspect buildtsi -datadir DATA -waldir WAL` (as the "
    "influxdb user), start it again, then remove"
)


def check_index(influx: InfluxClient, *, tsi1_confirmed: bool = False) -> None:
    """Refuse (RemovalProblem) unless every shard of the database uses the tsi1 index: where
    a shard's folder is on this machine, its `index` folder says so; where it is not (an
    InfluxDB elsewhere), `tsi1_confirmed` (the operator's word) is needed."""
    if tsi1_confirmed:
        return
    rows = influx.query("SHOW STATS FOR 'shard'", database="")
    shards = [r.get("tags", {}) for r in rows if r.get("name") == "shard"]
    mine = [t for t in shards if t.get("database") == influx.database and t.get("path")]
    unknown = []
    for tags in mine:
        folder = Path(tags["path"])
        if not folder.is_dir():
            unknown.append(tags.get("id", "?"))
        elif not (folder / "index").is_dir():
            raise RemovalProblem(
                f"InfluxDB's shard {tags.get('id', '?')} of {influx.database} uses the "
                f"in-memory index (inmem), with which InfluxDB 1.x deletes other devices' "
                f"points too: nothing removed; {INMEM_ADVICE}"
            )
    if unknown:
        raise RemovalProblem(
            f"cannot see on this machine which index InfluxDB's shards of {influx.database} "
            f"use (InfluxDB runs elsewhere): nothing removed; with the in-memory index (inmem) "
            f"InfluxDB 1.x deletes other devices' points too. If it uses tsi1, add "
            f"--influx-index-tsi1; else {INMEM_ADVICE}"
        )


@dataclass
class Removal:
    entry: LedgerEntry
    spans: list[Span]

    @property
    def source(self) -> str:
        return import_source(self.entry.format)

    @property
    def devices(self) -> list[str]:
        return sorted({s.device_id for s in self.spans})


@dataclass
class Removed:
    entry: LedgerEntry
    spans: int = 0
    letters: int = 0
    letters_kept_because: str | None = None
    devices: list[str] = field(default_factory=list)


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def file_sha256(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise RemovalProblem(f"{path}: cannot be read ({exc.strerror or exc})") from None


def find_entry(
    ledger: Ledger, name: str, sha256_of: Callable[[Path], str] = file_sha256
) -> LedgerEntry:
    """The ledger's entry for `name`: a file (by the sha256 of its bytes) or a sha256 (or its
    first 8 or more hex digits) as `sensorpipe import list` shows it."""
    path = Path(name)
    if path.is_file():
        entry = ledger.get(sha256_of(path))
        if entry is None:
            raise RemovalProblem(
                f"{name}: this file was never imported into this stack (`sensorpipe import "
                f"list` lists the files that were)"
            )
        return entry
    text = name.lower()
    if len(text) < SHA_PREFIX_MIN or any(c not in "0123456789abcdef" for c in text):
        raise RemovalProblem(
            f"{name}: neither a file nor a sha256 of one (give the file, or at least "
            f"{SHA_PREFIX_MIN} hex digits of its sha256 from `sensorpipe import list`)"
        )
    found = [e for e in ledger.entries() if e.sha256.startswith(text)]
    if not found:
        raise RemovalProblem(
            f"{name}: no imported file's sha256 starts so (`sensorpipe import list`)"
        )
    if len(found) > 1:
        names = ", ".join(f"{e.file_name} ({e.sha256[:12]})" for e in found)
        raise RemovalProblem(f"{name}: names {len(found)} files ({names}): give more digits")
    return found[0]


def plan(ledger: Ledger, entries: Sequence[LedgerEntry]) -> list[Removal]:
    """What removing `entries` deletes; refused (RemovalProblem) where it cannot be exact."""
    chosen = {e.sha256 for e in entries}
    removals = []
    for entry in entries:
        spans = ledger.spans(entry.sha256)
        if not spans:
            if entry.stored == 0 and entry.completed_ms is not None:
                removals.append(Removal(entry, []))  # nothing of it was stored
                continue
            raise RemovalProblem(
                f"{entry.file_name} ({entry.sha256[:12]}): imported before sensorpipe noted "
                f"where an import's points lie, so they cannot be found exactly: import the "
                f"file once more with --force and the same options (it writes the same "
                f"points and notes them), then remove it"
            )
        for span in spans:
            others = [o for o in ledger.overlapping(entry, span) if o.sha256 not in chosen]
            if others:
                names = ", ".join(f"{o.file_name} ({o.sha256[:12]})" for o in others)
                raise RemovalProblem(
                    f"{entry.file_name}: {span.device_id}'s {span.measurement} points from "
                    f"{when(span.first_ms)} to {when(span.last_ms)} are shared with {names}, "
                    f"imported in the same format; nothing removed: remove them together "
                    f"(`sensorpipe import remove` with each of them) and import the others again"
                )
        removals.append(Removal(entry, spans))
    return removals


def _condition(source: str, span: Span) -> str:
    return (
        f"{identifier('device_id')} = {string_literal(span.device_id)} AND "
        f"{identifier(SOURCE_TAG)} = {string_literal(source)} AND "
        f"time >= {span.first_ms}ms AND time <= {span.last_ms}ms"
    )


def remove(
    influx: InfluxClient,
    ledger: Ledger,
    store: DeadLetterStore | None,
    removal: Removal,
    *,
    progress: Callable[[Span], None] = lambda _s: None,
) -> Removed:
    """Delete one file's points, check they are gone, drop its `imports` records and dead
    letters, and forget it in the ledger (last: a removal cut short can be run again)."""
    entry, source = removal.entry, removal.source
    for span in removal.spans:
        where = _condition(source, span)
        influx.query(f"DELETE FROM {identifier(span.measurement)} WHERE {where}")
        left = influx.query(f"SELECT * FROM {identifier(span.measurement)} WHERE {where} LIMIT 1")
        if left:
            raise RemovalProblem(
                f"{entry.file_name}: InfluxDB still holds {span.device_id}'s {span.measurement} "
                f"points from {when(span.first_ms)} after deleting them: nothing more removed; "
                f"run the removal again"
            )
        progress(span)
    # The file's `imports` records: one per device, all at the time of its first import.
    influx.query(
        f"DELETE FROM {identifier(storage.IMPORTS)} WHERE {identifier(SOURCE_TAG)} = "
        f"{string_literal(source)} AND time >= {entry.first_ms}ms AND time <= {entry.first_ms}ms"
    )
    done = Removed(entry, spans=len(removal.spans), devices=removal.devices)
    # Its dead letters are found by their topic, `import:<format>:<file name>:<line>`: only
    # where no other imported file of that format has the same name.
    namesakes = [
        e
        for e in ledger.entries()
        if e.sha256 != entry.sha256 and e.format == entry.format and e.file_name == entry.file_name
    ]
    if namesakes:
        done.letters_kept_because = (
            f"another imported {entry.format} file is named {entry.file_name} too"
        )
    elif store is not None:
        done.letters = store.purge(topic_prefix=f"import:{entry.format}:{entry.file_name}:")
    ledger.forget(entry.sha256)
    return done
