"""Quality flags read back on the real stack: a device sends readings at 75 % and 99 % relative
humidity and a stuck run through Mosquitto, the ingest flags and stores them, and `sensorpipe
query air` and `/api/v1/air` (JSON and CSV) show per interval how many readings were flagged
and which flags, leave them out (`exclude`) or show them alone (`only`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.quality.flags import FLAGS
from sensorpipe.stack.local import LocalStack
from tests.integration.flagged_device import SENT, flagging_stack, send_flagged

pytestmark = pytest.mark.integration

# SENT, one a minute from the hour's first minute on: all in one hourly window
HOUR = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


@dataclass
class World:
    stack: LocalStack
    api: TestClient


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with flagging_stack(tmp_path_factory.mktemp("flagsread") / "stack") as s:
        send_flagged(s, "qc-r", HOUR + timedelta(minutes=1), timedelta(minutes=1))
        info = s.require_info()
        config = ServeConfig(
            registry_path=str(s.registry_path),
            influx=InfluxSettings(url=info.influx_url, database=info.database),
            register_cache_s=0,
        )
        yield World(s, TestClient(create_app(ApiContext(config)), raise_server_exceptions=False))


def _query(world: World, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(world.stack.directory), "--device", "qc-r",
            "--quantity", "pm2_5", "--quantity", "pm10", "--from", HOUR.isoformat(),
            "--to", (HOUR + timedelta(hours=1)).isoformat(), "--format", "json", *args,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def test_query_air_counts_the_flagged_readings_of_each_interval(world: World) -> None:
    (row,) = _query(world, "--every", "1h")
    assert row["pm2_5"] == pytest.approx(sum(p for p, _ in SENT) / 5)  # every reading, as before
    assert (row["pm2_5_flagged"], row["pm2_5_flags"]) == (3, "fog,humidity,stuck")
    assert (row["pm10_flagged"], row["pm10_flags"]) == (2, "fog,humidity")
    table = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(world.stack.directory), "--device", "qc-r",
            "--quantity", "pm2_5", "--quantity", "pm10", "--from", HOUR.isoformat(),
            "--to", (HOUR + timedelta(hours=1)).isoformat(), "--every", "1h",
        ],
    )  # fmt: skip
    header, _, row_line = table.stdout.splitlines()
    assert header.split() == [
        "time", "device_id", "site", "sensor", "pm2_5", "pm10",
        "pm2_5_flagged", "pm2_5_flags", "pm10_flagged", "pm10_flags",
        "pm2_5_uncertainty_ugm3", "pm2_5_indicative", "pm10_uncertainty_ugm3", "pm10_indicative",
        "calibration",
    ]  # fmt: skip
    assert row_line.split()[-9:-5] == ["3", "fog,humidity,stuck", "2", "fog,humidity"]
    assert row_line.split()[-1] == "raw"
    # --flag: only that flag counts
    (fog,) = _query(world, "--every", "1h", "--flag", "fog")
    assert (fog["pm2_5_flagged"], fog["pm2_5_flags"]) == (1, "fog")


def test_query_air_leaves_flagged_readings_out_or_shows_them_alone(world: World) -> None:
    (clean,) = _query(world, "--every", "1h", "--flags", "exclude")
    assert clean["pm2_5"] == pytest.approx(8.0)  # the two unflagged readings
    assert clean["pm10"] == pytest.approx(12.0)  # humid and foggy left out; not stuck for pm10
    (no_fog,) = _query(world, "--every", "1h", "--flags", "exclude", "--flag", "fog")
    assert no_fog["pm2_5"] == pytest.approx((12 + 8 + 8 + 8) / 4)
    (counted,) = _query(world, "--every", "1h", "--flags", "exclude", "--agg", "count")
    assert (counted["pm2_5"], counted["pm10"]) == (2, 3)
    # an aggregate sums cannot make: from the unflagged readings themselves
    (highest,) = _query(world, "--every", "1h", "--flags", "exclude", "--agg", "max")
    assert (highest["pm2_5"], highest["pm10"]) == (8.0, 12.0)
    (first,) = _query(
        world, "--every", "1h", "--flags", "exclude", "--flag", "fog", "--agg", "first"
    )
    assert (first["pm2_5"], first["pm10"]) == (12.0, 18.0)
    (flagged,) = _query(world, "--every", "1h", "--flags", "only")
    assert flagged["pm2_5"] == pytest.approx((12 + 13 + 8) / 3)
    assert flagged["pm10"] == pytest.approx((18 + 19.5) / 2)
    (fog,) = _query(world, "--every", "1h", "--flags", "only", "--flag", "fog", "--agg", "max")
    assert (fog["pm2_5"], fog["pm10"]) == (13.0, 19.5)


def test_raw_readings_carry_their_own_flags(world: World) -> None:
    rows = _query(world)
    assert [r["pm2_5"] for r in rows] == [p for p, _ in SENT]
    assert [r["pm2_5_flags"] for r in rows] == ["humidity", "fog,humidity", "", "", "stuck"]
    clock = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(world.stack.directory), "--device", "qc-r",
            "--from", HOUR.isoformat(), "--flags", "only", "--flag", "clock",
        ],
    )  # fmt: skip
    assert clock.exit_code == 0
    assert "no air readings flagged match these filters" in clock.output
    only = _query(world, "--flags", "only", "--flag", "stuck")
    assert [(r["pm2_5"], r.get("pm10")) for r in only] == [(8.0, None)]  # pm10 not stuck
    kept = _query(world, "--flags", "exclude")
    # the humid and the foggy minute had both values flagged: left out
    assert [r["pm2_5"] for r in kept] == [8.0, 8.0, None]
    assert [r["pm10"] for r in kept] == [12.0, 12.0, 12.0]


def _air(world: World, **params: Any) -> Any:
    base = {
        "device": "qc-r",
        "quantity": ["pm2_5", "pm10"],
        "from": HOUR.isoformat(),
        "to": (HOUR + timedelta(hours=1)).isoformat(),
        "every": "1h",
    }
    return world.api.get("/api/v1/air", params={**base, **params})


def test_api_air_flags_in_json_and_csv(world: World) -> None:
    answer = _air(world)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["flags"], body["flag"]) == ("include", [])
    (series,) = [s for s in body["series"] if s["sensor"] == "sds011"]
    assert series["values"]["pm2_5"] == [pytest.approx(9.8)]
    assert series["flags"]["pm2_5"] == {"flagged": [3], "flags": [["fog", "humidity", "stuck"]]}
    assert series["flags"]["pm10"] == {"flagged": [2], "flags": [["fog", "humidity"]]}

    # per site: the site's readings, flagged ones counted the same
    (site,) = _air(world, group="site", device=[]).json()["series"]
    assert site["site"] == "s" and site["flags"]["pm2_5"]["flagged"] == [3]

    clean = _air(world, flags="exclude").json()
    (series,) = [s for s in clean["series"] if s["sensor"] == "sds011"]
    assert series["values"] == {"pm2_5": [pytest.approx(8.0)], "pm10": [pytest.approx(12.0)]}
    highest = _air(world, flags="exclude", agg="max").json()
    (series,) = [s for s in highest["series"] if s["sensor"] == "sds011"]
    assert series["values"] == {"pm2_5": [8.0], "pm10": [12.0]}
    humid = _air(world, flags="exclude", flag="fog", agg="median").json()
    (series,) = [s for s in humid["series"] if s["sensor"] == "sds011"]
    assert series["values"] == {"pm2_5": [8.0], "pm10": [12.0]}  # 12, 8, 8, 8; 18, 12, 12, 12
    fog = _air(world, flags="only", flag="fog", agg="max").json()
    (series,) = fog["series"]  # the bme280's series holds no flagged reading
    assert series["values"] == {"pm2_5": [13.0], "pm10": [19.5]}

    text = _air(world, format="csv").text
    (row,) = [r for r in csv.DictReader(io.StringIO(text)) if r["sensor"] == "sds011"]
    assert (row["pm2_5_flagged"], row["pm2_5_flags"]) == ("3", "fog,humidity,stuck")
    assert float(row["pm2_5_ugm3"]) == pytest.approx(9.8)  # the CSV's unit in its header


def test_api_refuses_unknown_flags_and_serves_each_flags_sentence(world: World) -> None:
    # a bad parameter is a 400 problem detail, as everywhere in /api/v1
    bad = _air(world, flag="foggy")
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "unknown flag 'foggy'; did you mean 'fog'? (known: clock, fog" in bad.json()["detail"]
    assert _air(world, flags="drop").status_code == 400
    listed = world.api.get("/api/v1/flags").json()
    assert listed["flags"] == FLAGS


def test_register_counts_each_devices_flagged_readings_per_flag(world: World) -> None:
    # pm2_5: humidity, fog+humidity, stuck; pm10: humidity, fog+humidity (the bme280 unflagged)
    expected = {"fog": 2, "humidity": 4, "stuck": 1}
    listed = world.api.get("/api/v1/devices").json()
    (entry,) = [d for d in listed["devices"] if d["device_id"] == "qc-r"]
    assert entry["flagged_7d"] == expected
    for fmt in ("json", "csv"):
        result = CliRunner().invoke(
            main, ["devices", "export", "--dir", str(world.stack.directory), "--format", fmt]
        )
        assert result.exit_code == 0, result.output
        if fmt == "json":
            (record,) = [r for r in json.loads(result.output) if r["device_id"] == "qc-r"]
            assert record["flagged_7d"] == expected
        else:
            (row,) = [
                r for r in csv.DictReader(io.StringIO(result.output)) if r["device_id"] == "qc-r"
            ]
            assert row["flagged_7d"] == "fog=2;humidity=4;stuck=1"


def _sta(world: World, path: str, **params: str) -> Any:
    answer = world.api.get(f"/sta/v1.1/{path}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_sensorthings_observations_carry_their_flags_as_result_quality(world: World) -> None:
    (thing,) = _sta(world, "Things", **{"$filter": "name eq 'qc-r'"})["value"]
    (ds,) = _sta(
        world,
        f"Things({thing['@iot.id']})/Datastreams",
        **{"$filter": "properties/quantity eq 'pm2_5'"},
    )["value"]
    observations = _sta(world, f"Datastreams({ds['@iot.id']})/Observations")["value"]
    assert [o["result"] for o in observations] == [p for p, _ in SENT]
    # a list of flags; null: checked, no flag
    assert [o["resultQuality"] for o in observations] == [
        ["humidity"], ["fog", "humidity"], None, None, ["stuck"],
    ]  # fmt: skip
    foggy = _sta(
        world,
        f"Datastreams({ds['@iot.id']})/Observations",
        **{"$filter": "resultQuality eq 'fog'"},
    )["value"]
    assert [o["result"] for o in foggy] == [13.0]
    flagged = _sta(
        world,
        f"Datastreams({ds['@iot.id']})/Observations",
        **{"$filter": "resultQuality ne null", "$count": "true"},
    )
    assert flagged["@iot.count"] == 3
    refused = world.api.get(
        f"/sta/v1.1/Datastreams({ds['@iot.id']})/Observations",
        params={"$filter": "resultQuality eq null"},
    )
    assert refused.status_code == 400
    assert "values without a flag cannot be filtered for" in refused.json()["detail"]


def test_register_counts_flagged_counts_too_and_only_in_its_window(influxd: Any) -> None:
    from sensorpipe.query.register import register_stats

    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    day_ms = 86_400_000
    client = influxd.client()
    try:
        cam = "traffic,device_id=cam,site=s,class=car"
        pm = "air,device_id=pm,site=s,sensor=sds011"
        client.write(
            [
                f'{cam},direction=in count=0i,qc=1i,qc_count="stuck" {now_ms - day_ms}',
                f'{cam},direction=out count=0i,qc=1i,qc_count="stuck" {now_ms - day_ms}',
                f"{cam},direction=in count=3i,qc=1i {now_ms - 2 * day_ms}",
                # eight days ago: outside the register's 7 days
                f'{pm} pm2_5=9,qc=1i,qc_pm2_5="fog,humidity" {now_ms - 8 * day_ms}',
                f'{pm} pm2_5=9,qc=1i,qc_pm2_5="humidity" {now_ms - day_ms}',
            ]
        )
        stats = register_stats(client, now_ms=now_ms)
    finally:
        client.close()
    assert stats.of("cam").flagged_7d == {"stuck": 2}
    assert stats.of("pm").flagged_7d == {"humidity": 1}


def test_exclude_refuses_to_read_more_readings_than_its_bound(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensorpipe.query import flagged, series

    monkeypatch.setattr(flagged, "RAW_READINGS_MAX", 2)
    monkeypatch.setattr(series, "RAW_READINGS_MAX", 2)
    refused = _air(world, flags="exclude", agg="max")
    assert refused.status_code == 400
    assert (
        "reads every reading of the intervals with flagged readings: more than 2 of one"
        in (refused.json()["detail"])
    )
    assert _air(world, flags="exclude", agg="mean").status_code == 200  # sums: no readings read
    cli = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(world.stack.directory), "--device", "qc-r",
            "--from", HOUR.isoformat(), "--every", "1h", "--flags", "exclude", "--agg", "max",
        ],
    )  # fmt: skip
    assert cli.exit_code == 1
    assert "more than 2 of one series" in cli.output and "Traceback" not in cli.output
