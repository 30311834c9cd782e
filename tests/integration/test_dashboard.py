"""The dashboard at / in a real browser: Debian's chromium driven by Playwright, against a
stack (real influxd) holding a week of simulated history, served by uvicorn.

Screenshots go to $SENSORPIPE_ARTEFACTS, or tests/artefacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, MapSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.api.dashboard import STATIC_DIR
from sensorpipe.firmware_sim.history import (
    HistoryDevice,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import load_registry, save_registry
from sensorpipe.stack.local import LocalStack
from tests.integration.live_server import live_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000
# European Air Quality Index bands for PM2.5, as the page must colour them.
EAQI = [(10, "good"), (20, "fair"), (25, "moderate"), (50, "poor"), (75, "very-poor")]
READY = "#detail[data-state=ready]"
WAIT_MS = 30_000


def artefacts() -> Path:
    folder = Path(os.environ.get("SENSORPIPE_ARTEFACTS") or ROOT / "tests" / "artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        # A missing browser is a broken setup, not a reason to skip.
        pytest.fail(
            "the dashboard tests need Debian's chromium (Playwright drives it; its own browser "
            "download is not used): run `make test` as root, or `sudo apt-get install -y "
            "chromium fonts-dejavu-core`"
        )
    return path


def eaqi_band(pm: float) -> str:
    return next((name for limit, name in EAQI if pm <= limit), "extremely-poor")


# --- fixtures --------------------------------------------------------------------------------
@dataclass
class History:
    stack: LocalStack
    devices: list[HistoryDevice]
    influx_url: str
    database: str

    def app(self, **settings: Any) -> FastAPI:
        # No background map unless a test asks for one: the tests run offline.
        if "map" not in settings and "tile_url" not in settings:
            settings["map"] = MapSettings(basemap="none")
        config = ServeConfig(
            registry_path=str(self.stack.registry_path),
            influx=InfluxSettings(url=self.influx_url, database=self.database),
            **settings,
        )
        return create_app(ApiContext(config))


@pytest.fixture
def history(stack: LocalStack) -> History:
    """Three air devices and two counting cameras with seven days of 1-minute history,
    up to now; every device has an outage somewhere in it."""
    devices = history_devices(3, 2, per_site=3)
    registry = load_registry(stack.registry_path)
    register_history_devices(registry, devices)
    save_registry(registry, stack.registry_path)
    info = stack.require_info()
    now_ms = int(time.time() * 1000)
    influx = InfluxClient(info.influx_url, info.database)
    try:
        write_history(influx, devices, now_ms - 7 * DAY_MS, now_ms)
    finally:
        influx.close()
    return History(stack, devices, info.influx_url, info.database)


class Browser:
    """One chromium page that records JavaScript errors and requests to other hosts."""

    def __init__(self, base_url: str, **context_options: Any) -> None:
        from playwright.sync_api import sync_playwright

        self.base_url = base_url
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.requests: list[str] = []
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(
                executable_path=chromium_path(), args=["--no-sandbox"]
            )
        except BaseException:
            self._pw.stop()
            raise
        self.context = self.browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if not request.url.startswith((self.base_url + "/", "data:")):
            self.foreign.append(request.url)

    def wait(self, selector: str) -> None:
        """Wait for `selector`; on a timeout, fail with what the page said."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_selector(selector, state="attached")
        except PlaywrightTimeout:
            said = self.page.evaluate(
                "() => [document.body.dataset.state, "
                "document.querySelector('#network-about')?.textContent, "
                "document.querySelector('#detail-status')?.textContent]"
            )
            pytest.fail(f"{selector} did not appear; the page says {said}; errors: {self.errors}")

    def close(self) -> None:
        self.context.close()
        self.browser.close()
        self._pw.stop()


@pytest.fixture
def open_browser() -> Iterator[Any]:
    opened: list[Browser] = []

    def open_(base_url: str, **options: Any) -> Browser:
        b = Browser(base_url, **options)
        opened.append(b)
        return b

    yield open_
    for b in opened:
        b.close()


def api(base_url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{base_url}{path}", params=params, timeout=30)
    r.raise_for_status()
    return r.json()


def chart_data(page: Any, name: str) -> list[list[float | None]]:
    """What uPlot holds for one chart: [times, series...]."""
    data: list[list[float | None]] = page.evaluate(
        "(name) => { const p = window.sensorpipeDashboard.plots[name];"
        " return p ? p.data.map((a) => Array.from(a)) : null; }",
        name,
    )
    assert data is not None, f"no uPlot chart {name!r} on the page"
    return data


def assert_markers_inside_map(page: Any) -> None:
    box = page.locator("#map").bounding_box()
    assert box is not None
    for m in page.locator(".dev-marker").all():
        mb = m.bounding_box()
        assert mb is not None, m.get_attribute("data-device")
        inside_x = box["x"] <= mb["x"] and mb["x"] + mb["width"] <= box["x"] + box["width"]
        inside_y = box["y"] <= mb["y"] and mb["y"] + mb["height"] <= box["y"] + box["height"]
        assert inside_x and inside_y, f"{m.get_attribute('data-device')} is outside the map"


def non_null(series: list[float | None]) -> int:
    return sum(v is not None for v in series)


def inner_gap(series: list[float | None]) -> bool:
    """Whether a null lies between two values: a gap inside the line, not at its ends."""
    idx = [i for i, v in enumerate(series) if v is not None]
    return bool(idx) and any(series[i] is None for i in range(idx[0], idx[-1]))


# --- the page in a browser -------------------------------------------------------------------
def test_dashboard_without_tiles_map_charts_register(history: History, open_browser: Any) -> None:
    air_ids = [d.device_id for d in history.devices if not d.counting]
    count_ids = [d.device_id for d in history.devices if d.counting]
    with live_server(history.app()) as base:
        register = {d["device_id"]: d for d in api(base, "/api/v1/devices")["devices"]}
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")

        # One marker per device, a distinct shape for counting cameras, PM2.5 by EAQI band.
        markers = page.locator(".leaflet-marker-icon.dev-marker")
        assert markers.count() == len(history.devices)
        shown = {
            m.get_attribute("data-device"): m.get_attribute("class") or "" for m in markers.all()
        }
        assert set(shown) == set(air_ids + count_ids)
        for device_id in count_ids:
            assert " count" in shown[device_id] and " air" not in shown[device_id]
        for device_id in air_ids:
            assert " air" in shown[device_id]
            pm = register[device_id]["latest_pm2_5"]
            assert pm is not None, f"{device_id} has no latest PM2.5 in the API"
            shape = page.locator(f".dev-marker[data-device={device_id}] .shape")
            assert f"band-{eaqi_band(pm)}" in (shape.get_attribute("class") or "").split()
        # Keyboard: every marker is focusable, with a name.
        for m in markers.all():
            assert m.get_attribute("tabindex") == "0"
            assert m.get_attribute("role") == "button"
            assert (m.get_attribute("aria-label") or "").startswith(
                m.get_attribute("data-device") or "?"
            )

        # No tile server: no tiles, a note, and the map fitted to the devices.
        assert page.locator(".leaflet-tile").count() == 0
        assert "No background map" in page.locator("#map-note").inner_text()
        assert_markers_inside_map(page)
        # The list beside the map names every device and site.
        assert page.locator("#sites button.device-button").count() == len(history.devices)
        page.screenshot(path=str(artefacts() / "dashboard-overview.png"), full_page=True)

        # A click on an air device's marker: its charts, with data, for the last 24 hours.
        device = air_ids[0]
        with page.expect_response(re.compile(r"/api/v1/air\?")) as air_response:
            page.locator(f".dev-marker[data-device={device}]").click()
        b.wait(READY)
        assert page.locator("#detail-title").inner_text() == f"Device {device}"
        assert "selected" in (
            page.locator(f".dev-marker[data-device={device}]").get_attribute("class") or ""
        )
        pm = chart_data(page, "pm")
        assert len(pm) == 3  # time, PM2.5, PM10
        points = int(page.locator("#chart-pm").get_attribute("data-points") or 0)
        assert points == non_null(pm[1]) + non_null(pm[2])
        assert non_null(pm[1]) > 100  # 24 h in 5-minute windows
        for name in ("temperature", "humidity"):
            data = chart_data(page, name)
            assert non_null(data[1]) > 100, name
            assert int(page.locator(f"#chart-{name}").get_attribute("data-points") or 0) > 100
        assert page.locator("#chart-counts").is_hidden()
        answer = air_response.value.json()
        assert answer["series"], "the page asked for air readings and got none"

        # Seven days: the outage is a gap (null), exactly where the API says, never a zero.
        with page.expect_response(re.compile(r"/api/v1/air\?")) as air_response:
            page.get_by_label("Last 7 days").check()
        b.wait(READY)
        pm = chart_data(page, "pm")
        answer = air_response.value.json()
        (sds,) = [
            s for s in answer["series"] if any(v is not None for v in s["values"].get("pm2_5", []))
        ]
        api_times = [round(time_ms(t) / 1000) for t in sds["time"]]
        assert [round(t) for t in pm[0] if t is not None] == api_times
        assert pm[1] == sds["values"]["pm2_5"]
        assert inner_gap(pm[1]), "the device's outage should show as a gap in 7 days"
        page.screenshot(path=str(artefacts() / "dashboard-air-7d.png"), full_page=True)
        # The picture in docs/query-and-api.md (docs/dashboard.png is a copy): map, list, charts.
        clip = {"x": 0, "y": 0, "width": 1280, "height": 1545}
        page.screenshot(path=str(artefacts() / "dashboard.png"), full_page=True, clip=clip)

        # Its register entry, from the API.
        entry = register[device]
        dl = page.locator(f"#register dl[data-device={device}]")
        text = dl.inner_text()
        for label in (
            "What it measures", "Who runs it", "Why", "Personal data", "Contact",
            "Legal basis", "Retention", "Licence", "Uptime", "Missing messages", "Latency",
        ):  # fmt: skip
            assert label in text, label
        assert entry["owner"] in text and entry["purpose"] in text and entry["licence"] in text
        assert f"{entry['missing_7d']:,} missing" in text
        assert f"{entry['messages_7d']:,} received" in text

        # The keyboard way in: a counting camera's marker, focused and chosen with Enter.
        counter = count_ids[0]
        page.locator(f".dev-marker[data-device={counter}]").focus()
        with page.expect_response(re.compile(r"/api/v1/counts\?")) as count_response:
            page.keyboard.press("Enter")
        page.wait_for_function(
            "(id) => document.querySelector('#detail-title').textContent === 'Device ' + id",
            arg=counter,
        )
        b.wait(READY)
        counts = chart_data(page, "counts")
        assert len(counts) == 1 + 5 + 1  # time, the five classes, the counter's running share
        assert all(non_null(s) > 24 for s in counts[1:6])  # 7 days, per hour
        assert int(page.locator("#chart-counts").get_attribute("data-points") or 0) == sum(
            non_null(s) for s in counts[1:6]
        )
        # The counter's running share, in %, on its own axis; an hour without a report is a
        # gap in the counts, an hour it ran part of the time is said in the summary.
        (series,) = count_response.value.json()["series"]
        fraction = series["running_fraction"]
        expected = {
            round(time_ms(t) / 1000): f for t, f in zip(series["time"], fraction, strict=True)
        }
        running = dict(zip([round(t) for t in counts[0] if t is not None], counts[6], strict=True))
        assert set(running) == set(expected)
        for t, f in expected.items():
            if f is None:
                assert running[t] is None, t
                assert all(s[counts[0].index(t)] is None for s in counts[1:6]), t
            else:
                assert running[t] == pytest.approx(f * 100), t
        partial = sum(f is not None and f < 1 for f in fraction)
        assert partial >= 1, "the history has a half-running stretch after the outage"
        assert any(f is None for f in fraction), "the history has an outage with no reports"
        assert inner_gap(counts[1]), "the outage should be a gap in the counts"
        summary = page.locator("#chart-counts .chart-summary").inner_text()
        assert f"{partial} hours with the counter running part of the time" in summary
        assert page.locator("#chart-counts .u-legend").get_by_text("Counter running").count()
        axis = page.evaluate(
            "() => { const a = window.sensorpipeDashboard.plots.counts.axes[2];"
            " return [a.scale, a.side, a.label]; }"
        )
        assert axis == ["%", 1, "counter running %"]  # a second y axis, on the right
        assert page.locator("#chart-pm").is_hidden()
        assert "Yes" in page.locator(f"#register dl[data-device={counter}]").inner_text()
        page.screenshot(path=str(artefacts() / "dashboard-counts-7d.png"), full_page=True)

        # The counting cameras' site: counts added up, the running share the mean over its
        # devices (one that did not report counts as 0), and the summary says so.
        count_site = next(d.site for d in history.devices if d.counting)
        with page.expect_response(re.compile(r"/api/v1/counts\?")) as count_response:
            page.locator(f"#sites button.site-button[data-site={count_site}]").click()
        b.wait(READY)
        answer = count_response.value.json()["series"]
        assert len(answer) == len(count_ids)
        means: dict[int, float | None] = {}
        for i, t in enumerate(answer[0]["time"]):
            fs = [s["running_fraction"][i] for s in answer]
            reported = [f for f in fs if f is not None]
            means[round(time_ms(t) / 1000)] = sum(reported) / len(fs) * 100 if reported else None
        counts = chart_data(page, "counts")
        running = dict(zip([round(t) for t in counts[0] if t is not None], counts[6], strict=True))
        assert running == pytest.approx(means)
        assert any(v is not None and v < 100 for v in running.values())
        summary = page.locator("#chart-counts .chart-summary").inner_text()
        assert "mean over its 2 counting devices (a device that did not report counts as 0)" in (
            summary
        )

        # A whole site from the list, with Space on its button: the site's mean per window.
        site = history.devices[0].site
        page.locator(f"#sites button.site-button[data-site={site}]").focus()
        page.keyboard.press("Space")
        page.wait_for_function(
            "(s) => document.querySelector('#detail-title').textContent === 'Site ' + s",
            arg=site,
        )
        b.wait(READY)
        assert non_null(chart_data(page, "pm")[1]) > 24
        members = [d.device_id for d in history.devices if d.site == site]
        assert page.locator("#register dl").count() == len(members)

        # A custom range: the last two days up to one day ago, for the first air device.
        page.locator(f"#sites button.device-button[data-device={device}]").click()
        b.wait(READY)
        page.get_by_label("From … to …").check()
        now = time.time()
        page.locator("#range-from").fill(local_input(now - 3 * 86400))
        page.locator("#range-to").fill(local_input(now - 86400))
        with page.expect_response(re.compile(r"/api/v1/air\?")) as air_response:
            page.get_by_role("button", name="Show").click()
        b.wait(READY)
        requested = httpx.URL(air_response.value.url).params
        assert abs(time_ms(requested["from"]) / 1000 - (now - 3 * 86400)) < 120
        assert abs(time_ms(requested["to"]) / 1000 - (now - 86400)) < 120
        pm = chart_data(page, "pm")
        assert non_null(pm[1]) > 100
        assert max(t for t in pm[0] if t is not None) <= now - 86400 + 60

        # Reloading the page keeps the choice (it is in the address).
        page.reload()
        b.wait(READY)
        assert page.locator("#detail-title").inner_text() == f"Device {device}"

        # A narrow screen: no sideways scrolling, the list below the map.
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px on a phone"
        map_box = page.locator("#map").bounding_box()
        list_box = page.locator("#device-list").bounding_box()
        assert map_box is not None and list_box is not None
        assert list_box["y"] >= map_box["y"] + map_box["height"]
        assert_markers_inside_map(page)
        page.screenshot(path=str(artefacts() / "dashboard-phone.png"), full_page=True)

        assert b.errors == [], b.errors
        assert b.foreign == [], f"the page loaded from other hosts: {b.foreign}"


# The usual OpenStreetMap attribution, a link that is no web address, and markup that would
# run a script: the link is a link, the rest is text, and nothing runs.
OSM = "https://www.openstreetmap.org/copyright"
ATTRIBUTION = (
    f'Test tiles &copy; <a href="{OSM}">OpenStreetMap</a> contributors '
    "<img src=x onerror=\"document.body.dataset.ran='yes'\"> "
    "<a href=\"javascript:document.body.dataset.ran='yes'\">click</a> "
    "<a href='https://example.org/a?b=1&amp;c=2' onclick='x()' style='color:red'>B&amp;C</a>"
)


def assert_attribution(page: Any) -> None:
    control = page.locator(".leaflet-control-attribution")
    shown = control.inner_text()
    assert "Test tiles © OpenStreetMap contributors" in shown, shown
    assert "<img src=x onerror=" in shown, shown  # as text
    assert '<a href="javascript:' in shown and ">click</a>" in shown, shown
    links = control.evaluate(
        "(c) => Array.from(c.querySelectorAll('a')).map((a) => "
        "[a.getAttribute('href'), a.textContent, a.getAttributeNames().sort()])"
    )
    ours = [link for link in links if "leafletjs.com" not in (link[0] or "")]
    assert ours == [
        [OSM, "OpenStreetMap", ["href", "rel"]],
        ["https://example.org/a?b=1&c=2", "B&C", ["href", "rel"]],
    ], links
    rels = control.locator(f'a[href="{OSM}"]').get_attribute("rel")
    assert rels == "noopener noreferrer"
    assert control.locator("img").count() == 0
    assert page.evaluate("document.body.dataset.ran") is None


def test_dashboard_with_tiles_and_a_refused_range(history: History, open_browser: Any) -> None:
    """With tile_url set, tiles are requested from it and its attribution is shown; a range
    the service refuses is explained on the page."""
    app = history.app(tile_url="/test-tiles/{z}/{x}/{y}.png", tile_attribution=ATTRIBUTION)
    tile = STATIC_DIR / "vendor" / "leaflet" / "images" / "layers-2x.png"
    served: list[str] = []

    @app.get("/test-tiles/{z}/{x}/{y}.png", include_in_schema=False)
    def tiles(z: int, x: int, y: int) -> FileResponse:
        served.append(f"{z}/{x}/{y}")
        return FileResponse(tile, media_type="image/png")

    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1000, "height": 800})
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")
        page.wait_for_selector(".leaflet-tile-loaded")
        assert page.locator(".dev-marker").count() == len(history.devices)
        assert_attribution(page)
        assert served, "no tile was asked for"
        assert page.locator("#map-note").inner_text() == ""
        assert b.errors == [], b.errors

        # A range too long for hourly counts: the service's problem detail is shown, the
        # chart is emptied, and the page goes on working.
        counter = next(d.device_id for d in history.devices if d.counting)
        page.locator(f"#sites button.device-button[data-device={counter}]").click()
        b.wait(READY)
        page.get_by_label("From … to …").check()
        now = time.time()
        page.locator("#range-from").fill(local_input(now - 3 * 365 * 86400))
        page.locator("#range-to").fill(local_input(now))
        with page.expect_response(re.compile(r"/api/v1/counts\?")) as refused:
            page.get_by_role("button", name="Show").click()
        b.wait("#detail[data-state=error]")
        assert refused.value.status == 400
        detail = refused.value.json()["detail"]
        assert detail in page.locator("#detail-status").inner_text()
        assert page.locator("#chart-counts").get_attribute("data-state") == "error"
        assert page.locator("#chart-counts canvas").count() == 0
        # Chromium reports the refused request itself; nothing else may have gone wrong.
        assert [e for e in b.errors if "status of 400" not in e] == [], b.errors
        page.get_by_label("Last 24 hours").check()
        b.wait(READY)
        assert non_null(chart_data(page, "counts")[1]) > 12


def test_dashboard_follows_the_address(history: History, open_browser: Any) -> None:
    """Each choice is a history entry (Back returns to the view before, and finally to the
    empty page, not away from it); a changed address changes the open page's view."""
    air = next(d for d in history.devices if not d.counting)
    counter = next(d for d in history.devices if d.counting)
    with live_server(history.app()) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")

        def shows(title: str, range_: str) -> None:
            page.wait_for_function(
                "(t) => document.querySelector('#detail-title').textContent === t", arg=title
            )
            if title.startswith(("Device", "Site")):
                b.wait(READY)
                assert page.locator("input[name=range]:checked").get_attribute("value") == range_
                assert non_null(chart_data(page, "counts" if "count" in title else "pm")[1]) > 0

        page.locator(f"#sites button.device-button[data-device={air.device_id}]").click()
        shows(f"Device {air.device_id}", "24h")
        page.get_by_label("Last 7 days").check()
        shows(f"Device {air.device_id}", "7d")
        assert page.evaluate("location.hash") == f"#device={air.device_id}&range=7d"
        page.locator(f"#sites button.site-button[data-site={counter.site}]").click()
        shows(f"Site {counter.site}", "7d")

        page.go_back()
        shows(f"Device {air.device_id}", "7d")
        page.go_back()
        shows(f"Device {air.device_id}", "24h")
        page.go_back()
        shows("Choose a device or a site", "")
        assert page.url == f"{base}/", "Back left the dashboard"
        assert page.locator("#chart-pm").is_hidden()
        assert page.locator("#range-form").is_visible()  # the crowding panel's range too
        page.go_forward()
        shows(f"Device {air.device_id}", "24h")

        # The address changed on the open page: by a script, and by a shared link pasted in.
        page.evaluate("(h) => { location.hash = h; }", f"#device={counter.device_id}&range=7d")
        shows(f"Device {counter.device_id}", "7d")
        page.goto(f"{base}/#site={air.site}&range=24h")
        shows(f"Site {air.site}", "24h")
        # The skip link's #device-list is a place on the page, not a view: nothing changes.
        page.locator("a.skip").focus()
        page.keyboard.press("Enter")
        page.wait_for_timeout(300)
        assert page.locator("#detail-title").inner_text() == f"Site {air.site}"
        page.go_back()
        shows(f"Site {air.site}", "24h")
        page.go_back()
        shows(f"Device {counter.device_id}", "7d")
        assert b.errors == [], b.errors
        assert b.foreign == [], b.foreign


def test_device_list_text_is_not_clipped(history: History, open_browser: Any) -> None:
    """At 1400 px (and on a phone) every entry of the list shows its whole text: a long
    reading ("…, moderate, no location") wraps rather than being cut off."""
    registry = load_registry(history.stack.registry_path)
    unplaced = next(d.device_id for d in history.devices if not d.counting)
    registry.devices[unplaced].location = None
    save_registry(registry, history.stack.registry_path)
    clipped_js = """() => [...document.querySelectorAll('#sites button, #sites button > span')]
        .filter((e) => e.scrollWidth > e.clientWidth + 0.5 || e.scrollHeight > e.clientHeight + 0.5)
        .map((e) => e.textContent)"""
    air = [d.device_id for d in history.devices if not d.counting]

    def worst_readings(route: Any) -> None:
        # The longest readings the list can show: the longest band names, a stale reading.
        body = route.fetch().json()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5 * 3600))
        for d in body["devices"]:
            if d["device_id"] in air:
                pm, at = {air[0]: (62.4, now), air[1]: (81.7, now)}.get(
                    d["device_id"], (12.4, stale)
                )
                d["latest_pm2_5"], d["latest_pm2_5_time"] = pm, at
        route.fulfill(json=body)

    with live_server(history.app()) as base:
        b = open_browser(base, viewport={"width": 1400, "height": 900})
        page = b.page
        page.route(re.compile(r"/api/v1/devices$"), worst_readings)
        # The map's latest calibrated values: none, so the register's (uncalibrated) ones.
        page.route(re.compile(r"/api/v1/air\?.*agg=last"), lambda r: r.fulfill(json={"series": []}))
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")
        reading = page.locator(f"#sites button[data-device={unplaced}] .reading").inner_text()
        assert reading == "PM2.5 62.4 µg/m³, very poor, indicative, no location"
        assert page.locator("#sites button").count() == len(history.devices) + 2
        assert page.evaluate(clipped_js) == []
        # Every text lies inside the list's box, not cut off by it either.
        edge = page.evaluate(
            "() => document.querySelector('#device-list').getBoundingClientRect().right"
        )
        right = page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('#sites .reading')]"
            ".map((e) => e.getBoundingClientRect().right))"
        )
        assert right <= edge + 0.5
        page.screenshot(path=str(artefacts() / "dashboard-list-1400.png"))
        for width in (1000, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(200)
            assert page.evaluate(clipped_js) == [], width
        assert b.errors == [], b.errors


def test_api_docs_from_the_package(open_browser: Any) -> None:
    """/docs is Swagger UI from static/vendor: it lists the operations and asks no other host
    for anything (FastAPI's own /docs would load it from a CDN)."""
    app = create_app(ApiContext(ServeConfig()))
    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/docs")
        page.get_by_text("/api/v1/air", exact=True).first.wait_for(state="visible")
        assert page.locator(".opblock").count() >= 5
        page.wait_for_load_state("networkidle")
        assert f"{base}/static/vendor/swagger-ui/swagger-ui-bundle.js" in b.requests
        assert f"{base}/openapi.json" in b.requests
        assert b.foreign == [], f"/docs loaded from other hosts: {b.foreign}"
        assert b.errors == [], b.errors


# --- without a browser ----------------------------------------------------------------------
def test_dashboard_routes_and_files() -> None:
    app = create_app(ApiContext(ServeConfig(tile_url="https://tiles.example/{z}/{x}/{y}.png")))
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<html lang="en">' in page.text
        config = client.get("/dashboard/config.json").json()
        # A top-level tile_url (where it was before [map]) is a custom background map.
        assert config == {
            "basemap": "custom",
            "tile_url": "https://tiles.example/{z}/{x}/{y}.png",
            "tile_attribution": "",
            "min_zoom": 0,
            "max_zoom": 19,
            "bounds": None,
        }
        # Every file the page names is served from the package, none from elsewhere.
        refs = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
        local = [r for r in refs if not r.startswith("data:")]
        assert all(not r.startswith(("http:", "https:", "//")) for r in local), local
        for ref in local:
            if ref.startswith("static/"):
                assert client.get(f"/{ref}").status_code == 200, ref
        assert client.get("/static/vendor/leaflet/LICENSE").status_code == 200
        assert client.get("/static/vendor/uplot/LICENSE").status_code == 200
        # /docs is served from the package too; ReDoc (which loads from a CDN) is off.
        docs = client.get("/docs")
        assert docs.status_code == 200
        docs_refs = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert docs_refs and all(r.startswith("/static/vendor/swagger-ui/") for r in docs_refs)
        assert "cdn." not in docs.text and "tiangolo" not in docs.text
        for ref in docs_refs:
            assert client.get(ref).status_code == 200, ref
        assert client.get("/redoc").status_code == 404
        assert client.get("/static/../dashboard.py").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert not any(p == "/" or p.startswith(("/static", "/dashboard")) for p in paths)


def test_vendored_libraries_are_the_locked_versions() -> None:
    """static/vendor holds what `make vendor` copies for frontend/package-lock.json."""
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text())["packages"]
    package = json.loads((ROOT / "frontend" / "package.json").read_text())
    vendor = STATIC_DIR / "vendor"
    versions = dict(line.split() for line in (vendor / "VERSIONS").read_text().splitlines() if line)
    for name, folder in (
        ("leaflet", "leaflet"),
        ("uplot", "uplot"),
        ("swagger-ui-dist", "swagger-ui"),
    ):
        locked = lock[f"node_modules/{name}"]["version"]
        assert package["dependencies"][name] == locked, "package.json must pin exact versions"
        assert versions[name] == locked
        assert (vendor / folder / "LICENSE").stat().st_size > 500
    assert "SmartBear" in (vendor / "swagger-ui" / "NOTICE").read_text()
    bundle = (vendor / "swagger-ui" / "swagger-ui-bundle.js").read_text()
    assert f'PACKAGE_VERSION:"{versions["swagger-ui-dist"]}"' in bundle
    assert (
        f"Leaflet {versions['leaflet']}," in (vendor / "leaflet" / "leaflet.js").read_text()[:300]
    )
    assert f"(v{versions['uplot']})" in (vendor / "uplot" / "uPlot.iife.min.js").read_text()[:200]


def test_missing_chromium_fails_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium_path()


# --- helpers ---------------------------------------------------------------------------------
def time_ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def local_input(epoch_s: float) -> str:
    """A datetime-local field's value (the browser's local time, which is this machine's)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.localtime(epoch_s))


def test_a_sensor_that_is_not_working_is_noted_in_the_list_and_the_device_panel(
    stack: LocalStack, tmp_path: Path, open_browser: Any
) -> None:
    """A device whose BME280 never opened delivers every window with its SDS011 (uptime
    100 %): the list and its panel say the BME280 is not working, since when and why."""
    from tests.integration.health_device import BME280_ERROR, deliver_with_a_silent_bme280

    deliver_with_a_silent_bme280(stack, tmp_path, "balcony-01")
    info = stack.require_info()
    app = create_app(
        ApiContext(
            ServeConfig(
                registry_path=str(stack.registry_path),
                influx=InfluxSettings(url=info.influx_url, database=info.database),
            )
        )
    )
    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")
        in_list = page.locator("#sites button[data-device=balcony-01] .health.problem")
        assert in_list.count() == 1 and in_list.is_visible()
        text = in_list.inner_text()
        # The time alone on the day it began (a date too on a later day).
        assert re.fullmatch(r"BME280 not working since (.+ )?\d\d:\d\d: .+", text), text
        assert BME280_ERROR in text
        page.locator("#sites button[data-device=balcony-01]").click()
        b.wait(READY)
        under_title = page.locator("#detail-health")
        assert under_title.is_visible() and under_title.inner_text() == text
        panel = page.locator("#register .entry")
        note = panel.locator(".health.problem")
        assert note.is_visible() and note.inner_text() == text
        sensors = panel.inner_text()
        assert "100 % over the last 24 hours" in sensors  # the device's uptime hides it
        assert "bme280: NOT WORKING since" in sensors
        assert ", readings in 0 % of the last 24 hours; sds011: ok, readings in 100 %" in sensors
        page.screenshot(path=str(artefacts() / "dashboard-sensor-not-working.png"), full_page=True)
        assert b.errors == [], b.errors
