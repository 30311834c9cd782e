"""`sensorpipe import` into a real influxd: every format's values, tags and provenance, the
`imports` records, dead letters with file, line and reason, a second import that stores nothing
twice, Telraam hours in `query counts`, and a ride found by `query air --bbox`."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.quality.flags import QC_VERSION
from sensorpipe.stack.local import LocalStack
from tests.helpers import influx_rows, running_stack_influx, stack_serve_config

DATA = Path(__file__).parent.parent / "data" / "import"
ARCHIVE = [
    "2024-03-01_sds011_sensor_12345.csv",
    "2024-03-01_bme280_sensor_12346.csv",
    "2024-03-01_sps30_sensor_12347.csv.gz",
    "2024-03-02_sds011_sensor_12348.csv",
]
IMPORTS: list[tuple[str, list[str], list[str]]] = [
    ("sensor-community", ARCHIVE, ["--site", "utrecht"]),
    ("opensensemap", ["5f0a1b2c3d4e5f6a7b8c9d0e.csv"], ["--quantity", "pm2_5"]),
    ("opensensemap", ["opensensemap-mobile.json"], []),
    ("telraam", ["telraam-traffic.json", "telraam-export.csv"], ["--site", "oost"]),
    ("track", ["snuffelfiets-2024-11-11.csv"], []),
    ("track", ["ride-2024-05-04.csv"], ["--track-id", "bike-7", "--site", "amsterdam"]),
]


@dataclass
class World:
    stack: LocalStack
    influx: InfluxClient
    summaries: list[dict[str, Any]]


def sensorpipe(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def import_all(stack: LocalStack, *extra: str) -> list[dict[str, Any]]:
    summaries = []
    for fmt, names, options in IMPORTS:
        files = [str(DATA / n) for n in names]
        args = ["import", fmt, *files, "--dir", str(stack.directory), "--user", "alice", "--json"]
        summaries.append(json.loads(sensorpipe(*args, *options, *extra).stdout))
    return summaries


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    up = {"serve": False, "kits": False}
    with running_stack_influx(tmp_path_factory, "import", **up) as (stack, influx):
        yield World(stack, influx, import_all(stack))


def counts(influx: InfluxClient) -> dict[str, int]:
    """Points per measurement (the data here is small enough to read whole)."""
    return {
        m: len(influx_rows(influx, f'SELECT * FROM "{m}" GROUP BY *'))
        for m in ("air", "traffic", "counter", "imports")
    }


def test_the_summaries_count_every_row(world: World) -> None:
    archive = world.summaries[0]
    assert (archive["rows"], archive["stored"], archive["rejected"]) == (17, 11, 6)
    assert archive["rejected_by_reason"] == {"bad_row": 2, "bad_timestamp": 2, "bad_value": 2}
    sps30 = archive["files"][2]
    assert sps30["not_imported"] == {}  # its N05..N10 and TS are stored too
    assert [s["rejected_by_reason"] for s in world.summaries[1:]] == [
        {},
        {"unknown_phenomenon": 1},
        {"bad_value": 2},
        {"device_error": 2},
        {"no_position": 1},
    ]


def test_archive_values_arrive_with_their_provenance(world: World) -> None:
    got = influx_rows(world.influx, "SELECT * FROM air WHERE device_id = 'sc-12345' GROUP BY *")
    assert [(r["pm10"], r["pm2_5"]) for r in got] == [
        (28.03, 17.0),
        (26.4, 16.1),
        (25.93, 15.87),
        (27.1, None),
    ]
    assert {(r["source"], r["vouch"], r["site"], r["sensor"]) for r in got} == {
        ("import:sensor-community", "import", "utrecht", "sds011")
    }
    # quality-checked as the ingest checks (no flag here)
    assert {r["qc"] for r in got} == {QC_VERSION}
    (bme,) = influx_rows(
        world.influx, "SELECT pressure FROM air WHERE device_id = 'sc-12346' LIMIT 1"
    )
    assert bme["pressure"] == 1013.252  # 101325.20 Pa
    sps30 = ["pm1", *(f"number_pm{s}" for s in ("0_5", "1", "2_5", "4", "10"))]
    sps30.append("particle_size_typical")
    got = influx_rows(
        world.influx, f"SELECT {', '.join(sps30)} FROM air WHERE device_id = 'sc-12347'"
    )
    assert [tuple(r[k] for k in sps30) for r in got] == [
        (7.2, 45.2, 57.1, 58.8, 59.0, 59.1, 0.56),
        (7.31, 45.81, 57.98, 59.7, 59.91, 60.02, 0.57),
    ]
    sources = influx_rows(world.influx, 'SHOW TAG VALUES FROM "air" WITH KEY = "source"')
    assert {r["value"] for r in sources} >= {
        "import:sensor-community",
        "import:opensensemap",
        "import:track",
    }


def test_each_file_and_device_is_recorded_with_the_user(world: World) -> None:
    records = influx_rows(world.influx, "SELECT * FROM imports GROUP BY *")
    bad = next(r for r in records if r["device_id"] == "sc-12348")
    path = DATA / "2024-03-02_sds011_sensor_12348.csv"
    assert bad["user"] == "alice"
    assert bad["file"] == path.name
    assert bad["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (bad["rows"], bad["stored"], bad["rejected"]) == (8, 2, 6)
    assert (bad["source"], bad["vouch"]) == ("import:sensor-community", "import")
    assert {r["device_id"] for r in records if r["source"] == "import:telraam"} == {
        "telraam-9000001844",
        "telraam-9000002001",
    }


def test_rejected_rows_are_dead_letters_with_file_line_and_reason(world: World) -> None:
    store = DeadLetterStore(world.stack.directory / "ingest" / "deadletter.sqlite")
    letters = {d.topic: d for d in store.list(limit=100)}
    store.close()
    letter = letters["import:sensor-community:2024-03-02_sds011_sensor_12348.csv:4"]
    assert letter.code == "bad_value"
    assert letter.payload == b"12348;SDS011;7000;52.100;5.130;2024-03-02T00:05:00;2500.00;;;8.00;;"
    assert letter.detail.startswith("2024-03-02_sds011_sensor_12348.csv line 4: P1: pm10 = 2500")
    assert letters["import:track:ride-2024-05-04.csv:5"].code == "no_position"
    assert letters["import:telraam:telraam-traffic.json:3"].detail.startswith(
        "telraam-traffic.json item 3: uptime 1.7"
    )
    listed = sensorpipe("ingest", "rejects", "--dir", str(world.stack.directory), "--limit", "50")
    assert "[unknown_phenomenon] opensensemap-mobile.json item 4" in listed.output


def test_importing_again_stores_nothing_twice(world: World) -> None:
    before = counts(world.influx)
    store = DeadLetterStore(world.stack.directory / "ingest" / "deadletter.sqlite")
    letters = store.count()
    again = import_all(world.stack)
    assert all(f.get("skipped") == "already imported" for s in again for f in s["files"])
    assert counts(world.influx) == before
    forced = import_all(world.stack, "--force")
    assert forced[0]["stored"] == 11  # read and written again ...
    assert counts(world.influx) == before  # ... over the same points
    assert store.count() == letters
    store.close()
    # 4 archive sensors, 2 senseBoxes, 2 Telraam segments, 3 bikes: one record each
    assert before == {"air": 25, "traffic": 32, "counter": 4, "imports": 11}


def test_telraam_hours_in_the_counting_series(world: World) -> None:
    answer = sensorpipe(
        "query", "counts", "--dir", str(world.stack.directory), "--device", "telraam-9000001844",
        "--class", "car", "--from", "2024-03-01T07:00:00Z", "--to", "2024-03-01T09:00:00Z",
        "--format", "json",
    )  # fmt: skip
    got = {(r["time"], r["direction"]): r for r in json.loads(answer.stdout)}
    assert got[("2024-03-01T07:00:00Z", "lft")]["count"] == 48  # 64 x uptime 0.75
    assert got[("2024-03-01T07:00:00Z", "lft")]["running_fraction"] == 0.75
    assert got[("2024-03-01T08:00:00Z", "rgt")]["count"] == 45
    (raw,) = influx_rows(
        world.influx,
        "SELECT count_extrapolated, interval_s, qc FROM traffic WHERE device_id = "
        "'telraam-9000001844' AND class = 'car' AND direction = 'lft' AND "
        "time = '2024-03-01T07:00:00Z'",
    )
    assert (raw["count_extrapolated"], raw["interval_s"], raw["qc"]) == (64.0, 3600.0, QC_VERSION)


def test_a_bounding_box_finds_the_readings_of_a_ride(world: World) -> None:
    answer = sensorpipe(
        "query", "air", "--dir", str(world.stack.directory), "--bbox", "4.89,52.37,4.90,52.3716",
        "--from", "2024-05-04", "--to", "2024-05-05", "--format", "json",
    )  # fmt: skip
    found = json.loads(answer.stdout)
    assert [(r["time"], r["lat"], r["lon"], r["pm2_5"]) for r in found] == [
        ("2024-05-04T09:00:00.000+00:00", 52.3702, 4.8952, 8.1),
        ("2024-05-04T09:00:10.000+00:00", 52.3708, 4.8961, 8.4),
        ("2024-05-04T09:00:20.000+00:00", 52.3715, 4.8973, 9.0),
    ]  # the fourth reading (52.3729) lies north of the box, the fifth had no position
    assert {r["device_id"] for r in found} == {"track-bike-7"}
    mobile = json.loads(
        sensorpipe(
            "query", "air", "--dir", str(world.stack.directory),
            "--bbox", "5.12,52.09,5.123,52.092",
            "--from", "2024-03-01T12:00:00Z", "--to", "2024-03-01T12:01:00Z", "--format", "json",
        ).stdout
    )  # fmt: skip
    assert [(r["device_id"], r["pm10"], r["lat"]) for r in mobile if r.get("pm10")] == [
        ("osm-5f0a1b2c3d4e5f6a7b8c9d30", 9.5, 52.0901),
        ("osm-5f0a1b2c3d4e5f6a7b8c9d30", 9.9, 52.0911),
    ]


def test_the_api_bbox_finds_the_readings_of_a_ride_by_their_own_position(world: World) -> None:
    config = stack_serve_config(world.stack, register_cache_s=0)
    window = {"from": "2024-05-04T09:00:00Z", "to": "2024-05-04T09:01:00Z", "every": "1m"}
    with TestClient(create_app(ApiContext(config))) as client:

        def pm25(bbox: str) -> dict[str, Any]:
            answer = client.get(
                "/api/v1/air", params={**window, "bbox": bbox, "quantity": "pm2_5", "agg": "max"}
            )
            assert answer.status_code == 200, answer.text
            return {s["device_id"]: s["values"]["pm2_5"] for s in answer.json()["series"]}

        # The first three readings of the ride lie in the box, the fourth north of it.
        assert pm25("4.89,52.37,4.90,52.3716") == {"track-bike-7": [9.0]}
        assert pm25("4.89,52.372,4.90,52.38") == {"track-bike-7": [8.7]}
        assert pm25("5.0,52.0,5.2,52.2") == {}  # the ride does not pass Utrecht
        wrong = client.get("/api/v1/air", params={**window, "bbox": "4.9,52.3"})
        assert wrong.status_code == 400 and "minlon,minlat" in wrong.json()["detail"]


def test_the_register_shows_the_imported_devices(world: World) -> None:
    listed = json.loads(
        sensorpipe("devices", "list", "--dir", str(world.stack.directory), "--json").stdout
    )
    devices = {d["device_id"]: d for d in listed}
    sc = devices["sc-12345"]
    assert (sc["source"], sc["vouched"], sc["site"]) == (
        "import",
        "imported by a named user",
        "utrecht",
    )
    assert sc["location"] == {"lat": 52.09, "lon": 5.121} and sc["sensors"] == ["sds011"]
    assert sc["data_sources"] == ["import:sensor-community"]
    assert devices["telraam-9000001844"]["directions"] == ["lft", "rgt"]
    assert devices["track-bike-7"]["location"] is None


def test_a_damaged_file_keeps_what_was_read_and_the_command_fails(
    world: World, tmp_path: Path
) -> None:
    header = "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
    body = "".join(
        f"777;SDS011;1;52.0;5.0;2024-04-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d};"
        f"{10 + i % 7}.5;;;{5 + i % 3}.25;;\n"
        for i in range(0, 80_000, 2)
    )
    packed = gzip.compress((header + body).encode())
    damaged = tmp_path / "2024-04-01_sds011_sensor_777.csv.gz"
    damaged.write_bytes(packed[: len(packed) * 2 // 3])  # a download cut short
    result = CliRunner().invoke(
        main,
        ["import", "sensor-community", str(damaged), "--dir", str(world.stack.directory),
         "--batch-size", "1000"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "NOT COMPLETE" in result.stdout and "damaged gzip data" in result.output
    assert "import them again once fixed" in result.output
    stored = influx_rows(world.influx, "SELECT count(pm10) FROM air WHERE device_id = 'sc-777'")
    assert 0 < stored[0]["count"] < 40_000  # what came before the damage
