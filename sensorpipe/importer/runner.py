"""Imports history files: the part every format shares.

For each file: the ledger says whether it was imported before (then it is skipped, or with
`force` read again without adding a dead letter twice); the format's parser reads it into
line protocol; batches go to InfluxDB on the writer thread while parsing goes on; rejected
rows go to the dead-letter store with file, line and reason; devices the file names are
registered (source `import`) with their first stored row, before its point is written (a
device none of whose rows is stored is not registered: nothing of it was kept but dead
letters); once every point of the file is written, one `imports` point per device records
who imported what, and the ledger marks the file done. A file that cannot be read to its end
keeps what was written before the damage and is reported; InfluxDB or the dead-letter store
failing ends the run.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

from sensorpipe.importer.airnowtech import AirNowTech
from sensorpipe.importer.base import (
    DeviceSpec,
    HistoryFormat,
    ImportContext,
    ImportOptions,
    Letter,
    Target,
)
from sensorpipe.importer.eea import Eea
from sensorpipe.importer.files import READ_ERRORS, FileProblem, inspect, read_error
from sensorpipe.importer.ledger import Ledger, LedgerEntry, SpanKey, line_spans
from sensorpipe.importer.locations import DISAGREE_M
from sensorpipe.importer.logger_csv import LoggerCsv
from sensorpipe.importer.luchtmeetnet import Luchtmeetnet
from sensorpipe.importer.opensensemap import OpenSenseMap
from sensorpipe.importer.overlap import Spans, devices_with_other_sources, find_overlap, refusal
from sensorpipe.importer.sensor_community import SensorCommunity
from sensorpipe.importer.telraam import Telraam
from sensorpipe.importer.track import Track
from sensorpipe.importer.writer import BatchWriter, Refused, WriteFailed
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore, DeadLetterStoreUnavailable
from sensorpipe.ingest.errors import QueryError, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol import storage
from sensorpipe.protocol.counting import DIRECTION_PATTERN
from sensorpipe.protocol.messages import SENSOR_PATTERN, Location
from sensorpipe.protocol.provenance import IMPORT, REFERENCE, import_source, provenance_tags
from sensorpipe.protocol.registry import (
    DeviceEntry,
    Registry,
    allowed_directions,
    allowed_sensors,
    load_registry,
    save_registry,
)
from sensorpipe.protocol.topics import is_valid_device_id
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.config import QualityConfig
from sensorpipe.quality.neighbours import distance_m

# Every format, by the name `sensorpipe import <name>` and the `source` tag use.
FORMATS: dict[str, type[HistoryFormat]] = {
    SensorCommunity.name: SensorCommunity,
    OpenSenseMap.name: OpenSenseMap,
    Telraam.name: Telraam,
    Track.name: Track,
    LoggerCsv.name: LoggerCsv,
    AirNowTech.name: AirNowTech,
    Luchtmeetnet.name: Luchtmeetnet,
    Eea.name: Eea,
}
LETTER_CHUNK = 1000
RETRIES = 3  # as the writer's
T = TypeVar("T")
DEFAULT_SITE = "unassigned"
SHOWN_NAMES = 20  # names of sites without a location in a file's note


def prepare(fmt: str, paths: list[Path], options: ImportOptions) -> list[HistoryFormat]:
    """Check every file before anything is imported: it exists, can be read and is of the
    format (header, first rows). Raises FileProblem with one line naming the file."""
    parsers = []
    limit = options.max_decompressed_mib * 1024 * 1024
    for path in paths:
        parser = FORMATS[fmt](inspect(path, limit), options)
        try:
            parser.prepare()
        except READ_ERRORS as exc:
            raise FileProblem(read_error(parser.file, exc)) from None
        parsers.append(parser)
    return parsers


class ImportProblem(Exception):
    """Nothing can be imported as asked (an unknown --device); the message is one line."""


@dataclass
class FileResult:
    path: Path
    sha256: str
    rows: int = 0
    stored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    devices: list[str] = field(default_factory=list)
    new_devices: list[str] = field(default_factory=list)
    not_registered: list[str] = field(default_factory=list)  # new, but no row of theirs stored
    not_imported: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: LedgerEntry | None = None  # imported before: nothing done
    error: str | None = None  # read or written only in part, or refused
    refused: bool = False  # another source has data of its device and times: nothing written
    fatal: bool = False  # the error ends the run (InfluxDB, the dead-letter store)


@dataclass
class _Change:
    kind: Literal["add", "sensor", "direction", "quantity", "location"]
    device_id: str
    entry: DeviceEntry | None = None
    value: str = ""
    location: Location | None = None


class Importer:
    def __init__(
        self,
        fmt: str,
        options: ImportOptions,
        *,
        influx: InfluxClient,
        registry_path: Path,
        deadletter_path: Path,
        ledger_path: Path,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_backoff_s: float = 1.0,
        quality: QualityConfig | None = None,
    ) -> None:
        """`quality`: the flags' thresholds (the defaults without; `enabled = false`: none)."""
        self.fmt = fmt
        self.format = FORMATS[fmt]
        self.options = options
        self.source = import_source(fmt)
        self.force = force
        self.registry_path = registry_path
        self.registry: Registry = load_registry(registry_path)
        self._influx = influx
        self._deadletter_path = deadletter_path
        self._ledger_path = ledger_path
        self.progress: Callable[[int], None] = progress or (lambda _n: None)  # bytes read
        self._clock = clock
        self._retry_backoff_s = retry_backoff_s
        self._pending: list[_Change] = []
        self._unlocated: set[str] = set()  # names --locations lacks, said once per run
        self._file_unlocated: list[str] = []  # those first read in this file
        self._disagreed: set[str] = set()  # devices --locations does not place, said once
        quality = quality if quality is not None else QualityConfig()
        # One checker for the whole run: a series continued in the next file (a day's archive
        # after the day before) is judged as one.
        self._quality = QualityChecker(quality) if quality.enabled else None
        self._last_ms = 0
        # per file
        self._targets: dict[str, Target] = {}
        self._new: list[str] = []
        self._notes: list[str] = []
        self._letters_seen = 0
        self._letters_kept = 0
        self._file_note: str | None = None
        self._position: Callable[[], int] = lambda: 0
        self._reported = 0
        if fmt == LoggerCsv.name:
            self._check_logger(options)
        elif options.device is not None and options.device not in self.registry.devices:
            known = ", ".join(sorted(self.registry.devices)[:10]) or "none"
            raise ImportProblem(
                f"--device {options.device}: no such device in {registry_path} "
                f"(registered: {known}); leave --device out to register the file's own devices"
            )

    def _check_logger(self, options: ImportOptions) -> None:
        """A logger's CSV goes into a registered device of source import, or one --register
        registers."""
        device = options.device
        if device is None and options.device_column is not None:
            return  # counts: each row's device from a column, registered when new
        entry = self.registry.devices.get(device or "")
        if entry is None and not options.register:
            raise ImportProblem(
                f"--device {device}: not registered in {self.registry_path}: add --register "
                f"(and --site SITE) to this command to register it as a device whose history "
                f"comes from files (source import)"
            )
        if entry is not None and entry.source != IMPORT:
            raise ImportProblem(
                f"--device {device} is registered with source {entry.source}: a logger's CSV "
                f"goes into a device of source import; give another device id and --register"
            )

    # --- the import -------------------------------------------------------------------------
    def run(self, parsers: list[HistoryFormat]) -> list[FileResult]:
        ledger = Ledger(self._ledger_path)
        store = DeadLetterStore(self._deadletter_path)
        writer = BatchWriter(self._influx, backoff_s=self._retry_backoff_s)
        self._ledger, self._store, self._writer = ledger, store, writer
        results = []
        try:
            for parser in parsers:
                result = self._one(parser)
                results.append(result)
                if result.fatal:
                    break
        finally:
            writer.close()
            store.close()
            ledger.close()
        return results

    def _one(self, parser: HistoryFormat) -> FileResult:
        file = parser.file
        result = FileResult(file.path, file.sha256)
        entry = self._ledger.get(file.sha256)
        if entry is not None and entry.completed_ms is not None and not self.force:
            result.skipped = entry
            self.progress(file.size)
            return result
        if entry is not None:  # imported before (or begun): with the same options only
            before = self._ledger.options(file.sha256) or {}  # {}: an earlier sensorpipe's
            now = shaping_options(self.options)
            changed = [k for k in SHAPING if before and before.get(k) != now.get(k)]
            if "device" in changed:  # a copy into another device: no series read twice
                self._file_note = (
                    f"imported before into --device {before.get('device') or '(its own)'} too "
                    f"(`sensorpipe import remove` undoes both)"
                )
            elif changed:
                result.error, result.refused = options_changed(file.path, entry, before, now), True
                return result
        try:
            refusal = self._retrying(lambda: self._overlap(parser))
        except READ_ERRORS as exc:
            result.error = read_error(file, exc)
            return result
        except FileProblem as exc:
            result.error = str(exc)
            return result
        except (StorageUnavailable, QueryError) as exc:
            result.error = f"InfluxDB could not be asked what it holds at the file's times: {exc}"
            result.fatal = True
            return result
        if refusal is not None:
            result.error, result.refused = refusal, True
            return result
        first_ms = entry.first_ms if entry is not None else self._unique_ms()
        self._ledger.begin(
            file.sha256,
            self.fmt,
            file.name,
            self.options.user,
            first_ms,
            shaping_options(self.options),
        )
        self._targets, self._new, self._notes = {}, [], []
        self._file_unlocated = []
        if file.note is not None:
            self._notes.append(file.note)
        if self._file_note is not None:
            self._notes.append(self._file_note)
            self._file_note = None
        self._letters_seen = 0
        self._letters_kept = entry.letters_kept if entry is not None else 0
        ctx = ImportContext(
            self.fmt,
            file,
            self.options,
            resolve=self._resolve,
            declare=self._declare,
            flush=self._flush,
            now_ms=int(self._clock() * 1000),
            quality=self._quality,
        )
        self._reported = 0
        try:
            with file.open_text() as (text, position):
                self._position = position
                try:
                    parser.parse(ctx, text)
                except READ_ERRORS as exc:
                    result.error = read_error(file, exc)
                except FileProblem as exc:  # what prepare() saw changed since
                    result.error = str(exc)
                ctx.flush()
            self._position = lambda: file.size  # read to its end (or as far as it could be)
            refused = self._writer.wait()
            self._refused(ctx, refused)
            ctx.flush()  # their letters; and the progress bar to the file's end
            if result.error is None:
                self._writer.submit(*self._imports_points(ctx, first_ms))
                self._writer.wait()
                self._save_registry()
                self._ledger.complete(
                    file.sha256,
                    completed_ms=int(self._clock() * 1000),
                    rows=ctx.stored + ctx.rejected,
                    stored=ctx.stored,
                    rejected=ctx.rejected,
                )
        except WriteFailed as exc:
            result.error, result.fatal = f"InfluxDB could not be written: {exc}", True
        except DeadLetterStoreUnavailable as exc:
            result.error = f"the dead-letter store {self._deadletter_path} cannot write ({exc})"
            result.fatal = True
        result.not_registered = self._forget_unstored()
        result.rows = ctx.stored + ctx.rejected
        result.stored = ctx.stored
        result.rejected = Counter(ctx.rejected_by_reason)
        result.devices = sorted(ctx.targets)
        result.new_devices = list(self._new)
        result.not_imported = dict(ctx.not_imported)
        result.notes = list(self._notes) + ctx.notes
        unlocated = self._unlocated_note()
        if unlocated is not None:
            result.notes.append(unlocated)
        return result

    def _retrying(self, ask: Callable[[], T]) -> T:
        """`ask`, tried again while InfluxDB is unavailable, as the writer tries a batch."""
        delay = self._retry_backoff_s
        for attempt in range(RETRIES + 1):
            try:
                return ask()
            except StorageUnavailable as exc:
                if attempt == RETRIES:
                    raise
                time.sleep(exc.retry_after_s or delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _overlap(self, parser: HistoryFormat) -> str | None:
        """Why the file must not be written (another source's data of a device it writes to,
        in its times; see overlap.py), or None. Reads the file once more only where a device
        it may write to has another source's data at all."""
        others = devices_with_other_sources(self._influx, self.source)
        device = self.options.device
        candidates = {
            family: {
                d for d in found if (d == device if device else d.startswith(parser.device_prefix))
            }
            for family, found in others.items()
        }
        if not any(candidates.values()):
            return None
        spans = Spans(candidates)

        def collect(ctx: ImportContext) -> None:
            spans.add(ctx.lines)
            ctx.lines.clear()
            ctx.line_nos.clear()
            ctx.letters.clear()

        ctx = ImportContext(
            self.fmt,
            parser.file,
            # Its own record of the times read: this reading stores nothing, so the one that
            # stores must not find every row "read before" in the import's shared record.
            replace(self.options, counted={}),
            resolve=self._resolve_unregistered,
            declare=lambda target, _kind, _value: target.may_declare,
            flush=collect,
            now_ms=int(self._clock() * 1000),
        )
        with parser.file.open_text() as (text, _):
            parser.parse(ctx, text)
        ctx.flush()
        found = find_overlap(self._influx, self.source, spans)
        if found is None:
            return None
        return refusal(parser.file.path, self.source, found, device_given=device is not None)

    def _resolve_unregistered(self, spec: DeviceSpec) -> Target:
        """As `_resolve`, but registering nothing (for the reading that finds time spans)."""
        device_id = self.options.device or spec.device_id
        entry = self.registry.devices.get(device_id)
        if entry is None:
            return Target(
                device_id,
                self.options.site or DEFAULT_SITE,
                frozenset(spec.sensors),
                frozenset(spec.directions),
                may_declare=True,
            )
        return Target(
            device_id,
            entry.site,
            frozenset(allowed_sensors(entry)),
            frozenset(allowed_directions(entry)),
            may_declare=entry.source in (IMPORT, REFERENCE),
        )

    def _unique_ms(self) -> int:
        """Now, and later than any time handed out before: each file's `imports` points."""
        self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        return self._last_ms

    # --- what the parser calls --------------------------------------------------------------
    def _flush(self, ctx: ImportContext) -> None:
        if self._pending:
            self._save_registry()  # devices are registered before their points land
        if ctx.lines:
            # Where the points go, noted before they are written: `import remove` finds them.
            spans: dict[SpanKey, list[int]] = {}
            line_spans(ctx.lines, spans)
            self._ledger.widen(ctx.file.sha256, spans)
            self._writer.submit(ctx.lines[:], ctx.line_nos[:])
            ctx.lines.clear()
            ctx.line_nos.clear()
        if ctx.letters:
            letters = ctx.letters[:]
            ctx.letters.clear()
            self._keep(ctx, letters)
        position = self._position()
        self.progress(max(0, position - self._reported))
        self._reported = max(self._reported, position)

    def _resolve(self, spec: DeviceSpec) -> Target:
        o = self.options
        device_id = o.device or spec.device_id
        target = self._targets.get(device_id)
        if target is not None:
            return target
        entry = self.registry.devices.get(device_id)
        if entry is None:
            if not is_valid_device_id(device_id):
                raise ValueError(f"a format made the invalid device id {device_id!r}")
            entry = DeviceEntry(
                source=spec.source,
                station_code=spec.station_code,
                operator=spec.operator,
                method=spec.method,
                site=o.site or spec.site or DEFAULT_SITE,
                purpose=spec.purpose,
                sensors=list(spec.sensors),
                directions=list(spec.directions),
                count_classes=list(spec.count_classes),
                personal_data=spec.personal_data,
                location=None
                if spec.location is None
                else Location(lat=spec.location[0], lon=spec.location[1]),
            )
            self.registry.devices[device_id] = entry
            self._pending.append(_Change("add", device_id, entry))
            self._new.append(device_id)
        else:
            if o.site and o.device is None and entry.site != o.site:
                self._notes.append(
                    f"{device_id} is registered at site {entry.site}: its data keeps that site "
                    f"(--site {o.site} is for devices the import registers)"
                )
            self._locate(device_id, entry, spec)
        if o.locations is not None and spec.location is None and entry.location is None:
            self._unlocated_site(spec.station_code)
        target = Target(
            device_id,
            entry.site,
            frozenset(allowed_sensors(entry)),
            frozenset(allowed_directions(entry)),
            may_declare=entry.source in (IMPORT, REFERENCE),
        )
        target.quantities = frozenset(entry.quantities)
        self._targets[device_id] = target
        return target

    def _locate(self, device_id: str, entry: DeviceEntry, spec: DeviceSpec) -> None:
        """--locations for a device registered before: an imported one without a location
        gets the file's; a located one keeps its own (said where the file's is > 10 m off)."""
        if spec.location is None:
            return
        lat, lon = spec.location
        if entry.location is None:
            if entry.source == IMPORT:
                entry.location = Location(lat=lat, lon=lon)
                self._pending.append(_Change("location", device_id, location=entry.location))
            elif device_id not in self._disagreed:
                self._disagreed.add(device_id)
                self._notes.append(
                    f"{device_id} is a device of source {entry.source}, not placed by an "
                    f"import: `sensorpipe devices edit {device_id} --lat {lat} --lon {lon}` "
                    f"places it where {self.options.locations_file} says"
                )
            return
        off = distance_m((entry.location.lat, entry.location.lon), (lat, lon))
        if off > DISAGREE_M and device_id not in self._disagreed:
            self._disagreed.add(device_id)
            self._notes.append(
                f"{device_id} keeps its registered location {entry.location.lat:.6f},"
                f"{entry.location.lon:.6f}: {self.options.locations_file} puts it {off:,.0f} m "
                f"away (`sensorpipe devices edit {device_id} --lat .. --lon ..` moves it)"
            )

    def _unlocated_site(self, name: str) -> None:
        """A name of the counts without a row in --locations: named once per run, in the
        note of the file it was first read in (`_unlocated_note`)."""
        if name not in self._unlocated:
            self._unlocated.add(name)
            self._file_unlocated.append(name)

    def _unlocated_note(self) -> str | None:
        names = self._file_unlocated
        if not names:
            return None
        shown = ", ".join(names[:SHOWN_NAMES]) + (
            f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
        )
        return (
            f"no location for: {shown} (not in {self.options.locations_file}: registered "
            f"without one, so no polygon area holds {'them' if len(names) > 1 else 'it'})"
        )

    def _declare(self, target: Target, kind: str, value: str) -> bool:
        """Add a sensor, direction or quantity to an imported device's entry; other devices'
        entries are their owners' declarations (False: the row is rejected, as the ingest
        would; a quantity is only noted for the register, never refused)."""
        entry = self.registry.devices[target.device_id]
        if not target.may_declare:
            return False
        if kind == "quantity":  # what the register says it measures; never refuses a row
            target.quantities = target.quantities | {value}
            if value not in entry.quantities and len(entry.quantities) < 64:
                entry.quantities.append(value)
                self._pending.append(_Change("quantity", target.device_id, value=value))
            return True
        if kind == "sensor":
            if not re.match(SENSOR_PATTERN, value) or len(entry.sensors) >= 32:
                return False
            entry.sensors.append(value)
            target.sensors = target.sensors | {value}
            self._pending.append(_Change("sensor", target.device_id, value=value))
        else:
            if not re.match(DIRECTION_PATTERN, value) or len(entry.directions) >= 8:
                return False
            entry.directions.append(value)
            target.directions = target.directions | {value}
            self._pending.append(_Change("direction", target.device_id, value=value))
        return True

    def _unstored(self) -> set[str]:
        """The devices this file would register that have no stored row yet: registered with
        their first (`_save_registry`), or not at all (`_forget_unstored`)."""
        return {d for d in self._new if d not in self._targets or self._targets[d].stored <= 0}

    def _forget_unstored(self) -> list[str]:
        """At a file's end: the devices it would have registered but stored nothing of are
        dropped (their changes, their entries and the note of their missing locations)."""
        unstored = self._unstored()
        if not unstored:
            return []
        self._pending = [c for c in self._pending if c.device_id not in unstored]
        for device_id in unstored:
            entry = self.registry.devices.pop(device_id, None)
            if entry is not None and entry.station_code in self._file_unlocated:
                self._file_unlocated.remove(entry.station_code)
                self._unlocated.discard(entry.station_code)
        self._new = [d for d in self._new if d not in unstored]
        return sorted(unstored)

    def _save_registry(self) -> None:
        """Apply this import's changes to the registry as it is on disk now (someone may have
        added a device meanwhile) and save it; those of a new device without a stored row wait
        for one."""
        unstored = self._unstored()
        waiting = [c for c in self._pending if c.device_id in unstored]
        ready = [c for c in self._pending if c.device_id not in unstored]
        if not ready:
            return
        fresh = load_registry(self.registry_path)
        for change in ready:
            if change.kind == "add":
                assert change.entry is not None
                fresh.devices.setdefault(change.device_id, change.entry)
                continue
            entry = fresh.devices.get(change.device_id)
            if entry is None:
                continue
            if change.kind == "location":  # unless someone placed it meanwhile
                if entry.location is None:
                    entry.location = change.location
                continue
            values = {
                "sensor": entry.sensors,
                "direction": entry.directions,
                "quantity": entry.quantities,
            }[change.kind]
            if change.value not in values:
                values.append(change.value)
        save_registry(fresh, self.registry_path)
        for change in waiting:  # known to this import, not yet to the file
            if change.kind == "add" and change.entry is not None:
                fresh.devices.setdefault(change.device_id, change.entry)
        self.registry = fresh
        self._pending = waiting

    # --- dead letters and records -----------------------------------------------------------
    def _keep(self, ctx: ImportContext, letters: list[Letter]) -> None:
        """Store the file's letters, but none that an earlier reading of it stored."""
        now = self._clock()
        new: list[DeadLetter] = []
        # The device each row was for: its own where the format knew it, else --device, or
        # the file's only one.
        targets = list(ctx.targets)
        file_device = self.options.device or (targets[0] if len(targets) == 1 else "")
        for line_no, raw, reason, detail, own in letters:
            device_id = file_device if own is None else own
            self._letters_seen += 1
            if self._letters_seen <= self._letters_kept:
                continue
            new.append(
                DeadLetter(
                    received_at=now,
                    topic=f"import:{self.fmt}:{ctx.file.name}:{line_no}",
                    payload=raw.encode("utf-8"),
                    code=reason,
                    detail=f"{ctx.file.name} {ctx.row_word} {line_no}: {detail}",
                    device_id=device_id,
                )
            )
        for start in range(0, len(new), LETTER_CHUNK):
            chunk = new[start : start + LETTER_CHUNK]
            self._store.add_many(chunk)
            self._letters_kept += len(chunk)
            self._ledger.letters_kept(ctx.file.sha256, self._letters_kept)

    def _refused(self, ctx: ImportContext, refused: list[Refused]) -> None:
        """Points InfluxDB refused: their rows count as rejected (`storage_rejected`)."""
        seen: set[int] = set()
        for r in refused:
            if r.line_no in seen:  # one row, several points (a Telraam hour)
                continue
            seen.add(r.line_no)
            device = _device_of(r.line)
            target = ctx.targets.get(device)
            if target is not None:
                target.stored -= 1
            ctx.reject(
                r.line_no,
                r.line,
                "storage_rejected",
                f"InfluxDB refused its point: {r.reason}",
                target,
            )

    def _imports_points(self, ctx: ImportContext, first_ms: int) -> tuple[list[str], list[int]]:
        """One `imports` point per device of the file: who, which file, what became of it."""
        tags = provenance_tags(self.source)
        unstored = self._unstored()  # not registered: their rows as those of no device
        counts = {d: (t.stored, t.rejected) for d, t in ctx.targets.items() if d not in unstored}
        unassigned = ctx.unassigned_rejected + sum(
            t.rejected for d, t in ctx.targets.items() if d in unstored
        )
        if unassigned:
            # Rows that named no usable device: on the file's first device, or on none.
            first = next(iter(counts), "")
            stored, rejected = counts.get(first, (0, 0))
            counts[first] = (stored, rejected + unassigned)
        name = ctx.file.name.replace("\n", "?").replace("\r", "?")
        lines = []
        for device_id, (stored, rejected) in counts.items():
            point_tags = {"device_id": device_id, **tags} if device_id else dict(tags)
            fields: dict[str, str | int] = {
                "user": self.options.user,
                "file": name,
                "sha256": ctx.file.sha256,
                "rows": stored + rejected,
                "stored": stored,
                "rejected": rejected,
            }
            lines.append(to_line(Point(storage.IMPORTS, point_tags, fields, first_ms)))
        return lines, [0] * len(lines)


# The options that decide which points a file becomes (times, devices, tags, quantities), by
# the command-line option that sets each: a file imported again must be read the same way.
SHAPING = {
    "device": "--device",
    "quantity": "--quantity",
    "sensor": "--sensor",
    "mobile": "--mobile",
    "box": "--box",
    "track_id": "--track-id",
    "segment": "--segment",
    "direction_names": "--direction-names",
    "time_column": "--time",
    "time_format": "--time-format",
    "timezone": "--timezone",
    "columns": "--column",
    "count_columns": "--column",
    "interval_s": "--interval-s",
    "device_column": "--device-column",
    "device_prefix": "--device-prefix",
    "hour_label": "--hour-label",
}


def shaping_options(options: ImportOptions) -> dict[str, str]:
    """The options of `SHAPING` as text (what the ledger keeps with a file)."""
    out = {}
    for name in SHAPING:
        value = getattr(options, name)
        if name == "columns":
            value = "; ".join(f"{h}={q}" + (f"/{d:g}" if d != 1 else "") for h, q, d in value)
        elif name == "count_columns":
            value = "; ".join(f"{h}=count:{c}:{d}" for h, c, d in value)
        elif name == "direction_names":
            value = ",".join(value)
        out[name] = "" if value is None else str(value)
    return out


def options_changed(
    path: Path, entry: LedgerEntry, before: dict[str, str], now: dict[str, str]
) -> str:
    """Why a file imported before with other options is not imported again over it."""
    changed = [k for k in SHAPING if before.get(k) != now.get(k) and k != "device"]
    said = ", ".join(
        f"{SHAPING[k]} {before.get(k) or '(none)'} then, {now.get(k) or '(none)'} now"
        for k in changed[:3]
    )
    when = time.strftime("%Y-%m-%d", time.gmtime(entry.first_ms / 1000))
    return (
        f"{path} was imported on {when} by {entry.user} with other options ({said}): importing "
        f"it again over that would leave both readings' points where their times differ; "
        f"undo the first import with `sensorpipe import remove {path}`, then import it"
    )


def _device_of(line: str) -> str:
    """The device_id tag of a line this importer wrote (the first tag: tags are sorted)."""
    first_tag = line.split(",", 2)[1] if line.count(",") >= 1 else ""
    return first_tag.split(" ", 1)[0].removeprefix("device_id=")
