"""The contract between a history format and the import runner.

A format (`sensor_community`, `opensensemap`, `telraam`, `track`) is one class:

- `prepare()` is called for every file before anything is imported. It reads the header (and
  perhaps the first rows) and raises `FileProblem` with one line that names the expected header
  when the file is not of its format, or when the file cannot tell what only an option can
  (which quantity, which device).
- `parse(ctx, text)` reads the whole file. Every row either becomes points, written as line protocol
  to `ctx.lines`, or goes to `ctx.reject` with a reason: nothing is dropped silently. It calls
  `ctx.flush()` whenever `ctx.lines` holds `ctx.batch_size` lines. Errors reading the file
  (damaged gzip, not UTF-8) propagate; what was flushed before stays written.

A format derives from `reader.Reader` (or `reader.ColumnsReader`), whose docstring says what
a format provides and what it gets: header checks there, the checks every row passes here on
`ImportContext` (`observed_at`, `air_fields`, `declared`, `store`).

Quality flags: `air_fields` given the row's `sensor` and time (or `quality_fields`, for a
format that writes its fields itself) asks the run's `QualityChecker` (quality.checker, the
same the ingest uses) for the row's flags and adds `qc_<quantity>` and `qc`; the humidity they
judge PM by is the row's own `relative_humidity` column, where it has one.

The runner owns the rest: the registry, batching and the writer thread, dead letters, the
ledger of imported files and the `imports` points. Points are built as strings straight away
(see `lines.py`): the same bytes as `ingest.lineprotocol.to_line`, a test holds them equal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import IO, ClassVar

from sensorpipe.importer.files import DEFAULT_MAX_DECOMPRESSED_MIB, HistoryFile
from sensorpipe.importer.lines import series_prefix
from sensorpipe.importer.timeparse import TimestampError, utc_ms
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import IMPORT, DeviceSource, import_source, provenance_tags
from sensorpipe.protocol.quantities import QUANTITIES, plausibility_error
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.flags import QC_VERSION, STUCK

DEFAULT_BATCH = 20_000
# Rejected rows held before they go to the dead-letter store (a file of bad rows writes no
# points, so no batch of points would take them there).
LETTER_FLUSH = 1000
# As the ingest: a reading may be observed at most this far ahead of this machine's clock.
MAX_FUTURE_S = 300.0


@dataclass(frozen=True)
class StationInfo:
    """What a reference network publishes about a station, beyond its measurements."""

    name: str = ""
    operator: str = ""
    location: tuple[float, float] | None = None  # lat, lon


@dataclass
class ImportOptions:
    """What the person importing says; each format reads the options that concern it."""

    user: str
    site: str | None = None  # site of devices the import registers (default "unassigned")
    device: str | None = None  # an existing device that gets every row of the files
    quantity: str | None = None  # openSenseMap: what a per-sensor download measures
    sensor: str | None = None  # openSenseMap, track: the sensor model's name (a tag)
    mobile: bool = False  # openSenseMap: each reading keeps its own position
    box: str | None = None  # openSenseMap: the senseBox a per-sensor download is from
    track_id: str | None = None  # track: names the bike or sensor when the file does not
    segment: str | None = None  # Telraam: the segment when the file does not name it
    direction_names: tuple[str, str] = ("lft", "rgt")  # Telraam _lft/_rgt as directions
    # csv (any logger): the time column, its strptime format (None: ISO 8601), the zone of
    # times without an offset, and (header, quantity, divisor to the canonical unit) per column
    time_column: str | None = None
    time_format: str | None = None
    timezone: tzinfo = UTC
    columns: tuple[tuple[str, str, float], ...] = ()
    register: bool = False  # csv: register --device (source import) when it is not registered
    # csv of counts (counts_csv): (header, class, direction) per count column, each row's
    # interval, the column naming each row's device and the prefix of the ids it makes; and
    # the times read per device so far in this import, for duplicates across its files
    count_columns: tuple[tuple[str, str, str], ...] = ()
    interval_s: float = 3600.0
    device_column: str | None = None
    device_prefix: str = ""
    counted: dict[str, set[int]] = field(default_factory=dict)
    # counts with --device-column: each site's (lat, lon) by its name in the counts, from
    # --locations (importer.locations; None: no such file given), and the file's name
    locations: dict[str, tuple[float, float]] | None = None
    locations_file: str = ""
    # luchtmeetnet: whether its timestamps label the hour's end (default) or start; station
    # metadata (/stations/{n} answers) by station number
    hour_label: str = "end"
    stations: dict[str, StationInfo] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH
    max_decompressed_mib: int = DEFAULT_MAX_DECOMPRESSED_MIB  # a gzip'd file's expanded size


@dataclass(frozen=True)
class DeviceSpec:
    """A device a file describes (a sensor, a senseBox, a road segment, a bike, a reference
    station): registered under `device_id` with source `import` (`reference` for a station)
    unless `--device` maps it to an existing one."""

    device_id: str
    purpose: str
    sensors: tuple[str, ...] = ()
    location: tuple[float, float] | None = None  # lat, lon
    directions: tuple[str, ...] = ()
    count_classes: tuple[str, ...] = ()
    personal_data: bool | None = None
    source: DeviceSource = IMPORT  # the registry's source: import, or reference for a station
    station_code: str = ""
    operator: str = ""
    method: str = ""
    site: str = ""  # where the file says it is (a station's name); --site, or unassigned, else


class Target:
    """Where a device's rows go: the device as registered, what it may report, and how many
    of this file's rows it stored and rejected."""

    __slots__ = (
        "device_id",
        "directions",
        "may_declare",
        "quantities",
        "rejected",
        "sensors",
        "site",
        "stored",
    )

    def __init__(
        self,
        device_id: str,
        site: str,
        sensors: frozenset[str],
        directions: frozenset[str],
        may_declare: bool,
    ) -> None:
        self.device_id = device_id
        self.site = site
        self.sensors = sensors
        self.directions = directions
        # An imported device's entry grows with what its files report; any other device's
        # entry is the owner's declaration, checked as the ingest checks it.
        self.may_declare = may_declare
        # The quantities its entry names (`DeviceEntry.quantities`, kept for the register).
        self.quantities: frozenset[str] = frozenset()
        self.stored = 0
        self.rejected = 0


Letter = tuple[int, str, str, str, str | None]  # line number, raw row, reason, detail, device
# (device: the row's target's, "" where the row names none, None where not known: the
# file's device is taken)
# A value column of an `air` row: index, "quantity=", plausible low and high, divisor to the
# quantity's canonical unit, the column's name (for messages), quantity.
ValueColumn = tuple[int, str, float, float, float, str, str]


def value_column(index: int, name: str, quantity: str, divisor: float = 1.0) -> ValueColumn:
    """Column `index`, named `name` in the file, holds `quantity` (in its canonical unit times
    `divisor`): for `ImportContext.air_fields`."""
    q = QUANTITIES[quantity]
    return index, quantity + "=", q.minimum, q.maximum, divisor, name, quantity


class ImportContext:
    """What a format's `parse` hands its rows to, for one file."""

    def __init__(
        self,
        fmt: str,
        file: HistoryFile,
        options: ImportOptions,
        *,
        resolve: Callable[[DeviceSpec], Target],
        declare: Callable[[Target, str, str], bool],
        flush: Callable[[ImportContext], None],
        now_ms: int,
        quality: QualityChecker | None = None,
    ) -> None:
        """`quality`: the checker that flags air rows (None: rows are stored unflagged)."""
        self.fmt = fmt
        self.quality = quality
        self.file = file
        self.options = options
        self.batch_size = options.batch_size
        self.source = import_source(fmt)
        self._tags = provenance_tags(self.source)
        self.lines: list[str] = []
        self.line_nos: list[int] = []  # the file line of each entry of `lines`
        self.letters: list[Letter] = []
        self.rejected_by_reason: Counter[str] = Counter()
        self.unassigned_rejected = 0  # rejected rows no device could be told for
        self.targets: dict[str, Target] = {}
        self.not_imported: dict[str, int] = {}  # column -> values it held, not imported
        self.notes: list[str] = []  # the format's words for the file's summary
        self.row_word = "line"  # how dead letters' details name a row: line (CSV), item (JSON)
        self.latest_ms = now_ms + int(MAX_FUTURE_S * 1000)
        self._resolve = resolve
        self._declare = declare
        self._flush = flush
        self._prefixes: dict[tuple[str, ...], str | None] = {}

    # --- devices and series -----------------------------------------------------------------
    def target(self, spec: DeviceSpec) -> Target:
        """The target of the device `spec` describes (registered on first sight)."""
        target = self._resolve(spec)
        self.targets.setdefault(target.device_id, target)
        return target

    def air_prefix(self, target: Target, sensor: str) -> str | None:
        """The start of an `air` line of `sensor` on `target`, up to the fields; None when the
        device's registry entry does not declare the sensor (the row is rejected)."""
        key = (target.device_id, storage.AIR, sensor)
        if key not in self._prefixes:
            allowed = sensor in target.sensors or self._declare(target, "sensor", sensor)
            self._prefixes[key] = (
                series_prefix(storage.AIR, self._series_tags(target, sensor=sensor))
                if allowed
                else None
            )
        return self._prefixes[key]

    def traffic_prefix(self, target: Target, count_class: str, direction: str) -> str | None:
        """The start of a `traffic` line; None for a direction the device does not have."""
        key = (target.device_id, storage.TRAFFIC, count_class, direction)
        if key not in self._prefixes:
            allowed = direction in target.directions or self._declare(
                target, "direction", direction
            )
            tags = self._series_tags(target, **{"class": count_class, "direction": direction})
            self._prefixes[key] = series_prefix(storage.TRAFFIC, tags) if allowed else None
        return self._prefixes[key]

    def counter_prefix(self, target: Target) -> str:
        key = (target.device_id, storage.COUNTER)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = series_prefix(storage.COUNTER, self._series_tags(target))
            self._prefixes[key] = prefix
        return prefix

    def _series_tags(self, target: Target, **extra: str) -> dict[str, str]:
        return {"device_id": target.device_id, "site": target.site, **self._tags, **extra}

    # --- rows -------------------------------------------------------------------------------
    def reject(
        self,
        line_no: int,
        raw: str,
        reason: str,
        detail: str,
        target: Target | None = None,
        *,
        device: str | None = None,
    ) -> None:
        """Keep a row that cannot be stored, with its reason, in the dead-letter store, under
        its target's device (`device` without one: "" for a row that names none)."""
        own = target.device_id if target is not None else device
        self.letters.append((line_no, raw, reason, detail, own))
        self.rejected_by_reason[reason] += 1
        if target is None:
            self.unassigned_rejected += 1
        else:
            target.rejected += 1
        if len(self.letters) >= LETTER_FLUSH:
            self.flush()

    def bad_row(self, line_no: int, raw: str, detail: str) -> None:
        """A row past the bounds of `files.rows` or `jsonstream.items` (too long, a quote
        that never closes)."""
        self.reject(line_no, raw, "bad_row", detail)

    # The checks every format makes of a row, each rejecting with the same reason and words
    # in every format; None (or False) after a reject, and the row goes no further.
    def observed_at(
        self,
        line_no: int,
        raw: str,
        column: str,
        text: str,
        target: Target | None,
        *,
        strip: bool = False,
        parse: Callable[[str], int] = utc_ms,
    ) -> int | None:
        """The row's time in epoch ms; None for a time that is no time (`bad_timestamp`) or
        is further ahead than MAX_FUTURE_S (`future_timestamp`). `strip`: parse `text`
        without surrounding white space (the message still shows it as written); `parse`:
        the format's own reading of a time (ISO 8601 by default), raising TimestampError."""
        try:
            t = parse(text.strip() if strip else text)
        except TimestampError as exc:
            self.reject(line_no, raw, "bad_timestamp", f"{column}: {exc}", target)
            return None
        if t > self.latest_ms:
            self.reject(line_no, raw, "future_timestamp", f"{text} is in the future", target)
            return None
        return t

    def air_fields(
        self,
        line_no: int,
        raw: str,
        f: list[str],
        columns: list[ValueColumn],
        target: Target,
        *,
        strip: bool = False,
        rounded: bool = True,
        sensor: str | None = None,
        t: int | None = None,
    ) -> str | None:
        """The fields of an `air` line from the row's value `columns` (see `value_column`),
        `pm2_5=12.0,pm10=20.5`; None for a value that is not a number or not plausible
        (`bad_value`, the first such column named) or a row with no value (`bad_row`). Empty
        columns are left out. `strip`: values without surrounding white space; `rounded`: a
        value divided to its canonical unit is rounded to 6 decimals. With the row's `sensor`
        and time `t` (epoch ms), the quality fields follow (`quality_fields`)."""
        fields = []
        values: list[tuple[str, float]] = []
        for i, key, low, high, divisor, name, quantity in columns:
            s = f[i].strip() if strip else f[i]
            if not s:
                continue
            try:
                v = float(s)
            except ValueError:
                problem = f"{name} {s[:40]!r} is not a number"
                self.reject(line_no, raw, "bad_value", problem, target)
                return None
            if divisor != 1.0:
                v = round(v / divisor, 6) if rounded else v / divisor
            if not low <= v <= high:
                problem = f"{name}: {plausibility_error(quantity, v)}"
                self.reject(line_no, raw, "bad_value", problem, target)
                return None
            fields.append(key + repr(v))
            values.append((quantity, v))
        if not fields:
            self.reject(line_no, raw, "bad_row", "no value in any column", target)
            return None
        if target.may_declare:
            for quantity, _ in values:
                if quantity not in target.quantities:
                    self._declare(target, "quantity", quantity)
        if self.quality is not None and sensor is not None and t is not None:
            return ",".join(fields) + self.quality_fields(target, sensor, t, values)
        return ",".join(fields)

    def count_quality_fields(
        self,
        target: Target,
        count_class: str,
        direction: str,
        t: int,
        interval_s: float,
        count: float,
        running_fraction: float,
        *,
        line_no: int = 0,
    ) -> str:
        """`,qc_count="stuck"` where flagged and `,qc=<version>i`, for a `traffic` line's
        fields; "" without a checker (quality.checker, `QualityChecker.flag_count`). Where
        the count is judged stuck with the run's earlier intervals (a run of zeros judged by
        what it should have counted, flagged from its first interval), their points are
        written again with the flag (`qc_count` and `qc` alone: InfluxDB merges them into the
        points stored), as from file line `line_no`."""
        if self.quality is None:
            return ""
        flagged = self.quality.flag_count(
            target.device_id,
            count_class,
            direction,
            t,
            interval_s,
            count,
            running_fraction=running_fraction,
        )
        earlier = self.quality.take_reflagged()
        if earlier:
            prefix = self.traffic_prefix(target, count_class, direction)
            if prefix is not None:
                fields = f'qc_count="{STUCK}",qc={QC_VERSION}i'
                self.lines.extend(f"{prefix}{fields} {before}" for before in earlier)
                self.line_nos.extend([line_no] * len(earlier))
        qc = f',qc_count="{flagged}"' if flagged else ""
        return f"{qc},qc={QC_VERSION}i"

    def quality_fields(
        self, target: Target, sensor: str, t: int, values: list[tuple[str, float]]
    ) -> str:
        """`,qc_<quantity>="flag,..."` for each flagged quantity of `values` and `,qc=<version>i`
        (the fields to append to an air line's values), or "" without a checker. The
        humidity is the row's own `relative_humidity` among `values`, where it has one."""
        if self.quality is None:
            return ""
        humidity = next((v for q, v in values if q == "relative_humidity"), None)
        flagged = self.quality.flag(target.device_id, sensor, t, values, humidity=humidity)
        qc = "".join(f',qc_{q}="{joined}"' for q, joined in flagged.items())
        return f"{qc},qc={QC_VERSION}i"

    def declared(
        self, line_no: int, raw: str, prefix: str | None, target: Target, sensor: str
    ) -> bool:
        """Whether an `air` line may be written (`prefix` from `air_prefix`); False after
        rejecting the row (`undeclared_sensor`) when the device does not declare `sensor`."""
        if prefix is not None:
            return True
        detail = f"device {target.device_id} does not declare sensor {sensor!r}"
        self.reject(line_no, raw, "undeclared_sensor", detail, target)
        return False

    def store(self, line_no: int, line: str, target: Target) -> None:
        """Write one stored row's line (a row of several lines: `lines.append` the others
        first); hands a full batch to the runner."""
        self.lines.append(line)
        self.line_nos.append(line_no)
        target.stored += 1
        if len(self.lines) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Hand `lines` (and the letters so far) to the runner; both start empty again."""
        self._flush(self)

    @property
    def stored(self) -> int:
        return sum(t.stored for t in self.targets.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


class HistoryFormat(ABC):
    """One kind of history file; an instance reads one file (see the module's docstring)."""

    name: ClassVar[str]  # as in `import_source`: sensor-community, opensensemap, ...
    title: ClassVar[str]  # "a Sensor.Community archive CSV"
    device_prefix: ClassVar[str]  # every device id it registers starts so: "sc-"

    def __init__(self, file: HistoryFile, options: ImportOptions) -> None:
        self.file = file
        self.options = options
        self.is_json = False  # CSV or JSON, as prepare() found

    @abstractmethod
    def prepare(self) -> None:
        """Check the file is of this format (header, first rows); raise FileProblem if not."""

    @abstractmethod
    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        """Read every row of `text` (the file, from its first byte) into `ctx`."""
