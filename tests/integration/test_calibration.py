"""`sensorpipe calibrate` on the real stack with three real days of the co-location data
(tests/data/colocation, MIT): the sensor imported with `import csv`, its reference with `import
reference airnowtech`, a calibration fitted and checked against an independent computation
from the files (csv + statistics, not sensorpipe's code), applied to the same slice imported as
a second device, and `query air --values calibrated` equal to the coefficients applied to the
raw hourly means."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack

DATA = Path(__file__).parent.parent / "data" / "colocation"
SENSOR = DATA / "toco_toucan_RT01_2019-08-18_20.csv"
REFERENCE = DATA / "airnowtech_2019-08-18_20.csv"
STATION = "ref-370630099"
PERIOD = ["--from", "2019-08-18T05:00:00Z", "--to", "2019-08-21T05:00:00Z"]
SENSOR_ARGS = [
    "--register", "--site", "burdens-creek", "--time", "Time",
    "--time-format", "%m/%d/%Y %H:%M", "--timezone", "UTC-05:00",
    "--column", "PM2.5 (µg/m³)=pm2_5", "--column", "RH (%)=relative_humidity",
]  # fmt: skip


def sensorpipe(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def import_copies(directory: Path, devices: tuple[str, ...]) -> None:
    """The sensor's file imported as each of `devices` into the stack in `directory` (the same
    file again, as another device: --force past the ledger of files)."""
    for device in devices:
        sensorpipe(
            "import", "csv", str(SENSOR), "--device", device, "--force", *SENSOR_ARGS,
            "--dir", str(directory), "--user", "analyst",
        )  # fmt: skip


@dataclass
class World:
    stack: LocalStack
    fitted: dict[str, Any]  # `calibrate fit --json`, method chosen by cross-validation
    linear: dict[str, Any]  # `calibrate fit --method linear --json`

    def dir(self) -> list[str]:
        return ["--dir", str(self.stack.directory)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "calibration", serve=False, kits=False) as (stack, _):
        d = ["--dir", str(stack.directory), "--user", "analyst"]
        import_copies(stack.directory, ("rt01", "rt01-copy"))
        # A third copy without the humidity column: calibrated with the station's RH.
        no_rh = SENSOR_ARGS[: SENSOR_ARGS.index("RH (%)=relative_humidity") - 1]
        sensorpipe("import", "csv", str(SENSOR), "--device", "rt01-dry", "--force", *no_rh, *d)
        sensorpipe("import", "reference", "airnowtech", str(REFERENCE), *d)
        fit = ["calibrate", "fit", "--device", "rt01", "--reference", STATION, "--json"]
        fitted = json.loads(sensorpipe(*fit, "--dir", str(stack.directory)).stdout)
        linear = json.loads(
            sensorpipe(*fit, "--method", "linear", "--dir", str(stack.directory)).stdout
        )
        # The second device: cal-1 for all time, then cal-2 from 20 August (the later wins).
        apply = ["calibrate", "apply", "--device", "rt01-copy", "--dir", str(stack.directory)]
        sensorpipe(*apply[:2], fitted["id"], *apply[2:])
        sensorpipe(*apply[:2], linear["id"], *apply[2:], "--from", "2019-08-20T00:00:00Z")
        sensorpipe(*apply[:2], fitted["id"], "--device", "rt01-dry", *apply[4:])
        yield World(stack, fitted, linear)


# --- the independent computation: the files read with csv and statistics -------------------


def sensor_minutes(column: str) -> dict[datetime, list[float]]:
    """A column's values per UTC hour, from the sensor's file (local time UTC-05:00)."""
    with SENSOR.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()
    out: dict[datetime, list[float]] = defaultdict(list)
    for row in csv.DictReader(lines[6:]):
        local = datetime.strptime(row["Time"], "%m/%d/%Y %H:%M")
        if row[column]:
            out[(local + timedelta(hours=5)).replace(minute=0, tzinfo=UTC)].append(
                float(row[column])
            )
    return out


def reference_hours(param: str = "PM2.5-88101") -> dict[datetime, float]:
    """The reference's valid (QC code 0) values of a parameter per UTC hour."""
    with REFERENCE.open(newline="") as f:
        return {
            datetime.strptime(f"{r['Date (UTC)']} {r['Time (UTC)']}", "%m/%d/%Y %H:%M").replace(
                tzinfo=UTC
            ): float(r["Value"])
            for r in csv.DictReader(f)
            if r["Param"] == param and r["QC Code"] == "0"
        }


def pairs() -> list[tuple[float, float, float]]:
    """(raw hourly mean, reference, hourly mean RH) of the hours with >= 45 of 60 minutes."""
    pm, rh, ref = sensor_minutes("PM2.5 (µg/m³)"), sensor_minutes("RH (%)"), reference_hours()
    return [
        (statistics.fmean(pm[h]), ref[h], statistics.fmean(rh[h]))
        for h in sorted(pm)
        if len(pm[h]) >= 45 and h in ref
    ]


def calibrated(record: dict[str, Any], raw: float, rh: float) -> float:
    """The calibration's formula, written out here from its documented form."""
    c = record["coefficients"]
    if record["method"] == "linear":
        return float(c["a"] + c["b"] * raw)
    if record["method"] == "linear_rh":
        return float(c["a"] + c["b"] * raw + c["c"] * rh)
    growth = 1 + c["kappa"] / (100 / min(rh, 99.0) - 1)
    return float(c["a"] + c["b"] * raw / growth)


def expected_agreement(values: list[float], reference: list[float]) -> dict[str, float]:
    slope, intercept = statistics.linear_regression(reference, values)
    rmse = math.sqrt(statistics.fmean((v - r) ** 2 for v, r in zip(values, reference, strict=True)))
    return {
        "n": len(values),
        "slope": slope,
        "intercept": intercept,
        "r2": statistics.correlation(values, reference) ** 2,
        "rmse": rmse,
        "nrmse": rmse / statistics.fmean(reference) * 100,
    }


def test_the_raw_statistics_are_those_of_the_files(world: World) -> None:
    raw, ref, _ = zip(*pairs(), strict=True)
    expected = expected_agreement(list(raw), list(ref))
    assert 60 <= expected["n"] < 72  # 4 invalid reference hours, and incomplete ones, left out
    stored = world.fitted["statistics"]["raw"]
    assert {k: stored[k] for k in expected} == pytest.approx(expected, rel=1e-9)
    assert world.fitted["statistics"]["n_pairs"] == expected["n"]


def test_the_calibrated_statistics_are_the_formula_applied_to_the_files(world: World) -> None:
    found = pairs()
    for record in (world.fitted, world.linear):
        values = [calibrated(record, raw, rh) for raw, _, rh in found]
        expected = expected_agreement(values, [ref for _, ref, _ in found])
        stored = record["statistics"]["calibrated"]
        assert {k: stored[k] for k in expected} == pytest.approx(expected, rel=1e-9)
        assert stored["rmse"] < record["statistics"]["raw"]["rmse"]


def test_the_linear_fit_is_least_squares_of_the_reference_on_the_raw_means(world: World) -> None:
    raw, ref, _ = zip(*pairs(), strict=True)
    b, a = statistics.linear_regression(raw, ref)
    assert world.linear["coefficients"] == pytest.approx({"a": a, "b": b}, rel=1e-9)
    assert (world.fitted["id"], world.linear["id"]) == ("cal-1", "cal-2")  # versions
    assert world.linear["chosen_by"] == "--method"
    assert (
        world.fitted["chosen_by"] == "cross-validation" and world.fitted["folds"] == 4
    )  # UTC days 18-21
    assert set(world.fitted["statistics"]["cv"]) == {"linear", "linear_rh", "kohler"}
    # On these three days humidity explains what a line cannot: the next test then also
    # checks that the hourly RH is read to calibrate with.
    assert world.fitted["method"] == "linear_rh"
    assert world.fitted["humidity_from"] == {"device": len(pairs()), "reference": 0, "none": 0}
    assert world.fitted["sensor_model"] == "logger" and world.fitted["hours_needed"] == {"rt01": 45}


def test_calibrated_hourly_means_of_a_second_device_are_the_formula(world: World) -> None:
    query = ["query", "air", "--device", "rt01-copy", "--quantity", "pm2_5", "--every", "1h"]
    answer = json.loads(sensorpipe(*query, *PERIOD, "--format", "json", *world.dir()).stdout)
    raw = json.loads(
        sensorpipe(*query, *PERIOD, "--values", "raw", "--format", "json", *world.dir()).stdout
    )
    pm, rh = sensor_minutes("PM2.5 (µg/m³)"), sensor_minutes("RH (%)")
    assert len(answer) == len(raw) == len(pm) == 72
    records = {world.fitted["id"]: world.fitted, world.linear["id"]: world.linear}
    for row, raw_row in zip(answer, raw, strict=True):
        hour = datetime.fromisoformat(row["time"])
        later = hour >= datetime(2019, 8, 20, tzinfo=UTC)
        assert row["calibration"] == ("cal-2" if later else "cal-1")
        assert raw_row["calibration"] == "raw"
        assert raw_row["pm2_5"] == pytest.approx(statistics.fmean(pm[hour]), rel=1e-12)
        record = records[row["calibration"]]
        expected = calibrated(record, statistics.fmean(pm[hour]), statistics.fmean(rh[hour]))
        assert row["pm2_5"] == pytest.approx(expected, rel=1e-9)
        # Read to calibrate with, not asked for: neither it nor its quality flags are shown.
        assert not [k for k in row if k.startswith("relative_humidity")]
    # The training device has no assignment: its values stay raw, and say so.
    own = json.loads(sensorpipe(*query[:3], "rt01", *query[4:], *PERIOD, "--format", "json",
                                *world.dir()).stdout)  # fmt: skip
    assert {r["calibration"] for r in own} == {"raw"}
    table = sensorpipe(*query, *PERIOD, *world.dir()).stdout
    assert table.splitlines()[0].split()[-1] == "calibration"


def test_a_device_without_humidity_is_calibrated_with_the_stations(world: World) -> None:
    assert world.fitted["method"] == "linear_rh"
    query = ["query", "air", "--device", "rt01-dry", "--quantity", "pm2_5", "--every", "1h"]
    answer = json.loads(sensorpipe(*query, *PERIOD, "--format", "json", *world.dir()).stdout)
    pm, station_rh = sensor_minutes("PM2.5 (µg/m³)"), reference_hours("RHUM")
    assert len(answer) == 72 and len(station_rh) == 72
    for row in answer:
        hour = datetime.fromisoformat(row["time"])
        expected = calibrated(world.fitted, statistics.fmean(pm[hour]), station_rh[hour])
        assert (row["pm2_5"], row["calibration"]) == (pytest.approx(expected, rel=1e-9), "cal-1")
    # Its minute readings too: each takes the station's RH of its hour.
    minutes = json.loads(
        sensorpipe(*query[:-2], "--from", "2019-08-19T10:00:00Z", "--to", "2019-08-19T10:03:00Z",
                   "--format", "json", *world.dir()).stdout
    )  # fmt: skip
    rh = station_rh[datetime(2019, 8, 19, 10, tzinfo=UTC)]
    raw = pm[datetime(2019, 8, 19, 10, tzinfo=UTC)][:3]
    assert [r["pm2_5"] for r in minutes] == pytest.approx(
        [calibrated(world.fitted, v, rh) for v in raw], rel=1e-9
    )


def test_apply_refuses_another_sensor_model_and_show_lists_assignments(world: World) -> None:
    refused = sensorpipe("calibrate", "apply", "cal-2", "--device", STATION, *world.dir(), ok=False)
    assert refused.exit_code == 1
    assert "sensor model reference; cal-2 was fitted on logger" in refused.output
    shown = json.loads(sensorpipe("calibrate", "show", "cal-2", "--json", *world.dir()).stdout)
    assert [(a["device_id"], a["from"], a["to"]) for a in shown["assigned"]] == [
        ("rt01-copy", "2019-08-20T00:00:00Z", None)
    ]
    assert shown["coefficients"] == world.linear["coefficients"]
    listed = json.loads(sensorpipe("calibrate", "list", "--json", *world.dir()).stdout)
    assert [r["id"] for r in listed][:2] == ["cal-1", "cal-2"]
    assert [a["device_id"] for a in listed[0]["assigned"]] == ["rt01-copy", "rt01-dry"]


def test_a_fit_without_data_says_what_is_missing_in_one_line(world: World) -> None:
    fit = ["calibrate", "fit", *world.dir()]
    cases = [
        (["--device", "rt01", "--reference", "ref-nowhere"], "--reference ref-nowhere: not in "
         "the register; `sensorpipe devices list` lists them"),
        (["--device", "rt-none", "--reference", STATION], "--device rt-none: not in the "
         "register"),
        # Registered, with no PM2.5 in the period: the station has none of the device's.
        (["--device", "rt01", "--reference", STATION, "--from", "2019-09-01", "--to",
          "2019-09-02"], "holds no pm2_5 of it"),
        (["--device", "rt01", "--reference", STATION, "--from", "2019-08-18T05:00:00Z", "--to",
          "2019-08-18T20:00:00Z"], "pairs on fewer than 2 days"),
    ]  # fmt: skip
    for args, expected in cases:
        result = sensorpipe(*fit, *args, ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = result.output.splitlines()
        assert line.startswith("Error: ") and expected in line, result.output
    # One day is enough with a method given; the period is the one asked for.
    one_day = json.loads(
        sensorpipe(*fit, "--device", "rt01", "--reference", STATION, "--from",
                   "2019-08-18T05:00:00Z", "--to", "2019-08-18T20:00:00Z", "--method", "linear",
                   "--json").stdout
    )  # fmt: skip
    assert one_day["period"] == {"from": "2019-08-18T05:00:00Z", "to": "2019-08-18T20:00:00Z"}
    assert 10 <= one_day["statistics"]["n_pairs"] <= 15


def test_the_algorithm_register_calls_assigned_methods_in_use(world: World) -> None:
    """`devices export --format algorithms`: a calibration method assigned to a device is "In
    gebruik" (in use); the others stay "In ontwikkeling"."""
    out = sensorpipe("devices", "export", "--format", "algorithms", *world.dir()).stdout
    entries = json.loads(out[out.index("[") :])
    status = {
        e["source_id"].rsplit(":", 1)[1]: e["status"]
        for e in entries
        if e["source_id"].startswith("sensorpipe:calibration:")
    }
    used = {world.fitted["method"], world.linear["method"]}
    assert {m for m, s in status.items() if s == "In gebruik"} == used
    assert all(s == "In ontwikkeling" for m, s in status.items() if m not in used)
