"""The register says per device and quantity whether and how it is calibrated (issue 27, point
5): calibration.status against a real calibration book, and `devices export` in JSON, CSV and
the English and Dutch HTML page; flagged_7d on the page."""

from __future__ import annotations

import csv
import html
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.calibration.status import (
    Applied,
    calibration_status,
    describe,
    uncertainty,
)
from sensorpipe.calibration.store import Assignment, CalibrationBook
from sensorpipe.cli.calibrate import book_path
from sensorpipe.protocol.registry import DeviceEntry, load_registry, save_registry
from sensorpipe.query.export import export
from sensorpipe.query.register import DeviceStats, RegisterStats
from tests.test_register_export import _visible_text, directory, run_export

__all__ = ["directory"]  # the fixture, used by name

DAY_MS = 86_400_000


def record(quantity: str = "pm2_5", *, cv: float | None = 1.61, **more: Any) -> dict[str, Any]:
    """A calibration record as `calibrate fit` stores it (the fields the register reads)."""
    return {
        "method": "linear",
        "coefficients": {"a": -1.5, "b": 0.62},
        "formula": "ref = -1.5 + 0.62·raw",
        "quantity": quantity,
        "unit": "ug/m3",
        "sensor_model": "sds011",
        "devices": ["air-1"],
        "reference": "ref-370630099",
        "statistics": {
            "n_pairs": 706,
            "raw": {"n": 706, "rmse": 3.53, "r2": 0.52},
            "calibrated": {"n": 706, "rmse": 1.58, "r2": 0.52},
            "cv": {"linear": {"n": 706, "rmse": cv} if cv is not None else {"skipped": "x"}},
        },
        **more,
    }


def test_the_calibration_that_applies_now_is_the_latest_covering_assignment_per_quantity(
    tmp_path: Path,
) -> None:
    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    now = int(time.time() * 1000)
    pm25_old, pm25_new = book.add(record())["id"], book.add(record())["id"]
    pm10 = book.add(record("pm10"))["id"]
    book.assign(pm25_old, "a", None, None, "t")
    book.assign(pm25_new, "a", now - DAY_MS, None, "t")  # later made: wins where it covers
    book.assign(pm10, "a", None, None, "t")  # another quantity does not hide PM2.5's
    book.assign(pm25_new, "b", None, now - DAY_MS, "t")  # expired yesterday
    book.assign(pm25_old, "c", now + DAY_MS, None, "t")  # from tomorrow
    status = calibration_status(book, ["a", "b", "c", "d"], now)
    assert {q: s.calibration_id for q, s in status["a"].items()} == {
        "pm2_5": pm25_new,
        "pm10": pm10,
    }
    assert "b" not in status and "c" not in status and "d" not in status
    # A day earlier the newer one did not cover "a" yet, and "b"'s had not expired.
    before = calibration_status(book, ["a", "b"], now - 2 * DAY_MS)
    assert before["a"]["pm2_5"].calibration_id == pm25_old
    assert before["b"]["pm2_5"].calibration_id == pm25_new
    book.close()
    assert calibration_status(None, ["a"], now) == {}


def test_describe_names_reference_stations_and_indicative_values() -> None:
    a = Assignment(1, "cal-3", "x", 1_565_000_000_000, None, 0.0, "t")
    applied = {"pm2_5": Applied(a, {**record(), "id": "cal-3"})}
    out = describe(["pm2_5", "temperature"], "edge", applied)
    assert out["temperature"] == {"status": "not_calibrated"}
    pm = out["pm2_5"]
    assert pm["status"] == "calibrated" and pm["calibration_id"] == "cal-3"
    assert pm["reference"] == "ref-370630099" and pm["method"] == "linear"
    assert pm["valid_from"] == "2019-08-05T10:13:20Z" and pm["valid_to"] is None
    assert (pm["n_hours"], pm["rmse"], pm["r2"]) == (706, 1.58, 0.52)
    assert pm["algorithm"] == "sensorpipe:calibration:linear"
    # A reference station's own values are the reference, whatever is assigned.
    assert describe(["pm2_5"], "reference", applied) == {"pm2_5": {"status": "reference"}}


def test_uncertainty_is_the_out_of_fold_rmse_else_the_fits() -> None:
    assert uncertainty(record()) == (1.61, "cv")
    assert uncertainty(record(cv=None)) == (1.58, "fitted")
    assert uncertainty({}) == (None, "fitted")


def _with_calibration(directory: Path) -> str:
    """air-1's PM2.5 calibrated from 2019-08-19 (the book where `calibrate` keeps it), and a
    reference station in the register; the calibration's id."""
    registry = load_registry(directory / "registry.toml")
    registry.devices["ref-370630099"] = DeviceEntry(
        site="burdens-creek",
        source="reference",
        station_code="370630099",
        sensors=["fem"],
        quantities=["pm2_5"],
    )
    save_registry(registry, directory / "registry.toml")
    book = CalibrationBook(book_path(directory))
    cal = str(book.add(record())["id"])
    book.assign(cal, "air-1", 1_566_172_800_000, None, "analyst")
    book.close()
    return cal


def test_devices_export_states_how_each_quantity_is_calibrated(directory: Path) -> None:
    # Before any calibration: every quantity of a low-cost sensor is indicative.
    before = {r["device_id"]: r for r in json.loads(run_export(directory).stdout)}
    assert before["air-1"]["calibration"]["pm2_5"] == {"status": "not_calibrated"}
    cal = _with_calibration(directory)
    records = {r["device_id"]: r for r in json.loads(run_export(directory).stdout)}
    pm = records["air-1"]["calibration"]["pm2_5"]
    assert pm["calibration_id"] == cal and pm["valid_from"] == "2019-08-19T00:00:00Z"
    assert pm["reference"] == "ref-370630099" and pm["uncertainty"] == 1.61
    assert records["air-1"]["calibration"]["temperature"] == {"status": "not_calibrated"}
    assert records["home-1"]["calibration"]["pm2_5"] == {"status": "not_calibrated"}
    assert records["cam-1"]["calibration"] == {}  # it measures no air
    assert records["ref-370630099"]["calibration"] == {"pm2_5": {"status": "reference"}}
    # The algorithm register entry it links to exists.
    algorithms = json.loads(run_export(directory, "--format", "algorithms").stdout)
    assert pm["algorithm"] in {e["source_id"] for e in algorithms}
    rows = {
        r["device_id"]: r
        for r in csv.DictReader(io.StringIO(run_export(directory, "--format", "csv").stdout))
    }
    assert (
        f"pm2_5={cal} (linear, reference ref-370630099, valid from 2019-08-19T00:00:00Z, 706 "
        f"hours, RMSE 1.58 ug/m3, R² 0.52, algorithm sensorpipe:calibration:linear)"
        in rows["air-1"]["calibration"].split(";")
    )
    assert "temperature=not_calibrated" in rows["air-1"]["calibration"].split(";")

    en = html.unescape(_visible_text(run_export(directory, "--format", "html").stdout))
    assert (
        f"Particulate matter (PM2.5): calibrated with {cal} (linear) against reference station "
        f"ref-370630099; valid from 2019-08-19 00:00 UTC; 706 hours; after calibration RMSE "
        f"1.58 µg/m³, R² 0.52; algorithm register: sensorpipe:calibration:linear" in en
    )
    assert "Temperature: not calibrated: values are indicative" in en
    assert "reference station: these are the values other sensors are calibrated against" in en
    nl = html.unescape(
        _visible_text(run_export(directory, "--format", "html", "--lang", "nl").stdout)
    )
    assert (
        f"Fijnstof (PM2,5): gekalibreerd met {cal} (lineair) tegen referentiestation "
        f"ref-370630099; geldig vanaf 2019-08-19 00:00 UTC; 706 uur; na kalibratie RMSE 1,58 "
        f"µg/m³, R² 0,52; algoritmeregister: sensorpipe:calibration:linear" in nl
    )
    assert "Temperatuur: niet gekalibreerd: indicatieve waarden" in nl
    assert "Kalibratie" in nl and "not calibrated" not in nl


FLAGGED_TEXTS = {  # lang: the row's heading, air-1's flags, home-1's (none)
    "en": ("Readings flagged, last 7 days", "fog (RH ≥ 98 %) 1,234, stuck 5", "none"),
    "nl": (
        "Gemarkeerde metingen, afgelopen 7 dagen",
        "mist (RV ≥ 98 %) 1.234, vastgelopen 5",
        "geen",
    ),
}


def test_flagged_7d_is_on_the_html_page(directory: Path) -> None:
    registry = load_registry(directory / "registry.toml")
    stats = RegisterStats(
        {"air-1": DeviceStats(first_seen_ms=1, flagged_7d={"stuck": 5, "fog": 1234})},
        int(time.time() * 1000),
    )
    for lang, (heading, counts, none) in FLAGGED_TEXTS.items():
        page = html.unescape(_visible_text(export(registry, stats, "html", lang=lang)))
        text = " ".join(page.split())
        assert f"{heading} {counts}" in text and f"{heading} {none}" in text


def test_the_stack_serves_with_the_book_calibrate_writes(tmp_path: Path) -> None:
    """`stack up`'s serve.toml names the book `sensorpipe calibrate` keeps."""
    from sensorpipe.api.config import load_serve_config
    from sensorpipe.stack.local import LocalStack

    stack = LocalStack(tmp_path / "st")
    written = stack._write_serve_config(1883, "http://127.0.0.1:8086", 8080)
    assert load_serve_config(written).calibration_path == str(book_path(stack.directory))


def test_the_api_reads_the_configured_book_and_refuses_a_broken_one(tmp_path: Path) -> None:
    """No book configured: nothing is calibrated. A book that cannot be read is a 503, not a
    register that says "not calibrated"."""
    from sensorpipe.api.config import ServeConfig
    from sensorpipe.api.context import ApiContext
    from sensorpipe.api.problems import ApiProblem

    assert ApiContext(ServeConfig()).calibrations_now(["a"]) == {}
    good = CalibrationBook(tmp_path / "calibrations.sqlite")
    good.assign(str(good.add(record())["id"]), "a", None, None, "t")
    good.close()
    served = ApiContext(ServeConfig(calibration_path=str(tmp_path / "calibrations.sqlite")))
    assert served.calibrations_now(["a"])["a"]["pm2_5"].calibration_id == "cal-1"
    assert served.calibration_methods_in_use() == {"linear"}
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ApiProblem) as caught:
        ApiContext(ServeConfig(calibration_path=str(broken))).calibrations_now(["a"])
    assert caught.value.status == 503 and "calibration book cannot be read" in str(caught.value)
