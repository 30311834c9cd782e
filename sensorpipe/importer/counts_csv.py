"""Counts of passers-by from any CSV (`sensorpipe import csv --column 'HEADER=count:CLASS'`):
the counting side of `logger_csv`, stored as the Telraam import stores counts (and the edge
counter sends them): a `traffic` point per class and direction and interval (`count`,
`interval_s`, the quality fields `qc` and `qc_count`), tags device_id, site, class,
direction, and a `counter` point per interval (`running_fraction` 1.0: a file that says
nothing of its counter's downtime is taken as counted throughout; `model_id` "csv"). So
`sensorpipe query counts`, /api/v1/counts and SensorThings read them as any counts.

    --column 'HEADER=count:CLASS[:DIRECTION]'   CLASS of protocol.counting (pedestrian, ...);
                                                DIRECTION as the device's line names it
                                                (default `both`: a count of both ways)
    --device ID | --device-column HEADER [--device-prefix PREFIX]
    --interval-s SECONDS                        each row's interval (default 3600, from its time)
    --locations FILE                            with --device-column: where each site stands

Counts and air quantities are not mixed in one import (the command refuses): counts go to
counting devices, air to a logger, and a file holding both is imported twice, once each way.

`--device-column`: each row's device from a column (a long file of many sites,
`time_utc,site,count`). The id is `device_id_for(name, prefix)`: the name in NFKD form without
its accents, lower-case, every run of characters other than a-z and 0-9 made one `-`, `-`
stripped from both ends, PREFIX before it, cut to 64 characters (`107 Quay Street` ->
`107-quay-street`, with `--device-prefix akl-` -> `akl-107-quay-street`). A new id is
registered (source import) as the Telraam import registers its counters: purpose naming the
original name, sensors (`--sensor`, default `counter`), the directions and classes of the
columns, and the original name as its `station_code` (the counter's name in its network,
shown in the public register). Two names that make the same id, and a name that makes none,
are `bad_row`s. The runner registers a new id with its first stored row (none whose every row
is rejected). `--locations FILE` (importer.locations) gives each name its location (the
row of the same name, else the one whose name makes the same id): a new device is registered
there, and the runner places an imported device that has none.

A row whose device and time were read before in this import (this file or an earlier one of
the same command) is a `duplicate`: the first one read is stored, the others are dead letters,
and the file's summary says how many and the first line of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target
from sensorpipe.protocol.counting import COUNT_CLASSES, DIRECTION_PATTERN
from sensorpipe.protocol.topics import is_valid_device_id

COUNT = "count"
DEFAULT_DIRECTION = "both"
DEFAULT_COUNTER = "counter"
DEFAULT_INTERVAL_S = 3600.0
MAX_COUNT = 1_000_000  # passers-by in one interval of one class and direction, at most
MAX_DEVICE_ID = 64
_NOT_ID = re.compile(r"[^a-z0-9]+")

CountColumn = tuple[str, str, str]  # header, class, direction


def count_column_spec(text: str) -> CountColumn | None:
    """`HEADER=count:CLASS[:DIRECTION]` as (header, class, direction); None for a column that
    is not a count (`HEADER=QUANTITY...`); ValueError with the one line to show."""
    header, eq, target = text.rpartition("=")
    parts = [p.strip() for p in target.split(":")]
    if not eq or parts[0] != COUNT:
        return None
    header = header.strip()
    if not header or len(parts) not in (2, 3):
        raise ValueError(
            f"--column {text[:80]!r}: write HEADER=count:CLASS or HEADER=count:CLASS:DIRECTION, "
            f"like 'count=count:pedestrian'"
        )
    count_class = parts[1]
    if count_class not in COUNT_CLASSES:
        raise ValueError(
            f"--column {text[:80]!r}: {count_class[:40]!r} is no class of passers-by; use one "
            f"of {', '.join(COUNT_CLASSES)}"
        )
    direction = parts[2] if len(parts) == 3 else DEFAULT_DIRECTION
    if not re.match(DIRECTION_PATTERN, direction):
        raise ValueError(
            f"--column {text[:80]!r}: direction {direction[:40]!r}: use lower-case letters, "
            f"digits and '_', starting with a letter (at most 32)"
        )
    return header, count_class, direction


def device_id_for(name: str, prefix: str = "") -> str | None:
    """The device id a site's name makes (the module's rule); None where it makes none."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    slug = _NOT_ID.sub("-", plain).strip("-")
    if not slug:
        return None
    device_id = (prefix + slug)[:MAX_DEVICE_ID].rstrip("-")
    return device_id if is_valid_device_id(device_id) else None


class CountRows:
    """The rows of one file into counts; `row` per data row (fields padded to the header)."""

    def __init__(
        self,
        ctx: ImportContext,
        names: list[str],
        time_column: str,
        times: Callable[[str], int],
        seen: dict[str, set[int]],
    ) -> None:
        o = ctx.options
        self.ctx = ctx
        self.times = times
        self.time_column = time_column
        self.time_index = names.index(time_column)
        self.columns = [(names.index(h), h, c, d) for h, c, d in o.count_columns]
        self.device_index = names.index(o.device_column) if o.device_column else None
        self.interval = o.interval_s
        self.sensor = o.sensor or DEFAULT_COUNTER
        self.directions = tuple(dict.fromkeys(d for _, _, d in o.count_columns))
        self.classes = tuple(dict.fromkeys(c for _, c, _ in o.count_columns))
        self.seen = seen  # device -> times read in this import (across its files)
        self.targets: dict[str, Target | None] = {}  # by the name in the file
        self.names: dict[str, str] = {}  # device id -> the name that made it
        self.locations = o.locations if o.device_column else None
        # the sites file's names by the device id each makes: "Te Ara Tāhuhu Walkway" in the
        # counts finds "Te Ara Tahuhu Walkway" (an id two rows make at two places finds none)
        self.located: dict[str, tuple[float, float] | None] = {}
        for site, where in (self.locations or {}).items():
            made = device_id_for(site, o.device_prefix)
            if made is not None:
                self.located[made] = where if self.located.get(made, where) == where else None
        self.duplicates = 0
        self.first_duplicate = 0
        self.used = {self.time_index, *(i for i, _, _, _ in self.columns)}
        if self.device_index is not None:
            self.used.add(self.device_index)

    def _spec(self, device_id: str, name: str) -> DeviceSpec:
        what = f"counter {name!r} (its name in the files)" if name else "counter"
        return DeviceSpec(
            device_id=device_id,
            purpose=f"{', '.join(self.classes)} {what}; counts imported from CSV files",
            sensors=(self.sensor,),
            directions=self.directions,
            count_classes=self.classes,
            station_code=name,
            location=None
            if self.locations is None
            else self.locations.get(name) or self.located.get(device_id),
        )

    def _target(self, n: int, raw: str, f: list[str]) -> Target | None:
        ctx = self.ctx
        if self.device_index is None:
            key = ""
        else:
            key = f[self.device_index].strip()
            if not key:
                ctx.reject(
                    n, raw, "bad_row", f"no device in {ctx.options.device_column}", device=""
                )
                return None
        if key in self.targets:
            target = self.targets[key]
            if target is None:
                self._no_device(n, raw, key)
            return target
        if self.device_index is None:
            device_id = ctx.options.device or ""
        else:
            device_id = device_id_for(key, ctx.options.device_prefix) or ""
            other = self.names.get(device_id)
            if not device_id or (other is not None and other != key):
                self.targets[key] = None
                self._no_device(n, raw, key)
                return None
            self.names[device_id] = key
        target = ctx.target(self._spec(device_id, key))
        self.targets[key] = target
        return target

    def _no_device(self, n: int, raw: str, key: str) -> None:
        device_id = device_id_for(key, self.ctx.options.device_prefix)
        if device_id is None:
            detail = f"{key[:40]!r} makes no device id (letters or digits needed)"
        else:
            detail = (
                f"{key[:40]!r} makes device id {device_id!r}, as {self.names[device_id][:40]!r} "
                f"does: rename one of them in the file"
            )
        self.ctx.reject(n, raw, "bad_row", detail)

    def row(self, n: int, raw: str, f: list[str]) -> None:
        ctx = self.ctx
        target = self._target(n, raw, f)
        if target is None:
            return
        t = ctx.observed_at(
            n, raw, self.time_column, f[self.time_index], target, strip=True, parse=self.times
        )
        if t is None:
            return
        values: list[tuple[str, str, str, int]] = []  # prefix, class, direction, count
        for i, header, count_class, direction in self.columns:
            s = f[i].strip()
            if not s:
                continue
            try:
                value = float(s)
            except ValueError:
                ctx.reject(n, raw, "bad_value", f"{header} {s[:40]!r} is not a number", target)
                return
            if not (0 <= value <= MAX_COUNT and value == int(value)):
                problem = f"{header} = {s[:40]}: a count is a whole number from 0 to {MAX_COUNT}"
                ctx.reject(n, raw, "bad_value", problem, target)
                return
            prefix = ctx.traffic_prefix(target, count_class, direction)
            if prefix is None:
                problem = f"device {target.device_id} has no direction {direction!r}"
                ctx.reject(n, raw, "undeclared_direction", problem, target)
                return
            values.append((prefix, count_class, direction, int(value)))
        if not values:
            ctx.reject(n, raw, "bad_row", "no count in any column", target)
            return
        seen = self.seen.setdefault(target.device_id, set())
        if t in seen:
            self.duplicates += 1
            self.first_duplicate = self.first_duplicate or n
            detail = f"device {target.device_id} at {f[self.time_index].strip()[:40]} read before"
            ctx.reject(n, raw, "duplicate", detail, target)
            return
        seen.add(t)
        interval = self.interval
        for prefix, count_class, direction, count in values:
            qc = ctx.count_quality_fields(
                target, count_class, direction, t, interval, count, 1.0, line_no=n
            )
            ctx.lines.append(f"{prefix}count={count}i,interval_s={interval!r}{qc} {t}")
            ctx.line_nos.append(n)
        counter = f'running_fraction=1.0,model_id="csv",interval_s={interval!r}'
        ctx.store(n, f"{ctx.counter_prefix(target)}{counter} {t}", target)

    def note(self) -> str | None:
        """The summary's word on duplicates, None without any."""
        if not self.duplicates:
            return None
        return (
            f"{self.duplicates} row{'s repeat' if self.duplicates != 1 else ' repeats'} a "
            f"device and time read before (the first at line {self.first_duplicate}): stored "
            "once, as first read (reason duplicate)"
        )
