"""Forecasts a municipality can read now, on a real InfluxDB: nine weeks of counts of two
devices up to the last whole hour (each hour the count message a counting device sends, stored
by the ingest's own path), `crowd train` on a street area of both, an enclosed hall (its
inward direction only) and the devices, saved in a models folder; then `crowd forecast` and
/api/v1/areas/{id}/crowding and /api/v1/devices/{id}/crowding give the `forecast` field in the
shape the dashboard reads, and `forecast_note` where there is none."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.crowd.live import area_counts, device_counts, last_whole_hour
from sensorpipe.crowd.series import HOUR_S, iso, parse_time
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol.messages import ClassCount
from sensorpipe.protocol.registry import AreaEntry, AreaLine, DeviceEntry, Registry, save_registry
from tests.helpers import count_message, influx_rows, running_influxd
from tests.test_crowd_forecast import synthetic

pytestmark = pytest.mark.integration

IN, OUT = "left_to_right", "right_to_left"
RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
DEVICES = ["fc-a", "fc-b"]
WEEKS = 9
PLACE = ["--timezone", "Pacific/Auckland", "--country", "NZ", "--trees", "40"]
POINT_KEYS = {"horizon", "time", "flow", "low", "high", "level", "level_low", "level_high",
              "interval"}  # fmt: skip


def _area(kind: Literal["street", "enclosed"], capacity: int, lines: list[AreaLine]) -> AreaEntry:
    return AreaEntry(
        name=kind,
        kind=kind,
        capacity=capacity,
        lines=lines,
        country="NZ",
        timezone="Pacific/Auckland",
    )


def _registry() -> Registry:
    devices = {d: DeviceEntry(site="x", password_hash="x") for d in DEVICES}
    strip = _area("street", 1000, [AreaLine(device=d) for d in DEVICES])
    hall = _area("enclosed", 80, [AreaLine(device="fc-a", inward=[IN], outward=[OUT])])
    lone = _area("street", 10, [AreaLine(device="fc-b")])
    return Registry(devices=devices, areas={"strip": strip, "hall": hall, "lone": lone})


def _lines(values: np.ndarray, start: int) -> list[str]:
    lines = []
    for s, device in enumerate(DEVICES):
        for i in range(len(values)):
            half = int(values[i, s]) // 2
            counts = [
                ClassCount(count_class="pedestrian", direction=IN, count=half),
                ClassCount(count_class="pedestrian", direction=OUT, count=int(values[i, s]) - half),
                ClassCount(count_class="cyclist", direction=IN, count=3),  # not the crowd's
            ]
            t = datetime.fromtimestamp(start + i * HOUR_S, UTC)
            message = count_message(device, i + 1, t, counts)
            lines += [to_line(p) for p in message_points(message, "x", RECEIPT)]
    return lines


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pytest.importorskip("lightgbm")
    set_up = time.time()
    last = last_whole_hour(set_up)  # counts up to the last hour that has ended
    c = synthetic(WEEKS, 2, start="2024-06-03T00:00", seed=3)
    start = last - (c.hours - 1) * HOUR_S
    with running_influxd(tmp_path_factory, "forecastlive", "x") as (influxd, root):
        with closing(InfluxClient(influxd.url, "x")) as client:
            client.write(_lines(c.values, start))
        stack = root / "st"
        stack.mkdir()
        save_registry(_registry(), stack / "registry.toml")
        models = root / "models"
        until = iso(last - 6 * 24 * HOUR_S)
        base = ["--dir", str(stack), "--influx-url", influxd.url, "--database", "x"]
        base += ["--models", str(models), "--train-until", until, "--trees", "40", "--json"]
        base += ["--horizon", "1h", "--horizon", "3h"]
        runner = CliRunner()
        trained = {}
        for what in (
            ["--area", "strip", "--area", "hall"],  # their time zone and country: the areas'
            ["--device", "fc-a", "--device", "fc-b", *PLACE],
        ):
            result = runner.invoke(main, ["crowd", "train", *what, *base])
            assert result.exit_code == 0, result.output
            trained[what[0]] = json.loads(result.stdout)
        config = ServeConfig(
            registry_path=str(stack / "registry.toml"),
            models_path=str(models),
            influx=InfluxSettings(url=influxd.url, database="x"),
        )
        # The API's clock stays at the set-up: its forecasts are made at the end of `last`
        # however long the tests take, an hour ending among them included.
        context = ApiContext(config, clock=lambda: set_up)
        api = TestClient(create_app(context), raise_server_exceptions=False)
        yield {"url": influxd.url, "api": api, "stack": stack, "models": models, "config": config,
               "trained": trained, "until": until, "start": start, "values": c.values,
               "last": last, "set_up": set_up}  # fmt: skip


def test_train_saves_each_horizon_and_the_settings(world: dict[str, Any]) -> None:
    trained = world["trained"]
    assert trained["--area"]["areas"] == ["hall", "strip"]
    assert trained["--device"]["devices"] == DEVICES
    assert trained["--area"]["trained_until"] == world["until"]
    folder = Path(trained["--area"]["saved"])
    assert folder.parent == world["models"]
    assert sorted(p.name for p in folder.iterdir()) == ["h1.txt", "h3.txt", "model.json"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["kind"] == "area" and meta["settings"]["trees"] == 40
    assert meta["where"] == {"timezone": "Pacific/Auckland", "country": "NZ", "subdiv": None}
    assert meta["intervals"]["1"]["low"] < 0 < meta["intervals"]["1"]["high"]


def test_an_areas_counts_are_its_devices_summed(world: dict[str, Any]) -> None:
    registry = _registry()
    t0, t1 = world["start"], world["start"] + 200 * HOUR_S
    with closing(InfluxClient(world["url"], "x")) as client:
        devices = device_counts(client, DEVICES, t0, t1)
        areas = area_counts(client, registry, ["strip", "hall"], t0, t1)
    assert areas.kind == "area" and areas.names == ["hall", "strip"]
    pedestrians = world["values"][:200]
    np.testing.assert_array_equal(areas.values[:, 1], pedestrians.sum(axis=1))  # no cyclists
    np.testing.assert_array_equal(areas.values[:, 0], pedestrians[:, 0] // 2)  # inward only
    np.testing.assert_array_equal(devices.values, pedestrians)  # a device: its pedestrians


def _forecast(world: dict[str, Any], path: str) -> dict[str, Any]:
    answer = world["api"].get(f"/api/v1/{path}/crowding").json()
    return answer


def _check_shape(forecast: dict[str, Any], trained_until: str) -> None:
    assert set(forecast) == {"made_at", "trained_until", "points"}
    made = parse_time(forecast["made_at"])
    assert made % HOUR_S == 0 and forecast["trained_until"] == trained_until
    assert [p["horizon"] for p in forecast["points"]] == ["1h", "3h"]
    assert [p["time"] for p in forecast["points"]] == [iso(made), iso(made + 2 * HOUR_S)]
    for p in forecast["points"]:
        assert set(p) == POINT_KEYS
        assert 0 <= p["low"] <= p["flow"] <= p["high"]


def test_the_api_forecasts_a_street_area_with_its_level(world: dict[str, Any]) -> None:
    answer = _forecast(world, "areas/strip")
    assert answer["forecast_note"] is None
    _check_shape(answer["forecast"], world["until"])
    for p in answer["forecast"]["points"]:
        assert p["level"] == pytest.approx(p["flow"] / 1000, abs=1e-3)
        assert p["level_low"] <= p["level"] <= p["level_high"]
    assert world["api"].get("/api/v1/areas/strip/crowding").json()["forecast"] == answer["forecast"]


def test_an_answer_is_of_one_moment_when_an_hour_ends_while_it_is_made(
    world: dict[str, Any],
) -> None:
    # The clock reads a second before the end of the last stored hour first, a second after
    # it from then on: the observed hours and the forecast are of the first reading (the
    # hour that ends meanwhile is neither observed nor forecast from, not both left out).
    end = world["last"] + HOUR_S
    readings = iter([end - 1.0])
    context = ApiContext(world["config"], clock=lambda: next(readings, end + 1.0))
    api = TestClient(create_app(context), raise_server_exceptions=False)
    for path in ("areas/strip", "devices/fc-a"):
        answer = api.get(f"/api/v1/{path}/crowding").json()
        observed, forecast = answer["observed"], answer["forecast"]
        assert answer["to"] == forecast["made_at"] == iso(world["last"])
        assert parse_time(observed[-1]["time"]) == world["last"] - HOUR_S
        assert forecast["points"][0]["time"] == iso(world["last"])
        readings = iter([end - 1.0])


def test_an_enclosed_area_has_its_inward_flow_and_no_level(world: dict[str, Any]) -> None:
    answer = _forecast(world, "areas/hall")
    _check_shape(answer["forecast"], world["until"])
    assert all(p["level"] is None for p in answer["forecast"]["points"])
    assert "occupancy forecasts are not built" in answer["forecast_note"]


def test_a_device_and_an_area_without_a_model(world: dict[str, Any]) -> None:
    device = _forecast(world, "devices/fc-a")
    _check_shape(device["forecast"], world["until"])
    assert all(p["level"] is None for p in device["forecast"]["points"])
    lone = _forecast(world, "areas/lone")
    assert lone["forecast"] is None
    # an area's place is the registry's: the command the note gives needs no --timezone
    assert lone["forecast_note"] == (
        "no model trained for this area: run `sensorpipe crowd train --area lone --train-until now`"
    )


def test_crowd_forecast_prints_each_horizon_and_the_thresholds(world: dict[str, Any]) -> None:
    base = ["--dir", str(world["stack"]), "--influx-url", world["url"], "--database", "x"]
    base += ["--models", str(world["models"])]
    result = CliRunner().invoke(main, ["crowd", "forecast", "--area", "strip", *base])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("area strip: forecast made at ")
    assert "reaches" in lines[1]
    assert [line.split()[0] for line in lines[2:4]] == ["1h", "3h"]
    # each column under its header: what the level reaches starts where "reaches" does
    col = lines[1].index("reaches")
    for row in lines[2:4]:
        assert row[col - 1] == " " and row[col] != " " and "up to none" not in row
    assert lines[4:] == ["80% interval: 1h from training, 3h from training"]
    result = CliRunner().invoke(main, ["crowd", "forecast", "--device", "fc-b", "--json", *base])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["device"] == "fc-b" and answer["forecast_note"] is None
    _check_shape(answer["forecast"], world["until"])
    result = CliRunner().invoke(main, ["crowd", "forecast", "--area", "lone", *base])
    assert result.exit_code == 1
    assert "--area lone: no model trained in" in result.output


def test_the_ingests_alert_job_gets_forecast_levels_from_influxdb(world: dict[str, Any]) -> None:
    from sensorpipe.crowd.live import saved_forecasts

    registry = _registry()
    with closing(InfluxClient(world["url"], "x")) as client:
        source = saved_forecasts(
            str(world["models"]), world["stack"] / "registry.toml", lambda: client
        )
        assert source is not None
        now_ms = int(world["set_up"] * 1000)  # its counts end with the hour ended then
        strip = source("strip", registry.areas["strip"], now_ms)
        assert source("hall", registry.areas["hall"], now_ms) == []
    assert [p.kind for p in strip] == ["forecast", "forecast"]
    assert [p.horizon_s for p in strip] == [HOUR_S, 3 * HOUR_S]
    assert all(p.level is not None and p.level > 0 for p in strip)
    assert saved_forecasts(None, world["stack"] / "registry.toml", lambda: client) is None


def test_the_alert_job_keeps_each_forecast_once_as_it_is_made(world: dict[str, Any]) -> None:
    from sensorpipe.crowd.forecaststore import stored
    from sensorpipe.crowd.live import saved_forecasts

    registry = _registry()
    strip = registry.areas["strip"]
    last = world["last"]
    with closing(InfluxClient(world["url"], "x")) as client:

        def source() -> Any:
            made = saved_forecasts(
                str(world["models"]), world["stack"] / "registry.toml", lambda: client
            )
            assert made is not None
            return made

        now_ms = int(world["set_up"] * 1000)
        first = source()
        levels = first("strip", strip, now_ms)
        first("strip", strip, now_ms)  # the job's next run in the same hour
        source()("strip", strip, now_ms)  # and after a restart: the same points again
        window = f"time >= {(last + HOUR_S) * 1000}ms AND time <= {(last + 3 * HOUR_S) * 1000}ms"
        rows = influx_rows(
            client,
            f"SELECT * FROM crowd_forecast WHERE \"area\" = 'strip' AND {window} GROUP BY *",
        )
        # A forecast made five hours before the set-up: of hours that have ended since.
        past = source()("strip", strip, now_ms - 5 * HOUR_S * 1000)
        kept = stored(client, "area", "strip", last - 4 * HOUR_S, last - 2 * HOUR_S)
    assert sorted((r["horizon"], r["time"]) for r in rows) == [
        ("1h", (last + HOUR_S) * 1000),
        ("3h", (last + 3 * HOUR_S) * 1000),
    ]
    per_hour = 1000  # the strip's capacity, per hour
    for r, level in zip(rows, levels, strict=True):
        assert r["made_at"] == (last + HOUR_S) * 1000
        assert r["trained_until"] == (parse_time(world["until"])) * 1000
        assert r["interval"] == "from training"
        assert 0 <= r["low"] <= r["forecast"] <= r["high"]
        assert r["forecast"] / per_hour == pytest.approx(level.level, abs=2e-4)
    assert sorted(kept) == [1, 3]
    assert list(kept[1]) == [last - 4 * HOUR_S] and list(kept[3]) == [last - 2 * HOUR_S]
    assert [kept[1][last - 4 * HOUR_S], kept[3][last - 2 * HOUR_S]] == pytest.approx(
        [p.level * per_hour for p in past], abs=0.2
    )


def test_the_interval_is_the_rolling_one_where_enough_forecasts_were_kept(
    world: dict[str, Any],
) -> None:
    from sensorpipe.crowd.forecaststore import forecast_lines

    last, rng = world["last"], np.random.default_rng(11)
    with closing(InfluxClient(world["url"], "x")) as client:
        observed = area_counts(client, _registry(), ["hall"], last - 30 * 86400, last + HOUR_S)
        # Kept forecasts of the hall: 28 days of 1 h ones, only 10 days of 3 h ones (too few),
        # and 1 h ones of hours not yet ended at the forecast's making (never read).
        errors, points = [], []
        for i in range(28 * 24 + 5):
            t = last - (28 * 24 - 1) * HOUR_S + i * HOUR_S
            count = float(observed.values[observed.row(t), 0]) if t <= last else 0.0
            f = round(max(0.0, count * (1 + 0.2 * float(rng.normal()))), 1)
            if t <= last:
                errors.append((count - f) / np.sqrt(f + 1))
            points.append({"horizon": "1h", "time": iso(t), "flow": f, "low": 0.0, "high": f})
            if t > last - 10 * 86400:
                points.append({"horizon": "3h", "time": iso(t), "flow": f, "low": 0, "high": f})
        client.write(
            forecast_lines(
                "area", "hall", {"made_at": iso(last), "trained_until": world["until"],
                                 "points": points},
            )
        )  # fmt: skip
    context = ApiContext(world["config"], clock=lambda: world["set_up"])
    api = TestClient(create_app(context), raise_server_exceptions=False)
    answer = api.get("/api/v1/areas/hall/crowding").json()["forecast"]
    _check_shape(answer, world["until"])
    p1, p3 = answer["points"]
    assert p1["interval"] == f"rolling 28 days (n={28 * 24})"
    low, high = np.quantile(errors, [0.1, 0.9])
    scale = np.sqrt(p1["flow"] + 1)
    assert p1["low"] == pytest.approx(max(0.0, p1["flow"] + low * scale), abs=0.2)
    assert p1["high"] == pytest.approx(p1["flow"] + high * scale, abs=0.2)
    assert p3["interval"] == "from training"
    trained = json.loads((Path(world["trained"]["--area"]["saved"]) / "model.json").read_text())
    q3 = trained["intervals"]["3"]
    scale3 = np.sqrt(p3["flow"] + 1)
    assert p3["high"] == pytest.approx(p3["flow"] + q3["high"] * scale3, abs=0.2)
