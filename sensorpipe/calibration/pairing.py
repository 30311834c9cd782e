"""Hourly pairs of a sensor and its reference, the input of every fit.

A device's hourly mean counts only with at least `COMPLETENESS` (75 %, the EPA's rule) of the
readings the hour should hold; how many it should hold follows from the device's median
interval between readings (60 for a 1-minute logger, 30 for one every 2 minutes). Reference
values are stored at the start of their hour, as InfluxDB labels an hourly mean of the
device's readings (GROUP BY time(1h)): a pair is a device hour and the reference value at the
same timestamp. Each pair carries the hour's relative humidity: the device's own hourly mean
where it has one, else the reference's.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COMPLETENESS = 0.75
HOUR_MS = 3_600_000


def median_interval_ms(times_ms: Sequence[int]) -> float | None:
    """The median gap between consecutive readings (None with fewer than two)."""
    ordered = sorted(set(times_ms))
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return float(statistics.median(gaps)) if gaps else None


def minimum_count(interval_ms: float | None) -> int:
    """The readings an hour needs to count: 75 % of those expected at `interval_ms`."""
    if not interval_ms or interval_ms <= 0:
        return 1
    expected = max(1, round(HOUR_MS / interval_ms))
    return max(1, math.ceil(COMPLETENESS * expected))


@dataclass
class Pairs:
    """Hourly pairs: the hour (ms), the device, its raw hourly mean, the reference, RH."""

    hours: list[int] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    rh: list[float] = field(default_factory=list)  # NaN: no humidity for the hour
    rh_from: list[str] = field(default_factory=list)  # "device", "reference" or "none"

    def __len__(self) -> int:
        return len(self.hours)

    def humidity_sources(self) -> dict[str, int]:
        """How many pairs took their RH from the device, the reference, or had none."""
        return {k: self.rh_from.count(k) for k in ("device", "reference", "none")}

    def extend(self, other: Pairs) -> None:
        for name in ("hours", "devices", "raw", "reference", "rh", "rh_from"):
            getattr(self, name).extend(getattr(other, name))


def pair_hours(
    device: str,
    hourly: Mapping[int, tuple[float, int]],
    needed: int,
    reference: Mapping[int, float],
    device_rh: Mapping[int, float] | None = None,
    reference_rh: Mapping[int, float] | None = None,
) -> Pairs:
    """The pairs of one device: its hours (hour ms -> (mean, count)) with at least `needed`
    readings that the reference has a value for, in time order."""
    out = Pairs()
    for hour in sorted(hourly):
        mean, count = hourly[hour]
        if count < needed or hour not in reference or mean is None:
            continue
        rh, source = (device_rh or {}).get(hour), "device"
        if rh is None:
            rh, source = (reference_rh or {}).get(hour), "reference"
        out.hours.append(hour)
        out.devices.append(device)
        out.raw.append(float(mean))
        out.reference.append(float(reference[hour]))
        out.rh.append(float("nan") if rh is None else float(rh))
        out.rh_from.append("none" if rh is None else source)
    return out
