"""Aggregated time series for the HTTP API and `sensorpipe query counts`: air readings per
device or site, and counts of passers-by with the share of each interval the counter ran.

Every interval between `from` and `to` is in the answer: an interval without data is an explicit
null, so a gap stays a gap. Before InfluxDB is asked, the size of the answer is estimated
(intervals x series x values) and a request for more than `max_points` is refused with what
would narrow it. The estimate can miss series (a quantity a sensor model does not usually
report), so the bound does not rest on it: a range of more intervals than `max_points` is
refused before InfluxDB is asked, and the InfluxQL carries a LIMIT (the intervals) and an
SLIMIT (the series of that many rows that fit, plus one): an answer that would hold more series
is refused too, never cut short. InfluxDB's reply to the service is then at most (max_points +
one series' intervals) rows of the quantities asked. The answer itself is counted as it is
given: every column with data (an sds011 with a co2 reading holds a co2 column), times the
intervals, per series; more than `max_points` values is refused, like the estimate's. No answer
can grow without bound.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import SOURCE_TAG, check_source
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.register import SENSOR_QUANTITIES
from sensorpipe.protocol.registry import sensor_model
from sensorpipe.query.bbox import BBox, bbox_condition
from sensorpipe.query.flagged import (
    RAW_READINGS_MAX,
    FlagFilter,
    IntervalFlags,
    Statement,
    filtered_values,
    flagged_quantities,
    interval_flags,
    rows_by_key,
)
from sensorpipe.query.influxql import (
    QueryInputError,
    check_first_interval,
    check_influx_range,
    parse_time,
)

# `last`: each interval's latest reading (the dashboard's map colours the latest PM2.5).
SERIES_AGGREGATES = ("mean", "median", "min", "max", "last", "count")
_EVERY = re.compile(r"^([1-9]\d{0,4})(m|h|d)$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
MIN_EVERY_S = 60
MAX_EVERY_S = 86400
# The most series SHOW SERIES is asked for when estimating an answer's size.
_SERIES_PROBE = 10_000


class TooManyPoints(QueryInputError):
    """The answer would hold more values than allowed; the message says how to narrow it."""


def parse_every(value: str) -> int:
    """An aggregation interval from 1m to 1d, in seconds."""
    m = _EVERY.match(value)
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)] if m else 0
    if not m or not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise QueryInputError(
            f"every {value!r}: use an interval from 1m to 1d, like 1m, 15m, 1h or 1d"
        )
    return seconds


def _range(start: str, end: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    t0, t1 = parse_time(start, now), parse_time(end, now)
    check_influx_range(t0, start, "from")
    check_influx_range(t1, end, "to")
    if t0 >= t1:
        raise QueryInputError(f"from {start!r} is not before to {end!r}: give a later 'to'")
    return t0, t1


def _aligned(t0: datetime, every_s: int) -> datetime:
    """`t0` moved back to the start of its interval (intervals are aligned to the epoch, as
    InfluxDB's GROUP BY time() aligns them), so the first interval is a whole one: a first
    interval that began before `from` would hold only part of its readings and counts, and
    read as a quiet street or an outage."""
    ms = _ms(t0)
    return datetime.fromtimestamp((ms - ms % (every_s * 1000)) / 1000, UTC)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _check_sources(sources: Sequence[str]) -> None:
    for source in sources:
        problem = check_source(source)
        if problem:
            raise QueryInputError(problem)


def _tag_filter(tag: str, values: Sequence[str]) -> str | None:
    if not values:
        return None
    return "(" + " OR ".join(f"{identifier(tag)} = {string_literal(v)}" for v in values) + ")"


def _where(filters: Sequence[str | None]) -> str:
    present = [f for f in filters if f]
    return " AND ".join(present)


def _intervals(t0: datetime, t1: datetime, every_s: int) -> int:
    """How many intervals InfluxDB's GROUP BY time() gives between t0 and t1 (aligned to
    the epoch, the partial first and last ones included)."""
    first = _ms(t0) // (every_s * 1000)
    last = (_ms(t1) - 1) // (every_s * 1000)
    return int(last - first + 1)


# The series InfluxDB holds per measurement, listed once and reused this long: the size check
# before each answer then costs no round trip. A series newer than the list is still answered
# (the hard bound, SLIMIT, does not depend on it); only its share of the estimate is missed.
SERIES_LIST_TTL_S = 10.0
_series_lists: dict[tuple[str, str, str], tuple[float, list[dict[str, str]]]] = {}
_series_lock = threading.Lock()


def _all_series(influx: InfluxClient, measurement: str) -> list[dict[str, str]]:
    key = (influx.url, influx.database, measurement)
    now = time.monotonic()
    with _series_lock:
        cached = _series_lists.get(key)
    if cached is not None and now - cached[0] < SERIES_LIST_TTL_S:
        return cached[1]
    from sensorpipe.query.register import _series_tags

    q = f"SHOW SERIES FROM {identifier(measurement)} LIMIT {_SERIES_PROBE}"
    listed = [_series_tags(str(key_)) for s in influx.query(q) for (key_,) in s.get("values") or []]
    with _series_lock:
        _series_lists[key] = (now, listed)
    return listed


def _series(
    influx: InfluxClient,
    measurement: str,
    filters: dict[str, Sequence[str]],
    group: Sequence[str],
) -> set[tuple[str, ...]]:
    """Distinct combinations of `group` tags among the series whose tags match `filters`
    (tag -> accepted values; an empty list accepts any): what an answer can hold at most."""
    wanted = {tag: set(values) for tag, values in filters.items() if values}
    return {
        tuple(tags.get(t, "") for t in group)
        for tags in _all_series(influx, measurement)
        if all(tags.get(tag) in values for tag, values in wanted.items())
    }


def _check_intervals(intervals: int, max_points: int, every: str) -> None:
    """Every series of an answer has a row per interval (fill(null)): a range with more
    intervals than `max_points` cannot fit even one series, whatever the estimate found. So
    the intervals a GROUP BY time() may make are bounded before InfluxDB is asked."""
    if intervals > max_points:
        raise _refuse(
            intervals,
            max_points,
            f"{intervals:,} intervals of {every}, each a value of every series: ask for a "
            f"shorter time range or a longer 'every'",
        )


def _series_cap(max_points: int, intervals: int) -> int:
    """The most series of `intervals` rows that fit an answer of `max_points`: the hard bound
    (queries ask for one more, to tell a full answer from one cut short)."""
    return max(1, max_points // max(intervals, 1))


def _bounded(
    influx: InfluxClient, influxql: str, cap: int, intervals: int, limit: int, narrow: str
) -> list[dict[str, Any]]:
    """The series of `influxql` (which asks for `cap` + 1 of them); TooManyPoints when more
    than `cap` came, rather than an answer cut short."""
    answered = influx.query(influxql)
    if len(answered) > cap:
        raise TooManyPoints(
            f"this request would return more than {cap:,} series of {intervals:,} intervals, "
            f"more than the {limit:,} values one answer may hold; {narrow}"
        )
    return answered


def _refuse(points: int, limit: int, narrow: str) -> TooManyPoints:
    return TooManyPoints(
        f"this request would return about {points:,} values, more than the {limit:,} one "
        f"answer may hold; {narrow}"
    )


@dataclass
class AirSeriesRequest:
    devices: Sequence[str] = ()
    sites: Sequence[str] = ()
    quantities: Sequence[str] = ()
    sources: Sequence[str] = ()  # provenance: edge, airrohr, ttn, import:<format>
    start: str = "-24h"
    end: str = "now"
    every: str = "1h"
    aggregate: str = "mean"
    group: str = "device"  # device: per device and sensor; site: per site
    max_points: int = 100_000
    # Only readings in this box: by their own position (mobile sensors) or, for
    # `bbox_devices`, by their device's registered location. `devices` should then hold the
    # devices whose readings can lie in it, which bounds the size estimate.
    bbox: BBox | None = None
    bbox_devices: Sequence[str] = ()
    # Quality flags: include (every reading, flagged ones counted per interval), exclude or
    # only the flagged readings (or those with the named flags).
    flags: FlagFilter = field(default_factory=FlagFilter)

    def check(self) -> tuple[datetime, datetime, int]:
        _check_sources(self.sources)
        self.flags.check()
        for q in self.quantities:
            if q not in QUANTITIES:
                raise QueryInputError(f"unknown quantity {q!r} (known: {', '.join(QUANTITIES)})")
        if self.aggregate not in SERIES_AGGREGATES:
            raise QueryInputError(
                f"aggregate {self.aggregate!r}: use one of {', '.join(SERIES_AGGREGATES)}"
            )
        if self.group not in ("device", "site"):
            raise QueryInputError(f"group {self.group!r}: use device or site")
        every_s = parse_every(self.every)
        t0, t1 = _range(self.start, self.end)
        check_first_interval(t0, every_s * 10**9, self.start, self.every)
        return _aligned(t0, every_s), t1, every_s


def air_series(
    influx: InfluxClient, req: AirSeriesRequest, nothing: bool = False
) -> dict[str, Any]:
    """The aggregated series; with `nothing` (a filter no device matches, such as an empty
    bounding box), the answer's frame without series, InfluxDB not asked."""
    t0, t1, every_s = req.check()
    intervals = _intervals(t0, t1, every_s)
    _check_intervals(intervals, req.max_points, req.every)
    quantities = list(req.quantities or QUANTITIES)
    if nothing:
        return _air_answer(req, t0, t1, quantities, [])
    tag_where = _where(
        [
            _tag_filter("device_id", req.devices),
            _tag_filter("site", req.sites),
            _tag_filter(SOURCE_TAG, req.sources),
            bbox_condition(req.bbox, tuple(req.bbox_devices)) if req.bbox is not None else None,
        ]
    )
    group_tags = ["device_id", "site", "sensor"] if req.group == "device" else ["site"]
    found = _series(
        influx,
        storage.AIR,
        {"device_id": req.devices, "site": req.sites, SOURCE_TAG: req.sources},
        ["device_id", "site", "sensor"],
    )
    # Values per interval: each series' quantities (those its sensor model measures, or all
    # asked for when the model is not one sensorpipe knows), per group.
    per_group: dict[tuple[str, ...], set[str]] = {}
    for device_id, site, sensor in found:
        key = (device_id, site, sensor) if req.group == "device" else (site,)
        measures = set(SENSOR_QUANTITIES.get(sensor_model(sensor), quantities)) & set(quantities)
        per_group.setdefault(key, set()).update(measures)
    n_values = sum(len(q) for q in per_group.values())
    series = len(per_group)
    points = intervals * n_values
    if points > req.max_points:
        raise _refuse(
            points,
            req.max_points,
            f"{intervals:,} intervals of {req.every} x {series} series, {n_values} values an "
            f"interval: ask for a shorter time range, a longer 'every', fewer quantities, or "
            f"one device or site",
        )
    select = ", ".join(f"{req.aggregate}({identifier(q)}) AS {identifier(q)}" for q in quantities)
    where = _where([f"time >= {_ms(t0)}ms", f"time < {_ms(t1)}ms", tag_where])
    # The hard bound, whatever the estimate said: at most `cap` series of `intervals` rows
    # (one more series is asked for, to know when they do not fit).
    cap = _series_cap(req.max_points, intervals)
    influxql = (
        f"SELECT {select} FROM {identifier(storage.AIR)} WHERE {where} "
        f"GROUP BY time({every_s}s), {', '.join(identifier(t) for t in group_tags)} fill(null) "
        f"LIMIT {intervals + 1} SLIMIT {cap + 1}"
    )
    answered = _bounded(
        influx,
        influxql,
        cap,
        intervals,
        req.max_points,
        "ask for a shorter time range, a longer 'every', or fewer devices or sites",
    )
    # The columns with data of each series: what the answer holds. The estimate counted the
    # quantities a sensor model usually reports; a series can hold more (every quantity asked
    # for that has a reading), so the answer's own values are counted before it is given.
    kept: list[tuple[dict[str, Any], tuple[Any, ...], dict[str, list[Any]]]] = []
    held = 0
    for s in answered:
        # Columns of the rows (transposed in C; a column of nulls is a quantity not measured).
        by_column = list(zip(*s["values"], strict=True))
        if not by_column:
            continue
        values: dict[str, list[Any]] = {}
        for name, column in zip(s["columns"][1:], by_column[1:], strict=True):
            if column.count(None) < len(column):
                values[name] = list(column)
        if not values:
            continue
        held += len(values) * len(by_column[0])
        kept.append((s.get("tags") or {}, by_column[0], values))
    if held > req.max_points:
        with_data = len({name for _, _, values in kept for name in values})
        raise _refuse(
            held,
            req.max_points,
            f"{len(kept)} series of {intervals:,} intervals of {req.every} hold readings of "
            f"{with_data} quantities: ask for fewer quantities (quantity=...), a shorter time "
            f"range, a longer 'every', or one device or site",
        )

    def statement(aggregate: str, fields: Sequence[str], conditions: Sequence[str]) -> str:
        # The flags' queries: the same filters and grouping, without the LIMIT (`distinct`
        # has a row per flag combination and interval), their series bounded as above; no
        # aggregate: the readings themselves, at most RAW_READINGS_MAX + 1 a series.
        tags = ", ".join(identifier(t) for t in group_tags)
        selected = f"FROM {identifier(storage.AIR)} WHERE {_where([where, *conditions])}"
        if not aggregate:
            chosen = ", ".join(identifier(f) for f in fields)
            return (
                f"SELECT {chosen} {selected} GROUP BY {tags} "
                f"LIMIT {RAW_READINGS_MAX + 1} SLIMIT {cap + 1}"
            )
        chosen = ", ".join(f"{aggregate}({identifier(f)}) AS {identifier(f)}" for f in fields)
        return (
            f"SELECT {chosen} {selected} GROUP BY time({every_s}s), {tags} "
            f"fill(none) SLIMIT {cap + 1}"
        )

    flags = _flags_of(influx, req, statement, quantities, group_tags, kept, every_s)
    out_series = []
    # Every series has the same intervals: their times are written out once.
    times_iso: dict[tuple[Any, ...], list[str]] = {}
    for (tags, times, values), series_flags in zip(kept, flags, strict=True):
        if not values and not series_flags:  # `only`: no flagged reading in it
            continue
        if times not in times_iso:
            times_iso[times] = [_iso(t) for t in times]
        out_series.append(
            {
                "device_id": tags.get("device_id") if req.group == "device" else None,
                "site": tags.get("site"),
                "sensor": tags.get("sensor") if req.group == "device" else None,
                "time": list(times_iso[times]),
                "values": values,
                "flags": series_flags,
            }
        )
    out_series.sort(key=lambda s: (s["site"] or "", s["device_id"] or "", s["sensor"] or ""))
    return _air_answer(req, t0, t1, quantities, out_series)


def _flags_of(
    influx: InfluxClient,
    req: AirSeriesRequest,
    statement: Statement,
    quantities: list[str],
    group_tags: list[str],
    kept: list[tuple[dict[str, Any], tuple[Any, ...], dict[str, list[Any]]]],
    every_s: int,
) -> list[dict[str, dict[str, list[Any]]]]:
    """Per series of `kept`: each flagged quantity's count of flagged readings and their flag
    names per interval; with `exclude` or `only`, the series' values are replaced (in place)
    by the aggregates without the flagged readings or of them alone."""
    if not kept:
        return []
    found = interval_flags(influx, statement, quantities, req.flags, group_tags)
    filtered = (
        filtered_values(
            influx, statement, quantities, req.aggregate, req.flags, group_tags, every_s * 1000
        )
        if req.flags.mode != "include"
        else None
    )
    out = []
    for tags, times, values in kept:
        key = tuple(str(tags.get(t, "")) for t in group_tags)
        if filtered is not None:
            for q in list(values):
                values[q] = [filtered.get((key, t), {}).get(q) for t in times]
                if values[q].count(None) == len(times):
                    del values[q]
        series_flags: dict[str, dict[str, list[Any]]] = {}
        for q in quantities:
            per_t: list[IntervalFlags | None] = [found.get(((key, t), q)) for t in times]
            if any(per_t):
                series_flags[q] = {
                    "flagged": [f.count if f else 0 for f in per_t],
                    "flags": [list(f.names) if f else [] for f in per_t],
                }
        out.append(series_flags)
    return out


def _air_answer(
    req: AirSeriesRequest,
    t0: datetime,
    t1: datetime,
    quantities: list[str],
    out_series: list[dict[str, Any]],
) -> dict[str, Any]:
    if not req.quantities:  # all asked for: list those with readings
        present = {q for s in out_series for q in s["values"]}
        present |= {q for s in out_series for q in s.get("flags", {})}
        quantities = [q for q in quantities if q in present]
    return {
        "from": _iso(_ms(t0)),
        "to": _iso(_ms(t1)),
        "every": req.every,
        "aggregate": req.aggregate,
        "group": req.group,
        "flags": req.flags.mode,
        "flag": list(req.flags.names),
        "units": {q: QUANTITIES[q].unit for q in quantities},
        "series": out_series,
    }


@dataclass
class CountSeriesRequest:
    devices: Sequence[str] = ()
    sites: Sequence[str] = ()
    sources: Sequence[str] = ()
    classes: Sequence[str] = ()
    directions: Sequence[str] = ()
    start: str = "-24h"
    end: str = "now"
    every: str = "1h"
    max_points: int = 100_000
    # Quality flags (`qc_count`): include (every count, flagged ones counted per interval),
    # exclude or only the flagged counts (or those with the named flags).
    flags: FlagFilter = field(default_factory=FlagFilter)


def count_series(influx: InfluxClient, req: CountSeriesRequest) -> dict[str, Any]:
    """Passers-by per class and direction, summed over `every`, with `running_fraction`: the
    share of each interval the counter ran (null: no report at all for that interval). Where
    a count of the answer carries a quality flag, its class and direction have `flagged` (per
    interval, how many counts were flagged) and `flags` (which); with `exclude` the sums leave
    the flagged counts out (null where every count was flagged), with `only` they are the
    flagged counts' alone (null where none was)."""
    _check_sources(req.sources)
    req.flags.check()
    every_s = parse_every(req.every)
    t0, t1 = _range(req.start, req.end)
    check_first_interval(t0, every_s * 10**9, req.start, req.every)
    t0 = _aligned(t0, every_s)
    t1_ms = _ms(t1)
    device_where = _where(
        [
            _tag_filter("device_id", req.devices),
            _tag_filter("site", req.sites),
            _tag_filter(SOURCE_TAG, req.sources),
        ]
    )
    traffic_where = _where(
        [
            device_where,
            _tag_filter("class", req.classes),
            _tag_filter("direction", req.directions),
        ]
    )
    intervals = _intervals(t0, t1, every_s)
    _check_intervals(intervals, req.max_points, req.every)
    filters = {
        "device_id": req.devices,
        "site": req.sites,
        SOURCE_TAG: req.sources,
        "class": req.classes,
        "direction": req.directions,
    }
    series = len(_series(influx, storage.TRAFFIC, filters, ["device_id", "class", "direction"]))
    points = intervals * series
    if points > req.max_points:
        raise _refuse(
            points,
            req.max_points,
            f"{intervals:,} intervals of {req.every} x {series} class/direction series: ask "
            f"for a shorter time range, a longer 'every', or one device, class or direction",
        )
    window = _where([f"time >= {_ms(t0)}ms", f"time < {_ms(t1)}ms"])
    cap = _series_cap(req.max_points, intervals)
    counts_q = (
        f"SELECT sum({identifier('count')}) AS {identifier('count')} "
        f"FROM {identifier(storage.TRAFFIC)} WHERE {_where([window, traffic_where])} "
        f'GROUP BY time({every_s}s), "device_id", "site", "class", "direction" '
        f"fill(null) LIMIT {intervals + 1} SLIMIT {cap + 1}"
    )
    counted = _bounded(
        influx,
        counts_q,
        cap,
        intervals,
        req.max_points,
        "ask for a shorter time range, a longer 'every', or one device, class or direction",
    )
    # The counter's running time is read only for the devices with counts in the answer: a
    # class, direction or source nothing was counted as reads no counter points at all.
    counted_devices = sorted(
        {str((s.get("tags") or {}).get("device_id", "")) for s in counted} - {""}
    )
    running: dict[str, dict[int, float | None]] = {}
    if counted_devices:
        running_where = _where([device_where, _tag_filter("device_id", counted_devices)])
        running_q = (
            f"SELECT sum(run_s) AS run_s FROM (SELECT running_fraction * interval_s AS run_s "
            f"FROM {identifier(storage.COUNTER)} WHERE {_where([window, running_where])} "
            f'GROUP BY "device_id", "site") WHERE {window} '
            f'GROUP BY time({every_s}s), "device_id", "site" fill(null) '
            f"LIMIT {intervals + 1} SLIMIT {cap + 1}"
        )
        for s in influx.query(running_q):
            device = (s.get("tags") or {}).get("device_id", "")
            running[device] = {
                # Of the last interval only the part before `to` can have run.
                r[0]: None
                if r[1] is None
                else min(1.0, float(r[1]) / max(1.0, min(every_s, (t1_ms - r[0]) / 1000)))
                for r in s["values"]
            }
    count_tags = ["device_id", "site", "class", "direction"]

    def statement(aggregate: str, fields: Sequence[str], conditions: Sequence[str]) -> str:
        chosen = ", ".join(f"{aggregate}({identifier(f)}) AS {identifier(f)}" for f in fields)
        return (
            f"SELECT {chosen} FROM {identifier(storage.TRAFFIC)} "
            f"WHERE {_where([window, traffic_where, *conditions])} "
            f"GROUP BY time({every_s}s), {', '.join(identifier(t) for t in count_tags)} "
            f"fill(none) SLIMIT {cap + 1}"
        )

    flagged = _count_flags(influx, req.flags, statement, count_tags) if counted else None
    by_device: dict[str, dict[str, Any]] = {}
    for s in counted:
        tags = s.get("tags") or {}
        device = tags.get("device_id", "")
        rows = s["values"]
        entry = by_device.get(device)
        if entry is None:
            times = [r[0] for r in rows]
            fractions = running.get(device, {})
            entry = by_device[device] = {
                "device_id": device,
                "site": tags.get("site"),
                "time": [_iso(t) for t in times],
                "running_fraction": [fractions.get(t) for t in times],
                "counts": [],
                "_times": times,
            }
        fractions = running.get(device, {})
        values = [
            None if fractions.get(t) is None else (None if v is None else int(v))
            for t, v in ((r[0], r[1]) for r in rows)
        ]
        counts: dict[str, Any] = {
            "class": tags.get("class"),
            "direction": tags.get("direction"),
            "values": values,
        }
        if flagged is not None:
            key = tuple(str(tags.get(t, "")) for t in count_tags)
            flagged.apply(counts, key, [r[0] for r in rows])
            if req.flags.mode == "only" and "flagged" not in counts:
                continue  # nothing of it was flagged
        entry["counts"].append(counts)
    out = []
    for device in sorted(by_device):
        entry = by_device[device]
        entry.pop("_times")
        if not entry["counts"]:
            continue
        entry["counts"].sort(key=lambda c: (c["class"], c["direction"]))
        out.append(entry)
    return {
        "from": _iso(_ms(t0)),
        "to": _iso(_ms(t1)),
        "every": req.every,
        "flags": req.flags.mode,
        "flag": list(req.flags.names),
        "series": out,
    }


@dataclass
class _CountFlags:
    """The flagged counts of an answer, per (device, site, class, direction) and interval."""

    mode: str
    found: dict[tuple[tuple[str, ...], int], IntervalFlags]
    flagged_sums: dict[tuple[tuple[str, ...], int], int]
    totals: dict[tuple[tuple[str, ...], int], int]  # counts per interval (exclude)

    def apply(self, counts: dict[str, Any], key: tuple[str, ...], times: list[int]) -> None:
        """Add `flagged` and `flags` to one class and direction's counts where one of them was
        flagged; with exclude or only, its sums without or of the flagged counts alone."""
        per_t = [self.found.get((key, t)) for t in times]
        if any(per_t):
            counts["flagged"] = [f.count if f else 0 for f in per_t]
            counts["flags"] = [list(f.names) if f else [] for f in per_t]
        values = counts["values"]
        for i, (t, f) in enumerate(zip(times, per_t, strict=True)):
            if values[i] is None:
                continue  # the counter did not report
            if self.mode == "only":
                values[i] = self.flagged_sums.get((key, t)) if f else None
            elif self.mode == "exclude" and f:
                kept = self.totals.get((key, t), 0) - f.count
                values[i] = values[i] - self.flagged_sums.get((key, t), 0) if kept > 0 else None


def _count_flags(
    influx: InfluxClient, flt: FlagFilter, statement: Statement, tags: list[str]
) -> _CountFlags | None:
    """What `qc_count` says of the answer's intervals (None: no count was ever flagged)."""
    if not flagged_quantities(influx, ["count"], storage.TRAFFIC):
        return _CountFlags(flt.mode, {}, {}, {}) if flt.mode == "only" else None
    found = {
        key: f
        for (key, _), f in interval_flags(
            influx, statement, ["count"], flt, tags, storage.TRAFFIC
        ).items()
    }
    sums: dict[tuple[tuple[str, ...], int], int] = {}
    totals: dict[tuple[tuple[str, ...], int], int] = {}
    if flt.mode != "include":
        for key, row in rows_by_key(
            influx, statement("sum", ["count"], [flt.condition("count")]), tags
        ):
            sums[key] = int(row.get("count") or 0)
    if flt.mode == "exclude":
        for key, row in rows_by_key(influx, statement("count", ["count"], []), tags):
            totals[key] = int(row.get("count") or 0)
    return _CountFlags(flt.mode, found, sums, totals)


def as_rows(answer: dict[str, Any], kind: str) -> tuple[list[str], list[list[Any]]]:
    """An answer of air_series (kind 'air') or count_series ('counts') as CSV-ready rows."""
    if kind == "air":
        quantities = list(answer["units"])
        # A quantity with flagged readings has two more columns: how many of the interval's
        # readings were flagged, and their flags.
        flagged = [q for q in quantities if any(q in s.get("flags", {}) for s in answer["series"])]
        header = ["time", "device_id", "site", "sensor", *quantities]
        header += [name for q in flagged for name in (f"{q}_flagged", f"{q}_flags")]
        rows = []
        for s in answer["series"]:
            for i, t in enumerate(s["time"]):
                values = [s["values"].get(q, [None] * len(s["time"]))[i] for q in quantities]
                for q in flagged:
                    f = s.get("flags", {}).get(q)
                    values += [f["flagged"][i], ",".join(f["flags"][i])] if f else [0, ""]
                rows.append([t, s["device_id"], s["site"], s["sensor"], *values])
        return header, rows
    header = ["time", "device_id", "site", "class", "direction", "count", "running_fraction"]
    # Where a count of the answer was flagged: how many of each interval, and which flags.
    any_flagged = any("flagged" in c for s in answer["series"] for c in s["counts"])
    if any_flagged:
        header += ["count_flagged", "count_flags"]
    rows = []
    for s in answer["series"]:
        for c in s["counts"]:
            for i, t in enumerate(s["time"]):
                row = [
                    t,
                    s["device_id"],
                    s["site"],
                    c["class"],
                    c["direction"],
                    c["values"][i],
                    s["running_fraction"][i],
                ]
                if any_flagged:
                    row += [c["flagged"][i], ",".join(c["flags"][i])] if "flagged" in c else [0, ""]
                rows.append(row)
    return header, rows
