"""Forecasts of counts (sensorpipe.crowd): baselines on hand-made series, DST days, the
stuck-at-zero hours kept out, a small model trained on a slice, and no peeking: a forecast
made at t is the same with the counts after t as without them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sensorpipe.crowd.baselines import four_week_mean, seasonal_naive
from sensorpipe.crowd.features import FUTURE, Prepared, calendar
from sensorpipe.crowd.series import HOUR_S, Counts, clean, parse_time

AKL = ZoneInfo("Pacific/Auckland")


def _utc(local: str) -> int:
    """A local Auckland time (first occurrence) as UTC seconds."""
    return int(datetime.fromisoformat(local).replace(tzinfo=AKL).timestamp())


def _prepared(counts: Counts, tz: str = "Pacific/Auckland") -> Prepared:
    cal = calendar(counts.start, counts.hours + FUTURE, tz, "NZ", "AUK")
    return Prepared(counts.values, cal)


def synthetic(weeks: int, sites: int = 4, start: str = "2024-03-04T00:00", seed: int = 1) -> Counts:
    """Counts shaped like city streets: a daily and weekly profile per site, a level that
    drifts from day to day (weather, events), Poisson noise."""
    rng = np.random.default_rng(seed)
    t0 = _utc(start)
    hours = weeks * 168
    zone = AKL
    local = [datetime.fromtimestamp(t0 + i * HOUR_S, zone) for i in range(hours)]
    hour = np.array([t.hour for t in local])
    dow = np.array([t.weekday() for t in local])
    day = np.array([(t.date() - local[0].date()).days for t in local])
    shape = np.exp(-(((hour - 13) / 4.0) ** 2)) + 0.05
    shape = shape * np.where(dow >= 5, 0.6, 1.0)
    level = np.exp(np.cumsum(rng.normal(0, 0.15, day.max() + 1)) * 0.5)[day]
    size = rng.uniform(200, 1500, sites)
    lam = shape[:, None] * level[:, None] * size[None, :]
    values = rng.poisson(lam).astype(float)
    return Counts(t0, values, [f"site-{i}" for i in range(sites)])


def test_baselines_on_a_hand_made_series() -> None:
    # Week k reads 10k + 1 at every hour; one hour of week 4 is missing.
    t0 = parse_time("2024-01-01T00:00:00Z")
    values = np.repeat(10.0 * np.arange(6) + 1, 168)[:, None]
    target = 5 * 168 + 30  # week 5, hour of week 30
    values[4 * 168 + 30] = np.nan
    p = _prepared(Counts(t0, values, ["a"]), tz="UTC")
    rows = np.array([target - 1, target])
    sn = seasonal_naive(p, rows, 1)[:, 0]
    m4 = four_week_mean(p, rows, 1)[:, 0]
    assert sn.tolist() == [41.0, 31.0]  # last week; where it is missing, two weeks back
    assert m4.tolist() == [(11 + 21 + 31 + 41) / 4, (11 + 21 + 31) / 3]
    # With no history at all the last count at the origin stands in, then 0.
    early = np.array([3])
    assert seasonal_naive(p, early, 1)[0, 0] == 1.0
    empty = _prepared(Counts(t0, values[:1] * np.nan, ["a"]), "UTC")
    assert four_week_mean(empty, np.array([0]), 1)[0, 0] == 0


def test_dst_days_keep_the_local_hour() -> None:
    # The count is the local hour of the day: a baseline must give the same local hour back on
    # the 23-hour day of 2024-09-29 and the 25-hour day of 2024-04-07, and the week after.
    t0 = _utc("2024-03-04T00:00")
    hours = 31 * 168  # to 2024-10-07
    local = [datetime.fromtimestamp(t0 + i * HOUR_S, AKL) for i in range(hours)]
    values = np.array([[t.hour + 1.0] for t in local])
    p = _prepared(Counts(t0, values, ["a"]))
    rows = np.arange(5 * 168, hours)
    assert (seasonal_naive(p, rows, 3)[:, 0] == values[rows, 0]).all()
    assert (four_week_mean(p, rows, 3)[:, 0] == values[rows, 0]).all()
    day = np.array([t.date().isoformat() for t in local])
    assert (day == "2024-09-29").sum() == 23 and (day == "2024-04-07").sum() == 25
    # Yesterday's same hour is 23 or 25 hours back across the change; 02:00 on the Sunday
    # after spring forward has no hour a week earlier, so last week's lag is none.
    lag1 = p.cal.lag[1]
    after_spring = (_utc("2024-09-29T10:00") - t0) // HOUR_S
    after_autumn = (_utc("2024-04-07T10:00") - t0) // HOUR_S
    assert after_spring - lag1[after_spring] == 23
    assert after_autumn - lag1[after_autumn] == 25
    no_hour = (_utc("2024-10-06T02:00") - t0) // HOUR_S
    assert p.cal.lag[7][no_hour] == -1 and p.cal.lag[14][no_hour] >= 0


def test_stuck_zeros_are_no_counts_and_quiet_nights_stay() -> None:
    c = synthetic(6)
    v = c.values.copy()
    cal = calendar(c.start, c.hours, "Pacific/Auckland", None)
    v[(cal.hour >= 1) & (cal.hour <= 4), 1] = 0  # a quiet street: real zeros every night
    stuck = slice(4 * 168 + 100, 4 * 168 + 160)  # site 0 reads 0 for 60 hours
    v[stuck, 0] = 0
    inputs, targets = clean(v, cal.hour_of_week)
    assert np.isnan(targets[stuck, 0]).all()  # never a training target
    assert np.isnan(inputs[stuck.start + 5 : stuck.stop, 0]).all()  # never fed as zeros
    assert inputs[stuck.start, 0] == 0  # the first zero hour is not known to be stuck yet
    night_zeros = v[:, 1] == 0
    assert night_zeros.sum() > 50
    assert not np.isnan(targets[night_zeros, 1]).any()


@pytest.fixture(scope="module")
def small_backtest() -> tuple[Counts, object]:
    pytest.importorskip("lightgbm")
    from sensorpipe.crowd.backtest import backtest
    from sensorpipe.crowd.forecast import Settings, Training, Where

    c = synthetic(30)
    c.values[20 * 168 + 40 : 20 * 168 + 90, 2] = 0  # stuck while training: not learned
    c.values[27 * 168 + 40 : 27 * 168 + 90, 2] = 0  # stuck in the test weeks: not scored
    train_until = c.time(26 * 168 - 1)
    settings = Settings(trees=60, leaves=15, min_leaf=20, calibration_days=35)
    training = Training(Where("Pacific/Auckland", "NZ", "AUK"), train_until, settings=settings)
    horizons = [("1h", 1), ("3h", 3)]
    bt = backtest(c, horizons, training, train_until + HOUR_S, c.time(c.hours))
    return c, bt


def test_a_small_model_beats_both_baselines(small_backtest: tuple[Counts, object]) -> None:
    _, bt = small_backtest
    for r in bt.results:  # type: ignore[attr-defined]
        w = r.wape
        assert w["model"] < w["mean_4_weeks"] and w["model"] < w["seasonal_naive"], (r.label, w)
        assert 60 < r.coverage < 97, (r.label, r.coverage)
        assert r.scored == 4 * 168 * 4 - 50  # all but the 50 hours stuck at zero


def test_no_peeking(small_backtest: tuple[Counts, object]) -> None:
    """The backtest forecasts all hours in one pass over the full counts; each must be what a
    forecast made at its origin from the counts up to the origin alone gives."""
    c, bt = small_backtest
    model = bt.model  # type: ignore[attr-defined]
    first = bt.first_row  # type: ignore[attr-defined]
    rng = np.random.default_rng(29)
    origins = sorted(rng.choice(np.arange(first, c.hours - 3), 6, replace=False))
    origins.append((_utc("2024-09-29T01:00") - c.start) // HOUR_S)  # across spring forward
    compared = 0
    for o in origins:
        made = model.forecast(c.until(c.time(o)), c.time(o))
        for r in bt.results:  # type: ignore[attr-defined]
            f, lo, hi = made[r.hours]
            i = o + r.hours - first
            assert (f == r.forecast[i]).all() and (lo == r.low[i]).all() and (hi == r.high[i]).all()
            compared += len(f)
    assert compared == len(origins) * 2 * 4
    # The comparison sees a change: counts changed after an origin change the forecasts
    # made after it, never those made at or before it.
    o = origins[0]
    changed = Counts(c.start, c.values.copy(), c.names)
    changed.values[o + 1 :] *= 3
    later = model.forecast(changed, c.time(o + 2))[1][0]
    assert not (later == bt.results[0].forecast[o + 3 - first]).all()  # type: ignore[attr-defined]
    assert (model.forecast(changed, c.time(o))[1][0] == bt.results[0].forecast[o + 1 - first]).all()  # type: ignore[attr-defined]


def test_lightgbm_is_loaded_only_to_train() -> None:
    # The series, baselines and backtest modules (and `sensorpipe crowd --help`) load neither
    # LightGBM nor the forecast extra's holidays: a host without the extra can still import.
    import subprocess
    import sys

    code = (
        "import sys, sensorpipe.crowd.backtest, sensorpipe.cli.crowd; "
        "print(sorted(m for m in ('lightgbm', 'holidays') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
