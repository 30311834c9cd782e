"""Stuck at zero, judged by what a counter should have counted: the state behind the `stuck`
flag on counts of passers-by (`QualityChecker.flag_count`) beyond "the same count for a day".

A run of zeros is a fault when the counter should have seen people in it, not when it is long:
a city street at 4 am, or on a lockdown night, is genuinely quiet for hours, while a Queen
Street counter reading 0 through a Saturday afternoon is broken after two hours. So each count
series keeps a profile (`Profile`): per hour of the week (UTC), the last `PROFILE_WEEKS`
non-zero rates it counted (passers-by per hour counted), whose median is what it is expected to
count in that hour. A zero run's expected total is the sum, over its intervals, of that median
times the interval's length (and running fraction) times `HourScale`'s city-wide factor: how
busy the other series reporting the same hour are against their own profiles (clamped to
SCALE_MIN..SCALE_MAX), so a lockdown, a holiday or a storm that empties every street lowers
every expectation at once. The run is stuck once it has lasted `count_zero_min_s` and its
expected total reaches `count_zero_expected` (QualityConfig), or once it has lasted
`count_stuck_s` whatever it expected; then every interval of it is stuck, from its first
(`QualityChecker.take_reflagged` names the earlier ones, which the importer writes again with
the flag; the live ingest flags from the judging interval on).

Measured on the Auckland pedestrian counts (21 city-centre sites, hourly, 2019-2024; research
in /work/notes/r29, stuck.py, the same rule): expected total 30 and 2 hours flag 29,722 of the
35,152 zero hours, 25,563 of them 107 Quay Street's 25,560-hour run, and 1,011 of 205 Queen
Street's 1,106 zero hours of 2024 (weekend runs of a day and more); the zeros left unflagged
are single quiet hours and nights where fewer than 30 passers-by were expected.

A series' profile is 168 x PROFILE_WEEKS floats (2.7 KB), kept only for count series; a new
series expects nothing until it has counted each hour of the week once (a week), so until
then only the `count_stuck_s` rule can flag it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sensorpipe.quality.flags import STUCK as STUCK_FLAG

if TYPE_CHECKING:
    from sensorpipe.quality.config import QualityConfig

PROFILE_WEEKS = 4  # non-zero rates kept per hour of the week; their median is expected
HOURS_OF_WEEK = 168
HOUR_MS = 3_600_000
# 1970-01-01 was a Thursday: hours since the epoch + 72 are hours since a Monday 00:00 UTC.
_MONDAY = 72
SCALE_MIN, SCALE_MAX = 0.02, 3.0  # the city-wide factor, bounded
SCALE_SERIES = 3  # series of an hour, at least, whose ratio makes the factor
_NAN = float("nan")


def hour_of_week(t_ms: int) -> int:
    """0 (Monday 00:00 UTC) .. 167 (Sunday 23:00 UTC) of the hour holding `t_ms`."""
    return (t_ms // HOUR_MS + _MONDAY) % HOURS_OF_WEEK


class Profile:
    """A count series' last PROFILE_WEEKS non-zero rates (per hour) per hour of the week."""

    __slots__ = ("filled", "rates")

    def __init__(self) -> None:
        self.rates = array("f", [_NAN]) * (HOURS_OF_WEEK * PROFILE_WEEKS)
        self.filled = bytearray(HOURS_OF_WEEK)  # rates written per hour of the week (mod 256)

    def expected_rate(self, how: int) -> float:
        """The median of the rates kept for hour of the week `how`; 0.0 for none."""
        start = how * PROFILE_WEEKS
        kept = sorted(r for r in self.rates[start : start + PROFILE_WEEKS] if not math.isnan(r))
        if not kept:
            return 0.0
        mid = len(kept) // 2
        return kept[mid] if len(kept) % 2 else (kept[mid - 1] + kept[mid]) / 2

    def learn(self, how: int, rate: float) -> None:
        """Keep `rate` (a non-zero count per hour), in place of the oldest kept for `how`."""
        n = self.filled[how]
        self.rates[how * PROFILE_WEEKS + n % PROFILE_WEEKS] = rate
        self.filled[how] = (n + 1) % 256  # 256 is a multiple of PROFILE_WEEKS


class HourScale:
    """How busy the count series reporting an hour are against their profiles: the sum of their
    non-zero rates over the sum of their expected rates, once SCALE_SERIES have reported it;
    before that (a series early in an hour, a night when few count anyone), the latest hour's
    that had enough; 1.0 for an hour before that one or without any (a lone counter; a file
    sorted by device rather than time, whose later devices get no city-wide factor)."""

    __slots__ = ("bucket", "counted", "expected", "last", "last_bucket", "series")

    def __init__(self) -> None:
        self.bucket = self.last_bucket = -(2**62)
        self.counted = self.expected = 0.0
        self.series = 0
        self.last = 1.0

    def add(self, t_ms: int, rate: float, expected_rate: float) -> None:
        """A series counted `rate` in the hour of `t_ms` where it expected `expected_rate`."""
        bucket = t_ms // HOUR_MS
        if bucket > self.bucket:
            if self.series >= SCALE_SERIES:
                self.last, self.last_bucket = self._ratio(), self.bucket
            self.bucket, self.counted, self.expected, self.series = bucket, 0.0, 0.0, 0
        if bucket == self.bucket and rate > 0 and expected_rate > 0:
            self.counted += rate
            self.expected += expected_rate
            self.series += 1

    def factor(self, t_ms: int) -> float:
        bucket = t_ms // HOUR_MS
        if bucket == self.bucket and self.series >= SCALE_SERIES:
            return self._ratio()
        if bucket >= self.last_bucket:
            return self.last
        return 1.0

    def _ratio(self) -> float:
        return min(max(self.counted / self.expected, SCALE_MIN), SCALE_MAX)


def stuck_intervals(
    rows: Iterable[tuple[str, int, float]],
    *,
    interval_s: float = 3600.0,
    config: QualityConfig | None = None,
) -> set[tuple[str, int]]:
    """The (device, interval start) of `rows` (device, start in epoch ms, count; in time
    order, as a long file holds them) that `QualityChecker.flag_count` judges stuck, each run
    from its first interval: what an import of the same rows stores as `qc_count` "stuck",
    for counts read from files rather than InfluxDB (query.flagged_hours reads those)."""
    from sensorpipe.quality.checker import QualityChecker

    checker = QualityChecker(config)
    out: set[tuple[str, int]] = set()
    for device, t_ms, count in rows:
        flagged = checker.flag_count(device, "", "", t_ms, interval_s, count)
        out.update((device, t) for t in checker.take_reflagged())
        if STUCK_FLAG in flagged.split(","):
            out.add((device, t_ms))
    return out
