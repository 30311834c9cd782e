"""Forecasts kept as they are made, in InfluxDB (measurement `crowd_forecast`, see
protocol.storage), and the rolling interval they give once enough of them have been observed.

The ingest's alerts job stores each street area's forecast once per origin hour (again after a
retraining: the same points, overwritten). A point is keyed by its series, its horizon and the
hour it forecasts, so storing the same origin hour again (a second run, a restart) overwrites
it instead of adding one. Like the counts, they are kept as long as the database keeps data.

The rolling interval: the scaled errors (observed − forecast) ÷ √(forecast + 1) of a series'
stored forecasts of one horizon over the last 28 days, their 10 % and 90 % quantiles, scaled
back around a new forecast (never below 0), where at least 14 days' hours of them were
observed; else the trained split-conformal interval. No peeking: only forecasts of hours that
ended by the origin (the end of the last whole hour) and whose count was read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorpipe.crowd.series import HOUR_S, Counts, parse_time
from sensorpipe.ingest.errors import QueryError, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.ingest.lineprotocol import FieldValue, Point, to_line
from sensorpipe.protocol.storage import CROWD_FORECAST

log = logging.getLogger(__name__)
ROLLING_DAYS = 28  # the window of stored forecasts the rolling interval is taken from
MIN_DAYS = 14  # observed hours of them it needs at least, in days (14 × 24 hours)
COVERAGE = 0.8  # of the interval, as the trained one's
FROM_TRAINING = "from training"

# horizon (hours) -> start of the hour forecast (s) -> the forecast
Stored = dict[int, dict[int, float]]


@dataclass(frozen=True)
class Rolling:
    """A horizon's rolling interval: the scaled errors' quantiles and how many there were."""

    low: float
    high: float
    n: int

    def describe(self) -> str:
        return f"rolling {ROLLING_DAYS} days (n={self.n})"

    def bounds(self, forecast: float) -> tuple[float, float]:
        scale = math.sqrt(forecast + 1)
        return max(0.0, forecast + self.low * scale), forecast + self.high * scale


def _series_tag(kind: str) -> str:
    return "area" if kind == "area" else "device_id"


def forecast_lines(kind: str, name: str, answer: Mapping[str, Any]) -> list[str]:
    """The line protocol of a forecast in the API's shape (crowd.live.forecast_points) of a
    device or an area: one point per horizon (none for a horizon without a number)."""
    made = parse_time(answer["made_at"]) * 1000
    trained = parse_time(answer["trained_until"]) * 1000
    lines = []
    for p in answer["points"]:
        numbers = (float(p["flow"]), float(p["low"]), float(p["high"]))
        if not all(math.isfinite(v) for v in numbers):
            continue
        fields: dict[str, FieldValue] = {
            "forecast": numbers[0],
            "low": numbers[1],
            "high": numbers[2],
            "interval": str(p.get("interval", FROM_TRAINING)),
            "made_at": made,
            "trained_until": trained,
        }
        tags = {_series_tag(kind): name, "horizon": p["horizon"]}
        lines.append(to_line(Point(CROWD_FORECAST, tags, fields, parse_time(p["time"]) * 1000)))
    return lines


def store(influx: InfluxClient, kind: str, name: str, answer: Mapping[str, Any]) -> None:
    """Keep a forecast as it was made (the same origin hour again: the same points)."""
    influx.write(forecast_lines(kind, name, answer))


def stored(influx: InfluxClient, kind: str, name: str, t0: int, t1: int) -> Stored:
    """The stored forecasts of a device or an area of the hours starting from t0 to t1
    (seconds, both included), per horizon."""
    where = (
        f"{identifier(_series_tag(kind))} = {string_literal(name)} "
        f"AND time >= {int(t0) * 1000}ms AND time <= {int(t1) * 1000}ms"
    )
    q = f'SELECT "forecast" FROM {identifier(CROWD_FORECAST)} WHERE {where} GROUP BY "horizon"'
    out: Stored = {}
    for series in influx.query(q):
        horizon = series.get("tags", {}).get("horizon", "")
        if not horizon.endswith("h") or not horizon[:-1].isdigit():
            continue
        hours = out.setdefault(int(horizon[:-1]), {})
        for t_ms, forecast in series["values"]:
            if forecast is not None:
                hours[int(t_ms) // 1000] = float(forecast)
    return out


def rolling(forecasts: Stored, counts: Counts, name: str, origin: int) -> dict[int, Rolling]:
    """Per horizon, the rolling interval of `name` for a forecast made at the end of the hour
    `origin`, from the stored `forecasts` and the observed `counts`: only hours forecast that
    started in the 28 days up to `origin` (so ended by the forecast's making) with a count;
    a horizon with fewer than 14 × 24 of them has none."""
    if name not in counts.names:
        return {}
    col = counts.names.index(name)
    tail = (1 - COVERAGE) / 2
    out = {}
    for h, by_hour in forecasts.items():
        errors = []
        for t, f in by_hour.items():
            if not origin - ROLLING_DAYS * 86400 < t <= origin:
                continue
            row = counts.row(t)
            if t % HOUR_S or not 0 <= row < counts.hours or f < 0:
                continue
            observed = float(counts.values[row, col])
            if not math.isnan(observed):
                errors.append((observed - f) / math.sqrt(f + 1))
        if len(errors) >= MIN_DAYS * 24:
            low, high = np.quantile(errors, [tail, 1 - tail])
            out[h] = Rolling(float(low), float(high), len(errors))
    return out


def rolling_from_store(
    influx: InfluxClient, kind: str, name: str, counts: Counts, origin: int
) -> dict[int, Rolling]:
    """`rolling` of the forecasts stored in InfluxDB; where they cannot be read, none (logged):
    the forecast keeps the interval from training rather than being lost."""
    try:
        kept = stored(influx, kind, name, origin - ROLLING_DAYS * 86400 + HOUR_S, origin)
    except (QueryError, StorageUnavailable) as exc:
        log.warning("the kept forecasts of %s %s cannot be read (%s): its interval is "
                    "the one from training", kind, name, exc)  # fmt: skip
        return {}
    return rolling(kept, counts, name, origin)
