"""The HTTP service's bounds against a hostile caller, over a real influxd: the answer size,
concurrent heavy work, $filter depth, numbers and times InfluxQL takes, observation ids,
first/last seen of imported devices, the health detail, links and security headers, and slow
headers."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig, new_token
from sensorpipe.api.context import ApiContext
from sensorpipe.api.sta.ids import stable_id
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.process import free_ports
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from tests.helpers import running_influxd
from tests.integration.live_server import serve_process

pytestmark = pytest.mark.integration

MINUTE_MS = 60_000
DB = "bounds"
CO2_DEVICES = ["co2-a", "co2-b", "co2-c", "co2-d", "co2-e"]
MOBILE = "mobile-1"
DUP = "dup-1"
IMPORTED = "imported-1"
COUNTER = "cnt-1"


class RecordingInflux(InfluxClient):
    """A real InfluxDB client that keeps every statement, and can hold one statement that
    matches `hold_when` until `release` is set (a slow query, on demand)."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(url, database)
        self.statements: list[str] = []
        self.hold_when: str | None = None
        self.held = threading.Event()
        self.release = threading.Event()

    def query(self, q: str, *, database: str | None = None) -> list[dict[str, Any]]:
        self.statements.append(q)
        if self.hold_when is not None and self.hold_when in q and not self.held.is_set():
            self.held.set()
            self.release.wait(60)
        return super().query(q, database=database)


def imported_device(site: str, *, placed: bool = True) -> DeviceEntry:
    """An SDS011 device whose readings were imported, at 52° N 5° E unless not `placed`."""
    location = Location(lat=52.0, lon=5.0) if placed else None
    return DeviceEntry(site=site, sensors=["sds011"], source="import", location=location)


def imported_counter(site: str) -> DeviceEntry:
    """A camera that counts pedestrians, its counts imported."""
    return DeviceEntry(site=site, sensors=["camera"], source="import", count_classes=["pedestrian"])


def minute_ms_ten_minutes_ago() -> int:
    """The start of the minute ten minutes before now (ms): where the tests' newest points lie."""
    now = int(time.time() * 1000)
    return now - now % MINUTE_MS - 10 * MINUTE_MS


@dataclass
class Env:
    """The API over a bare influxd (its database) and a registry file, `now_ms` the time of
    the newest points written; `root` holds both."""

    influxd: Influxd
    registry_path: Path
    now_ms: int
    root: Path

    def config(self, **settings: Any) -> ServeConfig:
        return ServeConfig(
            registry_path=str(self.registry_path),
            influx=InfluxSettings(url=self.influxd.url, database=self.influxd.database),
            register_cache_s=0,
            **settings,
        )

    def client(self, influx: InfluxClient | None = None, **settings: Any) -> TestClient:
        app = create_app(ApiContext(self.config(**settings), influx=influx))
        return TestClient(app, raise_server_exceptions=False)


def _air(device: str, time_ms: int, source: str, **fields: float) -> Point:
    tags = {"device_id": device, "site": "s1", "sensor": "sds011", "source": source}
    return Point("air", tags, fields, time_ms)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_influxd(tmp_path_factory, "bounds", DB) as (influxd, root):
        registry = Registry()
        for d in CO2_DEVICES:
            registry.devices[d] = imported_device("s1")
        registry.devices[MOBILE] = imported_device("s1", placed=False)
        registry.devices[DUP] = imported_device("s1")
        registry.devices[IMPORTED] = imported_device("s1")
        registry.devices[COUNTER] = imported_counter("s1")
        registry_path = root / "registry.toml"
        save_registry(registry, registry_path)
        now_ms = minute_ms_ten_minutes_ago()
        points = [_air(d, now_ms, "import:sensor-community", co2=400.0) for d in CO2_DEVICES]
        points.append(
            Point(
                "air",
                {"device_id": MOBILE, "site": "s1", "sensor": "sds011", "source": "import:track"},
                {"pm2_5": 3.0, "lat": 0.00005, "lon": 0.00005},
                now_ms,
            )
        )
        # The same second from the device itself and from an imported archive.
        points.append(_air(DUP, now_ms, "edge", pm2_5=1.5))
        points.append(_air(DUP, now_ms, "import:sensor-community", pm2_5=2.5))
        # Only imported history: no link points at all.
        points.append(_air(IMPORTED, now_ms - 3 * MINUTE_MS, "import:sensor-community", pm2_5=7.0))
        points.append(_air(IMPORTED, now_ms - MINUTE_MS, "import:sensor-community", pm2_5=8.0))
        counter_tags = {"device_id": COUNTER, "site": "s1", "source": "edge"}
        for i in range(5):
            t = now_ms - i * MINUTE_MS
            points.append(
                Point(
                    "traffic",
                    {**counter_tags, "class": "pedestrian", "direction": "left_to_right"},
                    {"count": 2, "interval_s": 60.0},
                    t,
                )
            )
            points.append(
                Point("counter", counter_tags, {"running_fraction": 1.0, "interval_s": 60.0}, t)
            )
        writer = influxd.client()
        writer.write([to_line(p) for p in points])
        writer.close()
        yield Env(influxd, registry_path, now_ms, root)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _problem(answer: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    return body


def _air_values(body: dict[str, Any]) -> int:
    return sum(len(v) for s in body["series"] for v in s["values"].values())


# --- 1: the answer-size bound holds whatever the estimate says --------------------------------
def test_a_quantity_its_sensor_model_does_not_report_cannot_grow_the_answer(env: Env) -> None:
    """The estimate knows sds011 reports no co2, so it counts nothing: the time range alone
    (2 weeks of 1-minute intervals, more than max_points) must still be refused."""
    with env.client(max_points=1000) as client:
        answer = client.get(
            "/api/v1/air",
            params={"device": "co2-a", "quantity": "co2", "every": "1m", "from": "-2w"},
        )
        assert len(answer.content) < 5000
        detail = _problem(answer)["detail"]
        assert "intervals" in detail and "1,000" in detail


def test_more_series_than_fit_are_refused_not_answered_in_full(env: Env) -> None:
    """Five co2 series the estimate does not count, 61 intervals each: more than 100 values."""
    with env.client(max_points=100) as client:
        answer = client.get(
            "/api/v1/air",
            params={"quantity": "co2", "every": "1m", "from": _iso(env.now_ms - 60 * MINUTE_MS),
                    "to": _iso(env.now_ms + MINUTE_MS)},
        )  # fmt: skip
        assert answer.status_code == 400 or _air_values(answer.json()) <= 100, answer.text[:300]
        _problem(answer)
        # One device fits.
        one = client.get(
            "/api/v1/air",
            params={"device": "co2-a", "quantity": "co2", "every": "1m",
                    "from": _iso(env.now_ms - 60 * MINUTE_MS), "to": _iso(env.now_ms + MINUTE_MS)},
        )  # fmt: skip
        assert one.status_code == 200, one.text
        assert [s["device_id"] for s in one.json()["series"]] == ["co2-a"]
        assert _air_values(one.json()) <= 100


def test_counts_for_a_class_without_counts_do_not_scan_the_counter_points(env: Env) -> None:
    influx = RecordingInflux(env.influxd.url, DB)
    with env.client(influx=influx) as client:
        influx.statements.clear()
        answer = client.get(
            "/api/v1/counts", params={"class": "cyclist", "from": "-260w", "every": "1d"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["series"] == []
        assert not [q for q in influx.statements if '"counter"' in q], influx.statements
        # Too many intervals are refused before InfluxDB is asked at all.
        influx.statements.clear()
        many = client.get("/api/v1/counts", params={"from": "-260w", "every": "1m"})
        _problem(many)
        assert not [q for q in influx.statements if "SELECT" in q], influx.statements
        # The device's counts are still there.
        counts = client.get("/api/v1/counts", params={"device": COUNTER, "every": "1h"})
        assert counts.status_code == 200, counts.text
        (series,) = counts.json()["series"]
        assert sum(v or 0 for c in series["counts"] for v in c["values"]) == 10
    influx.close()


# --- 2: a bound on concurrent heavy work; /health never waits behind it ------------------------
def test_heavy_requests_beyond_the_limit_get_503_and_health_still_answers(env: Env) -> None:
    influx = RecordingInflux(env.influxd.url, DB)
    influx.hold_when = "GROUP BY time("
    token, digest = new_token()
    results: dict[str, httpx.Response] = {}
    with env.client(influx=influx, max_heavy_requests=1, token_hashes=[digest]) as client:

        def slow() -> None:
            results["slow"] = client.get(
                "/api/v1/air", params={"device": "co2-a", "quantity": "co2", "every": "1h"}
            )

        worker = threading.Thread(target=slow)
        worker.start()
        try:
            assert influx.held.wait(30), "the first request never reached InfluxDB"
            health = client.get("/api/v1/health")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            detailed = client.get("/api/v1/health", headers={"Authorization": f"Bearer {token}"})
            assert detailed.status_code == 200 and detailed.json()["influxdb"]["ok"] is True
            for path in ("/api/v1/air", "/sta/v1.1/Things", "/api/v1/devices"):
                busy = client.get(path)
                body = _problem(busy, 503)
                assert int(busy.headers["Retry-After"]) >= 1
                assert "busy" in body["detail"]
            # Light work is not held: the dashboard's page and the SensorThings root.
            assert client.get("/").status_code == 200
            assert client.get("/sta/v1.1").status_code == 200
        finally:
            influx.release.set()
            worker.join(60)
        assert results["slow"].status_code == 200, results["slow"].text
        # The slot is free again.
        assert client.get("/api/v1/devices").status_code == 200
    influx.close()


# --- 3: $filter nesting -------------------------------------------------------------------------
def test_deeply_nested_filter_is_a_400_without_a_traceback(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    deep = "(" * 500 + "result gt 1" + ")" * 500
    assert len(deep) < 2000
    with caplog.at_level(logging.DEBUG), env.client() as client:
        answer = client.get("/sta/v1.1/Things", params={"$filter": deep})
        detail = _problem(answer)["detail"]
        assert "nest" in detail
        expand = client.get("/sta/v1.1/Things", params={"$expand": f"Datastreams($filter={deep})"})
        _problem(expand)
        # A few levels are fine.
        ok = client.get("/sta/v1.1/Things", params={"$filter": "((name eq 'x'))"})
        assert ok.status_code == 200, ok.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "Traceback" not in caplog.text


# --- 4: numbers and times InfluxQL parses ------------------------------------------------------
def test_small_numbers_reach_influxdb_as_plain_decimals(env: Env) -> None:
    with env.client() as client:
        box = client.get(
            "/api/v1/air",
            params={"bbox": "0.00001,0.00001,0.0001,0.0001", "quantity": "pm2_5",
                    "from": _iso(env.now_ms - 60 * MINUTE_MS), "to": _iso(env.now_ms + MINUTE_MS)},
        )  # fmt: skip
        assert box.status_code == 200, box.text
        assert [s["device_id"] for s in box.json()["series"]] == [MOBILE]
        ds = stable_id("Datastream", "air", MOBILE, "sds011", "pm2_5")
        for literal, expected in (("1e-5", [3.0]), ("3.5E0", []), ("2.5e+300", [])):
            obs = client.get(
                f"/sta/v1.1/Datastreams({ds})/Observations",
                params={"$filter": f"result gt {literal}"},
            )
            assert obs.status_code == 200, (literal, obs.text)
            assert [o["result"] for o in obs.json()["value"]] == expected


def test_times_outside_influxdbs_range_are_a_clear_400(env: Env) -> None:
    with env.client() as client:
        for params in (
            {"from": "2262-04-01", "to": "2262-12-31", "every": "1d"},
            {"from": "1677-09-21T00:00:00Z", "to": "1677-09-22", "every": "1d"},
            {"from": "2262-04-11T23:00:00Z", "to": "2262-04-11T23:59:00Z", "every": "1m"},
        ):
            for path in ("/api/v1/air", "/api/v1/counts"):
                detail = _problem(client.get(path, params=params))["detail"]
                assert "2262-04-11T23:47:16.854775806Z" in detail, detail
                assert "1677-09-21T00:12:43.145224194Z" in detail, detail
        # Just inside the range is answered.
        inside = client.get(
            "/api/v1/air",
            params={"from": "2262-04-11T23:00:00Z", "to": "2262-04-11T23:47:00Z", "every": "1m"},
        )
        assert inside.status_code == 200, inside.text


# --- 12: observation ids are unique per source ---------------------------------------------------
def test_observations_at_the_same_time_from_two_sources_have_their_own_ids(env: Env) -> None:
    ds = stable_id("Datastream", "air", DUP, "sds011", "pm2_5")
    with env.client() as client:
        listed = client.get(f"/sta/v1.1/Datastreams({ds})/Observations")
        assert listed.status_code == 200, listed.text
        value = listed.json()["value"]
        assert sorted(o["result"] for o in value) == [1.5, 2.5]
        ids = [o["@iot.id"] for o in value]
        assert len(set(ids)) == 2, ids
        for o in value:
            one = client.get(o["@iot.selfLink"])
            assert one.status_code == 200, one.text
            assert one.json()["@iot.id"] == o["@iot.id"]
            assert one.json()["result"] == o["result"]
            again = client.get(f"/sta/v1.1/Observations('{o['@iot.id']}')")
            assert again.json()["result"] == o["result"]
        # The same list twice: the ids are stable.
        assert [o["@iot.id"] for o in client.get(listed.url).json()["value"]] == ids
        # An id without a source (as written before) still names an observation.
        legacy = client.get(f"/sta/v1.1/Observations('{ds}-{env.now_ms}')")
        assert legacy.status_code == 200 and legacy.json()["result"] in (1.5, 2.5)


# --- 18: first and last seen from any stored data ------------------------------------------------
def test_a_device_with_only_imported_data_has_first_and_last_seen(env: Env) -> None:
    with env.client() as client:
        entry = client.get(f"/api/v1/devices/{IMPORTED}").json()
        assert entry["first_seen"] == _iso(env.now_ms - 3 * MINUTE_MS)
        assert entry["last_seen"] == _iso(env.now_ms - MINUTE_MS)
        listed = {d["device_id"]: d for d in client.get("/api/v1/devices").json()["devices"]}
        assert listed[COUNTER]["first_seen"] == _iso(env.now_ms - 4 * MINUTE_MS)
        assert listed[COUNTER]["last_seen"] == _iso(env.now_ms)


# --- health, links, headers ----------------------------------------------------------------------
def test_health_tells_anonymous_callers_only_the_status(env: Env) -> None:
    token, digest = new_token()
    with env.client(token_hashes=[digest]) as client:
        anonymous = client.get("/api/v1/health")
        assert anonymous.status_code == 200
        assert anonymous.json() == {"status": "ok"}
        assert env.influxd.url not in anonymous.text
        wrong = client.get("/api/v1/health", headers={"Authorization": "Bearer nope"})
        assert wrong.json() == {"status": "ok"}
        detailed = client.get("/api/v1/health", headers={"Authorization": f"Bearer {token}"})
        assert env.influxd.url in detailed.json()["influxdb"]["detail"]


def _links_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [link for v in value.values() for link in _links_in(v)]
    if isinstance(value, list):
        return [link for v in value for link in _links_in(v)]
    service = ("/sta/v1.1", "/api/v1/")  # not the conformance classes' opengis.net URLs
    if isinstance(value, str) and "://" in value and any(p in value for p in service):
        return [value]
    return []


def test_links_never_come_from_a_forged_host_header(env: Env) -> None:
    token, digest = new_token()
    forged = {"Host": "evil.example", "Authorization": f"Bearer {token}"}
    ds = stable_id("Datastream", "air", DUP, "sds011", "pm2_5")
    pages = [
        ("/sta/v1.1", {}),
        ("/sta/v1.1/Things", {"$top": "1"}),
        (f"/sta/v1.1/Datastreams({ds})/Observations", {"$top": "1"}),
        ("/api/v1/link", {"device": DUP, "limit": "1"}),
    ]
    variants: list[dict[str, Any]] = [{}, {"public_url": "https://data.example.org/sensors"}]
    for settings in variants:
        with env.client(token_hashes=[digest], **settings) as client:
            links = []
            for path, params in pages:
                answer = client.get(path, params=params, headers=forged)
                assert answer.status_code == 200, answer.text
                links += _links_in(answer.json())
            assert any("/sta/v1.1/" in link for link in links)
            assert not [link for link in links if "evil.example" in link], links
            if settings:
                assert all(link.startswith(settings["public_url"] + "/") for link in links), links


def test_link_next_page_uses_the_public_url(env: Env) -> None:
    token, digest = new_token()
    public = "https://data.example.org"
    # Two link points, so a page of one has a next.
    writer = env.influxd.client()
    for i in range(2):
        tags = {"device_id": DUP, "site": "s1", "kind": "data", "gateway": "g"}
        writer.write([to_line(Point("link", tags, {"seq": i}, env.now_ms + i * 1000))])
    writer.close()
    with env.client(token_hashes=[digest], public_url=public) as client:
        answer = client.get(
            "/api/v1/link",
            params={"device": DUP, "limit": "1", "from": _iso(env.now_ms - MINUTE_MS)},
            headers={"Host": "evil.example", "Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["next"].startswith(f"{public}/api/v1/link?"), answer.json()


def test_pages_carry_a_strict_content_security_policy(env: Env) -> None:
    with env.client(tile_url="https://tiles.example.org/{z}/{x}/{y}.png") as client:
        for path in ("/", "/docs", "/api/v1/health", "/static/dashboard.js"):
            headers = client.get(path).headers
            csp = headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
        csp = client.get("/").headers["Content-Security-Policy"]
        img = next(d for d in csp.split(";") if d.strip().startswith("img-src"))
        assert "https://tiles.example.org" in img
        # /docs' one inline script runs by its nonce, nothing else inline.
        docs = client.get("/docs")
        nonce = docs.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
        assert f'<script nonce="{nonce}">' in docs.text
    with env.client() as client:
        csp = client.get("/").headers["Content-Security-Policy"]
        assert "tiles" not in csp


# --- slow headers ------------------------------------------------------------------------------
def test_a_connection_that_dribbles_its_headers_is_closed(env: Env, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'port = {port}\nregistry_path = "{env.registry_path}"\nrequest_timeout_s = 1\n'
        f'[influx]\nurl = "{env.influxd.url}"\ndatabase = "{DB}"\n'
    )
    with serve_process(config, port):
        # A whole request in time is answered.
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
        sock = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        closed = False
        sent = 0
        give_up = time.monotonic() + 30  # generous: the server is told 1 s
        while time.monotonic() < give_up and not closed:
            try:
                if sent < len(request):
                    sock.sendall(request[sent : sent + 1])
                    sent += 1
                data = sock.recv(1024)
                closed = data == b"" or data.startswith(b"HTTP/1.1 408")
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: closed by the server
                closed = True
        sock.close()
        assert closed, f"the server kept a connection open that sent {sent} header bytes"
        assert sent < len(request)
        # The server still answers others.
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200


# --- the dashboard under its CSP, and the tile attribution as text --------------------------------
def test_dashboard_runs_under_its_csp_and_shows_the_attribution_as_text(env: Env) -> None:
    from fastapi.responses import FileResponse

    from sensorpipe.api.dashboard import STATIC_DIR
    from tests.integration.live_server import live_server
    from tests.integration.test_dashboard import Browser

    attribution = '<img src="x" id="injected">Tiles &copy; <b>them</b>'
    app = create_app(
        ApiContext(env.config(tile_url="/test-tiles/{z}/{x}/{y}.png", tile_attribution=attribution))
    )
    tile = STATIC_DIR / "vendor" / "leaflet" / "images" / "layers-2x.png"

    @app.get("/test-tiles/{z}/{x}/{y}.png", include_in_schema=False)
    def tiles(z: int, x: int, y: int) -> FileResponse:
        return FileResponse(tile, media_type="image/png")

    with live_server(app) as base:
        browser = Browser(base)
        try:
            page = browser.page
            page.goto(base + "/")
            page.wait_for_selector(".leaflet-tile-loaded")
            control = page.locator(".leaflet-control-attribution")
            # Character references are read; markup other than an http(s) link is text.
            assert attribution.replace("&copy;", "©") in control.inner_text()
            assert page.locator("#injected").count() == 0
            assert control.locator("b").count() == 0
            assert browser.errors == [], browser.errors  # a CSP violation is logged as one
            assert browser.foreign == []
        finally:
            browser.close()
