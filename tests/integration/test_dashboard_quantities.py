"""The dashboard draws a chart for every environmental quantity a device measures, grouped:
a device with an SPS30 (PM1, PM2.5, PM4, PM10 on one chart), a PMS5003 (its particle counts on
one chart), a BME280 (temperature, humidity, air pressure) and a soil probe (soil moisture and
the probe's voltage, each on its own). A quantity the page's table does not know gets a chart
of its own, labelled from its name and the unit the API gives. In Debian's chromium."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol import storage
from sensorpipe.protocol.register import SENSOR_QUANTITIES
from sensorpipe.stack.local import LocalStack
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, History, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser
from tests.test_dashboard_quantities import js_quantities

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded

pytestmark = pytest.mark.integration

MIN_MS = 60_000
SENSORS = ("sps30", "pms5003", "bme280", "soil_probe")
# A value of each quantity (others: 1.0), each sensor giving all those the register says it
# measures (so an SPS30 gives its number concentrations where this version has them).
VALUES = {"pm1": 4.0, "pm4": 7.0, "temperature": 17.5, "relative_humidity": 71.0}
VALUES |= {"pressure": 1012.3, "soil_moisture": 42.0, "soil_probe_voltage": 2.012}
READINGS = {s: {q: VALUES.get(q, 1.0) for q in SENSOR_QUANTITIES[s]} for s in SENSORS}
MEASURED = {q for values in READINGS.values() for q in values}


def _garden_kit(stack: LocalStack, influx: InfluxClient) -> None:
    """A device with those four sensors, and an hour of their readings a minute apart."""
    stack.add_devices([("kit-01", {"site": "allotment", "sensors": list(SENSORS)})])
    now = int(time.time() * 1000) // MIN_MS * MIN_MS
    lines = [
        to_line(
            Point(
                storage.AIR,
                {"device_id": "kit-01", "site": "allotment", "sensor": sensor},
                {q: v + i % 3 for q, v in values.items()},
                now - i * MIN_MS,
            )
        )
        for i in range(60)
        for sensor, values in READINGS.items()
    ]
    influx.write(lines)


def _values(page: Any, chart: str) -> list[float]:
    return [v for line in chart_data(page, chart)[1:] for v in line if v is not None]


def test_every_quantity_of_a_device_gets_its_chart(
    stack: LocalStack, influx: InfluxClient, open_browser: Any
) -> None:
    _garden_kit(stack, influx)
    info = stack.require_info()
    app = History(stack, [], info.influx_url, info.database).app(register_cache_s=0)
    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        b.page.goto(f"{base}/#device=kit-01&range=24h")
        b.wait(READY)
        captions = {
            "pm": "Fine dust: PM1, PM2.5, PM4 and PM10 (µg/m³)",
            "particles": "Particle counts: particles larger than each size, per cm³",
            "temperature": "Temperature (°C)",
            "humidity": "Relative humidity (%)",
            "pressure": "Air pressure (hPa)",
            "soil": "Soil moisture (% of each probe's dry-to-wet",
            "soil-voltage": "Soil probe output voltage (V",
        }
        table = js_quantities()
        charts = {table[q][3] for q in MEASURED}
        assert set(captions) <= charts  # and, with the SPS30's number concentrations, more
        for name in sorted(charts):
            b.wait(f"#chart-{name}[data-state=ready]")
            fig = b.page.locator(f"#chart-{name}")
            assert fig.is_visible(), name
            assert captions.get(name, "") in fig.locator("figcaption").inner_text()
            lines = sum(table[q][3] == name for values in READINGS.values() for q in values)
            assert fig.get_attribute("data-series") == str(lines), name
        shown = b.page.locator("#detail .chart:not([hidden])").evaluate_all(
            "(figs) => figs.map((f) => f.id)"
        )
        assert sorted(shown) == sorted(f"chart-{n}" for n in charts)  # no others, no counts
        assert b.page.locator("#chart-pm").get_attribute("data-series") == str(4 + 3)
        # The SPS30's PM1 and PM4 are drawn, with their own labels in the legend (the sensor
        # named where two sensors give the quantity).
        legend = b.page.locator("#chart-pm .u-legend").inner_text()
        assert "PM1 · kit-01 · sps30" in legend and "PM1 · kit-01 · pms5003" in legend
        assert "PM4" in legend.split("–")
        pm = _values(b.page, "pm")  # window means of the SPS30's 4..6 (PM1) and 7..9 (PM4)
        assert any(4.0 <= v <= 6.0 for v in pm) and any(7.0 <= v <= 9.0 for v in pm)
        assert all(42.0 <= v <= 44.0 for v in _values(b.page, "soil"))  # means of 42..44
        assert "> 0.3 µm" in b.page.locator("#chart-particles .u-legend").inner_text()
        assert b.errors == []


NEW = ("leaf_wetness", "uv_index", "rain", "wind_speed", "wind_direction", "solar_radiation")


def test_quantities_the_page_does_not_know_get_charts_of_their_own(
    stack: LocalStack, influx: InfluxClient, open_browser: Any
) -> None:
    """A newer server's quantities (six, which the register and the API are made to offer on
    the way to the page): each labelled from its name, its unit from the API. With them the
    device measures 21 quantities, more than /api/v1/air takes in one request (20): the page
    asks in batches of whole charts."""
    _garden_kit(stack, influx)
    info = stack.require_info()
    app = History(stack, [], info.influx_url, info.database).app(register_cache_s=0)
    asked: list[list[str]] = []
    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})

        def devices(route: Any) -> None:
            answer = route.fetch()
            body = answer.json()
            for d in body["devices"]:
                d["quantities"] = [*d["quantities"], *NEW]
            route.fulfill(response=answer, body=json.dumps(body))

        def air(route: Any) -> None:
            url = urlsplit(route.request.url)
            params = parse_qsl(url.query)
            quantities = [v for k, v in params if k == "quantity"]
            if ("device", "kit-01") in params:  # the charts' requests, not the map's latest PM
                asked.append(quantities)
            kept = [(k, v) for k, v in params if not (k == "quantity" and v in NEW)]
            new = [q for q in quantities if q in NEW]
            if len(kept) == len(params):  # nothing new asked
                route.continue_()
                return
            answer = route.fetch(url=url._replace(query=urlencode(kept)).geturl())
            body = answer.json()
            for q in new:
                body["units"][q] = "%"
            for series in body["series"]:
                slots = len(series["time"])
                for i, q in enumerate(new):
                    series["values"][q] = [12.5 + i] * slots
            route.fulfill(response=answer, body=json.dumps(body))

        b.page.route("**/api/v1/devices", devices)
        b.page.route("**/api/v1/air?*", air)
        b.page.goto(f"{base}/#device=kit-01&range=24h")
        b.wait(READY)
        for q in NEW:
            b.wait(f"#chart-q-{q}[data-state=ready]")
        fig = b.page.locator("#chart-q-leaf_wetness")
        assert fig.locator("figcaption").inner_text() == "Leaf wetness (%)"
        assert set(_values(b.page, "q-leaf_wetness")) == {12.5}
        assert b.page.locator("#chart-soil[data-state=ready]").count() == 1
        assert b.errors == []
    assert len(asked) >= 2 and all(len(a) <= 20 for a in asked)
    assert sum(len(a) for a in asked) == len(MEASURED) + len(NEW)  # each asked once
