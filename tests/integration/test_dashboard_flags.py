"""Flagged readings in the dashboard's charts, in a real browser (chromium, offline, no map
tiles): a device sends readings at 75 % and 99 % relative humidity and a stuck run through the
real stack; the PM chart draws the flagged windows as hollow markers and explains each flag
present in one sentence, the sentence the API serves from sensorpipe.quality.flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import AirMessage, Reading
from sensorpipe.quality.flags import FLAGS
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.live_server import live_server
from tests.integration.mqtt_helpers import TestDevice, air_message
from tests.integration.test_dashboard import READY, artefacts, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded

pytestmark = pytest.mark.integration

# (pm2_5, relative humidity) 10 minutes apart, each its own window of the 24-hour view.
SENT = [(12.0, 75.0), (13.0, 99.0), (8.0, 50.0), (8.0, 50.0), (8.0, 50.0)]
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def stack(tmp_path: Any) -> Any:
    from tests.integration.conftest import _require_binaries

    _require_binaries()
    s = LocalStack(tmp_path / "stack")
    ingest_toml = s.directory / "ingest" / "ingest.toml"
    ingest_toml.parent.mkdir(parents=True)
    ingest_toml.write_text("[quality.quantities.pm2_5]\nstuck_readings = 3\n", encoding="utf-8")
    s.up(detach=False, serve=False)
    try:
        yield s
    finally:
        s.down()


def _message(seq: int, pm2_5: float, rh: float) -> AirMessage:
    at = START + timedelta(minutes=10 * seq)
    base = air_message("qc-d", seq, pm2_5=pm2_5, observed_at=at)
    readings = [
        *base.readings,
        Reading(quantity="relative_humidity", value=rh, unit="%", sensor="bme280"),
    ]
    return base.model_copy(update={"readings": readings})


def test_flagged_points_are_drawn_hollow_and_each_flag_explained(
    stack: LocalStack, open_browser: Any
) -> None:
    info = stack.require_info()
    (creds,) = stack.add_devices([("qc-d", {"site": "s", "sensors": ["sds011", "bme280"]})])
    device = TestDevice(creds, info.broker_port)
    try:
        for seq, (pm2_5, rh) in enumerate(SENT, start=1):
            assert not device.send(_message(seq, pm2_5, rh)).is_failure
    finally:
        device.close()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        stored = "SELECT count(pm2_5) FROM air WHERE device_id = 'qc-d'"
        wait_for(
            lambda: [v[1] for x in influx.query(stored) for v in x["values"]] == [5],
            what="5 PM points",
        )
    finally:
        influx.close()
    config = ServeConfig(
        registry_path=str(stack.registry_path),
        influx=InfluxSettings(url=info.influx_url, database=info.database),
    )
    with live_server(create_app(ApiContext(config))) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/#device=qc-d&range=24h")
        b.wait(READY)
        b.wait("#chart-pm[data-state=ready]")
        fig = page.locator("#chart-pm")
        # pm2_5: the humid, the foggy and the stuck window; pm10: the humid and the foggy one
        assert fig.get_attribute("data-flagged") == "5"
        labels = page.evaluate(
            "() => window.sensorpipeDashboard.plots.pm.series.slice(1).map((s) => s.label)"
        )
        data = chart_data(page, "pm")
        flagged = dict(zip(labels, data[1:], strict=True))
        assert sorted(v for v in flagged["PM2.5 · flagged"] if v is not None) == [8.0, 12.0, 13.0]
        assert sorted(v for v in flagged["PM10 · flagged"] if v is not None) == [18.0, 19.5]
        # the unflagged windows are on the line and not marked
        assert sum(v is not None for v in flagged["PM2.5"]) == 5
        items = page.locator("#chart-pm .flag-legend li")
        shown = {i.get_attribute("data-flag"): i.inner_text() for i in items.all()}
        assert set(shown) == {"fog", "humidity", "stuck"}
        for name, text in shown.items():
            assert text == f"{name}: {FLAGS[name]}."
        assert "3 windows hold flagged readings" not in (fig.locator(".chart-summary").inner_text())
        assert "5 windows hold flagged readings (hollow markers)" in (
            fig.locator(".chart-summary").inner_text()
        )
        fig.screenshot(path=str(artefacts() / "dashboard-flags.png"))
        assert b.errors == []
