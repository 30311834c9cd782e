"""The calibration methods, their fit and their application, on hourly pairs (numpy only).

Each method maps a sensor's raw hourly mean (and the hour's relative humidity, RH, in %) to
the reference's value:

- `linear`: ref = a + b*raw.
- `linear_rh`: ref = a + b*raw + c*RH (multiple linear regression, as Barkjohn et al. 2021).
- `kohler`: the κ-Köhler hygroscopic growth of the particles an optical sensor counts wet
  (Crilley et al. 2018): dry = raw / (1 + κ/(100/RH - 1)), then ref = a + b*dry. RH is capped
  at `RH_CAP` (99 %): at 100 % the growth term divides by zero, and in fog the correction
  cannot be trusted anyway. κ is found by a bounded 1-D search (golden section, then refined
  on a grid around the best) over `KAPPA_RANGE`, each κ scored by the least-squares fit of a
  and b on the dried values.

A fit gives `Coefficients` (a dict of names to numbers, as stored); `apply` evaluates a method
with them on arrays, so the same code fits, cross-validates and applies at read time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Coefficients = dict[str, float]

METHODS = ("linear", "linear_rh", "kohler")
# The methods that need the hour's relative humidity.
NEEDS_RH = frozenset({"linear_rh", "kohler"})
RH_CAP = 99.0  # % : where the growth term is evaluated at most
RH_FLOOR = 0.0
KAPPA_RANGE = (0.0, 2.0)  # sea salt ~1.3 is the most hygroscopic common aerosol


class CalibrationError(ValueError):
    """A fit that cannot be made (too few pairs, no humidity); the message says why."""


def _lstsq(columns: list[Array], y: Array) -> tuple[Array, float]:
    """Least-squares coefficients of y on the columns (with an intercept first) and the sum
    of squared residuals."""
    x = np.column_stack([np.ones_like(y), *columns])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    return np.asarray(coef, dtype=np.float64), float(residual @ residual)


def growth(rh: Array, kappa: float) -> Array:
    """The κ-Köhler mass growth factor 1 + κ/(100/RH - 1), RH capped at RH_CAP."""
    capped = np.clip(rh, RH_FLOOR, RH_CAP)
    with np.errstate(divide="ignore"):
        term = np.where(capped > 0, kappa / (100.0 / np.maximum(capped, 1e-9) - 1.0), 0.0)
    return np.asarray(1.0 + term, dtype=np.float64)


def _kohler_sse(kappa: float, raw: Array, rh: Array, ref: Array) -> float:
    return _lstsq([raw / growth(rh, kappa)], ref)[1]


def _fit_kappa(raw: Array, rh: Array, ref: Array) -> float:
    """κ minimising the squared error of the linear fit on dried values: a golden-section
    search on KAPPA_RANGE, checked against a coarse grid (the error need not be unimodal)."""
    lo, hi = KAPPA_RANGE
    grid = np.linspace(lo, hi, 41)
    scores = [_kohler_sse(float(k), raw, rh, ref) for k in grid]
    best = int(np.argmin(scores))
    a = float(grid[max(best - 1, 0)])
    b = float(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _kohler_sse(c, raw, rh, ref), _kohler_sse(d, raw, rh, ref)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _kohler_sse(c, raw, rh, ref)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _kohler_sse(d, raw, rh, ref)
        if b - a < 1e-6:
            break
    kappa = (a + b) / 2.0
    return kappa if _kohler_sse(kappa, raw, rh, ref) <= scores[best] else float(grid[best])


def fit(method: str, raw: Array, ref: Array, rh: Array | None = None) -> Coefficients:
    """The coefficients of `method` fitted to pairs (raw, ref) with the hours' RH."""
    if method not in METHODS:
        raise CalibrationError(f"method {method!r}: use one of {', '.join(METHODS)}")
    needed = 2 if method == "linear" else 3
    if len(raw) < needed + 1:
        raise CalibrationError(
            f"method {method}: {len(raw)} hourly pairs; at least {needed + 1} are needed"
        )
    if method in NEEDS_RH and (rh is None or np.isnan(rh).any()):
        raise CalibrationError(f"method {method}: every pair needs its hour's relative humidity")
    if method == "linear":
        (a, b), _ = _lstsq([raw], ref)
        return {"a": float(a), "b": float(b)}
    assert rh is not None
    if method == "linear_rh":
        (a, b, c), _ = _lstsq([raw, rh], ref)
        return {"a": float(a), "b": float(b), "c": float(c)}
    kappa = _fit_kappa(raw, rh, ref)
    (a, b), _ = _lstsq([raw / growth(rh, kappa)], ref)
    return {"a": float(a), "b": float(b), "kappa": kappa}


def apply(method: str, coefficients: Mapping[str, float], raw: Any, rh: Any = None) -> Array:
    """`method` with `coefficients` applied to raw values (and their RH): the calibrated
    values; NaN where a needed RH is missing."""
    x = np.asarray(raw, dtype=np.float64)
    a, b = coefficients["a"], coefficients["b"]
    if method == "linear":
        return np.asarray(a + b * x, dtype=np.float64)
    h = np.asarray(rh if rh is not None else np.full_like(x, np.nan), dtype=np.float64)
    if method == "linear_rh":
        return np.asarray(a + b * x + coefficients["c"] * h, dtype=np.float64)
    if method == "kohler":
        return np.asarray(a + b * x / growth(h, coefficients["kappa"]), dtype=np.float64)
    raise CalibrationError(f"method {method!r}: use one of {', '.join(METHODS)}")


def formula(method: str, coefficients: Mapping[str, float]) -> str:
    """The calibration as a line a person reads."""
    a, b = coefficients["a"], coefficients["b"]
    if method == "linear":
        return f"ref = {a:.4g} + {b:.4g}*raw"
    if method == "linear_rh":
        return f"ref = {a:.4g} + {b:.4g}*raw + {coefficients['c']:.4g}*RH"
    k = coefficients["kappa"]
    return f"ref = {a:.4g} + {b:.4g}*raw/(1 + {k:.4g}/(100/min(RH,{RH_CAP:g}) - 1))"
