"""Fitting a calibration on hourly pairs: the method chosen by cross-validation over time.

Hourly errors are correlated over hours (weather lasts), so rows drawn at random for the folds
would let each test hour's neighbours train the model and flatter every method. The folds are
blocks of contiguous days instead (`FOLDS`, 5, or one per day with fewer days): each method is
fitted on the other blocks and predicts the held-out one; its out-of-fold RMSE against the
reference is what it is judged by. Without `--method` the lowest wins; ties go to the simpler
method (the order of METHODS). The calibration stored is then fitted on all pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorpipe.calibration.methods import (
    METHODS,
    NEEDS_RH,
    Array,
    CalibrationError,
    Coefficients,
    apply,
    fit,
)
from sensorpipe.calibration.pairing import Pairs
from sensorpipe.calibration.stats import agreement

FOLDS = 5
DAY_MS = 86_400_000


def day_folds(hours_ms: Any, folds: int = FOLDS) -> Array:
    """The fold of each hour: its day's block among `folds` blocks of contiguous days."""
    days = np.asarray(hours_ms, dtype=np.int64) // DAY_MS
    unique = np.unique(days)
    k = min(folds, len(unique))
    block_of_day = {}
    for index, block in enumerate(np.array_split(unique, k)):
        for day in block:
            block_of_day[int(day)] = index
    return np.asarray([block_of_day[int(d)] for d in days], dtype=np.float64)


def out_of_fold(method: str, raw: Array, ref: Array, rh: Array, folds: Array) -> Array:
    """Each hour predicted by `method` fitted on the other folds."""
    predicted = np.full_like(ref, np.nan)
    for fold in np.unique(folds):
        test = folds == fold
        coefficients = fit(method, raw[~test], ref[~test], rh[~test])
        predicted[test] = apply(method, coefficients, raw[test], rh[test])
    return predicted


@dataclass
class Fitted:
    method: str
    coefficients: Coefficients
    quantity: str
    n_pairs: int
    raw: dict[str, Any]  # agreement of the raw hourly means with the reference
    calibrated: dict[str, Any]  # of the calibrated ones (the final fit, on all pairs)
    cv: dict[str, dict[str, Any]]  # per method: out-of-fold agreement, or why none
    folds: int
    chosen_by: str  # "cross-validation" or "--method"

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "coefficients": self.coefficients,
            "quantity": self.quantity,
            "n_pairs": self.n_pairs,
            "raw": self.raw,
            "calibrated": self.calibrated,
            "cv": self.cv,
            "folds": self.folds,
            "chosen_by": self.chosen_by,
        }


def fit_pairs(pairs: Pairs, quantity: str, method: str | None = None) -> Fitted:
    """Cross-validate every method the pairs allow, and fit `method` (or the best) on all."""
    hours = np.asarray(pairs.hours, dtype=np.int64)
    raw = np.asarray(pairs.raw, dtype=np.float64)
    ref = np.asarray(pairs.reference, dtype=np.float64)
    rh = np.asarray(pairs.rh, dtype=np.float64)
    if len(raw) == 0:
        raise CalibrationError(
            "no hourly pairs: the devices have no complete hour (>= 75 % of their readings) "
            "at an hour the reference has a value for; check --from/--to and the devices"
        )
    with_rh = ~np.isnan(rh)
    folds = day_folds(hours)
    n_folds = len(np.unique(folds))
    cv: dict[str, dict[str, Any]] = {}
    for candidate in METHODS:
        keep = with_rh if candidate in NEEDS_RH else np.ones_like(with_rh)
        if candidate in NEEDS_RH and not keep.all():
            cv[candidate] = {"skipped": f"{int((~keep).sum())} of {len(keep)} hours have no RH"}
            continue
        if n_folds < 2:
            cv[candidate] = {"skipped": "pairs on fewer than 2 days: nothing to hold out"}
            continue
        try:
            predicted = out_of_fold(candidate, raw, ref, rh, folds)
        except (CalibrationError, np.linalg.LinAlgError) as exc:
            cv[candidate] = {"skipped": str(exc)}
            continue
        cv[candidate] = agreement(predicted, ref, quantity)
    if method is None:
        scored = [(cv[m]["rmse"], i, m) for i, m in enumerate(METHODS) if cv[m].get("rmse")]
        if not scored:
            reasons = "; ".join(f"{m}: {cv[m].get('skipped')}" for m in METHODS)
            raise CalibrationError(f"no method could be cross-validated ({reasons}); give --method")
        best = min(scored)
        # Within 1 % of the best, the simpler method is kept.
        method = next(m for r, _, m in sorted(scored, key=lambda s: s[1]) if r <= best[0] * 1.01)
        chosen_by = "cross-validation"
    else:
        chosen_by = "--method"
    if method in NEEDS_RH and not with_rh.all():
        raw, ref, rh = raw[with_rh], ref[with_rh], rh[with_rh]
    coefficients = fit(method, raw, ref, rh)
    calibrated = apply(method, coefficients, raw, rh)
    return Fitted(
        method=method,
        coefficients=coefficients,
        quantity=quantity,
        n_pairs=len(raw),
        raw=agreement(raw, ref, quantity),
        calibrated=agreement(calibrated, ref, quantity),
        cv=cv,
        folds=n_folds,
        chosen_by=chosen_by,
    )
