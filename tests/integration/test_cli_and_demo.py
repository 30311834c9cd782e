"""The commands a person types: stack, devices, query, dead letters, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.stack.demo import run_demo
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice, air_message


def sensorpipe(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sensorpipe", *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sensorpipe {' '.join(args)} failed:\n{result.stderr}")
    return result


def test_stack_devices_query_and_deadletter_commands(tmp_path: Path) -> None:
    d = str(tmp_path / "stack")
    up = json.loads(sensorpipe("stack", "up", "--dir", d, "--json").stdout)
    try:
        assert up["mqtt"]["port"] > 0 and up["influx"]["url"].startswith("http://127.0.0.1:")
        again = sensorpipe("stack", "up", "--dir", d, check=False)
        assert again.returncode != 0 and "already running" in again.stderr

        creds = json.loads(
            sensorpipe(
                "devices",
                "add",
                "school-roof",
                "--dir",
                d,
                "--site",
                "oost",
                "--json",
                "--make-key",
            ).stdout
        )
        assert creds["device_id"] == "school-roof" and creds["private_key"]
        duplicate = sensorpipe("devices", "add", "school-roof", "--dir", d, check=False)
        assert "already registered" in duplicate.stderr

        device = TestDevice(
            DeviceCredentials(
                **{
                    k: creds[k]
                    for k in ("device_id", "username", "password", "private_key", "public_key")
                }
            ),
            up["mqtt"]["port"],
        )
        device.send(air_message("school-roof", 1, pm2_5=21.0))
        device.publish("sensorpipe/v1/school-roof/air", b"not json at all")
        device.close()

        def rows() -> list[dict[str, Any]]:
            out = sensorpipe(
                "query",
                "--dir",
                d,
                "--device",
                "school-roof",
                "--from",
                "-3h",
                "--quantity",
                "pm2_5",
                "--format",
                "json",
            ).stdout
            return list(json.loads(out))

        (row,) = wait_for(rows, what="the stored reading via `sensorpipe query`")
        assert row["device_id"] == "school-roof" and row["site"] == "oost"
        assert row["pm2_5"] == 21.0

        # An empty answer says why: an unknown device is an error, an empty range a message.
        unknown = sensorpipe("query", "--dir", d, "--device", "school-rof", check=False)
        assert unknown.returncode == 1
        assert "unknown device 'school-rof'" in unknown.stderr
        assert "those with readings: school-roof" in unknown.stderr
        empty = sensorpipe(
            "query",
            "--dir",
            d,
            "--device",
            "school-roof",
            "--from",
            "2020-01-01",
            "--to",
            "2020-01-02",
        )
        assert empty.stdout == ""
        assert "no air readings match these filters from 2020-01-01 to 2020-01-02" in empty.stderr

        letters = json.loads(sensorpipe("ingest", "rejects", "--dir", d, "--json").stdout)
        assert letters["counts"] == {"malformed_json": 1}
        assert letters["letters"][0]["payload"] == "not json at all"

        status = json.loads(sensorpipe("stack", "status", "--dir", d, "--json").stdout)
        assert all(c["running"] for c in status["components"].values())
        assert status["components"]["ingest"]["stats"]["rejected"] == 1

        fleet = sensorpipe("sim", "fleet", "--dir", d, "--devices", "2", "--duration", "3")
        assert "still in outboxes" in fleet.stdout and ", 0 still in outboxes" in fleet.stdout
        registered = json.loads(sensorpipe("devices", "list", "--dir", d, "--json").stdout)
        sims = [r["device_id"] for r in registered if r["device_id"].startswith("sim-")]
        assert len(sims) == 2

        def sim_rows() -> list[str]:
            out = sensorpipe(
                "query",
                "--dir",
                d,
                "--site",
                "sim-site-1",
                "--site",
                "sim-site-2",
                "--every",
                "1m",
                "--format",
                "csv",
            ).stdout
            return out.splitlines()[1:]

        lines = wait_for(sim_rows, what="simulated devices' data via `sensorpipe query`")
        assert {line.split(",")[1] for line in lines} == set(sims)

        bad_query = sensorpipe("query", "--dir", d, "--quantity", "pm25", check=False)
        assert bad_query.returncode != 0 and "did you mean 'pm2_5'" in bad_query.stderr
    finally:
        down = sensorpipe("stack", "down", "--dir", d)
    assert "ingest" in down.stdout and "mosquitto" in down.stdout
    status = sensorpipe("stack", "status", "--dir", d, check=False)
    assert status.returncode != 0 and "stack up" in status.stderr


def test_hostile_names_round_trip_through_a_real_influxd(
    stack: LocalStack, influx: InfluxClient
) -> None:
    tags = {"site": "Oude Gracht, Utrecht=centrum ✓", "device_id": 'we"ird'}
    fields: dict[str, float | int | bool | str] = {
        "note": 'say "hi" \\ bye, ok=yes',
        "v": 1.5,
    }
    influx.write([to_line(Point("hostile test", tags, fields, 1_790_000_000_000))])
    (series,) = influx.query('SELECT * FROM "hostile test"')
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row["site"] == tags["site"] and row["device_id"] == tags["device_id"]
    assert row["note"] == fields["note"] and row["v"] == 1.5


def test_demo_accounts_for_every_message(tmp_path: Path) -> None:
    summary = run_demo(
        devices=2, duration_s=6, fault_every_s=1.0, say=lambda _m: None, directory=tmp_path
    )
    assert summary.published > 10
    # One defective message a second, every one of them dead-lettered, nothing else.
    assert sum(summary.defective_sent.values()) >= 5
    assert summary.rejected == sum(summary.defective_sent.values())
    assert summary.lost == 0
    assert summary.stored == summary.published - summary.rejected
    assert summary.pending_in_outboxes == 0
    from sensorpipe.cli.demo import demo_totals_line

    line = demo_totals_line(summary)
    assert f"published {summary.published}" in line and "still in device outboxes 0" in line
    summary.pending_in_outboxes = 7
    assert "still in device outboxes 7 (not lost" in demo_totals_line(summary)
    assert summary.query and {r["device_id"] for r in summary.query} == {"sim-001", "sim-002"}


def test_the_demo_table_shows_each_sensor_once_with_what_it_measures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary's table: each device's sensors as last seen, one row each, with a column
    for every quantity they measure (PM1 of the PMS5003, the garden's soil moisture and soil
    temperature), none for a quantity nobody measured."""
    from sensorpipe.cli.demo import _print_summary

    summary = run_demo(devices=2, duration_s=8, say=lambda _m: None, directory=tmp_path)
    _print_summary(summary, as_json=False)
    table = capsys.readouterr().out.split("latest per-minute means from InfluxDB:\n")[1]
    header, _rule, *rows = table.strip().splitlines()
    assert header.split() == [
        "time", "device_id", "site", "sensor", "pm1", "pm2_5", "pm10",
        "temperature", "relative_humidity", "soil_moisture", "soil_temperature",
    ]  # fmt: skip
    sensors = [tuple(row.split()[1:4:2]) for row in rows]
    assert len(sensors) == len(set(sensors))  # one row per device and sensor
    assert {s for _device, s in sensors} >= {"pms5003", "sds011", "soil_probe", "ds18b20"}


@pytest.mark.timeout(300)  # several minutes on a busy machine (make test's workers)
def test_the_demo_with_its_defaults_loses_nothing_and_exits_0(tmp_path: Path) -> None:
    """`make demo` as a newcomer runs it: `sensorpipe demo` with its default duration (60 s)
    and devices. The misbehaving device sends the same malformed bytes more than once in that
    time; the store keeps them as one letter with repeats, and the demo counts messages."""
    run = subprocess.run(
        [sys.executable, "-m", "sensorpipe", "demo", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["duration_s"] >= 60 and summary["devices"] == 5
    assert summary["lost"] == 0 and summary["pending_in_outboxes"] == 0
    assert summary["rejected"] == sum(summary["defective_sent"].values()) > 0
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"]
    assert summary["stored"] == summary["published"] - summary["rejected"]
