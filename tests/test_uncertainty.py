"""The uncertainty of a shown value (query.uncertainty) at its thresholds, and how an air
answer is labelled with it (query.calibrated): calibration RMSE, RIVM Samen Meten's defaults,
data sheets, reference stations, indicative values."""

from __future__ import annotations

from typing import Any

import pytest

from sensorpipe.calibration.store import Assignment
from sensorpipe.query import uncertainty as u
from sensorpipe.query.calibrated import Calibrations, annotate_rows, calibrate_answer


def _raw(quantity: str, value: float, sensor: str | None = "sds011") -> u.Uncertainty:
    return u.of_value(quantity, value, sensor=sensor, reference=False)


@pytest.mark.parametrize(
    ("quantity", "value", "expected"),
    [
        ("pm2_5", 0.0, 5.3),
        ("pm2_5", 26.4, 5.3),
        ("pm2_5", 26.5, 5.3),  # the crossover: 20 % of 26.5 is 5.3
        ("pm2_5", 26.6, 5.32),
        ("pm2_5", 100.0, 20.0),
        ("pm10", 42.4, 8.5),
        ("pm10", 42.5, 8.5),  # 20 % of 42.5 is 8.5
        ("pm10", 42.6, 8.52),
        ("pm10", 200.0, 40.0),
    ],
)
def test_rivm_default_is_the_floor_or_20_percent_whichever_is_larger(
    quantity: str, value: float, expected: float
) -> None:
    got = _raw(quantity, value)
    assert got.value == expected
    assert got.basis == f"rivm-default:{quantity}"


def test_data_sheet_where_known_else_none() -> None:
    assert _raw("temperature", 21.0, "bme280") == u.Uncertainty(
        1.0, "data-sheet:bme280:temperature"
    )
    assert _raw("relative_humidity", 60.0, "BME280").value == 3.0
    assert _raw("temperature", 21.0, "sht31") == u.NONE
    assert _raw("no2", 30.0, None) == u.NONE
    assert _raw("pm1", 3.0) == u.NONE  # RIVM names defaults for PM2.5 and PM10 only


def _record(cv: float | None, fitted: float) -> dict[str, Any]:
    return {
        "id": "cal-7",
        "method": "linear",
        "quantity": "pm2_5",
        "reference": "ref-1",
        "coefficients": {"a": 1.0, "b": 0.5},
        "statistics": {
            "calibrated": {"rmse": fitted},
            "cv": {"linear": {"n": 40, "rmse": cv} if cv is not None else {"skipped": "x"}},
        },
    }


def test_a_calibrated_value_carries_its_cv_rmse_else_its_fitted_rmse() -> None:
    with_cv = u.of_value(
        "pm2_5", 80.0, sensor="sds011", reference=False, calibration=_record(1.234, 1.0)
    )
    assert with_cv == u.Uncertainty(1.23, "calibration:cal-7")  # not 20 % of 80
    sentence = u.basis_sentence("calibration:cal-7", {"cal-7": _record(1.234, 1.0)})
    assert "cal-7" in sentence and "ref-1" in sentence and "out-of-fold" in sentence
    assert "1.23 µg/m³" in sentence
    fitted = u.of_value(
        "pm2_5", 8.0, sensor="sds011", reference=False, calibration=_record(None, 2.5)
    )
    assert fitted.value == 2.5
    assert "in-sample" in u.basis_sentence("calibration:cal-7", {"cal-7": _record(None, 2.5)})


def test_reference_values_have_none_and_are_not_indicative() -> None:
    assert u.of_value("pm2_5", 40.0, sensor="fem", reference=True) == u.NONE
    assert u.indicative(40.0, reference=True, calibrated=False) is False
    assert u.indicative(40.0, reference=False, calibrated=True) is False
    assert u.indicative(40.0, reference=False, calibrated=False) is True
    assert u.indicative(None, reference=False, calibrated=False) is None


def test_rivm_sentence_names_rivm_and_the_crossover() -> None:
    text = u.basis_sentence("rivm-default:pm2_5", {})
    assert "RIVM Samen Meten" in text and "±5.3 µg/m³" in text and "26.5" in text


def _answer(aggregate: str = "mean", group: str = "device") -> dict[str, Any]:
    return {
        "aggregate": aggregate,
        "group": group,
        "units": {"pm2_5": "ug/m3", "temperature": "degC"},
        "series": [
            {
                "device_id": "d1" if group == "device" else None,
                "site": "s",
                "sensor": "sds011",
                "time": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"],
                "values": {"pm2_5": [10.0, None, 40.0]},
                "flags": {},
            },
            {
                "device_id": "ref" if group == "device" else None,
                "site": "s",
                "sensor": "fem",
                "time": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"],
                "values": {"pm2_5": [7.0, 8.0, 9.0]},
                "flags": {},
            },
        ],
    }


JAN_1_0130 = 1704072600000  # 2024-01-01T01:30Z


def _calibrations() -> Calibrations:
    # cal-7 applies to d1 from 01:30 on: the 00:00 interval stays raw
    return Calibrations(
        [Assignment(1, "cal-7", "d1", JAN_1_0130, None, 0.0, "t")], {"cal-7": _record(1.5, 1.0)}
    )


def test_an_answer_is_calibrated_per_interval_and_labelled() -> None:
    out = calibrate_answer(_answer(), _calibrations(), {"ref"}, values="calibrated")
    d1, ref = out["series"]
    assert d1["values"]["pm2_5"] == [10.0, None, 1.0 + 0.5 * 40.0]
    assert d1["calibration"]["pm2_5"] == ["raw", "raw", "cal-7"]
    assert d1["uncertainty"]["pm2_5"] == [5.3, None, 1.5]
    assert d1["uncertainty_basis"]["pm2_5"] == ["rivm-default:pm2_5", None, "calibration:cal-7"]
    assert d1["indicative"]["pm2_5"] == [True, None, False]
    assert ref["uncertainty"]["pm2_5"] == [None, None, None]
    assert ref["indicative"]["pm2_5"] == [False, False, False]
    assert out["values"] == "calibrated"
    assert set(out["uncertainty_basis"]) == {"rivm-default:pm2_5", "calibration:cal-7"}


def test_raw_values_count_and_site_series_are_not_calibrated() -> None:
    raw = calibrate_answer(_answer(), _calibrations(), {"ref"}, values="raw")
    assert raw["series"][0]["values"]["pm2_5"] == [10.0, None, 40.0]
    assert raw["series"][0]["uncertainty"]["pm2_5"] == [5.3, None, 8.0]
    assert raw["series"][0]["indicative"]["pm2_5"] == [True, None, True]
    counted = calibrate_answer(_answer("count"), _calibrations(), {"ref"}, values="calibrated")
    assert counted["series"][0]["calibration"]["pm2_5"] == ["raw"] * 3
    assert counted["series"][0]["uncertainty"]["pm2_5"] == [None] * 3
    assert counted["series"][0]["indicative"]["pm2_5"] == [None] * 3
    assert counted["uncertainty_basis"] == {}
    site = calibrate_answer(_answer(group="site"), _calibrations(), set(), values="calibrated")
    assert site["series"][0]["values"]["pm2_5"] == [10.0, None, 40.0]
    assert site["series"][0]["calibration"]["pm2_5"] == ["raw"] * 3


def test_query_rows_get_the_same_columns() -> None:
    rows = [
        {
            "time": "2024-01-01T02:00:00Z",
            "device_id": "d1",
            "sensor": "sds011",
            "pm2_5": 21.0,
            "calibration": "cal-7",
        },
        {
            "time": "2024-01-01T02:00:00Z",
            "device_id": "b",
            "sensor": "bme280",
            "temperature": 4.0,
            "calibration": "raw",
        },
    ]
    out, used = annotate_rows(
        rows, ["pm2_5", "temperature"], {"cal-7": _record(1.5, 1.0)}, set(), "mean"
    )
    assert out[0]["pm2_5_uncertainty_ugm3"] == 1.5 and out[0]["pm2_5_indicative"] is False
    assert (
        out[1]["temperature_uncertainty_degc"] == 1.0 and out[1]["temperature_indicative"] is True
    )
    assert used == {"calibration:cal-7", "data-sheet:bme280:temperature"}


def test_the_service_reads_the_book_again_when_it_changes(tmp_path: Any) -> None:
    from sensorpipe.api.config import ServeConfig
    from sensorpipe.api.context import ApiContext
    from sensorpipe.calibration.store import CalibrationBook

    path = tmp_path / "calibrations.sqlite"
    ctx = ApiContext(ServeConfig(calibration_path=str(path)))
    try:
        assert ctx.calibrations([]) is None  # no book yet: every value raw
        book = CalibrationBook(path)
        cal = book.add({k: v for k, v in _record(1.5, 1.0).items() if k != "id"})["id"]
        book.assign(cal, "d1", None, None, "t")
        first = ctx.calibrations(["d1"])
        assert [a.device_id for a in first.assignments] == ["d1"]
        assert ctx.calibrations(["d2"]) is None
        book.assign(cal, "d2", None, None, "t")  # applied while the service runs
        book.close()
        assert [a.device_id for a in ctx.calibrations(["d2"]).assignments] == ["d2"]
        assert len(ctx.calibrations([]).assignments) == 2
    finally:
        ctx.close()


def test_co2_of_an_scd4x_or_scd30_is_its_data_sheets_fixed_part_plus_a_share() -> None:
    # SCD4x ±(50 ppm + 5 % of the value), SCD30 ±(30 ppm + 3 %)
    assert _raw("co2", 800.0, "scd4x") == u.Uncertainty(90.0, "data-sheet:scd4x:co2")
    assert _raw("co2", 1000.0, "scd30") == u.Uncertainty(60.0, "data-sheet:scd30:co2")
    assert _raw("temperature", 21.0, "scd4x") == u.Uncertainty(0.8, "data-sheet:scd4x:temperature")
    sentence = u.basis_sentence("data-sheet:scd4x:co2", {})
    assert "±(50 ppm + 5 % of the value)" in sentence
