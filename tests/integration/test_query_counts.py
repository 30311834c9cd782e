"""`sensorpipe query counts`, `query air` and `devices export` over a real InfluxDB holding two
days of simulated history: every number printed is checked against the points written."""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result

from sensorpipe.cli.main import main
from sensorpipe.firmware_sim.history import (
    HistoryDevice,
    device_points,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.lineprotocol import Point
from sensorpipe.protocol import storage
from sensorpipe.protocol.registry import save_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import count_sums, running_stack

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Two days of history have an outage of about 29 minutes: some quarter hours hear nothing.
QUARTER_MS = 15 * 60_000


@dataclass
class World:
    stack: LocalStack
    devices: list[HistoryDevice]
    points: dict[str, list[Point]]
    start_ms: int
    end_ms: int

    @property
    def dir(self) -> str:
        return str(self.stack.directory)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "counts") as (stack, info):
        devices = history_devices(2, 2)
        registry = stack.registry()
        register_history_devices(registry, devices)
        registry.devices["hist-count-001"].owner = '<script>alert("x")</script>'
        save_registry(registry, stack.registry_path)
        from sensorpipe.ingest.influx import InfluxClient

        influx = InfluxClient(info.influx_url, info.database)
        # Two days that end on a whole hour before now, so every interval is whole.
        end_ms = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS
        start_ms = end_ms - 2 * DAY_MS
        write_history(influx, devices, start_ms, end_ms)
        influx.close()
        points = {d.device_id: list(device_points(d, start_ms, end_ms)) for d in devices}
        yield World(stack, devices, points, start_ms, end_ms)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def sensorpipe(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _counts(world: World, *args: str) -> Result:
    return sensorpipe(
        "query", "counts", "--dir", world.dir, "--from", _iso(world.start_ms), "--to",
        _iso(world.end_ms), *args,
    )  # fmt: skip


def _expected(
    world: World, device: str, every_ms: int = QUARTER_MS
) -> tuple[dict[tuple[str, str, int], int], dict[int, float]]:
    """Sums per (class, direction, interval) and seconds run per interval, from the points
    written."""
    return count_sums(world.points[device], every_ms)


def test_counts_are_the_sums_written_with_the_running_fraction(world: World) -> None:
    result = _counts(world, "--every", "15m", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    counters = [d.device_id for d in world.devices if d.counting]
    assert {r["device_id"] for r in records} == set(counters)
    # Two counters x 192 quarter hours x five classes x two directions.
    assert len(records) == 2 * 192 * 10
    for device in counters:
        sums, running = _expected(world, device)
        mine = [r for r in records if r["device_id"] == device]
        for r in mine:
            hour = _ms(r["time"])
            assert r["count"] == sums.get((r["class"], r["direction"], hour)), r
            run = running.get(hour)
            if run is None:
                assert r["running_fraction"] is None
            else:
                assert r["running_fraction"] == pytest.approx(min(1.0, run / 900))
        assert any(r["running_fraction"] is None for r in mine)  # the outage
        assert any(0 < (r["running_fraction"] or 1) < 1 for r in mine)  # the slow recovery
        total = sum(v for (_, _, h), v in sums.items() if world.start_ms <= h < world.end_ms)
        assert sum(r["count"] or 0 for r in mine) == total


def test_csv_with_filters_and_a_daily_interval_parses_back(world: World) -> None:
    device = next(d for d in world.devices if d.counting)
    result = _counts(
        world, "--site", device.site, "--device", device.device_id, "--class", "cyclist",
        "--direction", "left_to_right", "--every", "1d", "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {(r["class"], r["direction"], r["device_id"]) for r in rows} == {
        ("cyclist", "left_to_right", device.device_id)
    }
    sums, _ = _expected(world, device.device_id)
    by_day: dict[int, int] = {}
    for (cls, direction, hour), value in sums.items():
        if (cls, direction) == ("cyclist", "left_to_right"):
            day = hour // DAY_MS * DAY_MS
            by_day[day] = by_day.get(day, 0) + value
    # The range need not start at midnight: the first and last days are partial.
    assert {_ms(r["time"]): int(r["count"]) for r in rows} == by_day


def test_the_table_flags_intervals_the_counter_did_not_run_whole(world: World) -> None:
    device = next(d for d in world.devices if d.counting).device_id
    result = _counts(
        world, "--device", device, "--class", "car", "--direction", "right_to_left",
        "--every", "15m",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _, running = _expected(world, device)
    partial = {h for h, run in running.items() if run < 900}
    silent = {h for h in range(world.start_ms, world.end_ms, QUARTER_MS) if h not in running}
    assert partial and silent
    lines = result.stdout.splitlines()[2:]
    assert len(lines) == 192
    for line in lines:
        hour = _ms(line.split()[0])
        if hour in silent:
            assert line.rstrip().endswith("counter did not report"), line
        elif hour in partial:
            assert "of the interval" in line and "counter ran" in line, line
        else:
            assert "counter" not in line, line
    assert "running_fraction is the share" in result.stderr


def test_too_many_points_and_unknown_names_are_one_line_errors(world: World) -> None:
    big = _counts(world, "--every", "1m", "--max-points", "1000")
    assert big.exit_code == 1
    assert big.output.count("\n") == 1
    assert "more than the 1,000 one answer may hold" in big.output
    assert "or raise --max-points" in big.output
    unknown = _counts(world, "--device", "hist-count-999")
    assert unknown.exit_code == 1 and unknown.output.count("\n") == 1
    assert (
        "unknown device 'hist-count-999': database 'sensorpipe' holds no counts from it "
        "(those with counts: hist-count-000, hist-count-001)"
    ) in unknown.output
    air_only = _counts(world, "--device", "hist-air-000")  # registered: not "unknown"
    assert air_only.exit_code == 0, air_only.output
    assert "device 'hist-air-000': registered, no counts from it yet" in air_only.output
    site = _counts(world, "--site", "nowhere")
    assert "unknown site 'nowhere'" in site.output and "count-site-00" in site.output


def test_query_air_and_the_old_spelling_give_the_stored_hourly_mean(world: World) -> None:
    device = next(d for d in world.devices if not d.counting).device_id
    hour = world.start_ms + 5 * HOUR_MS
    args = [
        "--dir", world.dir, "--device", device, "--quantity", "pm2_5", "--from", _iso(hour),
        "--to", _iso(hour + HOUR_MS), "--every", "1h", "--agg", "mean", "--format", "csv",
    ]  # fmt: skip
    new = sensorpipe("query", "air", *args)
    old = sensorpipe("query", *args)
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert new.stdout == old.stdout
    (row,) = list(csv.DictReader(io.StringIO(new.stdout)))
    values = [
        float(p.fields["pm2_5"])
        for p in world.points[device]
        if p.measurement == storage.AIR
        and "pm2_5" in p.fields
        and hour <= p.time_ms < hour + HOUR_MS
    ]
    assert len(values) == 60
    # CSV: the unit in the header, the value to 0.1 µg/m³ (query.output).
    assert float(row["pm2_5_ugm3"]) == pytest.approx(statistics.mean(values), abs=0.05)
    as_json = json.loads(sensorpipe("query", "air", *args[:-1], "json").stdout)
    assert as_json[0]["pm2_5"] == pytest.approx(statistics.mean(values))


def test_devices_export_adds_what_influxdb_knows(world: World) -> None:
    result = sensorpipe("devices", "export", "--dir", world.dir)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr
    records = {r["device_id"]: r for r in json.loads(result.stdout)}
    assert set(records) == {d.device_id for d in world.devices}
    for device in world.devices:
        r = records[device.device_id]
        links = [p for p in world.points[device.device_id] if p.measurement == storage.LINK]
        assert r["first_seen"] == _iso(links[0].time_ms)
        assert r["last_seen"] == _iso(links[-1].time_ms)
        assert r["messages_7d"] == len(links)
        assert r["missing_7d"] == sum(int(p.fields.get("seq_gap", 0)) for p in links) > 0
        latencies = [float(p.fields["latency_ms"]) for p in links]
        assert r["median_latency_ms_7d"] == pytest.approx(statistics.median(latencies))
        assert 0 < r["uptime_24h"] <= 1 and 0 < r["uptime_7d"] <= 1
        assert r["counts"] is device.counting
        assert r["location"] == {
            "lat": round(device.lat, 3),
            "lon": round(device.lon, 3),
            "precision_decimals": 3,
        }


def test_devices_export_geojson_csv_and_html_with_the_stack(world: World) -> None:
    geo = json.loads(
        sensorpipe("devices", "export", "--dir", world.dir, "--format", "geojson").stdout
    )
    assert geo["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in geo["features"]}
    for device in world.devices:
        feature = by_id[device.device_id]
        assert feature["geometry"]["coordinates"] == [round(device.lon, 3), round(device.lat, 3)]
        assert feature["properties"]["first_seen"] is not None
    rows = list(
        csv.DictReader(
            io.StringIO(
                sensorpipe("devices", "export", "--dir", world.dir, "--format", "csv").stdout
            )
        )
    )
    assert {r["device_id"] for r in rows} == {d.device_id for d in world.devices}
    assert all(r["uptime_7d"] and float(r["uptime_7d"]) > 0 for r in rows)
    for lang, heading, seen in (
        ("en", "Processes personal data", "Last seen"),
        ("nl", "Verwerkt persoonsgegevens", "Laatst gezien"),
    ):
        page = sensorpipe(
            "devices", "export", "--dir", world.dir, "--format", "html", "--lang", lang
        ).stdout
        for device in world.devices:
            assert f'<article id="device-{device.device_id}">' in page
        assert heading in page and seen in page
        assert "<script" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
