"""`/api/v1/air?values=raw|calibrated` on the real stack, with three real days of the
co-location data (tests/data/colocation, MIT): the sensor imported twice (`import csv`), the
reference station (`import reference airnowtech`), a linear calibration fitted on the first
copy and applied to the second. The API is configured as `sensorpipe serve --dir` configures
it (it must find the stack's calibration book). Raw hourly means, calibrated values and
uncertainties are checked against an independent computation from the files (csv, statistics):
calibrated = raw × slope + intercept of a least-squares line fitted here."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.serve import serve_config
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack
from tests.integration.live_server import live_server
from tests.integration.test_calibration import (
    PERIOD,
    REFERENCE,
    STATION,
    import_copies,
    pairs,
    sensor_minutes,
    sensorpipe,
)

pytestmark = pytest.mark.integration
WINDOW = {"from": PERIOD[1], "to": PERIOD[3], "every": "1h", "quantity": "pm2_5"}


@dataclass
class World:
    stack: LocalStack
    fitted: dict[str, Any]  # `calibrate fit --method linear --json`
    base: str  # the API's address


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "api-calibrated", serve=False, kits=False) as (stack, _):
        import_copies(stack.directory, ("rt01", "rt01-copy"))
        sensorpipe(
            "import", "reference", "airnowtech", str(REFERENCE),
            "--dir", str(stack.directory), "--user", "analyst",
        )  # fmt: skip
        fit = ["calibrate", "fit", "--device", "rt01", "--reference", STATION, "--json"]
        fitted = json.loads(
            sensorpipe(*fit, "--method", "linear", "--dir", str(stack.directory)).stdout
        )
        sensorpipe(
            "calibrate", "apply", fitted["id"], "--device", "rt01-copy",
            "--dir", str(stack.directory),
        )  # fmt: skip
        config = serve_config(stack.directory, None, None, None, False)
        with live_server(create_app(ApiContext(config))) as base:
            yield World(stack, fitted, base)


def _air(world: World, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{world.base}/api/v1/air", params={**WINDOW, **params}, timeout=30)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _series(answer: dict[str, Any], device: str) -> dict[str, Any]:
    (s,) = [s for s in answer["series"] if s["device_id"] == device]
    return s


def _valued(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per interval with a PM2.5 value: time, value, calibration, uncertainty, its basis and
    indicative."""
    keys = ("calibration", "uncertainty", "uncertainty_basis", "indicative")
    columns = [s["time"], s["values"]["pm2_5"], *(s[k]["pm2_5"] for k in keys)]
    return [row for row in zip(*columns, strict=True) if row[1] is not None]


def _fog(s: dict[str, Any]) -> dict[str, bool]:
    """Per interval: whether it holds PM2.5 readings flagged fog (a calibrated value there is
    indicative: calibration does not hold in fog)."""
    names = ((s.get("flags") or {}).get("pm2_5") or {}).get("flags") or [[]] * len(s["time"])
    return {t: "fog" in n for t, n in zip(s["time"], names, strict=True)}


def _hour(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _file_means() -> dict[datetime, float]:
    return {h: statistics.fmean(v) for h, v in sensor_minutes("PM2.5 (µg/m³)").items()}


def test_serve_finds_the_stacks_calibration_book(world: World) -> None:
    config = serve_config(world.stack.directory, None, None, None, False)
    assert config.calibration_path == str(world.stack.calibration_path)
    assert world.stack.calibration_path.is_file()
    # A serve.toml that `stack up` wrote before it named the book: `serve --dir` adds it.
    older = world.stack.directory / "serve" / "serve.toml"
    older.parent.mkdir(exist_ok=True)
    older.write_text(f"registry_path = {json.dumps(str(world.stack.registry_path))}\n")
    try:
        config = serve_config(world.stack.directory, None, None, None, False)
        assert config.calibration_path == str(world.stack.calibration_path)
    finally:
        older.unlink()


def test_raw_values_are_the_files_hourly_means_with_rivm_defaults(world: World) -> None:
    answer = _air(world, values="raw", device="rt01-copy")
    assert answer["values"] == "raw"
    s = _series(answer, "rt01-copy")
    means = _file_means()
    checked = 0
    for t, value, cal, unc, _, flag in _valued(s):
        assert value == pytest.approx(means[_hour(t)], abs=1e-6)
        assert cal == "raw" and flag is True
        assert unc == round(max(5.3, 0.2 * value), 2)
        checked += 1
    assert checked >= 60
    assert "RIVM Samen Meten" in answer["uncertainty_basis"]["rivm-default:pm2_5"]


def test_calibrated_values_are_raw_times_slope_plus_intercept(world: World) -> None:
    # The line fitted here, independently: reference = a + b·raw over the complete hours.
    raw, ref = zip(*[(p[0], p[1]) for p in pairs()], strict=True)
    b, a = statistics.linear_regression(raw, ref)
    coefficients = world.fitted["coefficients"]
    assert coefficients["b"] == pytest.approx(b, rel=1e-6)
    assert coefficients["a"] == pytest.approx(a, rel=1e-6, abs=1e-9)
    answer = _air(world, device=["rt01-copy", "rt01", STATION])  # values=calibrated: default
    assert answer["values"] == "calibrated"
    s = _series(answer, "rt01-copy")
    cal_id = world.fitted["id"]
    rmse = world.fitted["statistics"]["cv"]["linear"]["rmse"]
    means = _file_means()
    checked = 0
    fog = _fog(s)
    for t, value, cal, unc, basis, flag in _valued(s):
        assert value == pytest.approx(means[_hour(t)] * b + a, rel=1e-6)
        assert (cal, unc, basis) == (cal_id, round(rmse, 2), f"calibration:{cal_id}")
        assert flag is fog[t]  # indicative only where its hour held fog
        checked += 1
    assert checked >= 60 and 0 < sum(fog.values()) < checked  # the real data has both
    sentence = answer["uncertainty_basis"][f"calibration:{cal_id}"]
    assert cal_id in sentence and STATION in sentence and "out-of-fold" in sentence
    # The device without an assignment stays raw, and says it is indicative.
    other = _series(answer, "rt01")
    assert set(other["calibration"]["pm2_5"]) == {"raw"}
    assert {f for f in other["indicative"]["pm2_5"] if f is not None} == {True}
    # The reference station: no uncertainty (it is the reference), not indicative.
    station = _series(answer, STATION)
    assert set(station["uncertainty"]["pm2_5"]) == {None}
    assert {f for f in station["indicative"]["pm2_5"] if f is not None} == {False}


def test_a_count_is_never_calibrated(world: World) -> None:
    s = _series(_air(world, device="rt01-copy", agg="count"), "rt01-copy")
    assert set(s["calibration"]["pm2_5"]) == {"raw"}
    assert set(s["uncertainty"]["pm2_5"]) == {None}


def test_csv_and_query_air_carry_the_same_columns(world: World) -> None:
    r = httpx.get(
        f"{world.base}/api/v1/air",
        params={**WINDOW, "device": "rt01-copy", "format": "csv"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["pm2_5_ugm3"]]
    assert rows
    cal_id = world.fitted["id"]
    for row in rows:
        assert row["pm2_5_calibration"] == cal_id
        fog = "fog" in (row.get("pm2_5_flags") or "").split(",")
        assert row["pm2_5_indicative"] == ("true" if fog else "false")
        assert float(row["pm2_5_uncertainty_ugm3"]) > 0
    assert any(row["pm2_5_indicative"] == "false" for row in rows)
    result = sensorpipe(
        "query", "air", "--device", "rt01", "--quantity", "pm2_5", "--every", "1h",
        *PERIOD, "--format", "csv", "--dir", str(world.stack.directory),
    )  # fmt: skip
    printed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert printed and {r["pm2_5_indicative"] for r in printed} == {"true"}
    assert {r["calibration"] for r in printed} == {"raw"}
    for row in printed:  # the value printed to 0.1 µg/m³, its uncertainty from the unrounded
        v = float(row["pm2_5_ugm3"])
        assert float(row["pm2_5_uncertainty_ugm3"]) == pytest.approx(max(5.3, 0.2 * v), abs=0.02)
    table = sensorpipe(
        "query", "air", "--device", "rt01", "--quantity", "pm2_5", "--every", "1h",
        *PERIOD, "--dir", str(world.stack.directory),
    )  # fmt: skip
    assert "uncertainty rivm-default:pm2_5: RIVM Samen Meten's default" in table.stderr


def test_the_openapi_description_documents_the_contract(world: World) -> None:
    spec = httpx.get(f"{world.base}/openapi.json", timeout=30).json()
    (values,) = [
        p for p in spec["paths"]["/api/v1/air"]["get"]["parameters"] if p["name"] == "values"
    ]
    assert values["schema"]["enum"] == ["calibrated", "raw"]
    assert values["schema"]["default"] == "calibrated"
    air, series = (
        spec["components"]["schemas"]["AirOut"],
        spec["components"]["schemas"]["AirSeries"],
    )
    assert {"values", "uncertainty_basis"} <= set(air["properties"])
    assert {"calibration", "uncertainty", "uncertainty_basis", "indicative"} <= set(
        series["properties"]
    )
    assert (
        "RIVM" in series["properties"]["uncertainty"]["description"]
        or "RIVM" in (air["properties"]["uncertainty_basis"]["description"])
    )
