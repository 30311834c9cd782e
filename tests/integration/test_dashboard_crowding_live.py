"""The crowding panel and a counting device's crowding figure in a real browser (Debian's
chromium driven by Playwright) against a real stack: nine weeks of hourly counts of two
devices up to the last whole hour (of a fixed day, `SET_UP`, the page's and the service's
now) stored in a real influxd by the ingest's own path, models saved by `sensorpipe crowd
train` on them, and the API (/api/v1/areas/{id}/crowding, /api/v1/devices/{id}/crowding)
filling `forecast` from those models.

What is drawn (the chart's data and the table) is compared with the API's answer point by
point: a street area's forecast level and interval, a device's forecast flow and interval,
an enclosed area's forecast of the people coming in, and `forecast_note` where there is no
model. Times are shown in the area's own time zone with its offset (the hour that happens
twice when New Zealand's summer time ends reads as two), an area without counting devices
and one whose counter never reports say so, and a range in the past does not get the
forecast made now drawn onto it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, MapSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.crowd.live import ENCLOSED_NOTE, last_whole_hour
from sensorpipe.crowd.series import HOUR_S, iso
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import message_points
from sensorpipe.protocol.messages import ClassCount
from sensorpipe.protocol.registry import AreaEntry, AreaLine, DeviceEntry, Registry, save_registry
from tests.helpers import count_message, running_influxd
from tests.integration.live_server import live_server
from tests.integration.test_crowd_forecast_live import IN, OUT, RECEIPT, WEEKS, _lines
from tests.integration.test_dashboard import Browser, api, artefacts
from tests.integration.test_dashboard import open_browser as _open_browser
from tests.test_crowd_forecast import synthetic

pytestmark = pytest.mark.integration
open_browser = _open_browser  # the fixture: chromium pages, closed after the test

NZ = "Pacific/Auckland"
AMS = "Europe/Amsterdam"  # the browser's zone
STRIP_NAME = "Queen St <b>strip</b>"  # markup: it must come out as text
# The tests' now: months from a change of clocks in New Zealand or the Netherlands.
SET_UP = datetime(2026, 6, 10, 12, 20, tzinfo=UTC)
# New Zealand's summer time ends on 5 April 2026 at 03:00 NZDT (14:00 UTC): 02:00 twice.
DST_HOURS = [datetime(2026, 4, 4, h, tzinfo=UTC) for h in range(10, 16)]
# The page's custom range in the browser's zone (Europe/Amsterdam, CEST): 10:00-16:00 UTC.
DST_RANGE = "#range=custom&from=2026-04-04T12%3A00&to=2026-04-04T18%3A00"


def _area(
    name: str,
    kind: Literal["street", "enclosed"],
    capacity: int,
    lines: list[AreaLine],
    **more: Any,
) -> AreaEntry:
    return AreaEntry(
        name=name, kind=kind, capacity=capacity, lines=lines, country="NZ", timezone=NZ, **more
    )


def _registry() -> Registry:
    devices = {
        d: DeviceEntry(site="cbd", password_hash="x", count_classes=["pedestrian"])
        for d in ("fc-a", "fc-b", "fc-c", "nz-cam")
    }
    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    areas = {
        "strip": _area(STRIP_NAME, "street", 1000, [AreaLine(device=d) for d in ("fc-a", "fc-b")]),
        "hall": _area("Hall", "enclosed", 80, [AreaLine(device="fc-a", inward=[IN], outward=[OUT])]),  # noqa: E501
        "lone": _area("Lone", "street", 10, [AreaLine(device="fc-b")]),
        "quarters": _area("Quarters", "street", 250, [AreaLine(device="fc-a")], interval="15m"),
        "quiet": _area("Quiet", "street", 10, [AreaLine(device="fc-c")]),  # fc-c never reports
        "empty": _area("Empty", "street", 10, [], polygon=square),  # no device inside
        "nz": _area("Auckland", "street", 100, [AreaLine(device="nz-cam")]),
    }  # fmt: skip
    return Registry(devices=devices, areas=areas)


def _dst_lines() -> list[str]:
    lines = []
    for i, t in enumerate(DST_HOURS):
        counts = [ClassCount(count_class="pedestrian", direction=IN, count=10 + i)]
        message = count_message("nz-cam", i + 1, t, counts)
        lines += [to_line(p) for p in message_points(message, "x", RECEIPT)]
    return lines


@pytest.fixture(scope="module")
def set_up() -> datetime:
    """The moment the counts are stored, up to the hour that had ended then: the page's clock
    and the service's stay at it, so "the last 24 hours" are 24 counted hours and the
    forecasts are made at their end, however long the tests take (an hour may end meanwhile).
    A day of its own, not today: on the days New Zealand's clocks change, 04:00 comes 23 or
    25 hours after the last, and the last 24 hours may hold the hall's quiet-hour reset twice
    or not at all."""
    return SET_UP


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, set_up: datetime) -> Iterator[str]:
    pytest.importorskip("lightgbm")
    last = last_whole_hour(set_up.timestamp())
    c = synthetic(WEEKS, 2, start="2024-06-03T00:00", seed=3)
    start = last - (c.hours - 1) * HOUR_S
    with running_influxd(tmp_path_factory, "crowding-live", "x") as (influxd, root):
        with closing(InfluxClient(influxd.url, "x")) as client:
            client.write(_lines(c.values, start) + _dst_lines())
        stack = root / "st"
        stack.mkdir()
        save_registry(_registry(), stack / "registry.toml")
        models = root / "models"
        base = ["--dir", str(stack), "--influx-url", influxd.url, "--database", "x"]
        base += ["--models", str(models), "--train-until", iso(last - 6 * 24 * HOUR_S)]
        base += ["--timezone", NZ, "--country", "NZ", "--trees", "40", "--json"]
        base += ["--horizon", "1h", "--horizon", "2h", "--horizon", "3h"]
        areas = ["--area", "strip", "--area", "hall", "--area", "quarters"]
        for what in (areas, ["--device", "fc-a"]):
            result = CliRunner().invoke(main, ["crowd", "train", *what, *base])
            assert result.exit_code == 0, result.output
            json.loads(result.stdout)
        config = ServeConfig(
            registry_path=str(stack / "registry.toml"),
            models_path=str(models),
            influx=InfluxSettings(url=influxd.url, database="x"),
            map=MapSettings(basemap="none"),
        )
        with live_server(create_app(ApiContext(config, clock=set_up.timestamp))) as url:
            yield url


@pytest.fixture
def browser(served: str, set_up: datetime, open_browser: Any) -> Iterator[Browser]:
    # The browser in another zone than the areas': their times must be the areas' own.
    b: Browser = open_browser(served, viewport={"width": 1280, "height": 900}, timezone_id=AMS)
    b.page.clock.set_fixed_time(set_up)
    yield b
    assert not b.errors, b.errors
    assert not b.foreign, b.foreign


def _open_area(b: Browser, area: str, hash_: str = "") -> Any:
    b.page.goto(f"{b.base_url}/{hash_}")
    b.wait("#crowding[data-state=ready]")
    b.page.locator(f"#crowding-areas button[data-area={area}]").click()
    b.page.wait_for_function(
        "(area) => document.querySelector('#crowding').dataset.state === 'ready'"
        " && (window.sensorpipeDashboard.crowding.answer || {}).area === area",
        arg=area,
    )
    return b.page


def _page_answer(page: Any, which: str = "crowding") -> Any:
    return page.evaluate(f"() => window.sensorpipeDashboard.{which}.answer")


def _api_answer(b: Browser, path: str, which: str = "crowding") -> Any:
    """The API's answer over the window the page asked for, made from the same saved models
    at the same hour as the page's (the page is read again if an hour ended in between)."""
    for _ in range(2):
        shown = _page_answer(b.page, which)
        answer = api(b.base_url, path, **{"from": shown["from"], "to": shown["to"]})
        if (answer["forecast"] or {}).get("made_at") == (shown["forecast"] or {}).get("made_at"):
            return answer
        b.page.reload()
        b.wait("#crowding[data-state=ready]")
    pytest.fail("the page's forecast and the API's were made at different hours twice")


def _data(page: Any, plot: str) -> list[list[float | None]]:
    data: list[list[float | None]] = page.evaluate(
        "(name) => window.sensorpipeDashboard.plots[name].data.map((a) => Array.from(a))", plot
    )
    return data


def _pct(v: float) -> str:
    """The page's whole-percent text of a level."""
    return f"{Decimal(repr(v * 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)} %"


def _whole(v: float) -> str:
    n = Decimal(repr(v)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{n:,}"


def _epoch(t: str) -> int:
    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())


def _at(xs: list[float | None], t: str) -> int:
    return xs.index(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())


def _forecast_rows(page: Any, figure: str) -> dict[str, list[str]]:
    rows = page.locator(f"#{figure}-table tbody tr.forecast")
    return {
        rows.nth(i).get_attribute("data-time"): rows.nth(i).locator("td").all_text_contents()
        for i in range(rows.count())
    }


def test_the_panel_draws_the_live_forecast_of_a_street_area(browser: Browser) -> None:
    page = _open_area(browser, "strip")
    answer = _api_answer(browser, "/api/v1/areas/strip/crowding")
    forecast = answer["forecast"]
    assert answer["forecast_note"] is None and forecast is not None
    assert [p["horizon"] for p in forecast["points"]] == ["1h", "2h", "3h"]
    xs, level, line, low, high, *thresholds = _data(page, "crowding")
    assert [set(t) for t in thresholds] == [{70.0}, {90.0}]
    for iv in answer["observed"]:
        assert level[_at(xs, iv["time"])] == pytest.approx(iv["level"] * 100, abs=0.051)
    rows = _forecast_rows(page, "crowding")
    assert list(rows) == [p["time"] for p in forecast["points"]]
    for p in forecast["points"]:
        i = _at(xs, p["time"])
        assert level[i] is None  # not observed: the hour has not ended
        assert line[i] == pytest.approx(p["level"] * 100, abs=0.051)
        assert low[i] == pytest.approx(p["level_low"] * 100, abs=0.051)
        assert high[i] == pytest.approx(p["level_high"] * 100, abs=0.051)
        when, shown, _, _, likely = rows[p["time"]]
        assert f"(forecast, {p['horizon']})" in when
        assert shown == _pct(p["level"])
        assert likely == f"likely {_pct(p['level_low'])} to {_pct(p['level_high'])}"
    # The forecast's line starts at the last observed level: the hour before its first.
    last = answer["observed"][-1]
    assert xs[_at(xs, forecast["points"][0]["time"]) - 1] == xs[_at(xs, last["time"])]
    assert line[_at(xs, last["time"])] == level[_at(xs, last["time"])]
    fig = page.locator("#chart-crowding")
    assert fig.get_attribute("data-band") == "3"
    assert page.locator("#crowding-forecast-note").is_hidden()
    p3 = forecast["points"][-1]
    assert (
        f"Forecast 3h ahead: {_pct(p3['level'])} (likely {_pct(p3['level_low'])} to "
        f"{_pct(p3['level_high'])})" in page.locator("#crowding-summary").inner_text()
    )
    assert page.locator("#crowding-areas b, #crowding-caption b").count() == 0
    assert STRIP_NAME in page.locator("#crowding-caption").inner_text()
    page.locator("#crowding").screenshot(path=str(artefacts() / "dashboard-crowding-live.png"))


def test_an_area_of_quarter_hours_gets_every_forecast_hour(browser: Browser) -> None:
    # Its levels are per 15 minutes; the forecast's first hour (the one running now) may
    # hold intervals already observed: it is drawn all the same, at the hour's start.
    page = _open_area(browser, "quarters")
    answer = _api_answer(browser, "/api/v1/areas/quarters/crowding")
    assert answer["every"] == "15m"
    points = answer["forecast"]["points"]
    xs, _, line, low, high, *_ = _data(page, "crowding")
    for p in points:
        i = _at(xs, p["time"])
        assert line[i] == pytest.approx(p["level"] * 100, abs=0.051)
        assert (low[i], high[i]) == pytest.approx(
            (p["level_low"] * 100, p["level_high"] * 100), abs=0.051
        )
    assert page.locator("#chart-crowding").get_attribute("data-band") == str(len(points))
    assert list(_forecast_rows(page, "crowding")) == [p["time"] for p in points]
    assert xs == sorted(x or 0 for x in xs)


def test_an_area_without_a_model_shows_the_apis_note(browser: Browser) -> None:
    page = _open_area(browser, "lone")
    answer = _api_answer(browser, "/api/v1/areas/lone/crowding")
    assert answer["forecast"] is None
    assert answer["forecast_note"].startswith("no model trained for this area")
    note = page.locator("#crowding-forecast-note")
    assert note.is_visible() and note.inner_text() == answer["forecast_note"]
    assert page.locator("#chart-crowding").get_attribute("data-band") == "0"
    assert _forecast_rows(page, "crowding") == {}


def test_an_enclosed_areas_forecast_is_of_the_people_coming_in(browser: Browser) -> None:
    page = _open_area(browser, "hall")
    answer = _api_answer(browser, "/api/v1/areas/hall/crowding")
    assert answer["forecast_note"] == ENCLOSED_NOTE
    # The note says why no level is forecast, though a forecast is there.
    note = page.locator("#crowding-forecast-note")
    assert note.is_visible() and note.inner_text() == ENCLOSED_NOTE
    rows = _forecast_rows(page, "crowding")
    assert list(rows) == [p["time"] for p in answer["forecast"]["points"]]
    for p in answer["forecast"]["points"]:
        assert p["level"] is None
        assert rows[p["time"]][4] == (
            f"people coming in: {_whole(p['flow'])} per hour "
            f"(likely {_whole(p['low'])} to {_whole(p['high'])})"
        )
    # Its occupancy's corrections are noted per interval: the quiet-hour reset (04:00 in
    # Auckland, one in any 24 hours) and the outs beyond the occupancy.
    notes = {
        row.get_attribute("data-time"): row.locator("td").nth(4).text_content()
        for row in page.locator("#crowding-table tbody tr:not(.forecast)").all()
    }
    resets = [iv for iv in answer["observed"] if iv["reset_from"] is not None]
    assert len(resets) == 1
    for iv in answer["observed"]:
        note = notes[iv["time"]] or ""
        said = f"occupancy reset to 0 at the quiet hour (it was {_whole(iv['reset_from'] or 0)})"
        assert (said in note) == (iv["reset_from"] is not None), (iv, note)
        said = f"{_whole(iv['corrected'])} more went out than were in"
        assert (said in note) == (iv["corrected"] > 0), (iv, note)
    assert any(iv["corrected"] > 0 for iv in answer["observed"])
    p3 = answer["forecast"]["points"][-1]
    summary = page.locator("#crowding-summary").inner_text()
    assert f"Forecast of the people coming in, 3h ahead: {_whole(p3['flow'])} per hour" in summary


def _open_device(b: Browser, device: str) -> Any:
    b.page.goto(f"{b.base_url}/#device={device}")
    b.wait("#chart-device-crowding[data-state=ready]")
    b.wait("#detail[data-state=ready]")
    return b.page


def test_a_counting_devices_flow_and_forecast(browser: Browser, set_up: datetime) -> None:
    page = _open_device(browser, "fc-a")
    answer = _api_answer(browser, "/api/v1/devices/fc-a/crowding", "deviceCrowding")
    forecast = answer["forecast"]
    assert forecast is not None and answer["forecast_note"] is None
    assert answer["areas"] == ["hall", "quarters", "strip"]
    data = _data(page, "device-crowding")
    assert len(data) == 5  # time, flow, forecast and its interval: no thresholds
    xs, flow, line, low, high = data
    observed = answer["observed"]
    # The last 24 whole hours at the set-up, each counted.
    end = last_whole_hour(set_up.timestamp()) + HOUR_S
    assert [_epoch(iv["time"]) for iv in observed] == list(range(end - 24 * HOUR_S, end, HOUR_S))
    for iv in observed:
        assert iv["level"] is None and iv["flow"] is not None  # a device has no capacity
        assert flow[_at(xs, iv["time"])] == pytest.approx(iv["flow"])
    rows = _forecast_rows(page, "device-crowding")
    assert list(rows) == [p["time"] for p in forecast["points"]]
    for p in forecast["points"]:
        i = _at(xs, p["time"])
        assert flow[i] is None
        assert (line[i], low[i], high[i]) == pytest.approx((p["flow"], p["low"], p["high"]))
        when, shown, _, likely = rows[p["time"]]
        assert f"(forecast, {p['horizon']})" in when
        assert shown == _whole(p["flow"])
        assert likely == f"likely {_whole(p['low'])} to {_whole(p['high'])}"
    fig = page.locator("#chart-device-crowding")
    assert fig.is_visible() and fig.get_attribute("data-band") == "3"
    assert fig.get_attribute("data-zone") == NZ  # its first area's
    table = page.locator("#device-crowding-table tbody tr:not(.forecast)")
    assert table.count() == len(observed)
    assert table.nth(0).locator("td").nth(1).text_content() == _whole(observed[0]["flow"])
    summary = page.locator("#device-crowding-summary").inner_text()
    assert f"Latest {_whole(observed[-1]['flow'])} passers-by per hour" in summary
    assert "It counts for the areas hall, quarters, strip" in summary
    page.locator("#chart-device-crowding").screenshot(
        path=str(artefacts() / "dashboard-device-crowding.png")
    )

    # A device without a model: the API's note, and no band.
    page = _open_device(browser, "fc-b")
    answer = _api_answer(browser, "/api/v1/devices/fc-b/crowding", "deviceCrowding")
    assert answer["forecast"] is None
    note = page.locator("#device-crowding-forecast-note")
    assert note.is_visible() and note.inner_text() == answer["forecast_note"]
    assert page.locator("#chart-device-crowding").get_attribute("data-band") == "0"


def test_an_empty_area_and_one_whose_counter_never_reports(browser: Browser) -> None:
    page = _open_area(browser, "empty")
    (empty,) = [a for a in api(browser.base_url, "/api/v1/areas") if a["id"] == "empty"]
    assert empty["devices"] == []
    summary = page.locator("#crowding-summary").inner_text()
    assert summary.startswith("No level in this range: the area has no counting device")
    page = _open_area(browser, "quiet")
    answer = _page_answer(page)
    assert {iv["reason"] for iv in answer["observed"]} == {"no counter reported"}
    summary = page.locator("#crowding-summary").inner_text()
    assert summary.startswith("No level in this range: none of its counters (fc-c) reported.")
    gap = page.locator("#crowding-gaps li.gap")
    assert gap.count() == 1 and "no level: no counter reported" in gap.inner_text()


def _local(t: datetime) -> tuple[str, str]:
    """The area's local hh:mm of `t` and its offset as the page names it (GMT+13)."""
    local = t.astimezone(ZoneInfo(NZ))
    offset = local.utcoffset() or timedelta(0)
    return local.strftime("%H:%M"), f"GMT+{offset // timedelta(hours=1)}"


def test_times_are_the_areas_own_across_the_end_of_summer_time(browser: Browser) -> None:
    page = _open_area(browser, "nz", DST_RANGE)
    answer = _page_answer(page)
    assert [iv["time"] for iv in answer["observed"]] == [iso(int(t.timestamp())) for t in DST_HOURS]
    cells = page.locator("#crowding-table tbody tr td:first-child").all_text_contents()
    assert len(cells) == len(DST_HOURS) and len(set(cells)) == len(cells)
    for cell, t in zip(cells, DST_HOURS, strict=True):
        hm, offset = _local(t)
        assert cell.endswith(f"{hm} {offset}"), (cell, hm, offset)
    # 02:00 twice: once in summer time (GMT+13), once after it (GMT+12).
    assert sum(c.endswith("02:00 GMT+13") for c in cells) == 1
    assert sum(c.endswith("02:00 GMT+12") for c in cells) == 1
    assert page.locator("#chart-crowding").get_attribute("data-zone") == NZ
    assert f"times in {NZ}" in page.locator("#crowding-caption").inner_text()
    # The time axis' ticks (uPlot's labels and the instants they are at) in its time too.
    labels, splits = page.evaluate(
        "() => { const a = window.sensorpipeDashboard.plots.crowding.axes[0];"
        " return [a._values, a._splits]; }"
    )
    assert len(labels) == len(splits) >= 6
    for label, s in zip(labels, splits, strict=True):
        assert label.split("\n")[0] == _local(datetime.fromtimestamp(s, UTC))[0]
    assert [label.split("\n")[0] for label in labels].count("02:00") == 2


def test_a_past_range_does_not_get_the_forecast_made_now(browser: Browser) -> None:
    page = _open_area(browser, "strip", DST_RANGE)
    answer = _page_answer(page)
    assert answer["forecast"] is not None  # made now, for the hours after now
    assert page.locator("#chart-crowding").get_attribute("data-band") == "0"
    assert _forecast_rows(page, "crowding") == {}
    _, _, line, low, high, *_ = _data(page, "crowding")
    assert all(v is None for v in line + low + high)
    note = page.locator("#crowding-forecast-note")
    assert note.is_visible() and "is of the hours after this range" in note.inner_text()


def test_the_last_day_in_an_hours_last_minute_holds_24_whole_hours(
    browser: Browser, set_up: datetime
) -> None:
    # At 17:59:30 the range starts at 17:59 a day ago (its hour is 17:00) and ends at 18:00;
    # the API ends it at the last hour that has ended, so the day's 24 whole hours are shown.
    # (Rounded up to 18:00 a day ago, it started an hour later: 23 hours in that minute.)
    hour = last_whole_hour(set_up.timestamp()) - 2 * HOUR_S
    moment = datetime.fromtimestamp(hour + 59 * 60 + 30, UTC)
    browser.page.clock.set_fixed_time(moment)
    _open_device(browser, "fc-a")
    asked = [u for u in browser.requests if "/api/v1/devices/fc-a/crowding?" in u]
    assert asked, browser.requests
    params = parse_qs(urlsplit(asked[-1]).query)
    start = datetime.fromisoformat(params["from"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(params["to"][0].replace("Z", "+00:00"))
    assert start == moment.replace(second=0) - timedelta(days=1)
    assert end == moment.replace(minute=0, second=0) + timedelta(hours=1)
    # Those moved to whole hours, with the hour then running left out (as the API does):
    whole = (_epoch(params["from"][0]) // HOUR_S * HOUR_S, hour)
    assert (whole[1] - whole[0]) // HOUR_S == 24


def test_a_range_within_one_hour_keeps_the_devices_counts(
    browser: Browser, set_up: datetime
) -> None:
    # The API has no whole hour of crowding in it; the counts chart is shown all the same.
    day = (set_up.astimezone(ZoneInfo(AMS)) - timedelta(days=1)).date().isoformat()
    page = _open_device(browser, "fc-a")  # drawn first: what it showed must go
    assert page.locator("#device-crowding-table tbody tr").count() > 0
    page.goto(f"{browser.base_url}/#device=fc-a&range=custom&from={day}T10%3A10&to={day}T10%3A40")
    browser.wait("#chart-device-crowding[data-state=error]")
    browser.wait("#detail[data-state=ready]")
    summary = page.locator("#device-crowding-summary").inner_text()
    assert summary == (
        "No crowding for this range: it holds no whole hour that has ended (crowding is per "
        "hour); choose a range of an hour or more."
    )
    assert page.locator("#device-crowding-table tbody tr").count() == 0
    assert page.locator("#device-crowding-forecast-note").is_hidden()
    assert page.locator("#chart-counts").get_attribute("data-state") == "ready"
    # The refusal of the device's crowding is the browser's only console error.
    refused = [e for e in browser.errors if "status of 400" in e]
    assert len(refused) == 1
    browser.errors[:] = [e for e in browser.errors if e not in refused]


def test_the_crowding_charts_keep_their_height_when_the_window_is_resized(
    browser: Browser,
) -> None:
    page = _open_device(browser, "fc-a")
    sizes = (
        "() => ['crowding', 'device-crowding', 'counts'].map((n) => {"
        " const p = window.sensorpipeDashboard.plots[n]; return [p.width, p.height]; })"
    )
    before = page.evaluate(sizes)
    assert [h for _, h in before] == [260, 260, 240]
    page.set_viewport_size({"width": 900, "height": 900})
    page.wait_for_function(f"(w) => ({sizes})().every(([x], i) => x !== w[i][0])", arg=before)
    after = page.evaluate(sizes)
    assert [h for _, h in after] == [260, 260, 240]  # resized, each as high as it was
