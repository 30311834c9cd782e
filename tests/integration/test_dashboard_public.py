"""Issue 27 point 6 in a real browser (Debian's chromium, Playwright), offline: the default
background map (PDOK's BRT-Achtergrondkaart, its tiles answered by the test, nothing else
reachable), the current hour drawn as unfinished, and the Dutch register page on a 390 px
wide phone. The map with `basemap = "none"` is test_dashboard.py's
test_dashboard_without_tiles_map_charts_register (History.app's default there)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sensorpipe.api.config import MapSettings
from sensorpipe.api.dashboard import STATIC_DIR
from sensorpipe.calibration.status import Applied
from sensorpipe.calibration.store import Assignment
from sensorpipe.protocol.registry import DeviceEntry, NetworkInfo, Registry
from sensorpipe.query.export import export
from sensorpipe.query.register import DeviceStats, RegisterStats
from tests.integration import test_dashboard as dashboard
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, History, artefacts

# The dashboard tests' fixtures: a stack with a week of history, and chromium.
history = dashboard.history
open_browser = dashboard.open_browser

pytestmark = pytest.mark.integration

PDOK_HOST = "service.pdok.nl"
TILE = (STATIC_DIR / "vendor" / "leaflet" / "images" / "layers-2x.png").read_bytes()


def offline(b: Any, base: str, tiles: list[dict[str, str]]) -> None:
    """Every request that is not to the service: a PDOK tile is answered with a local PNG (its
    URL and Referer recorded in `tiles`), anything else refused."""

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(base + "/"):
            r.continue_()
        elif urlsplit(url).hostname == PDOK_HOST:
            tiles.append({"url": url, "referer": r.request.headers.get("referer", "")})
            r.fulfill(status=200, content_type="image/png", body=TILE)
        else:
            r.abort()

    b.context.route("**/*", route)


def test_the_default_map_is_pdok_and_the_current_hour_is_unfinished(
    history: History, open_browser: Any
) -> None:
    app = history.app(map=MapSettings())  # the default: basemap "pdok"
    counter = next(d.device_id for d in history.devices if d.counting)
    air = next(d.device_id for d in history.devices if not d.counting)
    with live_server(app) as base:
        page_headers = httpx.get(f"{base}/", timeout=30).headers
        csp = page_headers["Content-Security-Policy"]
        img = next(d.strip() for d in csp.split(";") if d.strip().startswith("img-src"))
        assert img == f"img-src 'self' data: https://{PDOK_HOST}", csp
        assert "connect-src 'self'" in csp

        b = open_browser(base, viewport={"width": 1100, "height": 900})
        tiles: list[dict[str, str]] = []
        offline(b, base, tiles)
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")
        page.wait_for_selector(".leaflet-tile-loaded")
        # The tile layer as configured: PDOK's URL template and Kadaster's attribution.
        basemap = page.evaluate("window.sensorpipeDashboard.basemap")
        assert basemap["name"] == "pdok"
        assert basemap["url"].startswith(f"https://{PDOK_HOST}/brt/achtergrondkaart/wmts/v2_0/")
        assert "{z}/{x}/{y}.png" in basemap["url"]
        assert page.locator("#map").get_attribute("data-basemap") == "pdok"
        attribution = page.locator(".leaflet-control-attribution")
        assert "Kaartgegevens © Kadaster" in attribution.inner_text()
        assert attribution.locator('a[href="https://www.kadaster.nl/"]').count() == 1
        assert page.locator("#map-note").inner_text() == ""
        # Tiles came from PDOK alone, with the page's origin as Referer (no path, no query).
        assert tiles, "no PDOK tile was asked for"
        assert {urlsplit(u).hostname for u in b.foreign} == {PDOK_HOST}, b.foreign
        assert all(re.search(r"/standaard/EPSG:3857/\d+/\d+/\d+\.png$", t["url"]) for t in tiles)
        assert {t["referer"] for t in tiles} == {f"{base}/"}
        tile_img = page.locator(".leaflet-tile-loaded").first
        assert tile_img.get_attribute("src", timeout=5000).startswith(f"https://{PDOK_HOST}/")
        page.screenshot(path=str(artefacts() / "dashboard-pdok.png"))

        # The counting device: its hourly counts end in the current hour, which the API marks
        # partial and the chart draws lighter with a note, not as a drop.
        page.locator(f"#sites button.device-button[data-device={counter}]").click()
        b.wait(READY)
        answer = httpx.get(
            f"{base}/api/v1/counts",
            params={"device": counter, "from": "-3h", "every": "1h"},
            timeout=30,
        ).json()
        assert (
            len(answer["partial"]) == 1 and answer["partial"][0] == answer["series"][0]["time"][-1]
        )
        fig = page.locator("#chart-counts")
        assert fig.get_attribute("data-unfinished") == "true"
        part = page.evaluate("window.sensorpipeDashboard.unfinished.counts")
        xs = page.evaluate("Array.from(window.sensorpipeDashboard.plots.counts.data[0])")
        # Steps: lighter from the unfinished hour's own time (the whole hours before stay).
        assert part["times"] == [xs[-1]] and part["from"] == xs[-1]
        drawn = page.evaluate("window.sensorpipeDashboard.unfinishedDrawn.counts")
        assert drawn is not None and drawn["left"] < drawn["right"]
        assert "The current hour is not over yet" in fig.locator(".chart-summary").inner_text()
        fig.scroll_into_view_if_needed()
        fig.screenshot(path=str(artefacts() / "dashboard-unfinished-hour.png"))

        # An air device: its last interval (5 minutes over 24 hours) is unfinished too.
        page.locator(f"#sites button.device-button[data-device={air}]").click()
        b.wait(READY)
        pm = page.locator("#chart-pm")
        assert pm.get_attribute("data-unfinished") == "true"
        assert "is not over yet" in pm.locator(".chart-summary").inner_text()
        # A line: lighter from the last whole interval, the segment into the unfinished one.
        part = page.evaluate("window.sensorpipeDashboard.unfinished.pm")
        xs = page.evaluate("Array.from(window.sensorpipeDashboard.plots.pm.data[0])")
        assert part["times"] == [xs[-1]] and part["from"] == xs[-2]
        assert b.errors == [], b.errors


# --- the Dutch register page on a phone -----------------------------------------------------
def _register() -> Registry:
    registry = Registry(
        network=NetworkInfo(
            name="Luchtmeetnet Oudwijk-Noordoostpolder",
            operator="Gemeente Utrecht, afdeling Ruimte",
            contact="luchtkwaliteit-en-verkeerstellingen@utrecht.example.nl",
            privacy_url="https://www.utrecht.example.nl/privacyverklaring-sensoren-in-de-openbare-ruimte",
            legal_basis="publieke taak (AVG art. 6 lid 1 sub e)",
        )
    )
    registry.devices["telraam-instance-9000012345"] = DeviceEntry(
        site="unassigned",
        source="import",
        purpose="Telraam traffic counter, camera instance 9000012345; counts imported from "
        "Telraam exports",
        sensors=["camera"],
        count_classes=["pedestrian", "cyclist", "car", "motorcycle", "heavy_vehicle"],
    )
    registry.devices["sc-87654321"] = DeviceEntry(
        site="lombok",
        source="import",
        purpose="Sensor.Community sensor 87654321 (SDS011); history imported from the archive",
        sensors=["sds011", "bme280"],
    )
    return registry


def _calibrated_pm2_5() -> dict[str, dict[str, Applied]]:
    """sc-87654321's PM2.5 calibrated, with every part of the register's sentence."""
    assignment = Assignment(1, "cal-12", "sc-87654321", 1_566_172_800_000, None, 0.0, "analist")
    record = {
        "method": "linear_rh",
        "quantity": "pm2_5",
        "unit": "ug/m3",
        "reference": "ref-NL10636-utrecht-kardinaal-de-jongweg",
        "statistics": {"n_pairs": 706, "calibrated": {"rmse": 1.58, "r2": 0.52}},
    }
    return {"sc-87654321": {"pm2_5": Applied(assignment, record)}}


def test_the_dutch_register_page_fits_a_390_px_phone(open_browser: Any) -> None:
    # With its statistics (the flags of the last 7 days) and how each quantity is calibrated.
    stats = RegisterStats(
        {"sc-87654321": DeviceStats(first_seen_ms=1, flagged_7d={"fog": 1234, "humidity": 56})},
        1_700_000_000_000,
    )
    page_html = export(_register(), stats, "html", lang="nl", calibration=_calibrated_pm2_5())
    b = open_browser("http://127.0.0.1:9", viewport={"width": 390, "height": 844})
    page = b.page
    page.set_content(page_html)
    size = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert size["client"] == 390 and size["scroll"] <= size["client"], size
    # Nothing sticks out of the page to the right, however long a word or address.
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')]"
        ".filter((e) => e.getBoundingClientRect().right >"
        " document.documentElement.clientWidth + 0.5)"
        ".map((e) => e.tagName + ': ' + e.textContent.slice(0, 40))"
    )
    assert wide == [], wide
    # The overview's rows are stacked; each cell names its column and is readable.
    cells = page.locator("tbody td")
    assert cells.count() == 8
    for i in range(cells.count()):
        cell = cells.nth(i)
        label = cell.evaluate("(e) => getComputedStyle(e, '::before').content")
        assert label.strip('"') in (
            "Sensor",
            "Gebied",
            "Wat meet de sensor",
            "Verwerkt persoonsgegevens",
        )
        font = float(cell.evaluate("(e) => getComputedStyle(e).fontSize").removesuffix("px"))
        box = cell.bounding_box()
        assert font >= 14 and box is not None and box["width"] >= 300, (font, box)
    text = page.locator("body").inner_text()
    assert "niet toegewezen" in text and "Telraam-verkeersteller" in text
    assert "gekalibreerd met cal-12" in text and "niet gekalibreerd: indicatieve waarden" in text
    assert "mist (RV ≥ 98 %) 1.234" in text
    for english in ("unassigned", "imported from", "traffic counter", "calibrated", "fog"):
        assert english not in text, english
    page.screenshot(path=str(artefacts() / "register-nl-390px.png"), full_page=True)
    assert b.errors == [], b.errors
