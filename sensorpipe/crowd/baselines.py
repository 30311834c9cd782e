"""The two baselines computed beside every forecast of hour T made at origin T - h:

- seasonal naive: the count of the same local hour one week earlier (else two, three or four
  weeks earlier, where the week before had no count);
- the mean of the counts of the same local hour of the week over the past four weeks (those
  there are).

Where neither has a value (a new counter, a long outage) the last count at or before the
origin stands in, and 0 where there is none at all: a baseline always forecasts.
"""

from __future__ import annotations

import numpy as np

from sensorpipe.crowd.features import Prepared, take


def _filled(a: np.ndarray, p: Prepared, targets: np.ndarray, h: int) -> np.ndarray:
    out = np.where(np.isnan(a), take(p.m4, targets), a)
    if np.isnan(out).any():
        out = np.where(np.isnan(out), p.last_valid(targets - h), out)
    return np.nan_to_num(out, nan=0.0)


def seasonal_naive(p: Prepared, targets: np.ndarray, h: int) -> np.ndarray:
    """(len(targets), series): the same local hour last week."""
    return _filled(take(p.sn, targets), p, targets, h)


def four_week_mean(p: Prepared, targets: np.ndarray, h: int) -> np.ndarray:
    """(len(targets), series): the mean of the same local hour of the past four weeks."""
    return _filled(take(p.m4, targets), p, targets, h)


BASELINES = {"seasonal_naive": seasonal_naive, "mean_4_weeks": four_week_mean}
