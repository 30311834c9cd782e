"""The neighbour outlier, judged: each device's hourly mean against those of the devices within
a radius, as a robust z-score (research27 §7, after CrowdQC+'s buddy check).

For one quantity and one hour, a device's value x is compared with its neighbours' values
(every other device with a registered location within `radius_m` and a mean that hour; a
device with several sensors of the quantity counts once, with their mean; reference stations
count):

    z = (x - median(neighbours)) / max(Qn(neighbours), min_scale)

and the hour is an outlier where z < z_low or z > z_high. The device itself is left out of
its neighbours (so a broken sensor cannot widen the scale it is judged by), and it is judged
only with at least `min_neighbours` of them. A reference station is never judged: it is the
yardstick.

Why Qn, not MAD x 1.4826: both have a 50 % breakdown point, but Qn has 82 % Gaussian
efficiency against MAD's 37 %, which matters with 5 to 10 neighbours; and Qn measures the
spread of the values among themselves (the k-th smallest pairwise distance), not around the
median, so it is not thrown by a skewed distribution such as PM's. CrowdQC+ uses it too
(robustbase's `Qn`: constant 2.2219 and the Croux-Rousseeuw finite-sample factors, as here).

Nothing here reads or writes storage (ingest.neighbours does): pure functions over hourly means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sensorpipe.quality.config import REFERENCE_MODEL, NeighbourConfig, model_of

# robustbase::Qn's consistency constant (1 / (sqrt(2) * qnorm(5/8))) and, for n <= 9, its
# finite-sample factors (Croux & Rousseeuw 1992), indexed by n.
QN_CONSTANT = 2.2219
_QN_SMALL = {2: 0.399, 3: 0.994, 4: 0.512, 5: 0.844, 6: 0.611, 7: 0.857, 8: 0.669, 9: 0.872}
_EARTH_RADIUS_M = 6_371_008.8


def qn_scale(values: Sequence[float]) -> float:
    """Rousseeuw and Croux's Qn of `values`, as robustbase's `Qn(x)`: the k-th smallest of the
    pairwise distances |x_i - x_j| (i < j), k = h(h-1)/2 with h = n // 2 + 1, times the
    consistency constant and the finite-sample factor. 0 for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return 0.0
    distances = sorted(abs(a - b) for i, a in enumerate(values) for b in values[i + 1 :])
    h = n // 2 + 1
    k = h * (h - 1) // 2
    if n <= 9:
        factor = _QN_SMALL[n]
    else:
        factor = n / (n + 1.4) if n % 2 else n / (n + 3.8)
    return QN_CONSTANT * distances[k - 1] * factor


def robust_z(value: float, neighbours: Sequence[float], min_scale: float) -> float | None:
    """(value - median) / max(Qn, min_scale) of the neighbours' values; None where the scale
    is 0 (the neighbours all agree exactly and no floor is set): nothing can be judged."""
    scale = max(qn_scale(neighbours), min_scale)
    if scale <= 0:
        return None
    return (value - statistics.median(neighbours)) / scale


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance between two (lat, lon) in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Place:
    """A device's registered location, and whether it is a reference station."""

    lat: float
    lon: float
    reference: bool = False


# One series' hourly mean: (device, sensor) -> value, per (quantity, hour start in epoch ms).
Means = Mapping[tuple[str, int], Mapping[tuple[str, str], float]]


@dataclass
class Verdicts:
    """What a run judged: the outliers, and what it could not judge and why."""

    # (device, sensor, quantity, hour ms) of each outlier, with its z
    outliers: dict[tuple[str, str, str, int], float] = field(default_factory=dict)
    judged: int = 0  # series-hours judged
    hours: set[int] = field(default_factory=set)  # hours with a series judged or skipped
    devices: set[str] = field(default_factory=set)  # devices judged
    too_few: int = 0  # series-hours not judged: fewer than min_neighbours
    too_few_devices: set[str] = field(default_factory=set)
    no_spread: int = 0  # series-hours not judged: the neighbours all agree, no floor
    no_location: set[str] = field(default_factory=set)  # devices without a location
    references: set[str] = field(default_factory=set)  # reference stations (never judged)

    def merge(self, other: Verdicts) -> None:
        self.outliers.update(other.outliers)
        self.judged += other.judged
        self.hours |= other.hours
        self.devices |= other.devices
        self.too_few += other.too_few
        self.too_few_devices |= other.too_few_devices
        self.no_spread += other.no_spread
        self.no_location |= other.no_location
        self.references |= other.references


def judge(
    means: Means,
    places: Mapping[str, Place],
    config: NeighbourConfig,
    nearby: Mapping[str, list[str]] | None = None,
) -> Verdicts:
    """Each series' hourly mean against its neighbours' (module docstring); `nearby`: the
    places' `neighbourhoods`, where a caller judging many days has them already."""
    out = Verdicts()
    if nearby is None:
        nearby = neighbourhoods(places, config.radius_m)
    for (quantity, hour), series in means.items():
        if quantity not in config.quantities:
            continue
        per_device: dict[str, list[float]] = {}
        for (device, _sensor), value in series.items():
            if device not in places:
                out.no_location.add(device)
                continue
            per_device.setdefault(device, []).append(value)
        device_value = {d: statistics.fmean(v) for d, v in per_device.items()}
        min_scale = config.min_scale_of(quantity)
        for (device, sensor), value in series.items():
            place = places.get(device)
            if place is None:
                continue
            if place.reference or model_of(sensor) == REFERENCE_MODEL:
                out.references.add(device)
                continue
            out.hours.add(hour)
            values = [device_value[d] for d in nearby[device] if d in device_value]
            if len(values) < config.min_neighbours:
                out.too_few += 1
                out.too_few_devices.add(device)
                continue
            z = robust_z(value, values, min_scale)
            if z is None:
                out.no_spread += 1
                continue
            out.judged += 1
            out.devices.add(device)
            if z < config.z_low or z > config.z_high:
                out.outliers[(device, sensor, quantity, hour)] = z
    return out


def neighbourhoods(places: Mapping[str, Place], radius_m: float) -> dict[str, list[str]]:
    """Per device, the other devices within `radius_m` of it."""
    ids = sorted(places)
    out: dict[str, list[str]] = {d: [] for d in ids}
    for i, a in enumerate(ids):
        pa = (places[a].lat, places[a].lon)
        for b in ids[i + 1 :]:
            if distance_m(pa, (places[b].lat, places[b].lon)) <= radius_m:
                out[a].append(b)
                out[b].append(a)
    return out
