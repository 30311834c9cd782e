"""Quality flags on the real stack: a device sends readings at 75 % and 99 % relative humidity
and a stuck run through Mosquitto; the ingest stores the flags beside the raw values, with the
thresholds of the stack's ingest.toml's [quality] section (kept by `stack up`), and `query
air` answers as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import AirMessage, Reading
from sensorpipe.quality.flags import QC_VERSION
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.flagged_device import flagging_stack
from tests.integration.mqtt_helpers import BASE_TIME, TestDevice, air_message

# (pm2_5, relative humidity) per message; the last three PM values are one stuck run of 3.
SENT = [(12.0, 75.0), (13.0, 99.0), (8.0, 50.0), (8.0, 50.0), (8.0, 50.0)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with flagging_stack(tmp_path / "stack") as s:
        yield s


def _message(seq: int, pm2_5: float, rh: float) -> AirMessage:
    base = air_message("qc-01", seq, pm2_5=pm2_5, observed_at=BASE_TIME + timedelta(minutes=seq))
    readings = [
        *base.readings,
        Reading(quantity="temperature", value=11.0, unit="degC", sensor="bme280"),
        Reading(quantity="relative_humidity", value=rh, unit="%", sensor="bme280"),
    ]
    return base.model_copy(update={"readings": readings})


def _rows(influx: InfluxClient, device: str, sensor: str | None = None) -> list[dict[str, Any]]:
    """The air points of `device` (of one `sensor`), oldest first, as column -> value."""
    which = f" AND sensor = '{sensor}'" if sensor else ""
    series = influx.query(f"SELECT * FROM air WHERE device_id = '{device}'{which} ORDER BY time")
    return [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]


def test_stored_points_carry_the_flags_beside_the_raw_values(stack: LocalStack) -> None:
    info = stack.require_info()
    (creds,) = stack.add_devices([("qc-01", {"site": "s", "sensors": ["sds011", "bme280"]})])
    device = TestDevice(creds, info.broker_port)
    try:
        for seq, (pm2_5, rh) in enumerate(SENT, start=1):
            assert not device.send(_message(seq, pm2_5, rh)).is_failure
    finally:
        device.close()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        wait_for(lambda: len(_rows(influx, "qc-01", "sds011")) == 5, what="5 points")
        pm = _rows(influx, "qc-01", "sds011")
        weather = _rows(influx, "qc-01", "bme280")
    finally:
        influx.close()

    assert [r["pm2_5"] for r in pm] == [12.0, 13.0, 8.0, 8.0, 8.0]  # raw, unchanged
    assert [r["pm10"] for r in pm] == [18.0, 19.5, 12.0, 12.0, 12.0]
    assert [r["qc_pm2_5"] for r in pm] == ["humidity", "fog,humidity", None, None, "stuck"]
    # pm10 keeps the default run of 30: humid and foggy, not stuck
    assert [r["qc_pm10"] for r in pm] == ["humidity", "fog,humidity", None, None, None]
    assert {r["qc"] for r in pm + weather} == {QC_VERSION}  # every point checked, flagged or not
    assert [r["relative_humidity"] for r in weather] == [75.0, 99.0, 50.0, 50.0, 50.0]
    assert all(r.get("qc_relative_humidity") is None for r in weather)

    # `stack up` kept the section, and `query air` answers with the values, as before
    assert "stuck_readings = 3" in (stack.directory / "ingest" / "ingest.toml").read_text()
    start = (BASE_TIME).isoformat()
    answer = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(stack.directory), "--device", "qc-01",
            "--from", start, "--format", "json",
        ],
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    rows = json.loads(answer.output)
    assert sorted(r["pm2_5"] for r in rows if r.get("pm2_5") is not None) == [
        8.0, 8.0, 8.0, 12.0, 13.0,
    ]  # fmt: skip


def test_an_import_is_flagged_by_the_stacks_quality_section(
    stack: LocalStack, tmp_path: Path
) -> None:
    ride = tmp_path / "ride.csv"
    ride.write_text(
        "time,latitude,longitude,pm2_5,humidity\n"
        "2024-05-04T09:00:00Z,52.3702,4.8952,8.1,99\n"
        "2024-05-04T09:01:00Z,52.3708,4.8961,8.1,75\n"
        "2024-05-04T09:02:00Z,52.3715,4.8973,8.1,50\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["import", "track", str(ride), "--track-id", "b1", "--dir", str(stack.directory)]
    )
    assert result.exit_code == 0, result.output
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        got = _rows(influx, "track-b1")
    finally:
        influx.close()
    assert [r["pm2_5"] for r in got] == [8.1, 8.1, 8.1]
    # stuck_readings = 3 from the stack's ingest.toml, as the live ingest judges
    assert [r["qc_pm2_5"] for r in got] == ["fog,humidity", "humidity", "stuck"]
    assert {r["qc"] for r in got} == {QC_VERSION}
