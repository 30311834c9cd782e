"""Saved forecasters (sensorpipe.crowd.saved) and the live forecast's shape (crowd.live): a
small model trained on a slice, saved, loaded again, forecasts exactly as before; the points
have the API's `forecast` shape; a street area's level is its flow ÷ capacity per hour."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from sensorpipe.crowd.forecaststore import Rolling
from sensorpipe.crowd.live import StaleCounts, extend, forecast_points, last_whole_hour
from sensorpipe.crowd.saved import ModelCache, ModelsError, find, read, save
from sensorpipe.crowd.series import HOUR_S, CountsInputError, iso, parse_time
from sensorpipe.protocol.registry import AreaEntry, AreaLine
from tests.test_crowd_forecast import synthetic

LINES = [AreaLine(device="site-2", inward=["in"], outward=["out"])]
POINT_KEYS = {"horizon", "time", "flow", "low", "high", "level", "level_low", "level_high",
              "interval"}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    pytest.importorskip("lightgbm")
    from sensorpipe.crowd.forecast import Settings, Training, Where, train

    counts = synthetic(9, 3, start="2024-06-03T00:00")
    until = counts.time(8 * 168)
    settings = Settings(trees=30, min_leaf=20)
    fc = train(
        counts, [1, 3], Training(Where("Pacific/Auckland", "NZ", "AUK"), until, settings=settings)
    )
    models = tmp_path_factory.mktemp("models")
    save(fc, models, "device", {"settings": {"trees": 30}})
    return models, fc, counts


def test_a_saved_model_forecasts_as_the_trained_one(trained: tuple) -> None:
    models, fc, counts = trained
    saved = find(models, "device", "site-1")
    assert saved is not None and saved.names == ["site-0", "site-1", "site-2"]
    assert saved.horizons == [1, 3] and saved.trained_until == fc.trained_until
    meta = json.loads((saved.folder / "model.json").read_text())
    assert set(meta["intervals"]) == {"1", "3"} and meta["settings"] == {"trees": 30}
    assert sorted(p.name for p in saved.folder.iterdir()) == ["h1.txt", "h3.txt", "model.json"]
    origin = counts.time(8 * 168 + 30)
    again = saved.load().forecast(counts, origin)
    before = fc.forecast(counts, origin)
    for h in (1, 3):
        for a, b in zip(before[h], again[h], strict=True):
            np.testing.assert_array_equal(a, b)
    assert find(models, "device", "site-9") is None
    assert find(models, "area", "site-1") is None
    assert find(models / "none", "device", "site-1") is None


def test_forecast_points_have_the_api_shape(trained: tuple) -> None:
    _, fc, counts = trained
    origin = counts.time(8 * 168 + 30)
    out = forecast_points(fc, counts, "site-2", origin)
    assert out["made_at"] == iso(origin + HOUR_S)
    assert out["trained_until"] == iso(fc.trained_until + HOUR_S)
    assert [p["horizon"] for p in out["points"]] == ["1h", "3h"]
    assert [p["time"] for p in out["points"]] == [iso(origin + HOUR_S), iso(origin + 3 * HOUR_S)]
    for p in out["points"]:
        assert set(p) == POINT_KEYS
        assert 0 <= p["low"] <= p["flow"] <= p["high"]
        assert p["level"] is None and p["level_high"] is None  # a device has no capacity
    area = AreaEntry(name="Queen St", kind="street", capacity=500, interval="15m", lines=LINES)
    leveled = forecast_points(fc, counts, "site-2", origin, area)
    for p in leveled["points"]:
        assert p["level"] == pytest.approx(p["flow"] / 2000, abs=1e-4)  # 4 intervals an hour
        assert p["level_low"] <= p["level"] <= p["level_high"]
    assert {p["interval"] for p in out["points"]} == {"from training"}
    # a horizon with a rolling interval (crowd.forecaststore) has it, the others training's
    rolled = forecast_points(fc, counts, "site-2", origin, area, {3: Rolling(-2.0, 3.0, 400)})
    assert rolled["points"][0] == leveled["points"][0]
    p3 = rolled["points"][1]
    scale = math.sqrt(p3["flow"] + 1)
    assert p3["interval"] == "rolling 28 days (n=400)"
    assert p3["low"] == pytest.approx(max(0, p3["flow"] - 2 * scale), abs=0.11)
    assert p3["high"] == pytest.approx(p3["flow"] + 3 * scale, abs=0.11)
    assert p3["level_high"] == pytest.approx(p3["high"] / 2000, abs=1e-4)
    assert (p3["low"], p3["high"]) != (leveled["points"][1]["low"], leveled["points"][1]["high"])
    with pytest.raises(CountsInputError, match="no counts of site-9 in the 56 days up to "):
        forecast_points(fc, counts, "site-9", origin)
    enclosed = AreaEntry(name="Hall", kind="enclosed", capacity=500, lines=LINES)
    assert all(
        p["level"] is None
        for p in forecast_points(fc, counts, "site-2", origin, enclosed)["points"]
    )


def test_a_forecast_past_the_last_count_uses_a_grid_run_to_the_origin(trained: tuple) -> None:
    _, fc, counts = trained
    last = counts.time(counts.hours - 1)
    origin = last + 2 * HOUR_S  # two hours without a count (a late report)
    grown = extend(counts, origin)
    assert grown.row(origin) == grown.hours - 1
    assert np.isnan(grown.values[-2:]).all()
    out = forecast_points(fc, counts, "site-0", origin)
    assert out["points"][0]["time"] == iso(origin + HOUR_S)
    # None in the three hours up to the origin (a counter that stopped): no forecast, and why
    with pytest.raises(StaleCounts) as stale:
        forecast_points(fc, counts, "site-0", last + 3 * HOUR_S)
    assert str(stale.value) == (
        f"no counts of site-0 in the 3 hours up to {iso(last + 4 * HOUR_S)} (the last of "
        f"{iso(last)}): a forecast starts from the latest hours' counts; is its counter "
        "reporting?"
    )
    assert last_whole_hour(parse_time("2024-06-03T10:20:00Z")) == parse_time("2024-06-03T09:00:00Z")


def test_the_cache_loads_once_and_again_after_a_retrain(trained: tuple, tmp_path: Path) -> None:
    models, fc, _ = trained
    cache = ModelCache(models)
    first = cache.get("device", "site-0")
    assert first is not None and cache.get("device", "site-0")[1] is first[1]  # type: ignore[index]
    assert cache.get("device", "nowhere") is None
    save(fc, tmp_path, "device")
    moved = ModelCache(tmp_path)
    one = moved.get("device", "site-0")
    meta = tmp_path / one[0].folder.name / "model.json"  # type: ignore[index]
    text = meta.read_text()
    meta.write_text(text.replace('"format": 1', '"format": 1 '))  # a new file: a retrain
    os.utime(meta, (1, 1))
    assert moved.get("device", "site-0")[1] is not one[1]  # type: ignore[index]
    meta.write_text("{")
    with pytest.raises(ModelsError, match=r"model\.json: not a saved model"):
        read(meta.parent)


def test_the_stacks_serve_config_names_its_models_folder(tmp_path: Path) -> None:
    from sensorpipe.api.config import load_serve_config
    from sensorpipe.stack.configs import write_serve_config
    from sensorpipe.stack.local import LocalStack

    stack = LocalStack(tmp_path)
    assert stack.models_path == tmp_path.resolve() / "forecast"
    path = write_serve_config(
        tmp_path / "serve" / "serve.toml",
        registry_path=stack.registry_path,
        ingest_stats_path=tmp_path / "ingest" / "stats.json",
        broker_port=1883,
        influx_url="http://127.0.0.1:8086",
        api_port=8080,
        models_path=stack.models_path,
    )
    assert load_serve_config(path).models_path == str(stack.models_path)


def test_the_alerts_job_gets_a_street_areas_forecast_levels(
    trained: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sensorpipe.crowd.live import SavedForecasts

    _, fc, counts = trained
    save(fc, tmp_path, "area")
    reads: list[tuple[list[str], int, int]] = []

    def read(registry: object, names: list[str], t0: int, t1: int) -> object:
        reads.append((names, t0, t1))
        return counts

    source = SavedForecasts(ModelCache(tmp_path), read)  # type: ignore[arg-type]
    origin = counts.time(8 * 168 + 30)
    now_ms = (origin + HOUR_S + 125) * 1000  # 2 min into the hour after the origin hour
    street = AreaEntry(name="Queen St", kind="street", capacity=400, lines=LINES)
    points = source("site-1", street, now_ms)
    made = (origin + HOUR_S) * 1000
    assert [(p.kind, p.made_ms, p.horizon_s) for p in points] == [
        ("forecast", made, HOUR_S),  # the hour from `made`, ending 1 h ahead
        ("forecast", made, 3 * HOUR_S),
    ]
    expected = forecast_points(fc, counts, "site-1", origin, street)["points"]
    assert [p.level for p in points] == [e["level"] for e in expected]
    assert [p.time_ms for p in points] == [made, made + 2 * HOUR_S * 1000]
    assert source("site-1", street, now_ms + 60_000) is points  # once per origin hour
    assert len(reads) == 1 and reads[0][2] == origin + HOUR_S
    enclosed = AreaEntry(name="Hall", kind="enclosed", capacity=50, lines=LINES)
    assert source("site-1", enclosed, now_ms) == []  # no level: no forecast alerts
    assert source("site-7", street, now_ms) == []  # no model
    assert source("site-7", street, now_ms + 3_600_000) == []
    said = [r.getMessage() for r in caplog.records]
    assert (
        said.count(  # said once, not every hour
            f"no forecast alerts for site-7: no model trained for it in {tmp_path}; train one "
            f"with `sensorpipe crowd train --area site-7 --models {tmp_path}`"
        )
        == 1
    )
    assert any(m.startswith("no forecast alerts for site-1: an enclosed area") for m in said)


def test_the_ingest_forecasts_its_alerts_with_the_models_ingest_toml_names(
    tmp_path: Path,
) -> None:
    from sensorpipe.crowd.alertjob import AlertJob
    from sensorpipe.crowd.live import SavedForecasts
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.stack.configs import write_ingest_config
    from tests.test_ingest_service import FakeInflux, _service

    (tmp_path / "registry.toml").write_text("")
    (tmp_path / "ingest.toml").write_text(
        'registry_path = "registry.toml"\n[broker]\npassword = "x"\n[alerts]\nmodels = "fc"\n'
    )
    config = load_ingest_config(tmp_path / "ingest.toml")
    assert config.alerts.models == str(tmp_path.resolve() / "fc")
    written = write_ingest_config(
        tmp_path / "st", registry_path=tmp_path / "registry.toml", quarantine_path=tmp_path / "q",
        keys_path=tmp_path / "k", broker_port=1, influx_url="http://x", password="x",
        metrics_port=0, models_path=tmp_path / "models",
    )  # fmt: skip
    assert load_ingest_config(written).alerts.models == str(tmp_path / "models")
    service = _service(tmp_path, FakeInflux(), alerts={"models": str(tmp_path / "fc")})
    try:
        (job,) = [j for j in service._schedule.jobs if isinstance(j, AlertJob)]
        assert isinstance(job._forecasts, SavedForecasts)
    finally:
        service.close()
    service = _service(tmp_path / "b", FakeInflux())
    try:
        (job,) = [j for j in service._schedule.jobs if isinstance(j, AlertJob)]
        assert job._forecasts is None
    finally:
        service.close()


def test_the_api_says_why_there_is_no_forecast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from sensorpipe.api.config import ServeConfig
    from sensorpipe.api.context import ApiContext
    from sensorpipe.api.crowding import _forecast
    from sensorpipe.ingest.influx import InfluxClient

    def note(config: ServeConfig) -> object:
        ctx = ApiContext(config, influx=InfluxClient("http://127.0.0.1:9", "x"))
        answer = _forecast(ctx, "device", "d1")
        assert answer["forecast"] is None
        return answer["forecast_note"]

    assert note(ServeConfig()) == (
        "this service has no forecast models: set models_path in serve.toml"
    )
    with_models = ServeConfig(models_path=str(tmp_path))
    assert str(note(with_models)).startswith(
        "no model trained for this device: run `sensorpipe crowd train --device d1 "
    )
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lightgbm" else real(name, *a)
    )
    assert note(with_models) == (
        "the forecast extra is not installed: pip install 'sensorpipe[forecast]'"
    )


def test_an_influxdb_that_cannot_keep_the_forecast_leaves_the_alerts(
    trained: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from sensorpipe.crowd.live import SavedForecasts
    from sensorpipe.ingest.influx import InfluxClient

    _, fc, counts = trained
    save(fc, tmp_path, "area")
    down = httpx.MockTransport(lambda request: httpx.Response(503, text="starting"))
    client = InfluxClient("http://influx.invalid:8086", "x", transport=down)
    source = SavedForecasts(ModelCache(tmp_path), lambda *_: counts, client=lambda: client)
    origin = counts.time(8 * 168 + 30)
    street = AreaEntry(name="Queen St", kind="street", capacity=400, lines=LINES)
    points = source("site-1", street, (origin + HOUR_S + 125) * 1000)
    expected = forecast_points(fc, counts, "site-1", origin, street)["points"]
    assert [p.level for p in points] == [e["level"] for e in expected]  # training's interval
    said = caplog.text
    assert "the kept forecasts of area site-1 cannot be read" in said
    assert "the forecast of site-1 is not kept this hour: InfluxDB answered 503" in said
