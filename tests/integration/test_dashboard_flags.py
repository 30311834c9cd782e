"""Flagged readings in the dashboard's charts, in a real browser (chromium, offline, no map
tiles): a device sends readings at 75 % and 99 % relative humidity and a stuck run through the
real stack; the PM chart draws the flagged windows as hollow markers and explains each flag
present in one sentence, the sentence the API serves from sensorpipe.quality.flags."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.quality.flags import FLAGS
from sensorpipe.stack.local import LocalStack
from tests.integration.flagged_device import flagging_stack, send_flagged
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, artefacts, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded

pytestmark = pytest.mark.integration

# flagged_device.SENT, 10 minutes apart from START on: each its own window of the 24-hour view
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with flagging_stack(tmp_path / "stack") as s:
        yield s


def test_flagged_points_are_drawn_hollow_and_each_flag_explained(
    stack: LocalStack, open_browser: Any
) -> None:
    send_flagged(stack, "qc-d", START + timedelta(minutes=10), timedelta(minutes=10))
    info = stack.require_info()
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
        # the register entry counts them per flag
        entry = page.locator("#register dl[data-device=qc-d]")
        assert "fog: 2, humidity: 4, stuck: 1 in the last 7 days" in entry.inner_text()
        fig.screenshot(path=str(artefacts() / "dashboard-flags.png"))
        assert b.errors == []
