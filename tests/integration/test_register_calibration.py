"""The register and SensorThings say how a device is calibrated, on the real stack (issue 27,
points 3 and 5): three real days of the co-location data (tests/data/colocation, MIT), the
sensor imported twice (rt01, rt02) and its reference station, two calibrations fitted on rt01
and assigned to rt02 for two validity periods. `/api/v1/devices` names the one that applies
now; the calibrated Datastream's Observations are rt02's raw minutes calibrated, checked
against the files and a least-squares line computed here (statistics, not sensorpipe)."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.api.sta.ids import stable_id
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack, stack_serve_config
from tests.integration.test_calibration import (
    REFERENCE,
    SENSOR,
    SENSOR_ARGS,
    STATION,
    calibrated,
    pairs,
    reference_hours,
    sensorpipe,
)

pytestmark = pytest.mark.integration
SPLIT = "2019-08-20T00:00:00Z"  # cal-1 (linear_rh) on the 19th, cal-2 (linear) from the 20th


@dataclass
class World:
    stack: LocalStack
    client: TestClient
    rh: dict[str, Any]  # cal-1, linear_rh, valid 19 August
    linear: dict[str, Any]  # cal-2, linear, from 20 August on

    def sta(self, path: str, **params: str) -> Any:
        r = self.client.get(f"/sta/v1.1/{path}", params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "register-cal", serve=False, kits=False) as (stack, _):
        d = ["--dir", str(stack.directory)]
        # rt03 without the humidity column: calibrated with the station's hourly RH.
        no_rh = SENSOR_ARGS[: SENSOR_ARGS.index("RH (%)=relative_humidity") - 1]
        copies = {"rt01": SENSOR_ARGS, "rt02": SENSOR_ARGS, "rt03": no_rh}
        for device, columns in copies.items():  # the same file again: --force past the ledger
            sensorpipe("import", "csv", str(SENSOR), "--device", device, "--force", *columns, *d)
        sensorpipe("import", "reference", "airnowtech", str(REFERENCE), *d)
        fit = ["calibrate", "fit", "--device", "rt01", "--reference", STATION, "--json", *d]
        rh = json.loads(sensorpipe(*fit, "--method", "linear_rh").stdout)
        linear = json.loads(sensorpipe(*fit, "--method", "linear").stdout)
        apply = ["calibrate", "apply", "--device", "rt02", *d]
        sensorpipe(*apply[:2], rh["id"], *apply[2:], "--from", "2019-08-19", "--to", SPLIT)
        sensorpipe(*apply[:2], linear["id"], *apply[2:], "--from", SPLIT)
        sensorpipe("calibrate", "apply", rh["id"], "--device", "rt03", *d)
        # The service as `sensorpipe serve` runs it: with the stack's book.
        ctx = ApiContext(stack_serve_config(stack, calibration_path=str(stack.calibration_path)))
        with TestClient(create_app(ctx)) as client:
            yield World(stack, client, rh, linear)


def minutes() -> dict[datetime, tuple[float, float]]:
    """(PM2.5, RH) of each minute of the sensor's file (local time UTC-05:00), by UTC time."""
    with SENSOR.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()
    out = {}
    for row in csv.DictReader(lines[6:]):
        local = datetime.strptime(row["Time"], "%m/%d/%Y %H:%M")
        if row["PM2.5 (µg/m³)"] and row["RH (%)"]:
            utc = (local + timedelta(hours=5)).replace(tzinfo=UTC)
            out[utc] = (float(row["PM2.5 (µg/m³)"]), float(row["RH (%)"]))
    return out


def datastreams(world: World, device: str) -> dict[str, dict[str, Any]]:
    got = world.sta("Datastreams", **{"$filter": f"properties/device_id eq '{device}'"})
    return {ds["name"]: ds for ds in got["value"]}


def test_the_register_names_the_calibration_that_applies_now(world: World) -> None:
    r = world.client.get("/api/v1/devices/rt02")
    assert r.status_code == 200, r.text
    pm = r.json()["calibration"]["pm2_5"]
    assert pm["calibration_id"] == world.linear["id"] and pm["method"] == "linear"
    assert (pm["valid_from"], pm["valid_to"]) == (SPLIT, None)
    assert pm["reference"] == STATION and pm["n_hours"] == len(pairs())
    assert pm["rmse"] == world.linear["statistics"]["calibrated"]["rmse"]
    assert pm["r2"] == world.linear["statistics"]["calibrated"]["r2"]
    assert pm["algorithm"] == "sensorpipe:calibration:linear"
    assert r.json()["calibration"]["relative_humidity"] == {
        **{k: None for k in pm},
        "status": "not_calibrated",
    }
    listed = {d["device_id"]: d for d in world.client.get("/api/v1/devices").json()["devices"]}
    assert listed["rt01"]["calibration"]["pm2_5"]["status"] == "not_calibrated"  # fit only
    assert listed[STATION]["calibration"]["pm2_5"]["status"] == "reference"
    # `devices export` on the same stack says the same.
    out = sensorpipe("devices", "export", "--dir", str(world.stack.directory)).stdout
    exported = {d["device_id"]: d for d in json.loads(out)}
    assert exported["rt02"]["calibration"]["pm2_5"]["calibration_id"] == world.linear["id"]


def test_a_calibrated_datastream_stands_beside_the_raw_one(world: World) -> None:
    streams = datastreams(world, "rt02")
    raw = streams["rt02 pm2_5 (logger)"]
    cal = streams["rt02 pm2_5 (logger) (calibrated)"]
    # The raw Datastream's id is what it always was: made from the same names.
    assert raw["@iot.id"] == stable_id("Datastream", "air", "rt02", "logger", "pm2_5")
    assert cal["@iot.id"] != raw["@iot.id"]
    props = cal["properties"]
    assert props["raw_datastream"] == raw["@iot.id"] and props["calibrated"] is True
    assert [c["calibration_id"] for c in props["calibrations"]] == [
        world.rh["id"],
        world.linear["id"],
    ]
    assert raw["properties"]["calibrated_datastream"] == cal["@iot.id"]
    assert cal["unitOfMeasurement"] == raw["unitOfMeasurement"]
    # Nothing calibrates rt01's PM2.5, nor rt02's humidity: no calibrated Datastream for them.
    assert not [n for n in datastreams(world, "rt01") if n.endswith("(calibrated)")]
    assert "rt02 relative_humidity (logger) (calibrated)" not in streams
    thing = world.sta(f"Datastreams({cal['@iot.id']})/Thing")
    assert thing["name"] == "rt02"  # which says, as the register does, what applies now
    now = thing["properties"]["calibration"]
    assert now["pm2_5"]["calibration_id"] == world.linear["id"]
    assert now["relative_humidity"] == {"status": "not_calibrated"}


def _window(
    world: World, start: str, end: str, device: str = "rt02", **more: str
) -> list[dict[str, Any]]:
    cal = datastreams(world, device)[f"{device} pm2_5 (logger) (calibrated)"]
    flt = f"phenomenonTime ge {start} and phenomenonTime lt {end}"
    got = world.sta(f"Datastreams({cal['@iot.id']})/Observations", **{"$filter": flt}, **more)
    return list(got["value"])


def test_calibrated_observations_are_the_raw_minutes_calibrated(world: World) -> None:
    files = minutes()
    b, a = statistics.linear_regression(*zip(*[(raw, ref) for raw, ref, _ in pairs()], strict=True))
    for start, end, record in (
        ("2019-08-19T10:00:00Z", "2019-08-19T10:05:00Z", world.rh),
        ("2019-08-20T10:00:00Z", "2019-08-20T10:05:00Z", world.linear),
    ):
        got = _window(world, start, end)
        assert len(got) == 5
        for obs in got:
            t = datetime.fromisoformat(obs["phenomenonTime"].replace("Z", "+00:00"))
            raw, rh = files[t]
            if record is world.linear:  # independently: the least-squares line of the files
                expected = a + b * raw
            else:  # the documented formula, with the minute's own humidity
                expected = calibrated(record, raw, rh)
            assert obs["result"] == pytest.approx(expected, rel=1e-9)
            params = obs["parameters"]
            assert params["calibration"] == record["id"] and params["raw_result"] == raw
            rmse = record["statistics"]["cv"][record["method"]]["rmse"]  # out-of-fold
            assert params["uncertainty"] == round(rmse, 2) and params["uncertainty_rmse"] == "cv"
            assert params["uncertainty_basis"] == f"calibration:{record['id']}"
            one = world.sta(f"Observations('{obs['@iot.id']}')")
            assert one["result"] == obs["result"]


def test_readings_no_calibration_covers_are_not_calibrated_observations(world: World) -> None:
    got = _window(world, "2019-08-18T00:00:00Z", "2019-08-19T00:00:00Z", **{"$count": "true"})
    assert got == []
    # The raw Datastream has them.
    raw = datastreams(world, "rt02")["rt02 pm2_5 (logger)"]
    flt = "phenomenonTime ge 2019-08-18T10:00:00Z and phenomenonTime lt 2019-08-18T10:05:00Z"
    assert len(world.sta(f"Datastreams({raw['@iot.id']})/Observations", **{"$filter": flt})
               ["value"]) == 5  # fmt: skip


def test_top_orderby_and_next_links_page_as_on_the_raw_datastream(world: World) -> None:
    cal = datastreams(world, "rt02")["rt02 pm2_5 (logger) (calibrated)"]
    path = f"Datastreams({cal['@iot.id']})/Observations"
    first = world.sta(path, **{"$orderby": "phenomenonTime desc", "$top": "3", "$count": "true"})
    times = [o["phenomenonTime"] for o in first["value"]]
    last_minute = max(minutes())
    assert times[0] == last_minute.strftime("%Y-%m-%dT%H:%M:00.000Z") and times == sorted(
        times, reverse=True
    )
    raw = f"Datastreams({cal['properties']['raw_datastream']})/Observations"
    since = {"$filter": "phenomenonTime ge 2019-08-19T00:00:00Z", "$count": "true", "$top": "1"}
    assert first["@iot.count"] == world.sta(raw, **since)["@iot.count"] > 2 * 1400
    following = world.client.get(first["@iot.nextLink"]).json()
    assert following["value"][0]["phenomenonTime"] < times[-1]
    # Its result is computed when read: it cannot be filtered, and the answer says where to.
    r = world.client.get(f"/sta/v1.1/{path}", params={"$filter": "result gt 5"})
    assert r.status_code == 400 and f"Datastreams({cal['properties']['raw_datastream']})" in r.text


def test_a_device_without_humidity_is_calibrated_with_the_stations(world: World) -> None:
    files, station_rh = minutes(), reference_hours("RHUM")
    got = _window(world, "2019-08-18T15:58:00Z", "2019-08-18T16:02:00Z", device="rt03")
    assert len(got) == 4
    for obs in got:
        t = datetime.fromisoformat(obs["phenomenonTime"].replace("Z", "+00:00"))
        rh = station_rh[t.replace(minute=0)]
        expected = calibrated(world.rh, files[t][0], rh)
        assert obs["result"] == pytest.approx(expected, rel=1e-9)
        assert obs["parameters"]["calibration"] == world.rh["id"]


def test_expanded_observations_are_calibrated_too(world: World) -> None:
    cal = datastreams(world, "rt02")["rt02 pm2_5 (logger) (calibrated)"]
    got = world.sta(
        f"Datastreams({cal['@iot.id']})",
        **{"$expand": "Observations($top=2;$orderby=phenomenonTime asc)"},
    )
    first = got["Observations"]
    assert [o["phenomenonTime"] for o in first] == [
        "2019-08-19T00:00:00.000Z",
        "2019-08-19T00:01:00.000Z",
    ]
    raw, rh = minutes()[datetime(2019, 8, 19, tzinfo=UTC)]
    assert first[0]["result"] == pytest.approx(calibrated(world.rh, raw, rh), rel=1e-9)


def test_the_api_calls_assigned_calibration_methods_in_use(world: World) -> None:
    """/api/v1/algorithms, as `devices export --format algorithms`: the methods of the
    calibrations assigned are "In gebruik", the others "In ontwikkeling"."""
    status = {
        e["source_id"]: e["status"]
        for e in world.client.get("/api/v1/algorithms").json()
        if e["source_id"].startswith("sensorpipe:calibration:")
    }
    used = {f"sensorpipe:calibration:{m}" for m in ("linear", "linear_rh")}
    assert {i for i, s in status.items() if s == "In gebruik"} == used
    assert status["sensorpipe:calibration:kohler"] == "In ontwikkeling"
