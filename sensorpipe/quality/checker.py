"""`QualityChecker`: the flags of one reading, per quantity, as it is stored.

Stateless checks first (range, humidity, fog, clock, warm-up by the device's uptime), then the
stateful ones (stuck, spike, warm-up after a gap) with a small state per series (device,
sensor, quantity): the last time and value, the length of the run of equal values, the last
few values for the recent level, and when a warm-up began. Counts of passers-by
(`flag_count`) are series too (device, class, direction), checked for stuck and clock. A
series not seen for `forget_after_s` (observation time) is forgotten, and at most `max_series`
are kept, a device's sensor least recently seen going first: memory stays bounded whatever
devices come and go.

What a stateful check can and cannot see:
- A series is judged in the order its readings arrive. A reading older than the series' last
  one (a backlog replayed after a newer reading, a file imported out of order) gets only the
  stateless flags and leaves the state alone; a reading at the same time as the last one (a
  redelivery) gets the flags that reading got before, so rewriting the point keeps them.
- The first reading of a series (first seen, or forgotten since) opens no gap: whether a
  warm-up preceded it is unknown, unless the device's uptime says so.
- A stuck run is flagged from its N-th reading on; the readings before it were stored
  unflagged and stay so (flags are computed once, as points are written).
- With several ingest workers on a shared subscription (`[broker] shared_group`), each worker
  keeps its own state and sees a share of each device's messages: a stuck run is then seen
  only as far as one worker's share holds it (shorter runs), the recent level and the gaps are
  those of the share. The stateless checks are unaffected. Workers share nothing by design
  (ingest.service); judging a device's complete series would be a periodic check over what
  is stored (as the neighbour outlier will be), not built yet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from sensorpipe.quality import flags as F
from sensorpipe.quality.config import QualityConfig, Rules
from sensorpipe.quality.zeros import HourScale, Profile, hour_of_week

# Each flag a bit, so that a reading's flags are an integer while they are checked and their
# stored form is one lookup (`_JOINED`): the checker's inner loop runs for every value stored.
_BIT = {name: 1 << i for i, name in enumerate(F.ALL_FLAGS)}  # ALL_FLAGS is sorted
CLOCK, FOG, HUMIDITY, RANGE = _BIT[F.CLOCK], _BIT[F.FOG], _BIT[F.HUMIDITY], _BIT[F.RANGE]
SPIKE, STUCK, WARMUP = _BIT[F.SPIKE], _BIT[F.STUCK], _BIT[F.WARMUP]
_JOINED = [
    ",".join(name for name in F.ALL_FLAGS if mask & _BIT[name]) for mask in range(1 << len(_BIT))
]

# The recent level a spike is measured against: the median of this many earlier readings,
# judged once at least SPIKE_MIN_HISTORY are known. A median ignores one earlier spike.
SPIKE_WINDOW = 5
SPIKE_MIN_HISTORY = 3
# A run's intervals kept to flag once it is judged stuck (take_reflagged), at most: a minute's
# counts for a day.
PENDING_MAX = 1440


class _Series:
    """What one series remembers (about 400 bytes with its place in the checker's dicts)."""

    __slots__ = (
        "expected",
        "flags",
        "last_ms",
        "pending",
        "profile",
        "recent",
        "rules",
        "run",
        "run_from_ms",
        "value",
        "warm_from_ms",
    )

    def __init__(self, rules: Rules | None) -> None:
        self.rules = rules
        # counts only: what the series is expected to count (zeros.Profile), what its current
        # run of equal counts was expected to count, and its intervals not yet flagged
        self.profile: Profile | None = None
        self.expected = 0.0
        self.pending: list[int] = []
        self.last_ms = NEVER
        self.value = float("nan")
        self.run = 0
        self.run_from_ms = NEVER
        self.recent: list[float] = []
        self.warm_from_ms: int | None = None
        self.flags = 0  # the last reading's, without CLOCK


class _Sensor:
    """The series of one sensor on one device, kept and forgotten together."""

    __slots__ = ("last_ms", "series")

    def __init__(self) -> None:
        self.last_ms = NEVER
        self.series: dict[str, _Series] = {}


NEVER = -(2**63)


class QualityChecker:
    """The flags of readings, per series; one per ingest worker or import run.

    Not thread-safe: the ingest calls it from its writer thread, where messages become points.
    """

    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()
        self._humidity_rh = self.config.humidity_rh
        self._fog_rh = self.config.fog_rh
        self._forget_ms = int(self.config.forget_after_s * 1000)
        self._max_series = self.config.max_series
        self._rules: dict[tuple[str, str], Rules] = {}
        # by (device, sensor), least recently seen first
        self._sensors: OrderedDict[tuple[str, str], _Sensor] = OrderedDict()
        self._count = 0  # series in all
        self._newest_ms = NEVER
        self._count_stuck_ms = self.config.count_stuck_s * 1000
        self._count_stuck_nonzero_ms = self.config.count_stuck_nonzero_s * 1000
        self._zero_expected = self.config.count_zero_expected
        self._zero_min_ms = self.config.count_zero_min_s * 1000
        self._scale = HourScale()
        self._reflagged: list[int] = []

    def __len__(self) -> int:
        """How many series are remembered."""
        return self._count

    def rules(self, sensor: str, quantity: str) -> Rules:
        key = (sensor, quantity)
        rules = self._rules.get(key)
        if rules is None:
            rules = self._rules[key] = self.config.rules(sensor, quantity)
        return rules

    def flag(
        self,
        device_id: str,
        sensor: str,
        t_ms: int,
        values: Iterable[tuple[str, float]],
        *,
        humidity: float | None = None,
        uptime_s: float | None = None,
        clock_synced: bool | None = None,
    ) -> dict[str, str]:
        """The flags of one reading of `sensor` on `device_id` at `t_ms` (epoch ms): per
        quantity of `values`, the stored form (`flags.joined`), only where a flag is raised.

        `humidity`: the relative humidity measured with it (the same message or row), or None;
        `uptime_s`: the device's uptime when it took the reading, or None where unknown;
        `clock_synced`: False when the device says its clock was not synchronised."""
        key = (device_id, sensor)
        held = self._sensors.get(key)
        if held is None:
            held = self._sensors[key] = _Sensor()
        else:
            self._sensors.move_to_end(key)
        if humidity is None:
            wet = 0
        else:
            wet = (FOG if humidity >= self._fog_rh else 0) | (
                HUMIDITY if humidity >= self._humidity_rh else 0
            )
        clock = CLOCK if clock_synced is False else 0
        out: dict[str, str] = {}
        held_series = held.series
        for quantity, value in values:
            series = held_series.get(quantity)
            if series is None:
                series = held_series[quantity] = _Series(self.rules(sensor, quantity))
                self._count += 1
            rules = series.rules
            assert rules is not None
            mask = RANGE if value < rules.low or value > rules.high else 0
            if rules.humidity:
                mask |= wet
            if rules.warmup_s and uptime_s is not None and 0 <= uptime_s < rules.warmup_s:
                mask |= WARMUP
            if t_ms > series.last_ms:
                mask |= _stateful(series, rules, value, t_ms)
                series.flags = mask
            elif t_ms == series.last_ms:  # the same reading again: the flags it got
                mask = series.flags
            # else older than the last: the stateless flags only, the state left alone
            mask |= clock
            if mask:
                out[quantity] = _JOINED[mask]
        self._seen(held, t_ms)
        return out

    def flag_count(
        self,
        device_id: str,
        count_class: str,
        direction: str,
        t_ms: int,
        interval_s: float,
        count: float,
        *,
        running_fraction: float | None = None,
        clock_synced: bool | None = None,
    ) -> str:
        """The flags of one count (passers-by of a class and direction in the interval from
        `t_ms`, `interval_s` long), stored form; "" for none.

        stuck: the same count in every interval for `count_stuck_s` or more (a zero), or
        `count_stuck_nonzero_s` (any other count), from the start of the run's first interval
        to the end of this one; or a run of zeros of `count_zero_min_s` or more in which the
        series should have counted `count_zero_expected` passers-by (quality.zeros). Missing
        intervals do not end a run. An interval the counter did not run at all
        (`running_fraction` 0) counts nothing, so its zero neither continues nor ends a run.
        The run's earlier intervals, stored before it was judged, are named by
        `take_reflagged` after the call that judged it."""
        self._reflagged = []
        key = (device_id, "")  # a device's counts: "" is no sensor name (SENSOR_PATTERN)
        held = self._sensors.get(key)
        if held is None:
            held = self._sensors[key] = _Sensor()
        else:
            self._sensors.move_to_end(key)
        name = f"{count_class}/{direction}"
        series = held.series.get(name)
        if series is None:
            series = held.series[name] = _Series(None)
            self._count += 1
        mask = 0
        stuck_ms = self._count_stuck_ms if count == 0 else self._count_stuck_nonzero_ms
        if t_ms > series.last_ms and running_fraction != 0:
            hours = interval_s / 3600.0 * (1.0 if running_fraction is None else running_fraction)
            expected = self._expect(series, t_ms, count, hours)
            if count != series.value:
                series.value, series.run_from_ms = count, t_ms
                series.expected = 0.0
                series.pending = []
            series.expected += expected
            end_ms = t_ms + interval_s * 1000
            if (stuck_ms and end_ms - series.run_from_ms >= stuck_ms) or (
                count == 0
                and self._zero_expected
                and end_ms - series.run_from_ms >= self._zero_min_ms
                and series.expected >= self._zero_expected
            ):
                mask = STUCK
                self._reflagged, series.pending = series.pending, []
            elif len(series.pending) < PENDING_MAX:
                series.pending.append(t_ms)
            series.last_ms = t_ms
            series.flags = mask
        elif t_ms == series.last_ms:
            mask = series.flags
        if clock_synced is False:
            mask |= CLOCK
        self._seen(held, t_ms)
        return _JOINED[mask]

    def _expect(self, series: _Series, t_ms: int, count: float, hours: float) -> float:
        """What `series` should have counted in an interval of `hours` (counted) from `t_ms`
        when `count` is 0 (else 0.0); a non-zero count is learnt into its profile and into the
        hour's city-wide factor."""
        if not self._zero_expected or hours <= 0:
            return 0.0
        profile = series.profile
        if profile is None:
            profile = series.profile = Profile()
        how = hour_of_week(t_ms)
        rate = profile.expected_rate(how)
        if count > 0:
            counted = count / hours
            self._scale.add(t_ms, counted, rate)
            profile.learn(how, counted)
            return 0.0
        self._scale.add(t_ms, 0.0, rate)
        return rate * hours * self._scale.factor(t_ms)

    def take_reflagged(self) -> list[int]:
        """The start times (epoch ms) of the earlier intervals of the series the last
        `flag_count` call judged stuck: its run's intervals stored before it was judged, now
        stuck too (empty when the call judged no run). Asked once; the list is handed over."""
        out, self._reflagged = self._reflagged, []
        return out

    def _seen(self, held: _Sensor, t_ms: int) -> None:
        """`held` has a reading at `t_ms`: forget what is now too old, or too much."""
        if t_ms > held.last_ms:
            held.last_ms = t_ms
        if t_ms > self._newest_ms:
            self._newest_ms = t_ms
            self._forget(self._newest_ms - self._forget_ms)
        if self._count > self._max_series:
            self._forget(None)

    def _forget(self, horizon: int | None) -> None:
        """Drop the sensors not seen since `horizon` (None: as many as keep max_series). The
        least recently seen are at the front, so this stops at the first one still wanted."""
        sensors = self._sensors
        while sensors:
            key, oldest = next(iter(sensors.items()))
            if horizon is None:
                if self._count <= self._max_series:
                    return
            elif oldest.last_ms >= horizon:
                return
            del sensors[key]
            self._count -= len(oldest.series)


def _stateful(series: _Series, rules: Rules, value: float, t_ms: int) -> int:
    """The flags that depend on the readings before (warm-up after a gap, stuck, spike),
    the series' state moved on by this reading."""
    mask = 0
    # warm-up after a gap: from the first reading after it, for warmup_s.
    if rules.warmup_ms:
        if series.last_ms != NEVER and t_ms - series.last_ms > rules.gap_ms:
            series.warm_from_ms = t_ms
        if series.warm_from_ms is not None:
            if t_ms - series.warm_from_ms < rules.warmup_ms:
                mask = WARMUP
            else:
                series.warm_from_ms = None
    # stuck: the N-th equal value in a row and after.
    if value == series.value:
        series.run += 1
        at_limit = value <= rules.at_low or value >= rules.at_high
        needed = rules.stuck_readings_at_limit if at_limit else rules.stuck_readings
        if needed and series.run >= needed:
            mask |= STUCK
    else:
        series.run = 1
        series.value = value
    # spike: far above the median of the last few readings.
    if rules.spike_factor:
        recent = series.recent
        if len(recent) >= SPIKE_MIN_HISTORY:
            level = sorted(recent)[len(recent) // 2]
            if value > rules.spike_factor * level and value - level > rules.spike_step:
                mask |= SPIKE
        recent.append(value)
        if len(recent) > SPIKE_WINDOW:
            del recent[0]
    series.last_ms = t_ms
    return mask


def qc_fields(flagged: dict[str, str]) -> dict[str, str]:
    """The stored fields of a reading's flags (`qc_<quantity>`), without `qc` itself."""
    return {"qc_" + quantity: joined for quantity, joined in flagged.items()}
