"""Crowding levels per interval, as pure functions over count series (no I/O: unit-tested).

A level is a fraction of the area's capacity (0.7 is 70 %):

- a street: its flow (passers-by counted in the interval) ÷ its capacity per interval;
- an enclosed area: its occupancy ÷ its capacity (persons at once). The occupancy is the ins
  minus the outs, summed from the last reset. Counters miss people and count some twice, so
  the sum drifts; two corrections keep it honest: it never goes below zero (outs beyond the
  occupancy are dropped, and how many is kept as `corrected`), and it is reset to zero at the
  area's quiet hour each day (local time, zoneinfo: the reset falls on the right instant on a
  23- or 25-hour day too), when the place is known to be (nearly) empty.

The counters' running fraction of an interval (the mean over the area's counters of the share
of the interval each ran; one that did not report counts as 0) scales the counts up: an area
whose counters ran half the interval counted about half of those who passed, and is not shown
half as busy. Below a floor (`min_running_fraction`, default 0.25) there is too little to scale
up and the interval has no level, with the reason. An enclosed area's occupancy is then carried
unchanged through the gap, and the next reset corrects whatever the gap missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_RUNNING_FRACTION = 0.25


@dataclass(frozen=True)
class AreaInterval:
    """What an area's counters counted in one interval (raw, not scaled)."""

    start_ms: int
    flow: int  # everyone counted: a street's passers-by, an enclosed area's ins and outs
    inward: int = 0
    outward: int = 0
    running_fraction: float = 1.0  # 0: no counter reported
    flagged: int = 0  # counters whose every count of the interval was flagged and left out


@dataclass(frozen=True)
class Level:
    start_ms: int
    running_fraction: float
    flow: float | None  # scaled up by the running fraction; None: too little ran
    level: float | None  # fraction of the capacity; None: see reason
    reached: float | None  # the highest threshold the level is at or above
    reason: str | None = None
    inward: float | None = None  # enclosed: scaled ins and outs
    outward: float | None = None
    occupancy: float | None = None  # enclosed: persons in the area at the interval's end
    corrected: float | None = None  # enclosed: outs dropped so the occupancy stays >= 0
    reset_from: float | None = None  # enclosed: the occupancy the quiet-hour reset dropped


def area_running_fraction(fractions: Sequence[float | None]) -> float:
    """The share of an interval an area's counters ran: their mean, a counter without a
    report counting 0 (and an area without counters 0)."""
    if not fractions:
        return 0.0
    return sum(min(1.0, max(0.0, f or 0.0)) for f in fractions) / len(fractions)


def reached(level: float | None, thresholds: Sequence[float]) -> float | None:
    """The highest threshold `level` is at or above (None: below all, or no level)."""
    if level is None:
        return None
    above = [t for t in thresholds if level >= t]
    return max(above) if above else None


def _no_level(iv: AreaInterval, floor: float) -> str:
    fraction = iv.running_fraction
    said = (
        "no counter reported"
        if fraction <= 0
        else (f"the counters ran {fraction:.0%} of the interval, below {floor:.0%}")
    )
    if iv.flagged:
        said += f" ({iv.flagged} left out: every count flagged)"
    return said


def street_levels(
    intervals: Sequence[AreaInterval],
    capacity: float | None,
    thresholds: Sequence[float] = (),
    floor: float = MIN_RUNNING_FRACTION,
) -> list[Level]:
    """Flow per interval scaled by the running fraction, and ÷ capacity (a device alone,
    capacity None: the flow without a level)."""
    out = []
    for iv in intervals:
        f = iv.running_fraction
        if f < floor:
            out.append(Level(iv.start_ms, f, None, None, None, _no_level(iv, floor)))
            continue
        flow = iv.flow / f
        level = None if capacity is None else flow / capacity
        out.append(Level(iv.start_ms, f, flow, level, reached(level, thresholds)))
    return out


def quiet_hour_instant(day: date, zone: ZoneInfo, hour: int) -> int:
    """The instant (ms since the epoch) local `day` reaches `hour`:00. An hour skipped by a
    change to summer time is reached when the clock jumps over it (02:00 on a spring-forward
    day in Amsterdam is 03:00 CEST, 01:00 UTC); an hour that happens twice, the first time."""
    local = datetime(day.year, day.month, day.day, hour, tzinfo=zone)  # fold=0
    return int(local.astimezone(UTC).timestamp() * 1000)


def previous_reset(t_ms: int, zone: ZoneInfo, hour: int) -> int:
    """The last quiet-hour instant at or before `t_ms`."""
    day = datetime.fromtimestamp(t_ms / 1000, UTC).astimezone(zone).date()
    for back in range(3):
        instant = quiet_hour_instant(day - timedelta(days=back), zone, hour)
        if instant <= t_ms:
            return instant
    raise AssertionError("a quiet hour lies within three days")  # pragma: no cover


def reset_instants(start_ms: int, end_ms: int, zone: ZoneInfo, hour: int) -> list[int]:
    """Quiet-hour instants in [start_ms, end_ms), one per local day."""
    day = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date() - timedelta(days=1)
    out: list[int] = []
    while True:
        instant = quiet_hour_instant(day, zone, hour)
        if instant >= end_ms:
            return out
        if instant >= start_ms:
            out.append(instant)
        day += timedelta(days=1)


def enclosed_levels(
    intervals: Sequence[AreaInterval],
    capacity: float,
    interval_s: int,
    zone: ZoneInfo,
    quiet_hour: int,
    thresholds: Sequence[float] = (),
    floor: float = MIN_RUNNING_FRACTION,
) -> list[Level]:
    """Occupancy and level per interval. The occupancy starts at 0 before the first interval
    (read from a quiet-hour reset on: `previous_reset`); each interval adds its scaled ins
    minus outs, clipped at 0; an interval starting at or after a quiet-hour instant (and after
    the interval before it) starts again from 0. `intervals` are consecutive and in order."""
    if not intervals:
        return []
    step = interval_s * 1000
    first = intervals[0].start_ms
    resets = reset_instants(first - step + 1, intervals[-1].start_ms + 1, zone, quiet_hour)
    out: list[Level] = []
    occupancy = 0.0
    previous_start = first - step
    for iv in intervals:
        dropped = None
        if any(previous_start < r <= iv.start_ms for r in resets):
            dropped, occupancy = occupancy, 0.0
        previous_start = iv.start_ms
        f = iv.running_fraction
        if f < floor:
            out.append(
                Level(iv.start_ms, f, None, None, None, _no_level(iv, floor), reset_from=dropped)
            )
            continue
        ins, outs = iv.inward / f, iv.outward / f
        occupancy += ins - outs
        corrected = 0.0
        if occupancy < 0:
            corrected, occupancy = -occupancy, 0.0
        level = occupancy / capacity
        out.append(
            Level(
                iv.start_ms,
                f,
                iv.flow / f,
                level,
                reached(level, thresholds),
                inward=ins,
                outward=outs,
                occupancy=occupancy,
                corrected=corrected,
                reset_from=dropped,
            )
        )
    return out
