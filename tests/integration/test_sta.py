"""SensorThings API v1.1 (read part) over a real influxd holding a week of synthetic history,
read with plain HTTP and with an independent client (frost-sta-client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.firmware_sim.history import (
    MINUTE_MS,
    HistoryDevice,
    device_points,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.registry import Registry, save_registry
from tests.helpers import running_influxd
from tests.integration.live_server import live_server
from tests.integration.test_api_bounds import RecordingInflux

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


@dataclass
class Env:
    client: TestClient
    app: FastAPI
    config: ServeConfig
    influx: RecordingInflux
    devices: list[HistoryDevice]
    registry: Registry
    start_ms: int
    end_ms: int

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(f"/sta/v1.1/{path}", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def follow(self, url: str) -> Any:
        """An absolute link the service wrote (selfLink, nextLink, navigationLink)."""
        assert url.startswith("http://testserver/sta/v1.1/"), url
        r = self.client.get(url)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_influxd(tmp_path_factory, "sta", "sta") as (influxd, root):
        devices = history_devices(2, 1)
        registry = Registry()
        register_history_devices(registry, devices)
        registry_path = root / "registry.toml"
        save_registry(registry, registry_path)
        now = int(datetime.now(UTC).timestamp() * 1000)
        end_ms = now - now % MINUTE_MS
        start_ms = end_ms - WEEK_MS
        writer = influxd.client()
        write_history(writer, devices, start_ms, end_ms)
        writer.close()
        config = ServeConfig(
            registry_path=str(registry_path),
            influx=InfluxSettings(url=influxd.url, database="sta"),
        )
        influx = RecordingInflux(influxd.url, "sta")
        app = create_app(ApiContext(config, influx=influx))
        with TestClient(app) as client:
            yield Env(client, app, config, influx, devices, registry, start_ms, end_ms)


def _device(env: Env, counting: bool) -> HistoryDevice:
    return next(d for d in env.devices if d.counting == counting)


def _thing(env: Env, device_id: str) -> dict[str, Any]:
    things = env.get("Things", **{"$filter": f"name eq '{device_id}'"})["value"]
    assert len(things) == 1
    return things[0]


def _datastream(env: Env, device_id: str, **props: str) -> dict[str, Any]:
    thing = _thing(env, device_id)
    cond = " and ".join(f"properties/{k} eq '{v}'" for k, v in props.items())
    found = env.get(f"Things({thing['@iot.id']})/Datastreams", **{"$filter": cond})["value"]
    assert len(found) == 1, found
    return found[0]


def _written_air(env: Env, device: HistoryDevice, quantity: str) -> list[tuple[int, float]]:
    """(time, value) of every stored point of `quantity` the history wrote for `device`."""
    return [
        (p.time_ms, float(p.fields[quantity]))
        for p in device_points(device, env.start_ms, env.end_ms)
        if p.measurement == "air" and quantity in p.fields
    ]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# --- the service root and the catalog ---------------------------------------------------------
def test_root_lists_entity_sets_and_conformance(env: Env) -> None:
    root = env.get("")
    names = [s["name"] for s in root["value"]]
    assert names == [
        "Things",
        "Locations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
    ]
    for s in root["value"]:
        assert s["url"] == f"http://testserver/sta/v1.1/{s['name']}"
    conformance = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in conformance
    assert env.client.get("/sta/v1.1/").json() == root


def test_things_locations_are_rounded_and_exact_ones_never_shown(env: Env) -> None:
    things = env.get("Things", **{"$expand": "Locations", "$count": "true"})
    assert things["@iot.count"] == 3
    assert sorted(t["name"] for t in things["value"]) == sorted(d.device_id for d in env.devices)
    for thing in things["value"]:
        device = next(d for d in env.devices if d.device_id == thing["name"])
        assert thing["properties"]["site"] == device.site
        (location,) = thing["Locations"]
        assert location["encodingType"] == "application/geo+json"
        assert location["location"] == {
            "type": "Point",
            "coordinates": [round(device.lon, 3), round(device.lat, 3)],
        }
    # The exact coordinates appear in no answer.
    every = env.client.get("/sta/v1.1/Locations").text + env.client.get("/sta/v1.1/Things").text
    for device in env.devices:
        assert repr(device.lat)[:9] not in every and repr(device.lon)[:8] not in every


def test_datastreams_of_each_device_with_units(env: Env) -> None:
    air, counter = _device(env, False), _device(env, True)
    thing = _thing(env, air.device_id)
    streams = env.get(f"Things({thing['@iot.id']})/Datastreams")["value"]
    by_quantity = {s["properties"]["quantity"]: s for s in streams}
    assert set(by_quantity) == {"pm2_5", "pm10", "temperature", "relative_humidity", "pressure"}
    assert by_quantity["pm2_5"]["unitOfMeasurement"]["symbol"] == "µg/m3"
    assert by_quantity["temperature"]["unitOfMeasurement"]["symbol"] == "Cel"
    assert by_quantity["relative_humidity"]["unitOfMeasurement"]["symbol"] == "%"
    assert by_quantity["pressure"]["unitOfMeasurement"]["symbol"] == "hPa"
    assert by_quantity["pm2_5"]["observationType"].endswith("OM_Measurement")

    thing = _thing(env, counter.device_id)
    streams = env.get(f"Things({thing['@iot.id']})/Datastreams", **{"$top": "1000"})["value"]
    pairs = {(s["properties"]["class"], s["properties"]["direction"]) for s in streams}
    classes = {"pedestrian", "cyclist", "car", "motorcycle", "heavy_vehicle"}
    assert pairs == {(c, d) for c in classes for d in ("left_to_right", "right_to_left")}
    for s in streams:
        assert s["unitOfMeasurement"]["symbol"] == "{count}"
        assert s["observationType"].endswith("OM_CountObservation")
    assert env.get("Datastreams", **{"$count": "true", "$top": "0"})["@iot.count"] == 2 * 5 + 10


def test_navigation_links_lead_to_related_entities(env: Env) -> None:
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="pm10")
    assert env.follow(ds["Thing@iot.navigationLink"])["name"] == air.device_id
    sensor = env.follow(ds["Sensor@iot.navigationLink"])
    assert sensor["name"] == "sds011"
    prop = env.follow(ds["ObservedProperty@iot.navigationLink"])
    assert prop["name"] == "pm10"
    assert env.follow(ds["@iot.selfLink"]) == ds
    # Back again: the sensor's and the property's datastreams include this one.
    ids = {s["@iot.id"] for s in env.follow(sensor["Datastreams@iot.navigationLink"])["value"]}
    assert ds["@iot.id"] in ids and len(ids) == 2 * 2  # two devices, pm2_5 and pm10
    ids = {s["@iot.id"] for s in env.follow(prop["Datastreams@iot.navigationLink"])["value"]}
    assert ds["@iot.id"] in ids and len(ids) == 2
    thing = _thing(env, air.device_id)
    location = env.follow(thing["Locations@iot.navigationLink"])["value"][0]
    assert env.follow(location["Things@iot.navigationLink"])["value"][0]["name"] == air.device_id
    # An entity of the collection by id under its parent, and property paths.
    assert env.get(f"Things({thing['@iot.id']})/Datastreams({ds['@iot.id']})") == ds
    assert env.get(f"Datastreams({ds['@iot.id']})/name") == {"name": ds["name"]}
    raw = env.client.get(f"/sta/v1.1/Datastreams({ds['@iot.id']})/name/$value")
    assert raw.status_code == 200 and raw.text == ds["name"]
    # Filtering datastreams by their Thing gives the same as navigating.
    via_filter = env.get("Datastreams", **{"$filter": f"Thing/@iot.id eq {thing['@iot.id']}"})
    navigated = env.follow(thing["Datastreams@iot.navigationLink"])
    assert sorted(s["@iot.id"] for s in via_filter["value"]) == sorted(
        s["@iot.id"] for s in navigated["value"]
    )


def test_value_of_an_object_property_is_its_json(env: Env) -> None:
    air = _device(env, False)
    thing = _thing(env, air.device_id)
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    location = env.follow(thing["Locations@iot.navigationLink"])["value"][0]
    for path, expected in (
        (f"Things({thing['@iot.id']})/properties", thing["properties"]),
        (f"Datastreams({ds['@iot.id']})/unitOfMeasurement", ds["unitOfMeasurement"]),
        (f"Locations({location['@iot.id']})/location", location["location"]),
    ):
        raw = env.client.get(f"/sta/v1.1/{path}/$value")
        assert raw.status_code == 200, raw.text
        assert raw.headers["content-type"] == "application/json"
        assert raw.json() == expected
        assert "'" not in raw.text  # JSON, not a Python repr
    # Primitives stay plain text: strings bare, numbers as JSON writes them.
    raw = env.client.get(f"/sta/v1.1/Things({thing['@iot.id']})/name/$value")
    assert raw.headers["content-type"].startswith("text/plain") and raw.text == air.device_id
    first = env.follow(ds["Observations@iot.navigationLink"] + "?$top=1")["value"][0]
    raw = env.client.get(f"{first['@iot.selfLink']}/result/$value")
    assert raw.headers["content-type"].startswith("text/plain")
    assert float(raw.text) == first["result"] and raw.text == json.dumps(first["result"])


def test_select_orderby_top_skip_on_the_catalog(env: Env) -> None:
    everything = env.get("Datastreams", **{"$orderby": "name desc", "$top": "1000"})["value"]
    names = [s["name"] for s in everything]
    assert names == sorted(names, reverse=True)
    page = env.get(
        "Datastreams", **{"$orderby": "name desc", "$top": "3", "$skip": "2", "$select": "name"}
    )
    assert page["value"] == [{"name": n} for n in names[2:5]]
    assert "$skip=5" in page["@iot.nextLink"] and "$top=3" in page["@iot.nextLink"]
    expanded = env.get(
        "Things", **{"$expand": "Datastreams($top=2;$select=id,name;$orderby=name)"}
    )["value"]
    for thing in expanded:
        assert len(thing["Datastreams"]) == 2
        assert set(thing["Datastreams"][0]) == {"@iot.id", "@iot.selfLink", "name"}
        names = [s["name"] for s in thing["Datastreams"]]
        link = thing.get("Datastreams@iot.nextLink")
        assert link is not None
        while link is not None:
            page = env.follow(link)
            names += [s["name"] for s in page["value"]]
            link = page.get("@iot.nextLink")
        every = env.follow(thing["Datastreams@iot.navigationLink"])["value"]
        assert names == sorted(s["name"] for s in every)


# --- observations ---------------------------------------------------------------------------
def test_a_week_of_air_observations_by_next_link_exactly_once(env: Env) -> None:
    air = _device(env, False)
    written = _written_air(env, air, "pm2_5")
    minutes = WEEK_MS // MINUTE_MS
    assert len(written) < minutes  # the outage
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    page = env.follow(ds["Observations@iot.navigationLink"] + "?$top=1000&$count=true")
    assert page["@iot.count"] == len(written)
    seen: list[tuple[int, float]] = []
    while True:
        for o in page["value"]:
            assert o["phenomenonTime"] == o["resultTime"]
            seen.append((_ms(o["phenomenonTime"]), o["result"]))
        if "@iot.nextLink" not in page:
            break
        page = env.follow(page["@iot.nextLink"])
    assert seen == written


def test_observation_by_id_and_its_datastream(env: Env) -> None:
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="temperature")
    first = env.follow(ds["Observations@iot.navigationLink"] + "?$top=1")["value"][0]
    assert first["@iot.id"] == f"{ds['@iot.id']}-{env.start_ms}-edge"
    assert env.follow(first["@iot.selfLink"]) == first
    # written without quality flags (never checked): no resultQuality, not a clean null
    assert "resultQuality" not in first
    assert env.follow(first["Datastream@iot.navigationLink"])["@iot.id"] == ds["@iot.id"]
    expanded = env.follow(first["@iot.selfLink"] + "?$expand=Datastream($select=name)")
    assert expanded["Datastream"] == {"name": ds["name"]}
    # No observation at a time between points, or under another datastream.
    other = _datastream(env, air.device_id, quantity="pressure")
    for path in (
        f"Observations('{ds['@iot.id']}-{env.start_ms + 1}')",
        f"Datastreams({other['@iot.id']})/Observations('{first['@iot.id']}')",
    ):
        r = env.client.get(f"/sta/v1.1/{path}")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_filter_on_result_and_phenomenon_time(env: Env) -> None:
    air = _device(env, False)
    written = _written_air(env, air, "pm10")
    ds = _datastream(env, air.device_id, quantity="pm10")
    values = sorted(v for _, v in written)
    threshold = values[int(len(values) * 0.9)]
    above = env.get(
        f"Datastreams({ds['@iot.id']})/Observations",
        **{"$filter": f"result gt {threshold}", "$top": "1000", "$count": "true"},
    )
    assert above["@iot.count"] == sum(1 for v in values if v > threshold)
    assert above["value"] and all(o["result"] > threshold for o in above["value"])

    day_from, day_to = env.start_ms + 2 * DAY_MS, env.start_ms + 3 * DAY_MS
    expected = [(t, v) for t, v in written if day_from <= t < day_to and v <= threshold]
    got = env.get(
        f"Datastreams({ds['@iot.id']})/Observations",
        **{
            "$filter": (
                f"phenomenonTime ge {_iso(day_from)} and phenomenonTime lt {_iso(day_to)} "
                f"and result le {threshold}"
            ),
            "$top": "1000",
            "$orderby": "phenomenonTime desc",
        },
    )
    assert [(_ms(o["phenomenonTime"]), o["result"]) for o in got["value"]] == expected[::-1][:1000]
    # The literal may stand on the left, and the zone be an offset.
    local = datetime.fromtimestamp(day_from / 1000, UTC).astimezone().isoformat()
    swapped = env.get(
        f"Datastreams({ds['@iot.id']})/Observations",
        **{
            "$filter": f"{_iso(day_to)} gt phenomenonTime and phenomenonTime ge {local}",
            "$count": "true",
            "$top": "0",
        },
    )
    assert swapped["@iot.count"] == sum(1 for t, _ in written if day_from <= t < day_to)


def test_count_observations_are_intervals(env: Env) -> None:
    counter = _device(env, True)
    ds = _datastream(env, counter.device_id, **{"class": "cyclist", "direction": "left_to_right"})
    points = list(device_points(counter, env.start_ms, env.end_ms))
    written = [
        (p.time_ms, int(p.fields["count"]))
        for p in points
        if p.measurement == "traffic"
        and p.tags["class"] == "cyclist"
        and p.tags["direction"] == "left_to_right"
    ]
    running = {
        p.time_ms: p.fields["running_fraction"] for p in points if p.measurement == "counter"
    }
    assert sorted(set(running.values())) == [0.5, 1.0]
    url = ds["Observations@iot.navigationLink"] + "?$top=1000&$count=true"
    env.influx.statements.clear()
    page = env.follow(url)
    counter_queries = [s for s in env.influx.statements if '"counter"' in s]
    assert len(counter_queries) == 1 and " LIMIT " in counter_queries[0]
    half_running = 0
    assert page["@iot.count"] == len(written)
    total = 0
    n = 0
    while True:
        for o in page["value"]:
            start, end = o["phenomenonTime"].split("/")
            assert _ms(end) - _ms(start) == MINUTE_MS
            assert o["resultTime"] == end
            assert isinstance(o["result"], int)
            assert o["parameters"] == {
                "interval_s": 60.0,
                "running_fraction": running[_ms(start)],
            }
            half_running += o["parameters"]["running_fraction"] == 0.5
            total += o["result"]
            n += 1
        if "@iot.nextLink" not in page:
            break
        page = env.follow(page["@iot.nextLink"])
    assert n == len(written) and total == sum(c for _, c in written)
    assert half_running == 30  # the slow recovery after the outage
    busy = env.follow(ds["Observations@iot.navigationLink"] + "?$filter=result ge 10&$count=true")
    assert busy["@iot.count"] == sum(1 for _, c in written if c >= 10)
    assert all(o["result"] >= 10 for o in busy["value"])
    # A fractional bound against the integer counts.
    half = env.follow(ds["Observations@iot.navigationLink"] + "?$filter=result gt 9.5&$count=true")
    assert half["@iot.count"] == busy["@iot.count"]


def test_count_observations_carry_running_fraction_newest_first_and_by_id(env: Env) -> None:
    counter = _device(env, True)
    ds = _datastream(env, counter.device_id, **{"class": "car", "direction": "right_to_left"})
    halves = sorted(
        p.time_ms
        for p in device_points(counter, env.start_ms, env.end_ms)
        if p.measurement == "counter" and p.fields["running_fraction"] == 0.5
    )
    # The half-running stretch, newest first and across pages of 7.
    lo, hi = _iso(halves[0] - 5 * MINUTE_MS), _iso(halves[-1] + 5 * MINUTE_MS)
    cond = f"phenomenonTime ge {lo} and phenomenonTime le {hi}"
    page = env.follow(
        ds["Observations@iot.navigationLink"]
        + f"?$filter={cond}&$orderby=phenomenonTime desc&$top=7"
    )
    seen: list[tuple[int, float]] = []
    while True:
        seen += [
            (_ms(o["phenomenonTime"].split("/")[0]), o["parameters"]["running_fraction"])
            for o in page["value"]
        ]
        if "@iot.nextLink" not in page:
            break
        page = env.follow(page["@iot.nextLink"])
    times = [t for t, _ in seen]
    # The five minutes before are the end of the outage: nothing there.
    assert times == sorted(times, reverse=True) and len(seen) == 30 + 5
    assert sorted(t for t, f in seen if f == 0.5) == halves
    assert all(f == 1.0 for t, f in seen if t not in halves)
    # One observation by id, and a counter that did not report: null, not 1 or 0.
    first_id = f"{ds['@iot.id']}-{env.start_ms}"
    one = env.get(f"Observations('{first_id}')")
    assert one["parameters"]["running_fraction"] == 1.0
    tags = {"device_id": counter.device_id, "site": counter.site}
    restore = next(
        p
        for p in device_points(counter, env.start_ms, env.start_ms + MINUTE_MS)
        if p.measurement == "counter"
    )
    env.influx.delete("counter", tags, env.start_ms)
    try:
        one = env.get(f"Observations('{first_id}')")
        assert one["parameters"] == {"interval_s": 60.0, "running_fraction": None}
        listed = env.follow(ds["Observations@iot.navigationLink"] + "?$top=2")["value"]
        assert [o["parameters"]["running_fraction"] for o in listed] == [None, 1.0]
    finally:
        env.influx.write([to_line(restore)])
    assert env.get(f"Observations('{first_id}')")["parameters"]["running_fraction"] == 1.0


def test_observations_top_level_need_a_datastream(env: Env) -> None:
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    r = env.client.get("/sta/v1.1/Observations")
    assert r.status_code == 400 and "Datastream/@iot.id" in r.json()["detail"]
    got = env.get(
        "Observations", **{"$filter": f"Datastream/@iot.id eq {ds['@iot.id']}", "$top": "5"}
    )
    assert got["value"] == env.follow(ds["Observations@iot.navigationLink"] + "?$top=5")["value"]
    assert got["@iot.nextLink"].startswith("http://testserver/sta/v1.1/Observations?")
    assert env.follow(got["@iot.nextLink"])["value"][0]["@iot.id"] == (
        f"{ds['@iot.id']}-{env.start_ms + 5 * MINUTE_MS}-edge"
    )


def test_expand_observations_of_datastreams(env: Env) -> None:
    air = _device(env, False)
    thing = _thing(env, air.device_id)
    got = env.get(
        f"Things({thing['@iot.id']})/Datastreams",
        **{"$expand": "Observations($top=3;$orderby=phenomenonTime desc;$count=true)"},
    )["value"]
    assert len(got) == 5
    for ds in got:
        obs = ds["Observations"]
        assert len(obs) == 3
        times = [_ms(o["phenomenonTime"]) for o in obs]
        assert times == sorted(times, reverse=True) and times[0] == env.end_ms - MINUTE_MS
        assert ds["Observations@iot.count"] == len(
            _written_air(env, air, ds["properties"]["quantity"])
        )
        nxt = env.follow(ds["Observations@iot.nextLink"])["value"]
        assert _ms(nxt[0]["phenomenonTime"]) == times[-1] - MINUTE_MS
    small = env.config.model_copy(update={"max_points": 1000})
    with TestClient(create_app(ApiContext(small))) as client:
        r = client.get("/sta/v1.1/Datastreams", params={"$expand": "Observations($top=100)"})
        assert r.status_code == 400  # 20 datastreams x 100 is more than max_points
        assert "max_points" not in r.json()["detail"] and "lower $top" in r.json()["detail"]
        r = client.get("/sta/v1.1/Datastreams", params={"$expand": "Observations($top=50)"})
        assert r.status_code == 200


def test_every_observation_query_is_bounded(env: Env) -> None:
    env.influx.statements.clear()
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    env.follow(ds["Observations@iot.navigationLink"] + "?$count=true&$filter=result gt 1")
    env.get("Datastreams", **{"$expand": "Observations($top=2)"})
    selects = [s for s in env.influx.statements if s.startswith("SELECT")]
    assert selects
    for s in selects:
        assert " LIMIT " in s, s


def test_ids_are_the_same_after_a_restart(env: Env) -> None:
    def everything(client: TestClient) -> dict[str, list[Any]]:
        out = {}
        for name in ("Things", "Locations", "Sensors", "ObservedProperties", "Datastreams"):
            r = client.get(f"/sta/v1.1/{name}", params={"$top": "1000", "$select": "id,name"})
            out[name] = sorted((e["@iot.id"], e["name"]) for e in r.json()["value"])
        return out

    first = everything(env.client)
    again = create_app(ApiContext(env.config))
    with TestClient(again) as client:
        assert everything(client) == first
    for entities in first.values():
        assert all(isinstance(i, int) and 0 < i < 2**53 for i, _ in entities)


def test_times_from_1677_to_2262_like_the_rest_of_the_api(env: Env) -> None:
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    observations = f"Datastreams({ds['@iot.id']})/Observations"
    n = len(_written_air(env, air, "pm2_5"))

    def count(cond: str) -> int:
        got = env.get(observations, **{"$filter": cond, "$count": "true", "$top": "0"})
        return int(got["@iot.count"])

    # Bounds past InfluxDB's ends (inside 1677 and 2262) mean what they say.
    everything = "phenomenonTime ge 1677-01-01T00:00:00Z and phenomenonTime le 2262-12-31T23:59:59Z"
    assert count(everything) == n
    assert count("phenomenonTime gt 1677-01-01T00:00:00Z") == n
    assert count("phenomenonTime lt 2262-12-31T23:59:59Z") == n
    assert count("phenomenonTime lt 1677-06-01T00:00:00Z") == 0
    assert count("phenomenonTime eq 1677-06-01T00:00:00Z") == 0
    assert count("phenomenonTime ge 2262-12-31T00:00:00Z") == 0
    assert count("phenomenonTime ge 2201-01-01T00:00:00Z") == 0
    for cond in ("phenomenonTime gt 1676-12-31T00:00:00Z", "phenomenonTime lt 2263-01-01T00:00Z"):
        r = env.client.get(f"/sta/v1.1/{observations}", params={"$filter": cond})
        assert r.status_code == 400 and "1677..2262" in r.json()["detail"]
    # An observation before 1970 is listed, and its id leads back to it.
    tags = {"device_id": air.device_id, "site": air.site, "sensor": "sds011"}
    old = Point("air", tags, {"pm2_5": 4.5}, -DAY_MS)
    env.influx.write([to_line(old)])
    try:
        got = env.get(observations, **{"$filter": "phenomenonTime lt 1970-01-01T00:00:00Z"})
        (o,) = got["value"]
        assert o["phenomenonTime"] == "1969-12-31T00:00:00.000Z" and o["result"] == 4.5
        assert o["@iot.id"] == f"{ds['@iot.id']}--{DAY_MS}-edge"
        assert env.follow(o["@iot.selfLink"]) == o
    finally:
        env.influx.delete("air", tags, -DAY_MS)
    assert count("phenomenonTime lt 1970-01-01T00:00:00Z") == 0
    # Ids at times InfluxDB cannot look up are simply not there.
    for ms in (9_223_372_036_855, 99_999_999_999_999, -9_223_372_036_855):
        r = env.client.get(f"/sta/v1.1/Observations('{ds['@iot.id']}-{ms}')")
        assert r.status_code == 404, r.text
    r = env.client.get(f"/sta/v1.1/Observations('{ds['@iot.id']}-9223372036854')")
    assert r.status_code == 404, r.text  # the last ms there is: looked up, nothing there


# --- an independent client --------------------------------------------------------------------
def test_frost_sta_client_reads_things_datastreams_and_a_week(env: Env) -> None:
    import frost_sta_client as fsc

    # An app of its own: leaving the server ends the app's lifespan, which closes its context.
    with live_server(create_app(ApiContext(env.config))) as base:
        service = fsc.SensorThingsService(f"{base}/sta/v1.1")
        things = list(service.things().query().list())
        assert sorted(t.name for t in things) == sorted(d.device_id for d in env.devices)
        air = _device(env, False)
        thing = next(t for t in things if t.name == air.device_id)
        streams = list(thing.get_datastreams().query().list())
        assert len(streams) == 5
        pm = next(s for s in streams if s.properties["quantity"] == "pm2_5")
        assert pm.unit_of_measurement.symbol == "µg/m3"
        found = service.datastreams().find(pm.id)
        assert found.name == pm.name
        week = (
            pm.get_observations()
            .query()
            .filter(
                f"phenomenonTime ge {_iso(env.start_ms)} and phenomenonTime lt {_iso(env.end_ms)}"
            )
            .top(1000)
            .list()
        )
        results = [(o.phenomenon_time, o.result) for o in week]
        written = _written_air(env, air, "pm2_5")
        assert len(results) == len(written)
        assert [v for _, v in results] == [v for _, v in written]
        assert len({t for t, _ in results}) == len(written)
        locations = list(thing.get_locations().query().list())
        assert [round(c, 3) for c in locations[0].location["coordinates"]] == [
            round(air.lon, 3),
            round(air.lat, 3),
        ]


# --- bad input --------------------------------------------------------------------------------
HOSTILE_PATHS = [
    "Things(abc)",
    "Things('1')",
    "Things(1;DROP)",
    "Things(99999999999999999999)",
    "Things(1)",
    "Things(1)/Nope",
    "Nope",
    "Things/Datastreams",
    "Observations('x')",
    "Observations(1)",
    "Observations('1-2')",
    "Observations('1-99999999999999')",
    "Observations('\"; DROP MEASUREMENT air')",
    "Datastreams(1)/Observations",
    "Things(" + "9" * 5000 + ")",
    "Things(1)/name/$value/more",
    "a/b/c/d/e/f/g/h",
    "Things(1%0A)",
    "Observations(%271-2%0A%27)",
]
HOSTILE_OPTIONS: list[dict[str, str]] = [
    {"$top": "-1"},
    {"$top": "1001"},
    {"$top": "1e3"},
    {"$skip": "x"},
    {"$count": "yes"},
    {"$orderby": "result"},
    {"$orderby": "phenomenonTime sideways"},
    {"$select": "result;DROP"},
    {"$expand": "Datastream/Thing"},
    {"$expand": "Nope"},
    {"$expand": "Datastream($expand=Thing)"},
    {"$filter": "result gt 'a'"},
    {"$filter": "result gt 1) or (1 eq 1"},
    {"$filter": "result gt 1 or result lt 0"},
    {"$filter": "phenomenonTime gt '2024-01-01'"},
    {"$filter": "phenomenonTime gt 2024-13-45T99:00:00Z"},
    {"$filter": "phenomenonTime gt 9999-01-01T00:00:00Z"},
    {"$filter": "phenomenonTime ne 2024-01-01T00:00:00Z"},
    {"$filter": "result gt 1e999"},
    {"$filter": "result gt 12345678901234567890"},
    {"$filter": "name eq 'x\"; DROP SERIES FROM air; --"},
    {"$filter": "name eq 'x'' or ''1''=''1'"},
    {"$filter": "result gt 1\nDROP DATABASE sta"},
    {"$filter": "result =~ /.*/"},
    {"$filter": "result gt 1 and " * 40 + "result gt 1"},
    {"$filter": "x" * 5000},
    {"$filter": "substringof('a', name)"},
    {"$filter": "Datastream/@iot.id gt 1"},
    {"$filter": ""},
    {"$unknown": "1"},
]


def test_hostile_input_gives_problems_never_server_errors(env: Env) -> None:
    air = _device(env, False)
    ds = _datastream(env, air.device_id, quantity="pm2_5")
    observations = f"/sta/v1.1/Datastreams({ds['@iot.id']})/Observations"
    for path in HOSTILE_PATHS:
        r = env.client.get(f"/sta/v1.1/{path}")
        assert r.status_code in (400, 404), (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", path
    for params in HOSTILE_OPTIONS:
        for url in (observations, "/sta/v1.1/Things"):
            r = env.client.get(url, params=params)
            if url.endswith("Things") and r.status_code == 200:
                # Comparisons that are fine on Things just match nothing.
                assert r.json()["value"] == [], params
                continue
            assert r.status_code == 400, (url, params, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 400
    r = env.client.get("/sta/v1.1/Things", params=[("$top", "1"), ("$top", "2")])
    assert r.status_code == 400
    # The data is all still there.
    assert env.follow(ds["Observations@iot.navigationLink"] + "?$count=true&$top=0")[
        "@iot.count"
    ] == len(_written_air(env, air, "pm2_5"))


def test_a_regex_like_name_is_a_plain_string(env: Env) -> None:
    for name in (".*", "hist-.*", "^hist", "hist-air-000|x", "(", "\\"):
        got = env.get("Things", **{"$filter": f"name eq '{name}'"})
        assert got["value"] == []


def test_live_server_serves_the_root() -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    with live_server(app) as base:
        assert httpx.get(f"{base}/ping").json() == {"ok": True}
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/ping", timeout=2)
