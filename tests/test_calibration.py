"""The calibration's pure parts on constructed data: each method recovers known coefficients,
cross-validation over blocks of days picks the method that made the data, the agreement
statistics equal values worked out by hand, hours count only when 75 % complete, and the
calibration book keeps every version and applies the latest assignment at read time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorpipe.calibration.fitting import day_folds, fit_pairs
from sensorpipe.calibration.methods import CalibrationError, apply, fit, growth
from sensorpipe.calibration.pairing import Pairs, median_interval_ms, minimum_count, pair_hours
from sensorpipe.calibration.readtime import calibrate_rows
from sensorpipe.calibration.stats import agreement
from sensorpipe.calibration.store import CalibrationBook

HOUR = 3_600_000


def constructed(n: int = 480, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly (hour ms, true dry PM2.5, RH) over n hours: 20 days."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n, dtype=np.int64) * HOUR + 1_564_617_600_000  # 2019-08-01
    dry = rng.gamma(3.0, 3.0, n)
    rh = np.clip(60 + 30 * np.sin(np.arange(n) / 24 * 2 * np.pi) + rng.normal(0, 5, n), 20, 99.9)
    return hours, dry, rh


def as_pairs(hours: np.ndarray, raw: np.ndarray, ref: np.ndarray, rh: np.ndarray) -> Pairs:
    return Pairs(list(hours), ["d"] * len(hours), list(raw), list(ref), list(rh), [])


# --- each method recovers the coefficients that made the data ------------------------------


def test_linear_recovers_its_coefficients() -> None:
    _, dry, rh = constructed()
    raw = (dry - 2.0) / 0.7  # ref = 2 + 0.7 * raw
    c = fit("linear", raw, dry, rh)
    assert (c["a"], c["b"]) == pytest.approx((2.0, 0.7), abs=1e-9)


def test_linear_rh_recovers_its_coefficients() -> None:
    _, dry, rh = constructed()
    raw = (dry - 1.5 + 0.04 * rh) / 0.6  # ref = 1.5 + 0.6 * raw - 0.04 * RH
    c = fit("linear_rh", raw, dry, rh)
    assert (c["a"], c["b"], c["c"]) == pytest.approx((1.5, 0.6, -0.04), abs=1e-9)


def test_kohler_recovers_kappa_and_the_line() -> None:
    _, dry, rh = constructed()
    raw = (dry - 0.5) / 0.9 * growth(rh, 0.35)  # dried raw: ref = 0.5 + 0.9 * dry_raw
    c = fit("kohler", raw, dry, rh)
    assert c["kappa"] == pytest.approx(0.35, abs=1e-4)
    assert (c["a"], c["b"]) == pytest.approx((0.5, 0.9), abs=1e-3)
    assert apply("kohler", c, raw, rh) == pytest.approx(dry, abs=1e-3)


def test_growth_caps_humidity_at_99_percent() -> None:
    assert growth(np.array([100.0, 99.0]), 0.2) == pytest.approx([1 + 0.2 * 99] * 2)
    assert growth(np.array([50.0]), 0.2) == pytest.approx([1.2])


def test_a_method_with_humidity_refuses_hours_without_it() -> None:
    with pytest.raises(CalibrationError, match="needs its hour's relative humidity"):
        fit("linear_rh", np.arange(5.0), np.arange(5.0), np.array([50, 50, np.nan, 50, 50]))


# --- cross-validation over time picks the method that made the data ------------------------


@pytest.mark.parametrize("truth", ["linear", "linear_rh", "kohler"])
def test_cross_validation_chooses_the_method_that_made_the_data(truth: str) -> None:
    hours, dry, rh = constructed()
    noise = np.random.default_rng(7).normal(0, 0.3, len(dry))
    if truth == "linear":
        raw = (dry - 2.0) / 0.7
    elif truth == "linear_rh":
        raw = (dry - 1.0 + 0.15 * rh) / 0.8
    else:
        raw = dry * growth(rh, 0.5)
    fitted = fit_pairs(as_pairs(hours, raw, dry + noise, rh), "pm2_5")
    assert fitted.method == truth, {m: s.get("rmse") for m, s in fitted.cv.items()}
    assert fitted.chosen_by == "cross-validation" and fitted.folds == 5
    assert fitted.cv[truth]["rmse"] == pytest.approx(0.3, rel=0.15)  # the noise left
    assert fitted.calibrated["rmse"] < fitted.raw["rmse"]


def test_a_given_method_is_fitted_whatever_cross_validation_says() -> None:
    hours, dry, rh = constructed()
    fitted = fit_pairs(as_pairs(hours, dry * growth(rh, 0.5), dry, rh), "pm2_5", "linear")
    assert (fitted.method, fitted.chosen_by) == ("linear", "--method")
    assert fitted.cv["kohler"]["rmse"] < fitted.cv["linear"]["rmse"]


def test_without_humidity_only_linear_is_cross_validated() -> None:
    hours, dry, _ = constructed()
    nan = np.full_like(dry, np.nan)
    fitted = fit_pairs(as_pairs(hours, dry / 0.5, dry, nan), "pm2_5")
    assert fitted.method == "linear"
    assert "have no RH" in fitted.cv["kohler"]["skipped"]


def test_folds_are_blocks_of_contiguous_days() -> None:
    hours = np.arange(10 * 24, dtype=np.int64) * HOUR
    folds = day_folds(hours, 5)
    assert list(np.unique(folds)) == [0, 1, 2, 3, 4]
    assert all(np.diff(folds) >= 0)  # in time order: each fold one stretch of time
    assert all((folds == f).sum() == 48 for f in range(5))  # two whole days each
    assert len(np.unique(day_folds(hours[:48], 5))) == 2  # fewer days: one fold a day


def test_one_day_of_pairs_cannot_be_cross_validated() -> None:
    hours, dry, rh = constructed(n=20)
    with pytest.raises(CalibrationError, match="give --method"):
        fit_pairs(as_pairs(hours, dry, dry, rh), "pm2_5")
    assert fit_pairs(as_pairs(hours, dry, dry, rh), "pm2_5", "linear").method == "linear"


# --- the statistics against values worked out by hand --------------------------------------


def test_statistics_equal_hand_computed_values() -> None:
    # sensor x = 1, 3, 2, 4 against reference r = 1, 2, 3, 4: mean 2.5 both; Sxr = 4,
    # Srr = Sxx = 5; slope 4/5 = 0.8, intercept 2.5 - 0.8 * 2.5 = 0.5; r = 0.8, R² = 0.64;
    # differences 0, 1, -1, 0: RMSE sqrt(2/4); NRMSE RMSE/2.5.
    s = agreement([1, 3, 2, 4], [1, 2, 3, 4])
    assert s["n"] == 4
    assert (s["slope"], s["intercept"], s["r2"]) == pytest.approx((0.8, 0.5, 0.64))
    assert s["rmse"] == pytest.approx(math.sqrt(0.5))
    assert s["nrmse"] == pytest.approx(math.sqrt(0.5) / 2.5 * 100)
    assert s["targets"] == {"slope": True, "intercept": True, "r2": False, "rmse": True}


def test_statistics_targets_at_their_limits_and_missing_pairs_left_out() -> None:
    # x = 2 r exactly: slope 2 (not met), intercept 0, R² 1; RMSE sqrt((1+4+9)/3).
    s = agreement([2, 4, 6, float("nan")], [1, 2, 3, 9])
    assert s["n"] == 3 and s["slope"] == pytest.approx(2.0) and s["r2"] == pytest.approx(1.0)
    assert s["rmse"] == pytest.approx(math.sqrt(14 / 3))
    assert s["targets"] == {"slope": False, "intercept": True, "r2": True, "rmse": True}
    # 1.35 is in, 1.36 out; an intercept of -5 in; RMSE 8 with NRMSE under 30 % passes.
    r = np.array([20.0, 30.0, 40.0])
    assert agreement(1.35 * r - 5, r)["targets"]["slope"] is True
    assert agreement(1.36 * r, r)["targets"]["slope"] is False
    assert agreement(r + 8, r)["targets"]["rmse"] is True  # NRMSE 8/30 = 27 %
    assert agreement(r / 10 + 8, r / 10)["targets"]["rmse"] is False  # 8 > 7, NRMSE 267 %


# --- hourly pairs ---------------------------------------------------------------------------


def test_an_hour_counts_with_75_percent_of_the_readings_its_interval_expects() -> None:
    assert median_interval_ms([0, 60_000, 120_000, 180_000, 400_000]) == 60_000
    assert minimum_count(60_000) == 45
    assert minimum_count(120_000) == 23  # 30 expected
    assert minimum_count(10_000) == 270
    hourly = {0: (5.0, 44), HOUR: (6.0, 45), 2 * HOUR: (7.0, 60), 3 * HOUR: (8.0, 60)}
    reference = {0: 1.0, HOUR: 2.0, 3 * HOUR: 4.0}
    pairs = pair_hours("d", hourly, 45, reference, {HOUR: 80.0}, {HOUR: 70.0, 3 * HOUR: 75.0})
    assert pairs.hours == [HOUR, 3 * HOUR]  # 44 readings too few; no reference at 2h
    assert (pairs.raw, pairs.reference, pairs.rh) == ([6.0, 8.0], [2.0, 4.0], [80.0, 75.0])
    assert pairs.humidity_sources() == {"device": 1, "reference": 1, "none": 0}


# --- the book and read-time application -----------------------------------------------------


def test_the_book_keeps_every_version_and_the_latest_assignment_applies(tmp_path: Path) -> None:
    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    one = book.add({"method": "linear", "quantity": "pm2_5", "coefficients": {"a": 1, "b": 2}})
    two = book.add(
        {"method": "linear_rh", "quantity": "pm2_5", "coefficients": {"a": 0, "b": 1, "c": 0.1}}
    )
    assert (one["id"], two["id"]) == ("cal-1", "cal-2")
    assert book.get("cal-1") == one and book.ids() == ["cal-1", "cal-2"]
    book.assign("cal-1", "d", None, None, "a test")
    book.assign("cal-2", "d", 2 * HOUR, 3 * HOUR, "a test")
    assignments = book.assignments(["d"])
    records = {r["id"]: r for r in book.all()}
    book.close()
    rows = [
        {"time": "1970-01-01T01:00:00.000+00:00", "device_id": "d", "pm2_5": 3.0},
        {"time": "1970-01-01T02:00:00Z", "device_id": "d", "pm2_5": 3.0, "relative_humidity": 50},
        {"time": "1970-01-01T02:30:00Z", "device_id": "d", "pm2_5": 3.0},  # no RH: raw
        {"time": "1970-01-01T02:00:00Z", "device_id": "e", "pm2_5": 3.0},
    ]
    out = calibrate_rows(rows, assignments, records)
    assert [(r["pm2_5"], r["calibration"]) for r in out] == [
        (7.0, "cal-1"),
        (pytest.approx(8.0), "cal-2"),
        (3.0, "raw"),
        (3.0, "raw"),
    ]
    assert rows[0]["pm2_5"] == 3.0  # the rows given are not changed


def test_an_api_answer_is_calibrated_per_device_series(tmp_path: Path) -> None:
    from sensorpipe.query.calibrated import Calibrations, calibrate_answer

    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    book.add(
        {"method": "linear_rh", "quantity": "pm2_5", "coefficients": {"a": 1, "b": 2, "c": 0.1}}
    )
    book.assign("cal-1", "d", HOUR, None, "a test")
    assignments, records = book.assignments(), {r["id"]: r for r in book.all()}
    book.close()
    times = ["1970-01-01T00:00:00Z", "1970-01-01T01:00:00Z", "1970-01-01T02:00:00Z"]
    answer: dict[str, Any] = {
        "aggregate": "mean",
        "every": "1h",
        "group": "device",
        "series": [
            {
                "device_id": "d",
                "time": times,
                "values": {"pm2_5": [3.0, 3.0, None], "relative_humidity": [50, 50, 50]},
            },
            {"device_id": None, "site": "s", "time": times, "values": {"pm2_5": [1.0, 2.0, 3.0]}},
        ],
    }
    out = calibrate_answer(answer, Calibrations(assignments, records), set(), values="calibrated")
    d, site = out["series"]
    assert d["values"]["pm2_5"] == [3.0, 12.0, None]  # before the assignment: raw
    assert d["calibration"]["pm2_5"] == ["raw", "cal-1", "raw"]
    assert d["values"]["relative_humidity"] == [50, 50, 50]
    assert site["calibration"]["pm2_5"] == ["raw"] * 3
    assert site["values"]["pm2_5"] == [1.0, 2.0, 3.0]
    assert answer["series"][0]["values"]["pm2_5"] == [3.0, 3.0, None]  # not changed


def test_a_row_without_humidity_takes_the_reference_stations_of_its_hour() -> None:
    from sensorpipe.calibration.readtime import needing_humidity
    from sensorpipe.calibration.store import Assignment

    records = {
        "cal-1": {
            "method": "linear_rh",
            "quantity": "pm2_5",
            "reference": "ref-1",
            "coefficients": {"a": 1, "b": 2, "c": 0.1},
        }
    }
    assigned = [Assignment(1, "cal-1", "d", None, None, 0.0, "a test")]
    rows = [
        {"time": "1970-01-01T01:00:00Z", "device_id": "d", "pm2_5": 3.0},
        {"time": "1970-01-01T01:59:00Z", "device_id": "d", "pm2_5": 3.0},
        {"time": "1970-01-01T02:10:00Z", "device_id": "d", "pm2_5": 3.0},  # station has none
        {"time": "1970-01-01T02:20:00Z", "device_id": "d", "pm2_5": 3.0, "relative_humidity": 10},
    ]
    assert needing_humidity(rows, assigned, records) == {
        "ref-1": [HOUR, HOUR + 59 * 60_000, 2 * HOUR + 600_000]
    }
    out = calibrate_rows(rows, assigned, records, {"ref-1": {HOUR: 50.0, 3 * HOUR: 90.0}})
    assert [(r["pm2_5"], r["calibration"]) for r in out] == [
        (pytest.approx(12.0), "cal-1"),
        (pytest.approx(12.0), "cal-1"),
        (3.0, "raw"),
        (pytest.approx(8.0), "cal-1"),  # its own RH first
    ]


def test_a_quantity_read_only_to_calibrate_with_leaves_with_its_flag_columns() -> None:
    """`query air --quantity pm2_5` with a humidity method reads RH to calibrate with: neither RH
    nor its quality-flag columns are printed, and a row that held only RH is dropped."""
    from sensorpipe.calibration.store import Assignment
    from sensorpipe.cli.query import _label
    from sensorpipe.query.calibrated import Calibrations as _Calibrations

    record = {"method": "linear_rh", "quantity": "pm2_5", "coefficients": {"a": 1, "b": 1, "c": 0}}
    calibration = _Calibrations(
        [Assignment(1, "cal-1", "d", None, None, 0.0, "t")], {"cal-1": record}
    )
    t = "2019-08-18T05:00:00Z"
    rows = [
        {"time": t, "device_id": "d", "pm2_5": 4.0, "pm2_5_flags": "humidity",
         "relative_humidity": 80.0, "relative_humidity_flags": "stuck",
         "relative_humidity_flagged": 1},
        {"time": t, "device_id": "d", "relative_humidity": 80.0},
    ]  # fmt: skip
    (row,) = _label(rows, calibration, ("pm2_5",), ("pm2_5", "relative_humidity"))
    assert set(row) == {"time", "device_id", "pm2_5", "pm2_5_flags", "calibration"}
    assert row["calibration"] == "cal-1"


def test_each_quantity_takes_its_own_calibration() -> None:
    """A PM10 calibration assigned after a PM2.5 one does not hide it: each quantity's latest
    covering calibration of that quantity applies, and the row names both; the API's labels
    and uncertainties are per quantity."""
    from sensorpipe.calibration.readtime import calibrate_rows, label_of
    from sensorpipe.calibration.store import Assignment
    from sensorpipe.query.calibrated import Calibrations, calibrate_answer

    line = {"method": "linear", "coefficients": {"a": 1.0, "b": 2.0}, "reference": "r"}
    records = {
        "cal-1": {**line, "id": "cal-1", "quantity": "pm2_5",
                  "statistics": {"calibrated": {"rmse": 1.5}}},
        "cal-2": {**line, "id": "cal-2", "quantity": "pm10",
                  "statistics": {"calibrated": {"rmse": 3.0}}},
        "cal-3": {**line, "id": "cal-3", "quantity": "pm2_5",
                  "coefficients": {"a": 0.0, "b": 1.0}},
    }  # fmt: skip
    assigned = [
        Assignment(1, "cal-1", "d", None, None, 0.0, "t"),
        Assignment(2, "cal-2", "d", None, None, 0.0, "t"),
        Assignment(3, "cal-3", "e", None, None, 0.0, "t"),  # another device's
    ]
    t = "2019-08-18T05:00:00Z"
    (row, only) = calibrate_rows(
        [
            {"time": t, "device_id": "d", "pm2_5": 3.0, "pm10": 5.0},
            {"time": t, "device_id": "d", "pm2_5": 3.0},
        ],
        assigned,
        records,
    )
    assert (row["pm2_5"], row["pm10"]) == (7.0, 11.0)
    assert row["calibration"] == "pm10=cal-2;pm2_5=cal-1"
    assert label_of(row["calibration"], "pm2_5") == "cal-1"
    assert label_of(row["calibration"], "pm10") == "cal-2"
    assert label_of(row["calibration"], "temperature") == "raw"
    assert (only["pm2_5"], only["calibration"]) == (7.0, "cal-1")
    answer = {
        "aggregate": "mean",
        "every": "1h",
        "series": [
            {"device_id": "d", "sensor": "sds011", "time": [t],
             "values": {"pm2_5": [3.0], "pm10": [5.0]}},
        ],
    }  # fmt: skip
    (series,) = calibrate_answer(
        answer, Calibrations(assigned[:2], records), set(), values="calibrated"
    )["series"]
    assert series["values"] == {"pm2_5": [7.0], "pm10": [11.0]}
    assert series["calibration"] == {"pm2_5": ["cal-1"], "pm10": ["cal-2"]}
    assert series["uncertainty"] == {"pm2_5": [1.5], "pm10": [3.0]}


def test_a_calibrated_value_in_fog_stays_indicative() -> None:
    """RIVM: calibration is unreliable in fog. A calibrated value of an interval holding
    readings flagged fog is indicative (its uncertainty is still the calibration's)."""
    from sensorpipe.calibration.store import Assignment
    from sensorpipe.query.calibrated import Calibrations, annotate_rows, calibrate_answer

    record = {
        "id": "cal-1", "method": "linear", "quantity": "pm2_5", "reference": "r",
        "coefficients": {"a": 0.0, "b": 1.0}, "statistics": {"calibrated": {"rmse": 1.5}},
    }  # fmt: skip
    assigned = [Assignment(1, "cal-1", "d", None, None, 0.0, "t")]
    times = ["2019-08-18T05:00:00Z", "2019-08-18T06:00:00Z"]
    answer = {
        "aggregate": "mean",
        "every": "1h",
        "series": [
            {"device_id": "d", "sensor": "sds011", "time": times,
             "values": {"pm2_5": [3.0, 4.0]},
             "flags": {"pm2_5": {"flagged": [12, 0], "flags": [["fog", "humidity"], []]}}},
        ],
    }  # fmt: skip
    calibrations = Calibrations(assigned, {"cal-1": record})
    (series,) = calibrate_answer(answer, calibrations, set(), values="calibrated")["series"]
    assert series["calibration"]["pm2_5"] == ["cal-1", "cal-1"]
    assert series["indicative"]["pm2_5"] == [True, False]
    assert series["uncertainty"]["pm2_5"] == [1.5, 1.5]
    rows = [
        {"time": times[0], "device_id": "d", "pm2_5": 3.0, "pm2_5_flags": "fog,humidity",
         "calibration": "cal-1"},
        {"time": times[1], "device_id": "d", "pm2_5": 4.0, "pm2_5_flags": "",
         "calibration": "cal-1"},
    ]  # fmt: skip
    out, _ = annotate_rows(rows, ["pm2_5"], {"cal-1": record}, set(), "mean")
    assert [r["pm2_5_indicative"] for r in out] == [True, False]
    # The last reading of an interval is one reading: the interval's fog may not be its own.
    last = calibrate_answer(
        {**answer, "aggregate": "last"}, calibrations, set(), values="calibrated"
    )
    assert last["series"][0]["indicative"]["pm2_5"] == [False, False]


def test_list_says_which_calibration_applies_now(tmp_path: Path) -> None:
    """Applying a calibration again after another one makes it the one that applies: `list`
    says so, not that both apply."""
    from click.testing import CliRunner

    from sensorpipe.calibration.store import CalibrationBook
    from sensorpipe.cli.main import main

    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    stats = {"n_pairs": 10, "raw": {"rmse": 3.0}, "calibrated": {"rmse": 1.5}}
    line = {"method": "linear", "quantity": "pm2_5", "sensor_model": "logger", "unit": "ug/m3",
            "devices": ["rt01"], "reference": "ref-1", "statistics": stats}  # fmt: skip
    first, second = book.add(dict(line)), book.add(dict(line))
    book.assign(first["id"], "rt01", None, None, "t")
    book.assign(second["id"], "rt01", None, None, "t")
    book.assign(first["id"], "rt01", None, None, "t")  # back to the first
    book.close()
    out = CliRunner().invoke(main, ["calibrate", "list", "--dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = dict(line.split("  ", 1) for line in out.stdout.splitlines())
    assert lines[first["id"]].endswith("applies now to rt01")
    assert lines[second["id"]].endswith(
        "applies now to no device; assigned to rt01 for other times, or replaced by a later one"
    )
