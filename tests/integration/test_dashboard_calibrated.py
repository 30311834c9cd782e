"""Calibrated values, their uncertainty and the word "indicative" in the dashboard, in a real
browser (chromium, offline, no map tiles): two devices of the same model send the same
readings through the real stack; a calibration in the stack's book (ref = 10 + 1.5·raw) is
assigned to one of them. The map colours each by its latest calibrated PM2.5 and marks the
uncalibrated one indicative (hatched, and said in its popup); the chart draws an uncertainty
band, labels the uncalibrated values indicative and the calibrated ones with their
calibration, and still draws flagged windows as hollow markers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.api.app import create_app
from sensorpipe.api.config import MapSettings
from sensorpipe.api.context import ApiContext
from sensorpipe.calibration.store import CalibrationBook
from sensorpipe.cli.serve import serve_config
from sensorpipe.stack.local import LocalStack
from tests.integration.flagged_device import SENT, flagging_stack, send_flagged
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, artefacts, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
STEP = timedelta(minutes=10)
A, B = 10.0, 1.5  # the calibration: ref = A + B·raw
RMSE = 2.1


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with flagging_stack(tmp_path / "stack") as s:
        yield s


def _calibrate(stack: LocalStack, device_id: str) -> str:
    book = CalibrationBook(stack.calibration_path)
    try:
        stored = book.add(
            {
                "method": "linear",
                "coefficients": {"a": A, "b": B},
                "quantity": "pm2_5",
                "unit": "ug/m3",
                "sensor_model": "sds011",
                "devices": ["colocated"],
                "reference": "ref-test",
                "statistics": {
                    "n_pairs": 48,
                    "raw": {"n": 48, "rmse": 6.0},
                    "calibrated": {"n": 48, "rmse": 1.9},
                    "cv": {"linear": {"n": 48, "rmse": RMSE}},
                },
            }
        )
        book.assign(stored["id"], device_id, None, None, "test")
    finally:
        book.close()
    return str(stored["id"])


def _tooltip(page: Any, chart: str, series: int) -> list[str]:
    """The legend's (tooltip's) text of each value of one of a chart's series."""
    texts: list[str] = page.evaluate(
        "([name, i]) => { const p = window.sensorpipeDashboard.plots[name];"
        " return Array.from(p.data[i]).map((v, idx) => v === null ? null :"
        " p.series[i].value(p, v, i, idx)).filter((t) => t !== null); }",
        [chart, series],
    )
    return texts


def test_calibrated_band_and_indicative_label(stack: LocalStack, open_browser: Any) -> None:
    for device_id, lon in (("cal-d", 5.12), ("raw-d", 5.13)):
        send_flagged(stack, device_id, START, STEP, {"lat": 52.09, "lon": lon})
    cal_id = _calibrate(stack, "cal-d")
    config = serve_config(stack.directory, None, None, None, False)  # finds the book
    config.map = MapSettings(basemap="none")  # offline: no tiles
    with live_server(create_app(ApiContext(config))) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        page = b.page
        page.goto(f"{base}/")
        b.wait("body[data-state=ready]")
        # The map: the latest PM2.5 is 8.0 for both; calibrated, 10 + 1.5 × 8 = 22 (moderate).
        calibrated = page.locator(".dev-marker[data-device=cal-d] .shape")
        raw = page.locator(".dev-marker[data-device=raw-d] .shape")
        assert (calibrated.get_attribute("class") or "").split() == ["shape", "band-moderate"]
        assert set((raw.get_attribute("class") or "").split()) == {
            "shape",
            "band-good",
            "indicative",
        }
        page.locator(".dev-marker[data-device=raw-d]").click()
        popup = page.locator(".marker-popup[data-device=raw-d]")
        popup.wait_for()
        assert "indicative" in popup.inner_text()
        assert "no calibration against a reference station" in popup.inner_text()
        page.locator("#map").screenshot(path=str(artefacts() / "dashboard-map-indicative.png"))
        page.locator(".dev-marker[data-device=cal-d]").click()
        popup = page.locator(".marker-popup[data-device=cal-d]")
        popup.wait_for()
        assert "indicative" not in popup.inner_text().lower()
        assert f"calibrated ({cal_id})" in popup.inner_text()

        # The uncalibrated device's chart: a band (RIVM's default), its values indicative,
        # its flagged windows still hollow markers.
        page.goto(f"{base}/#device=raw-d&range=24h")
        b.wait(READY)
        b.wait("#chart-pm[data-state=ready]")
        fig = page.locator("#chart-pm")
        assert int(fig.get_attribute("data-band") or 0) > 0
        assert fig.get_attribute("data-flagged") == "5"
        lines = page.locator("#chart-pm .indicative-lines li")
        assert {i.get_attribute("data-line") for i in lines.all()} == {"PM2.5", "PM10"}
        assert "no calibration against a reference station" in (
            fig.locator(".indicative-note").inner_text()
        )
        assert all(t.endswith(", indicative") for t in _tooltip(page, "pm", 1))
        fig.screenshot(path=str(artefacts() / "dashboard-indicative.png"))

        # The calibrated device: a band of the calibration's RMSE, PM2.5 not indicative.
        page.goto(f"{base}/#device=cal-d&range=24h")
        b.wait("#detail-title:has-text('cal-d')")
        b.wait(READY)
        b.wait("#chart-pm[data-state=ready]")
        fig = page.locator("#chart-pm")
        assert int(fig.get_attribute("data-band") or 0) > 0
        lines = page.locator("#chart-pm .indicative-lines li")
        # PM10 has no calibration; PM2.5 is indicative only in the fog window (RH 99 %).
        assert {i.get_attribute("data-line") for i in lines.all()} == {"PM10", "PM2.5"}
        pm2_5 = [v for v in chart_data(page, "pm")[1] if v is not None]
        assert sorted(pm2_5) == sorted(A + B * v for v, _ in SENT)
        tips = _tooltip(page, "pm", 1)
        fog = [
            t
            for t in tips
            if t.endswith(f"± {RMSE} µg/m³, calibrated ({cal_id}), indicative (fog)")
        ]
        clear = [t for t in tips if t.endswith(f"± {RMSE} µg/m³, calibrated ({cal_id})")]
        assert len(fog) == sum(rh >= 98 for _, rh in SENT) and len(fog) + len(clear) == len(tips)
        bands = page.evaluate("() => window.sensorpipeDashboard.bands.pm[0]")
        drawn = [(lo, hi) for lo, hi in zip(bands["lower"], bands["upper"], strict=True) if hi]
        assert drawn and all(hi - lo == pytest.approx(2 * RMSE) for lo, hi in drawn)
        assert cal_id in fig.locator(".calibrated-note").inner_text()
        assert fig.get_attribute("data-flagged") == "5"  # flagged windows drawn as before
        fig.screenshot(path=str(artefacts() / "dashboard-calibrated.png"))
        assert b.errors == []
