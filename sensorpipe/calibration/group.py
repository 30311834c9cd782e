"""Group calibration as RIVM's Samen Meten does it, for sensors that do not stand beside a
reference station (the `group` method).

Each hour the mean of a group of comparable sensors (one sensor model; the devices given, or
those registered within a distance of the station) is compared with the reference station's
value of that hour; the hour's factor, reference ÷ group mean, multiplies the values of that
hour of the group's sensors and of similar sensors nearby (those it is assigned to). An hour
gets no factor, and its values stay raw with the reason, where:

- the reference has no value for it;
- fewer than `min_members` members have a complete hourly mean (>= 75 %, as a fit counts it);
- it is foggy: relative humidity >= `FOG_RH` (98 %) at the station or in the group's mean
  (RIVM warns that calibration is unreliable in fog; PM readings are unusable there);
- the group's mean is not above zero (no ratio).

The factors are computed once (`calibrate group`, `calibrate update`) and stored in the
calibration book, so reading a calibrated value is a look-up. Statistics are leave one device
out: each member's hours are calibrated with factors computed from the other members alone
(with the same rules), and those values are compared with the reference, as the other
methods' out-of-fold figures are.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sensorpipe.calibration.stats import agreement

FOG_RH = 98.0  # % relative humidity: fog, PM readings unusable
# The fewest members with a complete hour for that hour's factor. RIVM's own number was not
# found in its published descriptions; 3 keeps one odd sensor from setting the ratio alone.
MIN_MEMBERS = 3
WITHIN_KM = 10.0  # default radius around the station in which the group is chosen
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class HourFactor:
    """One hour's factor (None: none, `reason` says why), and what it came from."""

    hour_ms: int
    factor: float | None
    members: int
    group_mean: float | None
    reference: float | None
    reason: str = ""


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle (haversine) distance between two points, in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def hour_factor(
    hour: int,
    means: Iterable[float],
    reference: float | None,
    station_rh: float | None,
    group_rh: Iterable[float],
    min_members: int = MIN_MEMBERS,
) -> HourFactor:
    """The factor of one hour from the members' complete hourly means, or why there is none."""
    values = list(means)
    rhs = list(group_rh)
    n = len(values)
    mean = statistics.fmean(values) if values else None
    if reference is None:
        return HourFactor(hour, None, n, mean, None, "no reference value for the hour")
    if station_rh is not None and station_rh >= FOG_RH:
        reason = f"fog: RH {station_rh:.1f} % at the station (>= {FOG_RH:g} %)"
        return HourFactor(hour, None, n, mean, reference, reason)
    if rhs and statistics.fmean(rhs) >= FOG_RH:
        reason = f"fog: the group's mean RH {statistics.fmean(rhs):.1f} % (>= {FOG_RH:g} %)"
        return HourFactor(hour, None, n, mean, reference, reason)
    if n < min_members:
        reason = f"{n} members with a complete hour (at least {min_members} needed)"
        return HourFactor(hour, None, n, mean, reference, reason)
    assert mean is not None
    if mean <= 0:
        return HourFactor(hour, None, n, mean, reference, "the group's mean is not above zero")
    return HourFactor(hour, reference / mean, n, mean, reference)


@dataclass
class GroupHours:
    """What the factors are computed from: each member's complete hourly means (device ->
    hour -> mean), the reference's hourly values, the station's hourly RH, and each member's
    hourly RH."""

    members: dict[str, dict[int, float]]
    reference: dict[int, float]
    station_rh: dict[int, float]
    member_rh: dict[str, dict[int, float]]

    def without(self, device: str) -> GroupHours:
        """The same hours with one member left out."""
        members = {d: m for d, m in self.members.items() if d != device}
        return GroupHours(members, self.reference, self.station_rh, self.member_rh)


def hourly_factors(
    group: GroupHours, min_members: int = MIN_MEMBERS, hours: Iterable[int] | None = None
) -> list[HourFactor]:
    """The factor of every hour (those given, else every hour a member or the reference has)."""
    members = group.members
    if hours is None:
        hours = set(group.reference).union(*(set(m) for m in members.values()))
    out = []
    for hour in sorted(set(hours)):
        having = [d for d, m in members.items() if hour in m]
        out.append(
            hour_factor(
                hour,
                [members[d][hour] for d in having],
                group.reference.get(hour),
                group.station_rh.get(hour),
                [group.member_rh[d][hour] for d in having if hour in group.member_rh.get(d, {})],
                min_members,
            )
        )
    return out


@dataclass
class LeaveOneOut:
    """Each member's hours calibrated with the factors of the other members."""

    devices: list[str]
    hours: list[int]
    raw: list[float]
    calibrated: list[float]
    reference: list[float]


def leave_one_out(group: GroupHours, min_members: int = MIN_MEMBERS) -> LeaveOneOut:
    """Every member hour that gets a factor from the group without that member."""
    out = LeaveOneOut([], [], [], [], [])
    for device in sorted(group.members):
        own = group.members[device]
        for f in hourly_factors(group.without(device), min_members, own):
            if f.factor is None or f.reference is None:
                continue
            out.devices.append(device)
            out.hours.append(f.hour_ms)
            out.raw.append(own[f.hour_ms])
            out.calibrated.append(own[f.hour_ms] * f.factor)
            out.reference.append(f.reference)
    return out


def group_statistics(loo: LeaveOneOut, quantity: str) -> dict[str, Any]:
    """The statistics a group calibration stores and prints: the members' raw hourly means and
    their leave-one-device-out calibrated values against the reference, over the same hours,
    pooled and per member."""
    per_device = {}
    for device in sorted(set(loo.devices)):
        keep = [i for i, d in enumerate(loo.devices) if d == device]
        ref = [loo.reference[i] for i in keep]
        per_device[device] = {
            "raw": agreement([loo.raw[i] for i in keep], ref, quantity),
            "calibrated": agreement([loo.calibrated[i] for i in keep], ref, quantity),
        }
    return {
        "n_pairs": len(loo.hours),
        "raw": agreement(loo.raw, loo.reference, quantity),
        "calibrated": agreement(loo.calibrated, loo.reference, quantity),
        "calibrated_is": "leave-one-device-out",
        "cv": {},
        "per_device": per_device,
    }


def reasons(factors: Iterable[HourFactor]) -> dict[str, int]:
    """How many hours got a factor, and how many did not for each kind of reason."""
    out: dict[str, int] = {}
    for f in factors:
        key = "factor" if f.factor is not None else f.reason.split(":")[0].split(" (")[0]
        if key[:1].isdigit():
            key = "too few members"
        out[key] = out.get(key, 0) + 1
    return out
