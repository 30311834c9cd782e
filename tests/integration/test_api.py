"""/api/v1 over a real InfluxDB holding a week of simulated history: every figure the API
gives is checked against what was written."""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import BrokerSettings, ServeConfig, new_token
from sensorpipe.api.context import ApiContext
from sensorpipe.firmware_sim.history import (
    HistoryDevice,
    device_points,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point
from sensorpipe.protocol import storage
from sensorpipe.protocol.registry import save_registry
from sensorpipe.query.series import (
    AirSeriesRequest,
    CountSeriesRequest,
    TooManyPoints,
    air_series,
    count_series,
)
from sensorpipe.stack.local import LocalStack
from tests.helpers import count_sums, run_sensorpipe, running_stack, stack_serve_config

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class World:
    stack: LocalStack
    influx: InfluxClient
    devices: list[HistoryDevice]
    points: dict[str, list[Point]]
    start_ms: int
    end_ms: int
    token: str
    config: ServeConfig


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "api", serve=False) as (stack, info):
        devices = history_devices(3, 2)
        registry = stack.registry()
        register_history_devices(registry, devices)
        save_registry(registry, stack.registry_path)
        influx = InfluxClient(info.influx_url, info.database)
        # A week that ends on a whole hour a little before now, so the answers are stable.
        end_ms = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS
        start_ms = end_ms - 7 * DAY_MS
        write_history(influx, devices, start_ms, end_ms)
        points = {d.device_id: list(device_points(d, start_ms, end_ms)) for d in devices}
        token, digest = new_token()
        config = stack_serve_config(stack, token_hashes=[digest], register_cache_s=0)
        yield World(stack, influx, devices, points, start_ms, end_ms, token, config)
        influx.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(ApiContext(world.config))) as c:
        yield c


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _links(world: World, device_id: str) -> list[Point]:
    return [p for p in world.points[device_id] if p.measurement == storage.LINK]


# --- the register ---------------------------------------------------------------------------
def test_devices_list_every_device_with_figures_computed_from_what_was_stored(
    world: World, client: TestClient
) -> None:
    answer = client.get("/api/v1/devices")
    assert answer.status_code == 200
    body = answer.json()
    by_id = {d["device_id"]: d for d in body["devices"]}
    assert set(by_id) == {d.device_id for d in world.devices}
    now_ms = _ms(body["stats_computed_at"])
    for device in world.devices:
        entry = by_id[device.device_id]
        links = _links(world, device.device_id)
        assert _ms(entry["first_seen"]) == links[0].time_ms
        assert _ms(entry["last_seen"]) == links[-1].time_ms
        week = [p for p in links if p.time_ms > now_ms - 7 * DAY_MS]
        assert entry["messages_7d"] == len(week)
        assert entry["missing_7d"] == sum(int(p.fields.get("seq_gap", 0)) for p in week)
        assert entry["missing_7d"] > 0  # every simulated device has an outage
        assert entry["median_latency_ms_7d"] == pytest.approx(
            statistics.median(int(p.fields["latency_ms"]) for p in week)
        )
        # Uptime: 5-minute windows with a message over the windows since the week began.
        windows = {p.time_ms // 300_000 for p in week}
        first_window = max(links[0].time_ms, now_ms - 7 * DAY_MS) // 300_000
        possible = math.ceil((now_ms - first_window * 300_000) / 300_000)
        assert entry["uptime_7d"] == pytest.approx(len(windows) / possible, abs=0.002)
        assert 0.95 < entry["uptime_7d"] < 1.0
        assert entry["counts"] is device.counting
        assert entry["personal_data"] is device.counting
        if device.counting:
            assert entry["count_classes"] and "camera" in entry["sensors"]
            assert entry["latest_pm2_5"] is None
        else:
            assert entry["quantities"] == [
                "pm2_5", "pm10", "temperature", "relative_humidity", "pressure"
            ]  # fmt: skip
            last_air = [p for p in world.points[device.device_id] if "pm2_5" in p.fields][-1]
            assert entry["latest_pm2_5"] == pytest.approx(last_air.fields["pm2_5"])
        assert entry["location"] == {
            "lat": round(device.lat, 3), "lon": round(device.lon, 3), "precision_decimals": 3
        }  # fmt: skip
        assert entry["exact_location"] is None
        assert entry["licence"] == "CC-BY-4.0"


def test_devices_as_geojson_is_a_feature_collection_with_rounded_lon_lat(
    world: World, client: TestClient
) -> None:
    for answer in (
        client.get("/api/v1/devices?format=geojson"),
        client.get("/api/v1/devices", headers={"Accept": "application/geo+json"}),
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/geo+json")
        collection = answer.json()
        assert collection["type"] == "FeatureCollection"
        features = {f["id"]: f for f in collection["features"]}
        assert set(features) == {d.device_id for d in world.devices}
        for d in world.devices:
            geometry = features[d.device_id]["geometry"]
            assert geometry == {"type": "Point", "coordinates": [round(d.lon, 3), round(d.lat, 3)]}


def test_one_device_and_an_unknown_one(world: World, client: TestClient) -> None:
    device = world.devices[0].device_id
    assert client.get(f"/api/v1/devices/{device}").json()["device_id"] == device
    missing = client.get("/api/v1/devices/no-such-device")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


# --- air --------------------------------------------------------------------------------------
def test_hourly_means_match_the_stored_readings_and_the_outage_is_null(
    world: World, client: TestClient
) -> None:
    device = world.devices[0]
    answer = client.get(
        "/api/v1/air",
        params={
            "device": device.device_id,
            "quantity": ["pm2_5", "temperature"],
            "from": _iso(world.start_ms),
            "to": _iso(world.end_ms),
            "every": "1h",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["units"] == {"pm2_5": "ug/m3", "temperature": "degC"}
    series = {s["sensor"]: s for s in body["series"]}
    assert set(series) == {"sds011", "bme280"}
    pm = series["sds011"]
    assert len(pm["time"]) == 7 * 24  # every hour listed, gaps included
    expected: dict[int, list[float]] = {}
    for p in world.points[device.device_id]:
        if "pm2_5" in p.fields:
            expected.setdefault(p.time_ms // HOUR_MS * HOUR_MS, []).append(float(p.fields["pm2_5"]))
    nulls = 0
    for t, value in zip(pm["time"], pm["values"]["pm2_5"], strict=True):
        values = expected.get(_ms(t))
        if values is None:
            assert value is None
            nulls += 1
        else:
            assert value == pytest.approx(statistics.fmean(values))
    assert nulls >= 1  # the outage (1 % of the week, 100 minutes) covers a whole hour
    assert "pm2_5" not in series["bme280"]["values"]  # a BME280 does not measure PM


def test_site_means_aggregate_the_site_and_csv_has_the_same_numbers(
    world: World, client: TestClient
) -> None:
    site = world.devices[0].site
    params = {
        "site": site,
        "quantity": "pm10",
        "from": _iso(world.end_ms - DAY_MS),
        "to": _iso(world.end_ms),
        "every": "1d",
        "agg": "max",
        "group": "site",
    }
    body = client.get("/api/v1/air", params=params).json()
    (series,) = body["series"]
    assert series["site"] == site and series["device_id"] is None
    in_site = [d.device_id for d in world.devices if d.site == site and not d.counting]
    # The answer starts at the whole day (UTC) that holds `from`: a daily max per day.
    first_day = (world.end_ms - DAY_MS) // DAY_MS * DAY_MS
    assert _ms(body["from"]) == first_day
    expected: dict[int, float] = {}
    for d in in_site:
        for p in world.points[d]:
            if "pm10" in p.fields and p.time_ms >= first_day:
                day_start = p.time_ms // DAY_MS * DAY_MS
                expected[day_start] = max(expected.get(day_start, 0.0), float(p.fields["pm10"]))
    got = dict(zip((_ms(t) for t in series["time"]), series["values"]["pm10"], strict=True))
    assert got.keys() == expected.keys()
    for day_start, value in expected.items():
        assert got[day_start] == pytest.approx(value)
    for answer in (
        client.get("/api/v1/air", params={**params, "format": "csv"}),
        client.get("/api/v1/air", params=params, headers={"Accept": "text/csv"}),
    ):
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert [r["time"] for r in rows] == series["time"]
        # The unit in the header, the value to 0.1 µg/m³ (query.output), as the CLI's CSV.
        from_csv = [float(r["pm10_ugm3"]) if r["pm10_ugm3"] else None for r in rows]
        assert from_csv == [None if v is None else round(v, 1) for v in series["values"]["pm10"]]


def test_bbox_selects_the_devices_published_inside_it(world: World, client: TestClient) -> None:
    d = world.devices[0]
    lat, lon = round(d.lat, 3), round(d.lon, 3)
    box = f"{lon - 0.0005},{lat - 0.0005},{lon + 0.0005},{lat + 0.0005}"
    body = client.get("/api/v1/air", params={"bbox": box, "from": "-2h", "every": "1h"}).json()
    assert {s["device_id"] for s in body["series"]} == {d.device_id}
    far = client.get("/api/v1/air", params={"bbox": "0,0,0.1,0.1", "from": "-2h"}).json()
    assert far["series"] == []


def test_a_request_for_too_many_values_is_refused_with_how_to_narrow_it(
    world: World, client: TestClient
) -> None:
    answer = client.get("/api/v1/air", params={"from": "-7d", "every": "1m"})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == 400 and "shorter time range" in problem["detail"]
    # The same check guards the library call, and the InfluxQL carries a LIMIT besides.
    with pytest.raises(TooManyPoints):
        air_series(world.influx, AirSeriesRequest(start="-7d", every="1m", max_points=1000))
    counts = client.get("/api/v1/counts", params={"from": "-7d", "every": "1m"})
    assert counts.status_code == 400


# --- counts -------------------------------------------------------------------------------------
def test_counts_are_the_stored_sums_and_the_running_fraction_shows_the_outage(
    world: World, client: TestClient
) -> None:
    device = next(d for d in world.devices if d.counting)
    answer = client.get(
        "/api/v1/counts",
        params={
            "device": device.device_id,
            "from": _iso(world.start_ms),
            "to": _iso(world.end_ms),
            "every": "1h",
        },
    )
    assert answer.status_code == 200, answer.text
    (series,) = answer.json()["series"]
    assert len(series["time"]) == 7 * 24
    sums, running = count_sums(world.points[device.device_id], HOUR_MS)
    assert len(series["counts"]) == 10  # five classes, two directions
    for c in series["counts"]:
        for t, value in zip(series["time"], c["values"], strict=True):
            expected = sums.get((c["class"], c["direction"], _ms(t)))
            assert value == expected
    fractions = [
        (running.get(_ms(t)), f)
        for t, f in zip(series["time"], series["running_fraction"], strict=True)
    ]
    for expected_run, fraction in fractions:
        if expected_run is None:
            assert fraction is None
        else:
            assert fraction == pytest.approx(min(1.0, expected_run / 3600))
    assert any(f is None for _, f in fractions)  # the outage: no report at all
    assert any(f is not None and 0 < f < 1 for _, f in fractions)  # running half the time


# --- hostile input ----------------------------------------------------------------------------
HOSTILE = [
    "x' OR '1'='1",
    'x" OR ""="',
    "a;DROP DATABASE sensorpipe",
    "line\nbreak",
    "/.*/",
    "^(a|b)+$",
    "x\\",
    "\u0000",
    "é" * 300,
    "a" * 5000,
]


@pytest.mark.parametrize(
    "parameter",
    [
        "device",
        "site",
        "quantity",
        "class",
        "direction",
        "from",
        "to",
        "every",
        "agg",
        "group",
        "bbox",
        "format",
    ],
)
def test_hostile_parameters_are_refused_as_problems_never_5xx(
    client: TestClient, parameter: str
) -> None:
    for path in ("/api/v1/air", "/api/v1/counts"):
        for value in HOSTILE:
            answer = client.get(path, params={parameter: value})
            assert 400 <= answer.status_code < 500, (path, parameter, value, answer.text)
            if answer.status_code != 200:
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["status"] == answer.status_code


def test_hostile_names_reach_influxdb_only_as_escaped_literals(world: World) -> None:
    """Below the API's validation: the query builders escape what they are given, so a name
    built to break out of its literal selects nothing and changes nothing."""
    for value in HOSTILE[:7]:
        air = air_series(world.influx, AirSeriesRequest(sites=[value], start="-1h"))
        assert air["series"] == []
        counts = count_series(world.influx, CountSeriesRequest(devices=[value], start="-1h"))
        assert counts["series"] == []
    still = air_series(world.influx, AirSeriesRequest(start="-2h", every="1h"))
    assert still["series"]  # the database is still there


# --- access -------------------------------------------------------------------------------------
def test_exact_locations_and_link_metadata_need_a_listed_token(
    world: World, client: TestClient
) -> None:
    device = world.devices[0]
    for path in (
        "/api/v1/devices?exact=true",
        f"/api/v1/link?device={device.device_id}",
    ):
        anonymous = client.get(path)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = client.get(path, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
    auth = {"Authorization": f"Bearer {world.token}"}
    exact = client.get("/api/v1/devices?exact=true", headers=auth).json()
    entry = next(d for d in exact["devices"] if d["device_id"] == device.device_id)
    assert entry["exact_location"] == {"lat": device.lat, "lon": device.lon}
    link = client.get(
        "/api/v1/link",
        params={
            "device": device.device_id,
            "from": _iso(world.end_ms - HOUR_MS),
            "to": _iso(world.end_ms),
        },
        headers=auth,
    )
    assert link.status_code == 200
    messages = link.json()["messages"]
    expected = [p for p in _links(world, device.device_id) if p.time_ms >= world.end_ms - HOUR_MS]
    assert [m["seq"] for m in messages] == [p.fields["seq"] for p in expected]
    assert all("latency_ms" in m and "rssi_dbm" in m for m in messages)


# --- health -------------------------------------------------------------------------------------
def test_health_reports_each_part_and_a_down_broker_as_503(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.token}"}  # the parts are for token holders
    with TestClient(create_app(ApiContext(world.config)), headers=auth) as client:
        ok = client.get("/api/v1/health")
        assert ok.status_code == 200
        body = ok.json()
        assert body["status"] == "ok"
        assert body["influxdb"]["ok"] and body["broker"]["ok"] and body["ingest"]["ok"]
        assert _ms(body["last_write"]) == max(
            p.time_ms for d in world.devices for p in _links(world, d.device_id)
        )
    closed = world.config.model_copy(update={"broker": BrokerSettings(port=1)})
    with TestClient(create_app(ApiContext(closed)), headers=auth) as client:
        down = client.get("/api/v1/health")
        assert down.status_code == 503
        assert down.json()["status"] == "degraded" and down.json()["broker"]["ok"] is False


def test_the_register_cache_answers_while_influxdb_is_slow_to_recompute(world: World) -> None:
    """With a cache, a second request within register_cache_s reuses the figures."""
    config = world.config.model_copy(update={"register_cache_s": 600})
    ctx = ApiContext(config)
    with TestClient(create_app(ctx)) as client:
        first = client.get("/api/v1/devices").json()["stats_computed_at"]
        second = client.get("/api/v1/devices").json()["stats_computed_at"]
    assert first == second


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/devices", "/api/v1/air", "/api/v1/counts", "/api/v1/health"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_stack_up_starts_the_api_and_prints_its_url(tmp_path: Path) -> None:
    import json

    import httpx

    directory = tmp_path / "stack"
    up = run_sensorpipe("stack", "up", "--dir", str(directory))
    try:
        assert up.returncode == 0, up.stderr
        line = next(x for x in up.stdout.splitlines() if x.strip().startswith("dashboard"))
        url = line.split(":", 1)[1].split()[0]
        assert httpx.get(f"{url}api/v1/health", timeout=10).json()["status"] == "ok"
        assert "<html" in httpx.get(url, timeout=10).text.lower()
        status = run_sensorpipe("stack", "status", "--dir", str(directory), timeout_s=60)
        assert status.returncode == 0 and "serve" in status.stdout
    finally:
        down = run_sensorpipe("stack", "down", "--dir", str(directory))
    assert down.returncode == 0
    assert "serve" in down.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}api/v1/health", timeout=2)
    # Up again: the dashboard keeps its address (bookmarks work), its port being free.
    again = run_sensorpipe("stack", "up", "--dir", str(directory), "--json")
    try:
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["api"] == url
    finally:
        run_sensorpipe("stack", "down", "--dir", str(directory))


def test_demo_serve_keeps_the_dashboard_up_until_ctrl_c(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    import httpx

    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensorpipe",
            "demo",
            "--duration",
            "3",
            "--devices",
            "2",
            "--serve",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        # Ctrl-C as a terminal sends it, also where the suite itself runs in the background
        # (a shell starts background jobs with SIGINT ignored, and children inherit that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert demo.stdout is not None
        url = None
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            seen.append(line)
            if line.startswith("dashboard: "):
                url = line.split()[1]
                break
            assert line, "".join(seen)
        assert url is not None, "".join(seen)
        assert any(line.startswith("published ") for line in seen)  # the summary came first
        # The register's figures are recomputed every few seconds in a local stack.
        deadline = time.monotonic() + 20
        while True:
            registered = httpx.get(f"{url}api/v1/devices", timeout=30).json()["devices"]
            stored = [d for d in registered if d["device_id"].startswith("sim-0")]
            assert len(stored) == 2
            if all(d["messages_7d"] > 0 for d in stored) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(d["location"] is not None and d["messages_7d"] > 0 for d in stored)
        air = httpx.get(f"{url}api/v1/air", params={"from": "-10m", "every": "1m"}, timeout=30)
        assert air.json()["series"]
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0, rest
        assert "stopping the stack" in rest
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}api/v1/health", timeout=2)
    finally:
        if demo.poll() is None:  # a failed check: Ctrl-C, so the demo stops its stack
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()


def test_an_unaligned_from_starts_at_a_whole_interval(world: World, client: TestClient) -> None:
    """A first interval cut by `from` would hold part of its counts and read as an outage."""
    device = next(d for d in world.devices if d.counting)
    start = world.end_ms - 5 * HOUR_MS - 17 * 60_000  # 17 minutes into an hour
    body = client.get(
        "/api/v1/counts",
        params={"device": device.device_id, "from": _iso(start), "to": _iso(world.end_ms)},
    ).json()
    assert _ms(body["from"]) == start - start % HOUR_MS
    (series,) = body["series"]
    first = _ms(series["time"][0])
    assert first == start - start % HOUR_MS
    in_hour = [
        p
        for p in world.points[device.device_id]
        if p.measurement == storage.TRAFFIC and first <= p.time_ms < first + HOUR_MS
    ]
    pedestrians = next(
        c
        for c in series["counts"]
        if (c["class"], c["direction"]) == ("pedestrian", "left_to_right")
    )
    assert pedestrians["values"][0] == sum(
        int(p.fields["count"])
        for p in in_hour
        if (p.tags["class"], p.tags["direction"]) == ("pedestrian", "left_to_right")
    )


def test_unknown_classes_and_directions_are_refused_with_the_known_ones(client: TestClient) -> None:
    for params, expected in (
        ({"class": "cyclists"}, "did you mean 'cyclist'"),
        ({"class": "bus"}, "known: pedestrian"),
        ({"direction": "up"}, "left_to_right"),
    ):
        answer = client.get("/api/v1/counts", params=params)
        assert answer.status_code == 400, answer.text
        assert expected in answer.json()["detail"]


def test_link_pages_say_when_they_are_cut_and_where_the_next_begins(
    world: World, client: TestClient
) -> None:
    device = world.devices[0]
    auth = {"Authorization": f"Bearer {world.token}"}
    params = {
        "device": device.device_id,
        "from": _iso(world.end_ms - HOUR_MS),
        "to": _iso(world.end_ms),
        "limit": "25",
    }
    seqs: list[int] = []
    url: str | None = "/api/v1/link"
    pages = 0
    while url is not None:
        page = client.get(url, params=params if pages == 0 else None, headers=auth).json()
        pages += 1
        seqs.extend(m["seq"] for m in page["messages"])
        assert page["truncated"] is (page["next"] is not None)
        url = page["next"]
    expected = [
        p.fields["seq"]
        for p in _links(world, device.device_id)
        if p.time_ms >= world.end_ms - HOUR_MS
    ]
    assert seqs == expected and pages == 3  # 60 messages, 25 a page


def test_sim_history_registers_devices_and_writes_their_days(stack: LocalStack) -> None:

    directory = str(stack.directory)
    result = run_sensorpipe(
        "sim", "history", "--dir", directory, "--devices", "1", "--counting", "1", "--days", "1"
    )
    assert result.returncode == 0, result.stderr
    registry = stack.registry()
    assert {"hist-air-000", "hist-count-000"} <= set(registry.devices)
    assert registry.devices["hist-count-000"].sensors == ["camera"]
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        series = influx.query('SELECT count(seq) FROM "link" GROUP BY device_id')
    finally:
        influx.close()
    messages = {s["tags"]["device_id"]: s["values"][0][1] for s in series}
    # A day of minutes (1440 or 1441, as the minutes fall) less each device's outage (1 % of
    # the span: 14 or 15 minutes).
    assert set(messages) == {"hist-air-000", "hist-count-000"}
    assert all(1440 - 15 <= n <= 1441 - 14 for n in messages.values()), messages
    again = run_sensorpipe(
        "sim", "history", "--dir", directory, "--devices", "1", "--counting", "0", timeout_s=60
    )
    assert again.returncode == 1 and "already registered" in again.stderr


def test_provenance_is_a_filter_like_any_tag(world: World, client: TestClient) -> None:
    device = world.devices[0]
    counting = next(d for d in world.devices if d.counting)
    window = {"from": _iso(world.start_ms), "to": _iso(world.end_ms), "every": "1d"}
    for path, who in (("/api/v1/air", device), ("/api/v1/counts", counting)):
        everything = client.get(path, params={**window, "device": who.device_id})
        assert everything.status_code == 200, everything.text
        assert everything.json()["series"]
        edge = client.get(path, params={**window, "device": who.device_id, "source": "edge"})
        assert edge.json() == everything.json()  # the history is the edge agents' data
        kits = client.get(
            path, params={**window, "device": who.device_id, "source": ["airrohr", "ttn"]}
        )
        assert kits.status_code == 200 and kits.json()["series"] == []
        wrong = client.get(path, params={**window, "source": "import:excel"})
        assert wrong.status_code == 400
        assert "is no source of data" in wrong.json()["detail"]
        assert "import:sensor-community" in wrong.json()["detail"]
