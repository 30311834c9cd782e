"""`sensorpipe import csv` and `import reference airnowtech` into a real influxd, on three real
days of the co-location data (tests/data/colocation, MIT): the stored hourly values checked
against an independent computation from the files (csv + statistics, not the importer), QC
code 9 hours as dead letters, the station in the register, and a second import that stores
nothing twice."""

from __future__ import annotations

import csv
import json
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
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.quality.flags import QC_VERSION
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack_influx

DATA = Path(__file__).parent.parent / "data" / "colocation"
SENSOR = DATA / "toco_toucan_RT01_2019-08-18_20.csv"
REFERENCE = DATA / "airnowtech_2019-08-18_20.csv"
STATION = "ref-370630099"
SENSOR_ARGS = [
    "--device", "rt01", "--register", "--site", "burdens-creek", "--time", "Time",
    "--time-format", "%m/%d/%Y %H:%M", "--timezone", "UTC-05:00",
    "--column", "PM2.5 (µg/m³)=pm2_5", "--column", "TEMP (°C)=temperature",
    "--column", "RH (%)=relative_humidity",
]  # fmt: skip


@dataclass
class World:
    stack: LocalStack
    influx: InfluxClient
    summaries: dict[str, dict[str, Any]]


def sensorpipe(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def import_both(stack: LocalStack) -> dict[str, dict[str, Any]]:
    common = ["--dir", str(stack.directory), "--user", "analyst", "--json"]
    sensor = sensorpipe("import", "csv", str(SENSOR), *SENSOR_ARGS, *common)
    reference = sensorpipe("import", "reference", "airnowtech", str(REFERENCE), *common)
    return {"csv": json.loads(sensor.stdout), "airnowtech": json.loads(reference.stdout)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    up = {"serve": False, "kits": False}
    with running_stack_influx(tmp_path_factory, "refimport", **up) as (stack, influx):
        yield World(stack, influx, import_both(stack))


def hourly(influx: InfluxClient, device: str, select: str) -> dict[datetime, list[Any]]:
    q = (
        f"SELECT {select} FROM air WHERE device_id = '{device}' "
        "AND time >= '2019-08-18T00:00:00Z' AND time < '2019-08-22T00:00:00Z' "
        "GROUP BY time(1h) fill(none)"
    )
    out = {}
    for series in influx.query(q):
        for t, *values in series["values"]:
            out[datetime.fromtimestamp(t / 1000, UTC)] = values
    return out


# --- the independent computation: the files read with csv and statistics -------------------


def sensor_minutes() -> dict[datetime, list[float]]:
    """PM2.5 per UTC hour, from the sensor's file (local time UTC-05:00, 1-minute rows)."""
    with SENSOR.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()
    reader = csv.DictReader(lines[6:])
    out: dict[datetime, list[float]] = defaultdict(list)
    for row in reader:
        local = datetime.strptime(row["Time"], "%m/%d/%Y %H:%M")
        utc = (local + timedelta(hours=5)).replace(minute=0, tzinfo=UTC)
        if row["PM2.5 (µg/m³)"]:
            out[utc].append(float(row["PM2.5 (µg/m³)"]))
    return out


def reference_rows(param: str) -> dict[datetime, tuple[float, str]]:
    """(value, QC code) per UTC hour of a parameter, from the AirNow-Tech file."""
    with REFERENCE.open(newline="") as f:
        return {
            datetime.strptime(f"{r['Date (UTC)']} {r['Time (UTC)']}", "%m/%d/%Y %H:%M").replace(
                tzinfo=UTC
            ): (float(r["Value"]), r["QC Code"])
            for r in csv.DictReader(f)
            if r["Param"] == param
        }


def test_the_sensors_hourly_means_are_the_files(world: World) -> None:
    expected = sensor_minutes()
    stored = hourly(world.influx, "rt01", 'mean("pm2_5"), count("pm2_5")')
    assert len(expected) == 72 and set(stored) == set(expected)
    for hour, minutes in expected.items():
        mean, count = stored[hour]
        assert count == len(minutes)
        assert mean == pytest.approx(statistics.fmean(minutes), rel=1e-12, abs=1e-12)


def test_the_reference_hours_are_the_files_valid_ones(world: World) -> None:
    rows = reference_rows("PM2.5-88101")
    valid = {hour: value for hour, (value, qc) in rows.items() if qc == "0"}
    invalid = sorted(hour for hour, (_, qc) in rows.items() if qc == "9")
    assert len(invalid) == 4 and invalid[0] == datetime(2019, 8, 19, 12, tzinfo=UTC)
    stored = hourly(world.influx, STATION, 'mean("pm2_5")')
    assert {hour: v[0] for hour, v in stored.items()} == pytest.approx(valid)
    humidity = {h: v for h, (v, qc) in reference_rows("RHUM").items() if qc == "0"}
    stored_rh = hourly(world.influx, STATION, 'mean("relative_humidity")')
    assert {hour: v[0] for hour, v in stored_rh.items()} == pytest.approx(humidity)


def test_sensor_and_reference_pair_up_hour_by_hour(world: World) -> None:
    """Hours of >= 45 minutes beside valid reference hours: the pairs a calibration fits on,
    the same from InfluxDB as from the files."""
    minutes = sensor_minutes()
    reference = {h: v for h, (v, qc) in reference_rows("PM2.5-88101").items() if qc == "0"}
    from_files = {
        h: (statistics.fmean(m), reference[h])
        for h, m in minutes.items()
        if len(m) >= 45 and h in reference
    }
    sensor = hourly(world.influx, "rt01", 'mean("pm2_5"), count("pm2_5")')
    station = hourly(world.influx, STATION, 'mean("pm2_5")')
    stored = {h: (v[0], station[h][0]) for h, v in sensor.items() if v[1] >= 45 and h in station}
    assert len(from_files) >= 60 and set(stored) == set(from_files)
    xs, ys = zip(*from_files.values(), strict=True)
    sx, sy = zip(*(stored[h] for h in from_files), strict=True)
    assert statistics.correlation(sx, sy) == pytest.approx(statistics.correlation(xs, ys))


def test_qc_invalid_hours_are_dead_letters_with_their_line(world: World) -> None:
    assert world.summaries["airnowtech"]["rejected_by_reason"] == {"qc_invalid": 4}
    store = DeadLetterStore(world.stack.deadletter_path)
    try:
        letters = [d for d in store.list(limit=1000) if d.code == "qc_invalid"]
    finally:
        store.close()
    assert len(letters) == 4
    assert all(d.device_id == STATION for d in letters)
    assert all(d.topic.startswith(f"import:airnowtech:{REFERENCE.name}:") for d in letters)
    assert all(b",10.1,UG/M3,9" in d.payload for d in letters)
    listed = sensorpipe(
        "ingest", "rejects", "--reason", "qc_invalid", "--dir", str(world.stack.directory), "--json"
    )
    assert "QC Code '9' (invalid)" in listed.stdout


def test_the_station_and_the_logger_are_registered_and_listed(world: World) -> None:
    listed = json.loads(
        sensorpipe("devices", "list", "--dir", str(world.stack.directory), "--json").stdout
    )
    devices = {d["device_id"]: d for d in listed}
    station = devices[STATION]
    assert (station["source"], station["station_code"], station["operator"]) == (
        "reference",
        "370630099",
        "OAQ",
    )
    assert "PM2.5-88101: AQS method 238" in station["method"]
    # What it holds, only: the file's O3 is not imported, so its method is not listed.
    assert "O3" in world.summaries["airnowtech"]["files"][0]["not_imported"]
    assert "O3" not in station["method"] and "NO2" in station["method"]
    # At the site its name gives (the file names no other), not "unassigned".
    assert station["site"] == "burdens-creek"
    assert station["data_sources"] == ["reference:airnowtech"]
    logger = devices["rt01"]
    assert (logger["source"], logger["site"], logger["data_sources"]) == (
        "import",
        "burdens-creek",
        ["import:csv"],
    )
    export = world.stack.directory / "register.json"
    sensorpipe("devices", "export", "--dir", str(world.stack.directory), "--out", str(export))
    entries = json.loads(export.read_text())
    entries = entries.get("devices", entries) if isinstance(entries, dict) else entries
    (entry,) = [e for e in entries if e["device_id"] == STATION]
    assert entry["station_code"] == "370630099" and entry["source"] == "reference"


def test_importing_again_stores_nothing_twice(world: World) -> None:
    before = hourly(world.influx, "rt01", 'count("pm2_5")')
    again = import_both(world.stack)
    assert all(f.get("skipped") for s in again.values() for f in s["files"])
    assert hourly(world.influx, "rt01", 'count("pm2_5")') == before


def test_luchtmeetnet_and_eea_through_the_command(world: World, tmp_path: Path) -> None:
    """Constructed files (the formats' documented shapes) through `import reference`: a
    station with its own JSON, hour-ending labels at the hour's start, EEA's UTC+01:00."""
    page = {
        "pagination": {"current_page": 1, "last_page": 1},
        "data": [
            {
                "station_number": "NL99001",
                "formula": "PM25",
                "value": 7.4,
                "timestamp_measured": "2024-02-01T13:00:00+00:00",
            }
        ],
    }
    station = {
        "data": {
            "location": "Voorbeeldstad-Straatweg",
            "organisation": "RIVM",
            "geometry": {"type": "point", "coordinates": [5.1201, 52.0902]},
        }
    }
    (tmp_path / "page-1.json").write_text(json.dumps(page))
    (tmp_path / "NL99001.json").write_text(json.dumps(station))
    eea = (
        "Samplingpoint,Pollutant,Start,End,Value,Unit,AggType,Validity,Verification\n"
        "NL/SPO-NL99002_00008_100,8,2024-02-01 14:00:00,2024-02-01 15:00:00,21.5,ug.m-3,hour,1,3\n"
        "NL/SPO-NL99002_00008_100,8,2024-02-01 15:00:00,2024-02-01 16:00:00,99,ug.m-3,hour,-1,3\n"
    )
    (tmp_path / "eea.csv").write_text(eea)
    d = ["--dir", str(world.stack.directory), "--json"]
    luchtmeetnet = sensorpipe(
        "import", "reference", "luchtmeetnet", str(tmp_path / "page-1.json"),
        "--station", str(tmp_path / "NL99001.json"), *d,
    )  # fmt: skip
    assert json.loads(luchtmeetnet.stdout)["stored"] == 1
    summary = json.loads(
        sensorpipe("import", "reference", "eea", str(tmp_path / "eea.csv"), *d).stdout
    )
    assert (summary["stored"], summary["rejected_by_reason"]) == (1, {"qc_invalid": 1})
    q = (
        "SELECT pm2_5, no2 FROM air WHERE time >= '2024-02-01T00:00:00Z' "
        "AND time < '2024-02-02T00:00:00Z' GROUP BY device_id, source"
    )
    stored = {
        (s["tags"]["device_id"], s["tags"]["source"]): s["values"] for s in world.influx.query(q)
    }
    t12 = int(datetime(2024, 2, 1, 12, tzinfo=UTC).timestamp() * 1000)
    t13 = t12 + 3_600_000  # 14:00 at UTC+01:00
    assert stored == {
        ("ref-nl99001", "reference:luchtmeetnet"): [[t12, 7.4, None]],
        ("ref-nl-spo-nl99002_00008_100", "reference:eea"): [[t13, None, 21.5]],
    }
    listed = json.loads(
        sensorpipe("devices", "list", "--dir", str(world.stack.directory), "--json").stdout
    )
    (nl,) = [x for x in listed if x["device_id"] == "ref-nl99001"]
    assert (nl["source"], nl["operator"], nl["location"]) == (
        "reference",
        "RIVM",
        {"lat": 52.09, "lon": 5.12},  # published rounded to 3 decimals
    )


def test_a_loggers_and_a_stations_rows_are_quality_checked(world: World) -> None:
    """Imports are flagged as the live ingest flags (quality.checker): every stored row says
    which check set judged it, and the logger's PM at 70 % RH and more (most of these August
    nights) carries the humidity flag, computed from the same row's humidity."""
    logger = world.influx.query(
        "SELECT qc, qc_pm2_5, pm2_5, relative_humidity FROM air WHERE device_id = 'rt01' "
        "AND time > '2019-01-01'"
    )
    rows = [dict(zip(s["columns"], v, strict=True)) for s in logger for v in s["values"]]
    assert rows and {r["qc"] for r in rows} == {QC_VERSION}
    humid = [r for r in rows if r["pm2_5"] is not None and (r["relative_humidity"] or 0) >= 70]
    assert humid and all("humidity" in (r["qc_pm2_5"] or "") for r in humid)
    dry = [r for r in rows if r["pm2_5"] is not None and (r["relative_humidity"] or 100) < 70]
    assert dry and not any("humidity" in (r["qc_pm2_5"] or "") for r in dry)
    station = world.influx.query(
        f"SELECT qc, qc_pm2_5 FROM air WHERE device_id = '{STATION}' AND time > '2019-01-01'"
    )
    hours = [v for s in station for v in s["values"]]
    assert hours and {v[1] for v in hours} == {QC_VERSION}
    # An hourly station is no sensor warming up after each hour's gap, and dries its air: its
    # values carry neither warm-up nor humidity flags (quality.config, the reference model).
    assert not [v for v in hours if v[2] and ("warmup" in v[2] or "humidity" in v[2])]


def test_the_register_says_what_an_imported_logger_and_station_measure(world: World) -> None:
    """A logger's or a station's sensor model says nothing of its quantities: the import keeps
    the ones its files held in the entry, and the public register lists them (it said
    "nothing declared yet")."""
    out = sensorpipe("devices", "export", "--format", "json", "--dir", str(world.stack.directory))
    devices = {d["device_id"]: d for d in json.loads(out.stdout)}
    assert {"pm2_5", "temperature", "relative_humidity"} <= set(devices["rt01"]["quantities"])
    assert "pm2_5" in devices[STATION]["quantities"]
