"""Direct per-horizon forecasts of hourly counts: one LightGBM model per horizon (1 to 12 h),
trained on the square root of the counts, with split-conformal prediction intervals.

What the research for issue 29 measured on the Auckland counts (train 2019-2023 with the
COVID lockdowns left out, test 2024) chose each part: direct models beat a recursive one at
3 h; the sqrt target beat raw, log1p, ratio and Poisson targets; training on 2019-2023 less
the lockdowns beat 2022-2023 and beat keeping or down-weighting the lockdowns; conformal
intervals (residuals / sqrt(forecast + 1) of a model trained without the last 182 days,
scored on them) covered 81 % for a nominal 80 %, LightGBM's quantile objectives only 77 %.
The default size (500 trees, 127 leaves) beat the earlier 600 trees of 63 leaves on two test
years (2023 and 2024, each trained on the years before it); weighting recent years more did
not help at 3 h in 2024 and is not done.

Hours flagged stuck or missing are never training targets and never fed as zeros (NaN).
LightGBM and `holidays` are the optional extra `forecast`: only this module imports LightGBM,
and only when a model is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sensorpipe.crowd.features import (
    CATEGORICAL,
    FUTURE,
    NAMES,
    Calendar,
    Prepared,
    build,
    calendar,
)
from sensorpipe.crowd.series import HOUR_S, Counts, clean

# Auckland's COVID-19 alert levels 3 and 4 (and the weeks counts took to come back), local
# dates [from, to): left out of training on the Auckland counts.
NZ_LOCKDOWNS = (
    ("2020-03-20", "2020-06-08"),
    ("2020-08-12", "2020-09-07"),
    ("2021-02-14", "2021-03-07"),
    ("2021-08-17", "2022-01-23"),
)
PRESETS = {"nz-lockdowns": NZ_LOCKDOWNS}
# What a refresh reads: four weeks of seasonal lags, and as many again for the stuck-at-zero
# rule to learn each hour of the week.
HISTORY_DAYS = 56

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class Settings:
    """LightGBM's settings (the default: the size `SIZES["default"]`), and the interval's."""

    trees: int = 500  # boosting rounds
    learning_rate: float = 0.05  # shrinkage per round
    leaves: int = 127  # leaves per tree
    min_leaf: int = 100  # hours at least in a leaf
    threads: int = 1  # LightGBM's threads
    calibration_days: int = 182  # the last days of training (at most a quarter): calibration
    coverage: float = 0.8  # of the prediction interval
    seed: int = 29  # bagging's and feature sampling's


# Named model sizes (`--size`): trees, learning rate, leaves and the least hours in a leaf.
# Measured on the Auckland counts (docs/forecasts.md): "default" forecasts better than "small"
# (the size before issue 29's acceptance) in about the same CPU time; "large" a little better
# still, in about 1.7 times default's.
SIZES: dict[str, dict[str, Any]] = {
    "small": {"trees": 600, "learning_rate": 0.05, "leaves": 63, "min_leaf": 50},
    "default": {"trees": 500, "learning_rate": 0.05, "leaves": 127, "min_leaf": 100},
    "large": {"trees": 1000, "learning_rate": 0.04, "leaves": 127, "min_leaf": 100},
}


def sized(size: str = "default", **override: Any) -> Settings:
    """The settings of a named size, with `override` (e.g. trees=300; None keeps the size's)."""
    return Settings(**(SIZES[size] | {k: v for k, v in override.items() if v is not None}))


@dataclass
class Where:
    """Where the counts are: the local time zone and the country (ISO 3166) whose public
    holidays count (subdiv: a region of it with its own, e.g. AUK)."""

    timezone: str
    country: str | None
    subdiv: str | None = None

    def calendar(self, start: int, hours: int) -> Calendar:
        return calendar(start, hours, self.timezone, self.country, self.subdiv)


def periods(spans: Sequence[tuple[str, str]], timezone: str) -> list[tuple[int, int]]:
    """Local dates [from, to) as UTC seconds."""
    zone = ZoneInfo(timezone)

    def at(d: str) -> int:
        return int(datetime.combine(date.fromisoformat(d), time(), zone).timestamp())

    return [(at(a), at(b)) for a, b in spans]


@dataclass
class HorizonModel:
    hours: int
    booster: Any
    low: float  # residual / sqrt(forecast + 1) quantiles of the calibration days
    high: float


@dataclass
class Forecaster:
    names: list[str]
    where: Where
    trained_until: int
    models: dict[int, HorizonModel] = field(default_factory=dict)
    threads: int = 1
    # seconds each horizon's training took: the interval's model and the forecasting model
    train_seconds: dict[int, dict[str, float]] = field(default_factory=dict)

    def predict(
        self, p: Prepared, names: Sequence[str], targets: np.ndarray, h: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forecast, low, high), each (len(targets), series) for the rows `targets` of `p`,
        made h hours before each."""
        model = self.models[h]
        x = build(p, targets, h)
        code = {n: i for i, n in enumerate(self.names)}
        col = np.array([code.get(n, np.nan) for n in names], dtype=float)
        x[:, NAMES.index("series")] = np.tile(col, len(targets))
        f = _unsqrt(model.booster.predict(x, num_threads=self.threads)).reshape(len(targets), -1)
        scale = np.sqrt(f + 1)
        return f, np.clip(f + model.low * scale, 0, None), f + model.high * scale

    def forecast(
        self, counts: Counts, origin: int
    ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each horizon's (forecast, low, high) per series, made at `origin` from the counts of
        the HISTORY_DAYS up to it (later ones are not read)."""
        known = counts.until(origin)
        skip = max(0, known.hours - HISTORY_DAYS * 24)
        known = Counts(known.time(skip), known.values[skip:], known.names, known.kind)
        cal = self.where.calendar(known.start, known.hours + FUTURE)
        inputs, _ = clean(known.values, cal.hour_of_week[: known.hours])
        p = Prepared(inputs, cal)
        row = known.row(origin)
        out = {}
        for h in self.models:
            f, lo, hi = self.predict(p, known.names, np.array([row + h]), h)
            out[h] = (f[0], lo[0], hi[0])
        return out


def _unsqrt(pred: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(pred, 0, None) ** 2)


def _fit(x: np.ndarray, y: np.ndarray, s: Settings) -> Any:
    import lightgbm as lgb

    params = {
        "objective": "regression",
        "learning_rate": s.learning_rate,
        "num_leaves": s.leaves,
        "min_data_in_leaf": s.min_leaf,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.8,
        "num_threads": s.threads,
        "seed": s.seed,
        "verbose": -1,
    }
    data = lgb.Dataset(
        x.astype(np.float32), np.sqrt(y), categorical_feature=CATEGORICAL, feature_name=NAMES
    )
    return lgb.train(params, data, num_boost_round=s.trees)


@dataclass
class Training:
    """What a model is trained on: the counts up to `until` (later ones are not read), target
    hours from `since`, less the `exclude` periods ([from, to) UTC seconds)."""

    where: Where
    until: int
    since: int | None = None
    exclude: Sequence[tuple[int, int]] = ()
    settings: Settings = field(default_factory=Settings)


def train(
    counts: Counts, horizons: Sequence[int], training: Training, progress: Progress = _quiet
) -> Forecaster:
    """One model per horizon, as `training` says."""
    where, until, since, exclude = training.where, training.until, training.since, training.exclude
    s = training.settings
    known = counts.until(until)
    cal = where.calendar(known.start, known.hours + FUTURE)
    inputs, targets = clean(known.values, cal.hour_of_week[: known.hours])
    p = Prepared(inputs, cal)
    times = known.start + np.arange(known.hours, dtype=np.int64) * HOUR_S
    use = np.ones(known.hours, dtype=bool)
    if since is not None:
        use &= times >= since
    for a, b in exclude:
        use &= (times < a) | (times >= b)
    # A short history keeps three quarters of it to fit the calibration model on.
    counted = use & ~np.isnan(targets).all(axis=1)
    first = int(times[counted][0]) if counted.any() else until
    calib_from = until - min(s.calibration_days * 86400, (until - first) // 4)
    fc = Forecaster(list(known.names), where, until, threads=s.threads)
    for h in horizons:
        rows = np.flatnonzero(use & (np.arange(known.hours) >= h))
        y = targets[rows].ravel()
        ok = ~np.isnan(y)
        if ok.sum() < 100:
            raise ValueError(
                f"only {int(ok.sum())} hours with counts to train on for {h} h ahead (100 at "
                "least) before --train-until (and from --train-from, outside "
                "--exclude-training): give more history, or a later --train-until"
            )
        x = build(p, rows, h)
        calib = np.repeat(times[rows] >= calib_from, len(known.names))
        progress(f"{h} h: calibrating the interval on {int((ok & calib).sum()):,} hours")
        t0 = perf_counter()
        low, high = _calibrate(x, y, ok, calib, s)
        t1 = perf_counter()
        progress(f"{h} h: training on {int(ok.sum()):,} hours of {len(known.names)} series")
        booster = _fit(x[ok], y[ok], s)
        t2 = perf_counter()
        fc.models[h] = HorizonModel(h, booster, low, high)
        fc.train_seconds[h] = {"interval": round(t1 - t0, 1), "model": round(t2 - t1, 1)}
        progress(f"{h} h: trained in {t2 - t1:.0f} s (the interval's model: {t1 - t0:.0f} s)")
    return fc


def _calibrate(
    x: np.ndarray, y: np.ndarray, ok: np.ndarray, calib: np.ndarray, s: Settings
) -> tuple[float, float]:
    """Split conformal: a model trained before the calibration days, its residuals scaled by
    sqrt(forecast + 1) on them; their (1-c)/2 and (1+c)/2 quantiles."""
    fit_rows, cal_rows = ok & ~calib, ok & calib
    if fit_rows.sum() < 100 or cal_rows.sum() < 100:
        raise ValueError(
            f"too little history for the interval: {int(fit_rows.sum())} hours before the "
            f"last {s.calibration_days} days of training and {int(cal_rows.sum())} in them"
        )
    import lightgbm  # noqa: F401  (fail here, before the long work, where it is missing)

    model = _fit(x[fit_rows], y[fit_rows], s)
    f = _unsqrt(model.predict(x[cal_rows], num_threads=s.threads))
    r = (y[cal_rows] - f) / np.sqrt(f + 1)
    tail = (1 - s.coverage) / 2
    low, high = np.quantile(r, [tail, 1 - tail])
    return float(low), float(high)
