"""The dashboard's crowding panel in a real browser (Debian's chromium driven by Playwright):
an enclosed hall whose gate's counts are stored by the ingest's own path (`message_points`) in
a real influxd, read through /api/v1/areas and /api/v1/areas/{id}/crowding by the page.

The panel must show the hall's level (% of capacity) as the API gives it, its thresholds as
lines, the hour no counter reported as a gap with its reason, the half-run hour noted, and a
table and text summary of the latest level. The forecast band is also drawn here by the
panel's own function (`window.sensorpipeDashboard.drawCrowding`) fed the real observed answer
plus a forecast with round numbers (and a `forecast_note` holding markup, which must come out as
text); the live forecast from saved models is in test_dashboard_crowding_live.py. The
screenshot goes to $SENSORPIPE_ARTEFACTS or tests/artefacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, MapSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol.messages import ClassCount, CountMessage
from sensorpipe.protocol.registry import AreaEntry, AreaLine, DeviceEntry, Registry, save_registry
from sensorpipe.quality.checker import QualityChecker
from tests.helpers import hourly_count_message, running_influxd
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import Browser, api, artefacts

pytestmark = pytest.mark.integration

IN, OUT = "left_to_right", "right_to_left"
RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
# The gate's last six whole hours: (ins, outs, running fraction), or None (it sent nothing).
HOURS = [(20, 0, 1.0), (10, 0, 0.5), None, (10, 0, 1.0), (0, 30, 1.0), (5, 0, 1.0)]
# A name with markup: it must come out as text.
HALL_NAME = "Hall <b>A</b>"


def _gate_hour(seq: int, start: datetime, ins: int, outs: int, fraction: float) -> CountMessage:
    counts = [
        ClassCount(count_class="pedestrian", direction=IN, count=ins),
        ClassCount(count_class="pedestrian", direction=OUT, count=outs),
    ]
    return hourly_count_message("gate-p", seq, start, counts, fraction)


def _stored_lines(first_hour: datetime) -> list[str]:
    """The gate's hours as the line protocol the ingest stores for its count messages."""
    checker = QualityChecker()
    messages = [
        _gate_hour(i + 1, first_hour + timedelta(hours=i), *hour)
        for i, hour in enumerate(HOURS)
        if hour is not None
    ]
    return [to_line(p) for m in messages for p in message_points(m, "x", RECEIPT, quality=checker)]


@pytest.fixture(scope="module")
def set_up() -> datetime:
    """The moment the gate's hours are stored: the page's clock and the service's stay at it,
    so "the last 24 hours" end with the gate's last hour however long the tests take (an
    hour that ended since would be a second silent hour, after the last level)."""
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, set_up: datetime) -> Iterator[str]:
    hour = set_up.replace(minute=0, second=0, microsecond=0)
    with running_influxd(tmp_path_factory, "crowding-panel", "x") as (influxd, root):
        with closing(InfluxClient(influxd.url, "x")) as client:
            client.write(_stored_lines(hour - timedelta(hours=len(HOURS))))
        hall = AreaEntry(
            name=HALL_NAME,
            kind="enclosed",
            capacity=50,
            lines=[AreaLine(device="gate-p", inward=[IN], outward=[OUT])],
            timezone="UTC",
            quiet_hour=(hour.hour + 12) % 24,  # no reset in these hours
        )
        registry = Registry(
            devices={"gate-p": DeviceEntry(site="hall", password_hash="x")}, areas={"hall": hall}
        )
        save_registry(registry, root / "registry.toml")
        config = ServeConfig(
            registry_path=str(root / "registry.toml"),
            influx=InfluxSettings(url=influxd.url, database="x"),
            map=MapSettings(basemap="none"),
        )
        with live_server(create_app(ApiContext(config, clock=set_up.timestamp))) as base:
            yield base


@pytest.fixture
def page(served: str, set_up: datetime) -> Iterator[Any]:
    b = Browser(served, viewport={"width": 1280, "height": 900})
    try:
        b.page.clock.set_fixed_time(set_up)
        b.page.goto(f"{served}/")
        b.wait("#crowding[data-state=ready]")
        yield b.page
        assert not b.errors, b.errors
        assert not b.foreign, b.foreign
    finally:
        b.close()


def _plot_data(page: Any) -> list[list[float | None]]:
    data: list[list[float | None]] = page.evaluate(
        "() => window.sensorpipeDashboard.plots.crowding.data.map((a) => Array.from(a))"
    )
    return data


def _series_labels(page: Any) -> list[str]:
    labels: list[str] = page.evaluate(
        "() => window.sensorpipeDashboard.plots.crowding.series.map((s) => s.label)"
    )
    return labels


def _answer(base: str, page: Any) -> Any:
    """The hall's crowding as the API answers it, over the window the page asked for."""
    window = page.evaluate(
        "() => { const a = window.sensorpipeDashboard.crowding.answer; return [a.from, a.to]; }"
    )
    return api(base, "/api/v1/areas/hall/crowding", **{"from": window[0], "to": window[1]})


def test_the_panel_shows_level_thresholds_and_a_gap(served: str, page: Any) -> None:
    answer = _answer(served, page)
    observed = {iv["time"]: iv for iv in answer["observed"]}
    with_level = [iv for iv in answer["observed"] if iv["level"] is not None]
    assert len(with_level) == 5  # the six hours stored, less the silent one
    # The area is listed and chosen; its name is text, not markup.
    button = page.locator("#crowding-areas button[data-area=hall]")
    assert button.get_attribute("aria-pressed") == "true"
    assert HALL_NAME in button.inner_text()
    assert page.locator("#crowding-areas b").count() == 0
    assert HALL_NAME in page.locator("#crowding-caption").inner_text()

    xs, level, forecast, low, high, *thresholds = _plot_data(page)
    assert _series_labels(page)[5:] == ["Threshold 70 %", "Threshold 90 %"]
    # The level line: each interval's level in % of capacity, as the API gives it.
    shown = {
        datetime.fromtimestamp(x or 0, UTC).isoformat().replace("+00:00", "Z"): v
        for x, v in zip(xs, level, strict=True)
    }
    assert set(shown) == set(observed)
    for t, iv in observed.items():
        expected = None if iv["level"] is None else round(iv["level"] * 100, 1)
        assert shown[t] == pytest.approx(expected), t
    assert max(v for v in level if v is not None) >= 70  # some hour crossed a threshold
    # The thresholds: horizontal lines at 70 % and 90 %.
    assert [set(t) for t in thresholds] == [{70.0}, {90.0}]
    # The silent hour: a gap inside the line, its reason listed.
    (silent,) = [
        iv
        for iv in answer["observed"]
        if iv["level"] is None and iv["time"] > with_level[0]["time"]
    ]
    assert silent["reason"] == "no counter reported"
    assert shown[silent["time"]] is None
    gap = page.locator(f"#crowding-gaps li.gap[data-time='{silent['time']}']")
    assert "no counter reported" in gap.inner_text()
    # The hours before the gate's first are one line, not one each.
    assert page.locator("#crowding-gaps li.gap").count() == 2
    # The half-run hour is noted.
    (half,) = [iv for iv in with_level if iv["running_fraction"] < 1]
    partial = page.locator(f"#crowding-gaps li.partial[data-time='{half['time']}']")
    assert "counters ran 50 %" in partial.inner_text()
    # No forecast: no band.
    assert all(v is None for v in forecast + low + high)
    assert page.locator("#chart-crowding").get_attribute("data-band") == "0"
    legend = page.locator("#chart-crowding .u-legend .u-series:visible").all_inner_texts()
    assert not any("Forecast" in row for row in legend) and len(legend) == 4
    # The text summary and the table: the latest level and the threshold it reached.
    latest = with_level[-1]
    summary = page.locator("#crowding-summary").inner_text()
    assert f"Latest level {round(latest['level'] * 100)} %" in summary
    if latest["reached"] is None:
        assert "below its thresholds (70 % and 90 %)" in summary
    else:
        assert f"at or above its {round(latest['reached'] * 100)} % threshold" in summary
    rows = page.locator("#crowding-table tbody tr")
    assert rows.count() == len(answer["observed"])
    page.locator("#crowding-table-box summary").click()
    assert "no counter reported" in page.locator("#crowding-table").inner_text()
    page.locator("#crowding").screenshot(path=str(artefacts() / "dashboard-crowding.png"))


def test_the_forecast_band_after_the_last_observed_interval(served: str, page: Any) -> None:
    answer = _answer(served, page)
    last = datetime.fromisoformat(answer["observed"][-1]["time"].replace("Z", "+00:00"))
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    points = [
        {"horizon": f"{h}h", "time": iso(last + timedelta(hours=h)), "flow": 10.0 * h,
         "low": 5.0, "high": 20.0 * h, "level": 0.2 * h, "level_low": 0.1 * h,
         "level_high": 0.3 * h}
        for h in (1, 2, 3)
    ]  # fmt: skip
    forecast = {"made_at": iso(last), "trained_until": iso(last), "points": points}
    drawn = page.evaluate(
        "([answer, forecast]) => { const d = window.sensorpipeDashboard;"
        " d.drawCrowding(d.crowding.areas[0], {...answer, forecast, forecast_note: null});"
        " return document.querySelector('#chart-crowding').dataset.band; }",
        [answer, forecast],
    )
    assert drawn == "3"
    xs, level, line, low, high, *_ = _plot_data(page)
    n = len(answer["observed"])
    assert len(xs) == n + 3
    # After the last observed interval: the forecast's line and band, no observed level.
    assert level[n:] == [None, None, None]
    assert line[n:] == pytest.approx([20.0, 40.0, 60.0])
    assert low[n:] == pytest.approx([10.0, 20.0, 30.0])
    assert high[n:] == pytest.approx([30.0, 60.0, 90.0])
    # Before it, none (the line joins at the last observed level only).
    assert all(v is None for v in line[: n - 1] + low[: n - 1] + high[: n - 1])
    bands = page.evaluate("() => window.sensorpipeDashboard.plots.crowding.bands")
    assert bands[0]["series"] == [4, 3]
    assert page.locator("#crowding-forecast-note").is_hidden()
    legend = page.locator("#chart-crowding .u-legend .u-series:visible").all_inner_texts()
    assert sum("Forecast" in row for row in legend) == 3
    assert (
        "Forecast 3h ahead: 60 % (likely 30 % to 90 %)"
        in page.locator("#crowding-summary").inner_text()
    )
    page.locator("#crowding").screenshot(path=str(artefacts() / "dashboard-crowding-forecast.png"))

    # No forecast: the note says why, as text.
    note = "the <i>model</i> is not trained yet"
    page.evaluate(
        "([answer, note]) => { const d = window.sensorpipeDashboard;"
        " d.drawCrowding(d.crowding.areas[0], {...answer, forecast: null, forecast_note: note}); }",
        [answer, note],
    )
    shown = page.locator("#crowding-forecast-note")
    assert shown.is_visible() and shown.inner_text() == note
    assert page.locator("#crowding-forecast-note i").count() == 0
    assert page.locator("#chart-crowding").get_attribute("data-band") == "0"


def test_the_range_applies_to_the_panel_without_a_device_chosen(served: str, page: Any) -> None:
    """An analyst who opens the dashboard only for the crowding panel can choose its range."""
    assert page.locator("#detail-title").inner_text() == "Choose a device or a site"
    span = (
        "() => { const a = window.sensorpipeDashboard.crowding.answer;"
        " return a ? Date.parse(a.to) - Date.parse(a.from) : 0; }"
    )
    day_ms = 86_400_000
    assert page.evaluate(span) <= day_ms
    page.get_by_label("Last 7 days").check()
    page.wait_for_function(f"() => ({span})() > {6 * day_ms}")
