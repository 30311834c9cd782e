"""The forecasts kept as made (crowd.forecaststore): their line protocol, one point per
horizon and hour forecast, and the rolling interval their errors give, without peeking."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from sensorpipe.crowd.forecaststore import (
    MIN_DAYS,
    Rolling,
    forecast_lines,
    rolling,
    rolling_from_store,
)
from sensorpipe.crowd.series import HOUR_S, Counts, iso
from sensorpipe.ingest.influx import InfluxClient

START = 1_717_372_800  # 2024-06-03T00:00:00Z
DAYS = 40


def _counts(seed: int = 1) -> Counts:
    rng = np.random.default_rng(seed)
    values = rng.poisson(200, size=(DAYS * 24, 2)).astype(float)
    return Counts(START, values, ["a", "b"], "area")


def _kept(counts: Counts, origin: int, scale: float, days: int = 28) -> dict[int, float]:
    """Forecasts of `a` of the `days` up to `origin`: the count less `scale` × a known error."""
    rng = np.random.default_rng(7)
    out = {}
    for i in range(days * 24):
        t = origin - i * HOUR_S
        out[t] = float(counts.values[counts.row(t), 0]) - scale * float(rng.normal(0, 10))
    return out


def _errors(counts: Counts, kept: dict[int, float]) -> list[float]:
    return [(counts.values[counts.row(t), 0] - f) / math.sqrt(f + 1) for t, f in kept.items()]


def test_the_rolling_interval_is_the_stored_errors_quantiles() -> None:
    counts = _counts()
    origin = START + 35 * 86400
    kept = _kept(counts, origin, 1.0)
    got = rolling({1: kept}, counts, "a", origin)
    low, high = np.quantile(_errors(counts, kept), [0.1, 0.9])
    assert list(got) == [1]
    assert (got[1].low, got[1].high, got[1].n) == (pytest.approx(low), pytest.approx(high), 672)
    assert got[1].describe() == "rolling 28 days (n=672)"
    assert got[1].bounds(100.0) == pytest.approx(
        (100 + low * math.sqrt(101), 100 + high * 101**0.5)
    )
    assert Rolling(-50.0, 1.0, 400).bounds(4.0)[0] == 0  # never below 0


def test_its_width_follows_the_stored_errors() -> None:
    counts = _counts()
    origin = START + 35 * 86400
    narrow = rolling({3: _kept(counts, origin, 1.0)}, counts, "a", origin)[3]
    wide = rolling({3: _kept(counts, origin, 3.0)}, counts, "a", origin)[3]
    assert wide.high - wide.low > 2.5 * (narrow.high - narrow.low)


def test_no_peeking_and_only_the_last_28_days() -> None:
    counts = _counts()
    origin = START + 35 * 86400
    kept = _kept(counts, origin, 1.0)
    expected = rolling({1: kept}, counts, "a", origin)
    # hours not ended by the forecast's making, and hours before the 28 days: left out
    later = {origin + k * HOUR_S: 0.0 for k in range(1, 100)}
    older = {origin - 28 * 86400 - k * HOUR_S: 1e6 for k in range(0, 100)}
    assert rolling({1: kept | later | older}, counts, "a", origin) == expected
    # a count that changes after the origin changes nothing either
    changed = Counts(counts.start, counts.values.copy(), counts.names, counts.kind)
    changed.values[changed.row(origin) + 1 :] = 1e6
    assert rolling({1: kept}, changed, "a", origin) == expected


def test_too_few_observed_hours_give_none() -> None:
    counts = _counts()
    origin = START + 35 * 86400
    few = _kept(counts, origin, 1.0, days=MIN_DAYS)
    assert rolling({1: few}, counts, "a", origin)[1].n == MIN_DAYS * 24
    missing = Counts(counts.start, counts.values.copy(), counts.names, counts.kind)
    missing.values[missing.row(origin), 0] = np.nan  # an hour without a count is no error
    assert rolling({1: few}, missing, "a", origin) == {}
    assert rolling({1: few}, counts, "c", origin) == {}  # a series without counts


def _answer(flow: float = 120.0) -> dict[str, object]:
    made = START + 10 * HOUR_S
    points = [
        {"horizon": f"{h}h", "time": iso(made + (h - 1) * HOUR_S), "flow": flow, "low": 90.5,
         "high": 150.25, "level": None, "level_low": None, "level_high": None,
         "interval": "from training"}
        for h in (1, 3)
    ]  # fmt: skip
    return {"made_at": iso(made), "trained_until": iso(START), "points": points}


def test_a_forecast_is_one_point_per_horizon_keyed_by_the_hour_forecast() -> None:
    lines = forecast_lines("area", "queen st", _answer())
    made_ms = (START + 10 * HOUR_S) * 1000
    assert lines == [
        f"crowd_forecast,area=queen\\ st,horizon=1h forecast=120.0,low=90.5,high=150.25,"
        f'interval="from training",made_at={made_ms}i,trained_until={START * 1000}i {made_ms}',
        f"crowd_forecast,area=queen\\ st,horizon=3h forecast=120.0,low=90.5,high=150.25,"
        f'interval="from training",made_at={made_ms}i,trained_until={START * 1000}i '
        f"{made_ms + 2 * HOUR_S * 1000}",
    ]
    assert forecast_lines("device", "d-1", _answer())[0].startswith(
        "crowd_forecast,device_id=d-1,horizon=1h "
    )
    assert forecast_lines("area", "x", _answer(float("nan"))) == []  # no number: not kept


def test_kept_forecasts_that_cannot_be_read_leave_the_interval_from_training(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = httpx.MockTransport(lambda request: httpx.Response(503, text="starting"))
    client = InfluxClient("http://influx.invalid:8086", "x", transport=down)
    counts = _counts()
    assert rolling_from_store(client, "area", "a", counts, START + 35 * 86400) == {}
    assert "the kept forecasts of area a cannot be read" in caplog.text
