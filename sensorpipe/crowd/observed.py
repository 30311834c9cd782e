"""Observed crowding of an area or a device, read from InfluxDB through the query layer
(`sensorpipe.query.series.count_series`) and turned into levels (`levels`).

Only whole intervals are read: `to` moves back to the end of the last interval that has ended,
so the interval in progress is not shown as a quiet one. Counts carrying a quality flag (a
counter stuck at 0) are left out (`flags=exclude`): such an interval counts as one in which that
counter did not run, so a stuck counter lowers the running fraction instead of reading as an
empty street. An enclosed area is read from the last quiet-hour reset before `from`, so its
occupancy at `from` is known; the intervals before `from` are then dropped from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sensorpipe.crowd.areas import area_lines
from sensorpipe.crowd.levels import (
    AreaInterval,
    Level,
    area_running_fraction,
    enclosed_levels,
    previous_reset,
    street_levels,
)
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import AreaEntry, AreaLine, Registry
from sensorpipe.query.flagged import FlagFilter
from sensorpipe.query.influxql import QueryInputError, parse_time
from sensorpipe.query.series import CountSeriesRequest, count_series, parse_every

DEVICE_EVERY = "1h"


@dataclass
class Crowding:
    """Levels of one area (or flow of one device) per interval from `start_ms` to `end_ms`."""

    start_ms: int
    end_ms: int
    every: str
    levels: list[Level] = field(default_factory=list)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _window(start: str, end: str, every_s: int, now: datetime | None) -> tuple[int, int]:
    """[from, to) in ms, on whole intervals: `from` back to its interval's start, `to` back
    to the end of the last interval that has ended."""
    now = now or datetime.now(UTC)
    step = every_s * 1000
    t0 = int(parse_time(start, now).timestamp() * 1000)
    asked_end = int(parse_time(end, now).timestamp() * 1000)
    if asked_end <= t0:
        raise QueryInputError(f"'to' {end!r} is not after 'from' {start!r}: give a later 'to'")
    t1 = min(asked_end, int(now.timestamp() * 1000))
    if t1 <= t0:
        raise QueryInputError(
            f"'from' {start!r} is in the future: give a time before now (e.g. -24h)"
        )
    t0, t1 = t0 - t0 % step, t1 - t1 % step
    if t0 >= t1:
        raise QueryInputError(
            f"from {start!r} to {end!r} holds no whole interval of {every_s // 60} minutes "
            "that has ended: give an earlier 'from'"
        )
    return t0, t1


def area_intervals(
    answer: dict[str, Any], lines: Sequence[AreaLine], start_ms: int, end_ms: int, every_s: int
) -> list[AreaInterval]:
    """An answer of count_series as the area's counts per interval from start_ms to end_ms:
    flow over the directions its lines count (all, where a line names none), ins and outs,
    and the counters' running fraction (a device without a report, or whose every count of
    the interval was flagged and left out, ran 0)."""
    step = every_s * 1000
    starts = list(range(start_ms, end_ms, step))
    by_device = {s["device_id"]: s for s in answer["series"]}
    flow = dict.fromkeys(starts, 0)
    ins = dict.fromkeys(starts, 0)
    outs = dict.fromkeys(starts, 0)
    fractions: dict[int, list[float | None]] = {t: [] for t in starts}
    flagged = dict.fromkeys(starts, 0)
    for line in lines:
        s = by_device.get(line.device)
        if s is None:
            for t in starts:
                fractions[t].append(None)
            continue
        index = {_ms(t): i for i, t in enumerate(s["time"])}
        counted = set(line.inward) | set(line.outward)
        for t in starts:
            i = index.get(t)
            if i is None:
                fractions[t].append(None)
                continue
            values = [(c["direction"], c["values"][i]) for c in s["counts"]]
            if all(v is None for _, v in values):
                fractions[t].append(None)  # every count flagged and left out
                flagged[t] += s["running_fraction"][i] is not None
                continue
            fractions[t].append(s["running_fraction"][i])
            for direction, v in values:
                if v is None:
                    continue
                if not counted or direction in counted:
                    flow[t] += v
                if direction in line.inward:
                    ins[t] += v
                elif direction in line.outward:
                    outs[t] += v
    return [
        AreaInterval(t, flow[t], ins[t], outs[t], area_running_fraction(fractions[t]), flagged[t])
        for t in starts
    ]


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _counts(
    influx: InfluxClient,
    devices: list[str],
    classes: Sequence[str],
    start_ms: int,
    end_ms: int,
    every: str,
    max_points: int,
) -> dict[str, Any]:
    if not devices:
        return {"series": []}
    # Flagged counts left out: a stuck counter is one that did not run (area_intervals).
    req = CountSeriesRequest(devices=devices, classes=list(classes), flags=FlagFilter("exclude"))
    req.start, req.end, req.every, req.max_points = _iso(start_ms), _iso(end_ms), every, max_points
    return count_series(influx, req)


def area_crowding(
    influx: InfluxClient,
    registry: Registry,
    area: AreaEntry,
    start: str,
    end: str,
    *,
    max_points: int = 100_000,
    now: datetime | None = None,
) -> Crowding:
    """The observed levels of `area` per interval of its own from `start` to `end`."""
    every_s = parse_every(area.interval)
    t0, t1 = _window(start, end, every_s, now)
    lines = area_lines(registry, area)
    devices = [line.device for line in lines]
    if area.kind == "street":
        answer = _counts(influx, devices, area.classes, t0, t1, area.interval, max_points)
        intervals = area_intervals(answer, lines, t0, t1, every_s)
        levels = street_levels(intervals, area.capacity, area.thresholds, area.min_running_fraction)
        return Crowding(t0, t1, area.interval, levels)
    zone = ZoneInfo(area.timezone)
    step = every_s * 1000
    reset = previous_reset(t0, zone, area.quiet_hour)
    read_from = reset - reset % step
    answer = _counts(influx, devices, area.classes, read_from, t1, area.interval, max_points)
    intervals = area_intervals(answer, lines, read_from, t1, every_s)
    levels = enclosed_levels(
        intervals,
        area.capacity,
        every_s,
        zone,
        area.quiet_hour,
        area.thresholds,
        area.min_running_fraction,
    )
    return Crowding(t0, t1, area.interval, [lv for lv in levels if lv.start_ms >= t0])


def device_crowding(
    influx: InfluxClient,
    device_id: str,
    start: str,
    end: str,
    *,
    every: str = DEVICE_EVERY,
    classes: Sequence[str] = ("pedestrian",),
    max_points: int = 100_000,
    now: datetime | None = None,
) -> Crowding:
    """One device's flow per interval, scaled by its running fraction (no capacity: no
    level; its areas have one)."""
    every_s = parse_every(every)
    t0, t1 = _window(start, end, every_s, now)
    line = AreaLine(device=device_id)
    answer = _counts(influx, [device_id], classes, t0, t1, every, max_points)
    levels = street_levels(area_intervals(answer, [line], t0, t1, every_s), None)
    return Crowding(t0, t1, every, levels)
