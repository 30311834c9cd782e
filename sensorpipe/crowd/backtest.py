"""Rolling-origin evaluation: a model trained on the counts up to `train_until` forecasts
every hour T of [start, end) from the origin T - h, for each horizon h, beside the two
baselines; WAPE (total absolute error / total count, in %) over the hours with a count that
is neither missing nor stuck, and how often the interval held the count.

Each forecast reads the counts up to its origin only (features.py; the no-peeking test), so
the whole range is forecast in one pass over the full counts.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

from sensorpipe.crowd.baselines import BASELINES
from sensorpipe.crowd.features import FUTURE, Prepared
from sensorpipe.crowd.forecast import Forecaster, Progress, Training, _quiet, train
from sensorpipe.crowd.series import HOUR_S, Counts, clean, iso


def wape(actual: np.ndarray, forecast: np.ndarray) -> float | None:
    """Total absolute error / total count, in % (None where nothing was counted)."""
    ok = ~np.isnan(actual)
    total = float(actual[ok].sum())
    if total <= 0:
        return None
    return 100.0 * float(np.abs(actual[ok] - forecast[ok]).sum()) / total


@dataclass
class HorizonResult:
    label: str  # as given: "1h"
    hours: int
    forecast: np.ndarray  # (targets, series)
    low: np.ndarray
    high: np.ndarray
    baselines: dict[str, np.ndarray]
    wape: dict[str, float | None]  # model and each baseline
    coverage: float | None  # % of scored hours inside [low, high]
    scored: int  # hours with a count


@dataclass
class Backtest:
    counts: Counts
    first_row: int
    targets: int
    results: list[HorizonResult]
    model: Forecaster

    def write_csv(self, out: IO[str]) -> int:
        """Every forecast as `device|area,target_time,horizon,forecast`; the rows written."""
        w = csv.writer(out, lineterminator="\n")
        w.writerow([self.counts.kind, "target_time", "horizon", "forecast"])
        n = 0
        for r in self.results:
            for i in range(self.targets):
                t = iso(self.counts.time(self.first_row + i))
                for s, name in enumerate(self.counts.names):
                    w.writerow([name, t, r.label, f"{r.forecast[i, s]:.2f}"])
                    n += 1
        return n

    def summary(self) -> dict[str, object]:
        return {
            "series": len(self.counts.names),
            "kind": self.counts.kind,
            "from": iso(self.counts.time(self.first_row)),
            "to": iso(self.counts.time(self.first_row + self.targets)),
            # as --train-until, crowd train and the API say it: the hours before it trained on
            "train_until": iso(self.model.trained_until + HOUR_S),
            "horizons": {
                r.label: {
                    "wape_percent": {k: _round(v) for k, v in r.wape.items()},
                    "interval_coverage_percent": _round(r.coverage),
                    "scored_hours": r.scored,
                }
                for r in self.results
            },
            # wall-clock seconds per horizon: the model's training and the interval's model's
            "train_seconds": {r.label: self.model.train_seconds.get(r.hours) for r in self.results},
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def backtest(
    counts: Counts,
    horizons: Sequence[tuple[str, int]],
    training: Training,
    start: int,
    end: int,
    progress: Progress = _quiet,
) -> Backtest:
    """Train once as `training` says, then forecast the hours [start, end)."""
    if start <= training.until:
        raise ValueError(
            "the backtest must start after the end of training (--from > --train-until)"
        )
    if end <= start:
        raise ValueError("the backtest range is empty (--to must be after --from)")
    if start < counts.start or counts.row(start) >= counts.hours:
        raise ValueError(f"no counts from {iso(start)} on: the backtest range has no counts")
    model = train(counts, [h for _, h in horizons], training, progress)
    where = training.where
    known = counts.until(end - HOUR_S)
    cal = where.calendar(known.start, known.hours + FUTURE)
    inputs, scored = clean(known.values, cal.hour_of_week[: known.hours])
    p = Prepared(inputs, cal)
    first = known.row(start)
    rows = np.arange(first, known.row(end - HOUR_S) + 1)
    actual = np.full((len(rows), len(known.names)), np.nan)
    inside = rows < known.hours
    actual[inside] = scored[rows[inside]]
    results = []
    for label, h in horizons:
        progress(f"{label}: forecasting {len(rows):,} hours x {len(known.names)} series")
        f, lo, hi = model.predict(p, known.names, rows, h)
        base = {name: fn(p, rows, h) for name, fn in BASELINES.items()}
        ok = ~np.isnan(actual)
        w = {"model": wape(actual, f)} | {n: wape(actual, b) for n, b in base.items()}
        cov = None
        if ok.any():
            cov = 100.0 * float(((actual[ok] >= lo[ok]) & (actual[ok] <= hi[ok])).mean())
        results.append(HorizonResult(label, h, f, lo, hi, base, w, cov, int(ok.sum())))
    return Backtest(known, first, len(rows), results, model)
