"""`QualityChecker`: the flags of one reading, per quantity, as it is stored.

Stateless checks first (range, humidity, fog, clock, warm-up by the device's uptime), then the
stateful ones (stuck, spike, warm-up after a gap) with a small state per series (device,
sensor, quantity): the last time and value, the length of the run of equal values, the last
few values for the recent level, and when a warm-up began. A series not seen for
`forget_after_s` (observation time) is forgotten, and at most `max_series` are kept, the least
recently seen going first: memory stays bounded whatever devices come and go.

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
  (ingest.service); a device's complete series is judged again where it is stored (the
  periodic checks, not in this module).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from sensorpipe.quality import flags as F
from sensorpipe.quality.config import QualityConfig, Rules

# The recent level a spike is measured against: the median of this many earlier readings,
# judged once at least SPIKE_MIN_HISTORY are known. A median ignores one earlier spike.
SPIKE_WINDOW = 5
SPIKE_MIN_HISTORY = 3


class _Series:
    """What one series remembers (about 150 bytes)."""

    __slots__ = ("flags", "last_ms", "recent", "run", "value", "warm_from_ms")

    def __init__(self) -> None:
        self.last_ms = -(2**63)
        self.value = float("nan")
        self.run = 0
        self.recent: list[float] = []
        self.warm_from_ms: int | None = None
        self.flags: list[str] = []


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
        self._series: OrderedDict[tuple[str, str, str], _Series] = OrderedDict()
        self._newest_ms = -(2**63)

    def __len__(self) -> int:
        """How many series are remembered."""
        return len(self._series)

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
        out: dict[str, str] = {}
        for quantity, value in values:
            raised = self._one(device_id, sensor, quantity, value, t_ms, humidity, uptime_s)
            if clock_synced is False:
                raised.append(F.CLOCK)
            if raised:
                out[quantity] = ",".join(sorted(set(raised)))
        if t_ms > self._newest_ms:
            self._newest_ms = t_ms
            self._forget()
        return out

    def _one(
        self,
        device_id: str,
        sensor: str,
        quantity: str,
        value: float,
        t_ms: int,
        humidity: float | None,
        uptime_s: float | None,
    ) -> list[str]:
        rules = self.rules(sensor, quantity)
        raised: list[str] = []
        if value < rules.low or value > rules.high:
            raised.append(F.RANGE)
        if rules.humidity and humidity is not None:
            if humidity >= self._fog_rh:
                raised.append(F.FOG)
            if humidity >= self._humidity_rh:
                raised.append(F.HUMIDITY)
        if rules.warmup_s and uptime_s is not None and 0 <= uptime_s < rules.warmup_s:
            raised.append(F.WARMUP)
        key = (device_id, sensor, quantity)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
            if len(self._series) > self._max_series:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
        if t_ms < series.last_ms:  # older than the last: stateless flags only
            return raised
        if t_ms == series.last_ms:  # the same reading again: the flags it got
            return list(series.flags)
        self._stateful(series, rules, value, t_ms, raised)
        series.flags = raised
        return raised

    @staticmethod
    def _stateful(
        series: _Series, rules: Rules, value: float, t_ms: int, raised: list[str]
    ) -> None:
        first = series.last_ms == -(2**63)
        # warm-up after a gap: from the first reading after it, for warmup_s.
        if rules.warmup_s:
            if not first and t_ms - series.last_ms > rules.gap_s * 1000:
                series.warm_from_ms = t_ms
            if series.warm_from_ms is not None:
                if t_ms - series.warm_from_ms < rules.warmup_s * 1000:
                    if F.WARMUP not in raised:
                        raised.append(F.WARMUP)
                else:
                    series.warm_from_ms = None
        # stuck: the N-th equal value in a row and after.
        series.run = series.run + 1 if value == series.value else 1
        at_limit = (
            value <= rules.low + rules.limit_band or value >= rules.high - rules.limit_band
        )
        needed = rules.stuck_readings_at_limit if at_limit else rules.stuck_readings
        if needed and series.run >= needed:
            raised.append(F.STUCK)
        # spike: far above the median of the last few readings.
        recent = series.recent
        if rules.spike_factor and len(recent) >= SPIKE_MIN_HISTORY:
            level = sorted(recent)[len(recent) // 2]
            if value > rules.spike_factor * level and value - level > rules.spike_step:
                raised.append(F.SPIKE)
        recent.append(value)
        if len(recent) > SPIKE_WINDOW:
            del recent[0]
        series.value = value
        series.last_ms = t_ms

    def _forget(self) -> None:
        """Drop the series not seen for `forget_after_s` before the newest reading: the least
        recently seen are at the front, so this stops at the first one still wanted."""
        horizon = self._newest_ms - self._forget_ms
        series = self._series
        while series:
            key, oldest = next(iter(series.items()))
            if oldest.last_ms >= horizon:
                return
            del series[key]


def qc_fields(flagged: dict[str, str]) -> dict[str, str]:
    """The stored fields of a reading's flags (`qc_<quantity>`), without `qc` itself."""
    return {"qc_" + quantity: joined for quantity, joined in flagged.items()}
