"""Forecasts from the counts stored now: the hourly counts of devices or areas read from
InfluxDB (`device_counts`, `area_counts`: what `crowd train` trains on, too) and a saved
model's forecast made at the end of the last whole hour (`forecast_now`), in the shape the
API's `forecast` field and `crowd forecast --json` give.

An area's count per hour is the sum of its devices' counts of its classes (a street: every
direction its lines count; an enclosed area: its inward directions only, so its forecast is
of the people coming in, not of its occupancy), scaled up by the counters' running fraction
like its observed levels; an hour whose counters ran less than the area's floor is missing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sensorpipe.crowd.alerts import LevelPoint
from sensorpipe.crowd.forecast import HISTORY_DAYS, Forecaster
from sensorpipe.crowd.forecaststore import FROM_TRAINING, Rolling, rolling_from_store, store
from sensorpipe.crowd.levels import reached
from sensorpipe.crowd.observed import _counts, area_intervals
from sensorpipe.crowd.series import (
    HOUR_S,
    Counts,
    CountsInputError,
    _grid,
    from_count_series,
    iso,
    parse_time,
)
from sensorpipe.ingest.errors import QueryError, StorageRejected, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import AreaEntry, Registry
from sensorpipe.query.flagged import FlagFilter
from sensorpipe.query.series import CountSeriesRequest, count_series, parse_every

log = logging.getLogger(__name__)
ENCLOSED_NOTE = (
    "an enclosed area: the forecast is of its inward flow (people coming in); occupancy "
    "forecasts are not built, so its level is null"
)
MAX_POINTS = 10**8
# A forecast starts from the latest hours' counts: with none in this many hours up to its
# origin (a counter that stopped reporting), it is not made.
STALE_AFTER_H = 3


class StaleCounts(CountsInputError):
    """No counts in the last STALE_AFTER_H hours before a forecast's origin."""


DEVICE_CLASSES = ("pedestrian",)  # a device's forecast: its pedestrians, as its observed flow


def device_counts(influx: InfluxClient, devices: Sequence[str], t0: int, t1: int) -> Counts:
    """Hourly counts of `devices` from t0 to t1 (seconds): their pedestrians, both directions
    (the flow the API's device crowding shows); flagged counts left out. CountsInputError
    where none is stored."""
    answers = []
    for device in devices:
        req = CountSeriesRequest(
            devices=[device], start=iso(t0), end=iso(t1), every="1h", max_points=MAX_POINTS,
            classes=list(DEVICE_CLASSES), flags=FlagFilter("exclude"),
        )  # fmt: skip
        answers.append(count_series(influx, req))
    try:
        return from_count_series(answers)
    except CountsInputError:
        raise CountsInputError(
            f"no pedestrian counts stored for {', '.join(devices)} from {iso(t0)} to "
            f"{iso(t1)}: import or send its counts (`sensorpipe query counts --device "
            f"{devices[0]}` shows what is stored)"
        ) from None


def area_counts(
    influx: InfluxClient, registry: Registry, area_ids: Sequence[str], t0: int, t1: int
) -> Counts:
    """Hourly counts of the areas from t0 to t1 (seconds): see the module's docstring."""
    from sensorpipe.crowd.areas import area_lines

    rows: dict[tuple[int, str], float] = {}
    for area_id in area_ids:
        area = registry.areas.get(area_id)
        if area is None:
            raise CountsInputError(
                f"area {area_id!r} is no longer in the registry: train its model again"
            )
        lines = area_lines(registry, area)
        devices = [line.device for line in lines]
        if not devices:
            raise CountsInputError(
                f"area {area_id} has no counting devices: its polygon holds none with a "
                "location (give them one with `sensorpipe devices edit ID --lat .. --lon ..`), "
                "or give it --line DEVICE (`sensorpipe areas add --replace`)"
            )
        answer = _counts(influx, devices, area.classes, t0 * 1000, t1 * 1000, "1h", MAX_POINTS)
        for iv in area_intervals(answer, lines, t0 * 1000, t1 * 1000, HOUR_S):
            ran = iv.running_fraction
            if ran <= 0 or ran < area.min_running_fraction:
                continue
            counted = iv.inward if area.kind == "enclosed" else iv.flow
            rows[(iv.start_ms // 1000, area_id)] = counted / ran
    if not rows:
        raise CountsInputError(
            f"no counts stored for {', '.join(area_ids)} from {iso(t0)} to {iso(t1)} (or their "
            "counters ran less than the area's min_running_fraction)"
        )
    return _grid(rows, "area")


def extend(counts: Counts, t: int) -> Counts:
    """The counts on a grid that runs to the hour starting at `t` (missing hours NaN)."""
    more = counts.row(t) + 1 - counts.hours
    if more <= 0:
        return counts
    pad = np.full((more, counts.values.shape[1]), np.nan)
    return Counts(counts.start, np.vstack([counts.values, pad]), counts.names, counts.kind)


def last_whole_hour(now_s: float) -> int:
    """The start of the last hour that has ended (the forecasts' origin hour)."""
    return int(now_s) // HOUR_S * HOUR_S - HOUR_S


def history_start(origin: int) -> int:
    return origin - HISTORY_DAYS * 86400


def forecast_points(
    fc: Forecaster,
    counts: Counts,
    name: str,
    origin: int,
    area: AreaEntry | None = None,
    rolling: Mapping[int, Rolling] | None = None,
) -> dict[str, Any]:
    """The forecast of `name` made at the end of the hour `origin`: the API's `forecast`
    shape. A street area's points have levels (flow ÷ its capacity per hour); a device's and
    an enclosed area's levels are null. A horizon in `rolling` (crowd.forecaststore: from the
    forecasts kept as made) has the rolling interval, the others the one from training; each
    point's `interval` says which."""
    if name not in counts.names:
        raise CountsInputError(
            f"no counts of {name} in the {HISTORY_DAYS} days up to {iso(origin + HOUR_S)}: "
            "nothing to forecast from"
        )
    col = counts.names.index(name)
    recent = [counts.row(origin - k * HOUR_S) for k in range(STALE_AFTER_H)]
    if not any(0 <= r < counts.hours and not math.isnan(counts.values[r, col]) for r in recent):
        seen = [
            r
            for r in range(min(counts.row(origin), counts.hours - 1), -1, -1)
            if not math.isnan(counts.values[r, col])
        ]
        last = f"the last of {iso(counts.time(seen[0]))}" if seen else "none stored"
        raise StaleCounts(
            f"no counts of {name} in the {STALE_AFTER_H} hours up to {iso(origin + HOUR_S)} "
            f"({last}): a forecast starts from the latest hours' counts; is its counter "
            "reporting?"
        )
    out = fc.forecast(extend(counts, origin), origin)
    per_hour = None
    if area is not None and area.kind == "street":
        # capacity is per interval: an hour holds 3600 / interval of them
        per_hour = area.capacity * HOUR_S / parse_every(area.interval)
    points = []
    for h in sorted(out):
        f, lo, hi = (float(a[col]) for a in out[h])
        interval = FROM_TRAINING
        kept = (rolling or {}).get(h)
        if kept is not None and not math.isnan(f):
            (lo, hi), interval = kept.bounds(f), kept.describe()
        point: dict[str, Any] = {
            "horizon": f"{h}h",
            "time": iso(origin + h * HOUR_S),
            "flow": round(f, 1),
            "low": round(lo, 1),
            "high": round(hi, 1),
            "level": None,
            "level_low": None,
            "level_high": None,
            "interval": interval,
        }
        if per_hour is not None and not math.isnan(f):
            point |= {
                "level": round(f / per_hour, 4),
                "level_low": round(lo / per_hour, 4),
                "level_high": round(hi / per_hour, 4),
            }
        points.append(point)
    return {
        "made_at": iso(origin + HOUR_S),
        "trained_until": iso(fc.trained_until + HOUR_S),
        "points": points,
    }


def reached_by(points: list[dict[str, Any]], thresholds: Sequence[float]) -> dict[str, Any]:
    """Per horizon the highest threshold its level (and its interval's top) reaches."""
    return {
        p["horizon"]: {
            "level": reached(p["level"], thresholds),
            "high": reached(p["level_high"], thresholds),
        }
        for p in points
    }


class SavedForecasts:
    """The alerts job's forecast source (`alertjob.ForecastSource`): a street area's forecast
    levels from its saved model, made at the end of the last whole hour, as LevelPoints of
    kind "forecast" (computed once per origin hour, and again when its model was retrained),
    each forecast kept in InfluxDB as it is made (crowd.forecaststore).
    An area without a model, an enclosed one (no level) or one whose counts cannot be read has
    none; the reason is logged once."""

    def __init__(
        self,
        models: Any,
        counts: Callable[[Registry | None, list[str], int, int], Counts],
        registry: Callable[[], Registry | None] = lambda: None,
        *,
        client: Callable[[], InfluxClient] | None = None,
    ) -> None:
        """`models`: a crowd.saved.ModelCache; `counts(registry, areas, t0, t1)`: their hourly
        counts (`area_counts` on InfluxDB); `client`: the InfluxDB each forecast is kept in
        as it is made, and its rolling interval read from (crowd.forecaststore; None: not
        kept, the interval from training)."""
        self.models = models
        self._counts = counts
        self._registry = registry
        self._client = client
        self._done: dict[tuple[str, int], tuple[Any, list[LevelPoint]]] = {}
        self._told: set[tuple[str, str]] = set()

    def __call__(self, area_id: str, area: AreaEntry, now_ms: int) -> list[LevelPoint]:
        if area.kind != "street":
            self._tell(
                area_id,
                f"no forecast alerts for {area_id}: an enclosed area's level is its occupancy, "
                "which the forecast (of its inward flow) does not give",
            )
            return []
        origin = last_whole_hour(now_ms / 1000)
        key = (area_id, origin)
        stamp = self.models.stamp("area", area_id)
        hit = self._done.get(key)
        if hit is None or hit[0] != stamp:
            self._done = {k: v for k, v in self._done.items() if k[1] == origin}
            hit = (stamp, self._points(area_id, area, origin))
            self._done[key] = hit
        return hit[1]

    def _points(self, area_id: str, area: AreaEntry, origin: int) -> list[LevelPoint]:
        from sensorpipe.crowd.saved import ModelsError

        try:
            found = self.models.get("area", area_id)
            if found is None:
                self._tell(
                    area_id,
                    f"no forecast alerts for {area_id}: no model trained for it in "
                    f"{self.models.models_dir}; train one with "
                    f"`sensorpipe crowd train --area {area_id} --models {self.models.models_dir}`",
                )
                return []
            saved, fc = found
            counts = self._counts(
                self._registry(), saved.names, history_start(origin), origin + HOUR_S
            )
            rolling = None
            if self._client is not None:
                rolling = rolling_from_store(self._client(), "area", area_id, counts, origin)
            answer = forecast_points(fc, counts, area_id, origin, area, rolling)
            self._keep(area_id, answer)
        except (ModelsError, ValueError, KeyError, OSError) as exc:
            self._tell(area_id, f"no forecast alerts for {area_id}: {exc}")
            return []
        except (QueryError, StorageUnavailable) as exc:  # InfluxDB away: next hour again
            self._tell(area_id, f"no forecast alerts for {area_id} this hour: {exc}")
            return []
        made = (origin + HOUR_S) * 1000
        # A point's time is the start of the hour it forecasts: the 1 h forecast is of the
        # hour from `made`, and it is 1 h ahead (the hour's end), not 0.
        return [
            LevelPoint(
                t, p["level"], "forecast", made, int(p["horizon"].removesuffix("h")) * HOUR_S
            )
            for p in answer["points"]
            if p["level"] is not None
            for t in [parse_time(p["time"]) * 1000]
        ]

    def _keep(self, area_id: str, answer: dict[str, Any]) -> None:
        """Store the forecast as made; where InfluxDB refuses it, the alerts go on."""
        if self._client is None:
            return
        try:
            store(self._client(), "area", area_id, answer)
        except (StorageUnavailable, StorageRejected) as exc:
            self._tell(area_id, f"the forecast of {area_id} is not kept this hour: {exc}")

    def _tell(self, area_id: str, message: str) -> None:
        if (area_id, message) not in self._told:
            self._told.add((area_id, message))
            log.warning("%s", message)


def saved_forecasts(
    models: str | None, registry_path: str | Path, client: Callable[[], InfluxClient]
) -> SavedForecasts | None:
    """The ingest's forecast source for its alerts job ([alerts] models of ingest.toml):
    None where no models folder is set, or the `forecast` extra is missing (logged)."""
    import importlib.util

    from sensorpipe.crowd.saved import ModelCache
    from sensorpipe.protocol.registry import load_registry

    if not models:
        return None
    if any(importlib.util.find_spec(m) is None for m in ("lightgbm", "holidays")):
        log.warning("no forecast alerts: pip install 'sensorpipe[forecast]' for them")
        return None

    def counts(registry: Registry | None, areas: list[str], t0: int, t1: int) -> Counts:
        assert registry is not None
        return area_counts(client(), registry, areas, t0, t1)

    return SavedForecasts(
        ModelCache(Path(models)),
        counts,
        lambda: load_registry(registry_path, must_exist=True),
        client=client,
    )
