"""An SPS30 and an SCD41 end to end: the byte-level simulators on a simulated Pi's I2C bus,
read by Sensirion's drivers in the real edge agent, through the real Mosquitto and ingest into
the real InfluxDB, and out of `/api/v1/air` and SensorThings as CO₂ in ppm and PM1/PM4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.serve import serve_config
from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded

pytestmark = pytest.mark.integration


def _stored(influx: InfluxClient, device: str) -> dict[str, dict[str, Any]]:
    series = influx.query(f"SELECT * FROM air WHERE device_id = '{device}' GROUP BY sensor")
    return {
        s["tags"]["sensor"]: dict(zip(s["columns"], s["values"][-1], strict=True)) for s in series
    }


def _classroom(stack: LocalStack, influx: InfluxClient, tmp_path: Path) -> None:
    """A simulated Pi with a BME280, an SPS30 and an SCD41 runs until both of the Sensirion
    sensors' readings are stored, then stops with nothing left in its outbox."""
    sensors = ["bme280", "sps30", "scd4x"]
    creds = stack.add_devices([("class-01", {"site": "school", "sensors": sensors})])
    fleet = Fleet(
        creds,
        broker_host="127.0.0.1",
        broker_port=stack.require_info().broker_port,
        workdir=tmp_path,
        interval_s=0.5,
        status_interval_s=2.0,
        sds011=False,
        sensirion=True,
    )
    fleet.start()
    try:
        wait_for(
            lambda: {"sps30", "scd4x"} <= set(_stored(influx, "class-01")),
            timeout_s=60,
            what="SPS30 and SCD41 readings stored",
        )
    finally:
        assert fleet.stop() == 0


def test_sps30_and_scd41_readings_reach_the_api(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    _classroom(stack, influx, tmp_path)
    stored = _stored(influx, "class-01")
    sps, scd = stored["sps30"], stored["scd4x"]
    assert 0 < sps["pm1"] <= sps["pm2_5"] <= sps["pm4"] <= sps["pm10"] < 1000
    assert 400 < scd["co2"] < 2000 and -10 < scd["temperature"] < 40

    config = serve_config(stack.directory, None, None, None, False)
    with TestClient(create_app(ApiContext(config))) as client:
        answer = client.get(
            "/api/v1/air",
            params={
                "device": "class-01",
                "quantity": ["co2", "pm4"],
                "every": "1h",
                "from": "-1h",
                "values": "raw",
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        by_sensor = {s["sensor"]: s for s in body["series"]}
        assert set(by_sensor) >= {"sps30", "scd4x"}, body["series"]
        co2 = [v for v in by_sensor["scd4x"]["values"]["co2"] if v is not None]
        pm4 = [v for v in by_sensor["sps30"]["values"]["pm4"] if v is not None]
        assert co2 and 400 < co2[-1] < 2000 and pm4 and 0 < pm4[-1] < 1000
        # Uncertainty from the SCD4x data sheet: ±(50 ppm + 5 % of the value)
        scd = by_sensor["scd4x"]
        shown = [
            (v, e)
            for v, e in zip(scd["values"]["co2"], scd["uncertainty"]["co2"], strict=True)
            if v
        ]
        assert shown and all(e == round(50 + 0.05 * v, 2) for v, e in shown)
        datastreams = client.get("/sta/v1.1/Datastreams", params={"$top": 100}).json()["value"]
        units = {d["name"]: d["unitOfMeasurement"]["symbol"] for d in datastreams}
        assert units["class-01 co2 (scd4x)"] == "ppm" and units["class-01 pm4 (sps30)"] == "µg/m3"


def test_the_dashboard_draws_a_co2_chart_for_a_device_that_measures_co2(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path, open_browser: Any
) -> None:
    _classroom(stack, influx, tmp_path)
    config = serve_config(stack.directory, None, None, None, False)
    with live_server(create_app(ApiContext(config))) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        b.page.goto(f"{base}/#device=class-01&range=24h")
        b.wait(READY)
        b.wait("#chart-co2[data-state=ready]")
        assert "CO₂ (ppm)" in b.page.locator("#chart-co2 figcaption").inner_text()
        co2 = [v for v in chart_data(b.page, "co2")[1] if v is not None]
        assert co2 and all(400 < v < 2000 for v in co2)
        assert b.errors == []


def test_sim_fleet_with_sensirion_sensors_loses_nothing(
    stack: LocalStack, influx: InfluxClient
) -> None:
    from tests.integration.test_cli_and_demo import sensorpipe

    d = str(stack.directory)
    args = ("sim", "fleet", "--dir", d, "--devices", "1", "--duration", "6", "--sensirion")
    fleet = sensorpipe(*args)
    assert ", 0 still in outboxes" in fleet.stdout, fleet.stdout
    (device,) = [
        r
        for r in json.loads(sensorpipe("devices", "list", "--dir", d, "--json").stdout)
        if r["device_id"].startswith("sim-")
    ]
    assert {"sps30", "scd4x"} <= set(device["sensors"])
    wait_for(
        lambda: {"sps30", "scd4x"} <= set(_stored(influx, device["device_id"])),
        what="the simulated SPS30 and SCD41 readings stored",
    )
