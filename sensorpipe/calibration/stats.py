"""How well values agree with a reference, in the US EPA's terms for PM2.5 sensors.

As the EPA's sensortoolkit computes them (its `param/_targets.py`, research27.md section 3):
slope and intercept of the ordinary least-squares line of the sensor's values (y) on the
reference's (x); R² the squared Pearson correlation; RMSE = sqrt(mean((x_i - R_i)²)) over the
hours both have; NRMSE = RMSE / mean(reference) x 100 %. The targets for PM2.5 (1-hour means):
slope 1 ± 0.35, intercept within ±5 µg/m³, R² >= 0.70, RMSE <= 7 µg/m³ or NRMSE <= 30 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Targets:
    slope: tuple[float, float]
    intercept: tuple[float, float]
    r2_min: float
    rmse_max: float
    nrmse_max: float


# A value on a target's limit meets it: rounding in the fit (1.3500000000000003) does not
# move it out.
TOLERANCE = 1e-9

# The EPA's performance targets (sensortoolkit's PM25 and PM10 rows).
TARGETS = {
    "pm2_5": Targets((0.65, 1.35), (-5.0, 5.0), 0.70, 7.0, 30.0),
    "pm10": Targets((0.65, 1.35), (-10.0, 10.0), 0.70, 14.0, 30.0),
}


def agreement(values: Any, reference: Any, quantity: str = "pm2_5") -> dict[str, Any]:
    """n, slope, intercept, r2, rmse, nrmse of `values` against `reference` (pairs with a
    NaN left out), and `targets`: each EPA target met or not (empty for a quantity the EPA
    sets none for)."""
    x = np.asarray(values, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(r))
    x, r = x[keep], r[keep]
    n = len(x)
    out: dict[str, Any] = {"n": n}
    if n < 2 or float(np.ptp(r)) == 0.0:
        out.update(slope=None, intercept=None, r2=None, rmse=None, nrmse=None, targets={})
        return out
    slope, intercept = np.polyfit(r, x, 1)
    r2 = _r2(x, r)
    rmse = float(math.sqrt(float(np.mean((x - r) ** 2))))
    mean_ref = float(np.mean(r))
    nrmse = rmse / mean_ref * 100.0 if mean_ref > 0 else None
    out.update(slope=float(slope), intercept=float(intercept), r2=r2, rmse=rmse, nrmse=nrmse)
    out["targets"] = targets_met(out, quantity)
    return out


def _r2(x: npt.NDArray[np.float64], r: npt.NDArray[np.float64]) -> float | None:
    if float(np.ptp(x)) == 0.0:
        return None
    return float(np.corrcoef(x, r)[0, 1] ** 2)


def targets_met(stats: dict[str, Any], quantity: str) -> dict[str, bool]:
    """Each of the EPA's targets for `quantity`: met (True) or not."""
    target = TARGETS.get(quantity)
    if target is None or stats.get("slope") is None:
        return {}
    lo, hi = target.slope
    ilo, ihi = target.intercept
    nrmse = stats.get("nrmse")
    e = TOLERANCE
    return {
        "slope": bool(lo - e <= stats["slope"] <= hi + e),
        "intercept": bool(ilo - e <= stats["intercept"] <= ihi + e),
        "r2": stats["r2"] is not None and bool(stats["r2"] >= target.r2_min - e),
        "rmse": bool(
            stats["rmse"] <= target.rmse_max + e
            or (nrmse is not None and nrmse <= target.nrmse_max + e)
        ),
    }
