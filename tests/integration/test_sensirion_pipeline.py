"""An SPS30 and an SCD41 end to end: the byte-level simulators on a simulated Pi's I2C bus,
read by Sensirion's drivers in the real edge agent, through the real Mosquitto and ingest into
the real InfluxDB, and out of `/api/v1/air` and SensorThings as CO₂ in ppm and PM1/PM4. And an
SPS30 on its UART (the SHDLC simulator on a pty) with its number concentrations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.serve import serve_config
from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import SensorConfig, open_driver
from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.firmware_sim.sps30_uart import Sps30ShdlcDevice, Sps30UartSimulator
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser
from tests.integration.test_edge_failures import RunningAgent

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
    # Its number concentrations too (I2C float output): particles of 0.3 µm up to each size.
    assert 0 < sps["number_pm0_5"] <= sps["number_pm2_5"] <= sps["number_pm10"] <= 3000
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


def test_sim_fleet_with_a_uart_sps30_stores_its_number_concentrations(
    stack: LocalStack, influx: InfluxClient
) -> None:
    from tests.integration.test_cli_and_demo import sensorpipe

    d = str(stack.directory)
    args = ("sim", "fleet", "--dir", d, "--devices", "1", "--duration", "6", "--sps30-uart")
    fleet = sensorpipe(*args)
    assert ", 0 still in outboxes" in fleet.stdout, fleet.stdout
    devices = json.loads(sensorpipe("devices", "list", "--dir", d, "--json").stdout)
    (device,) = [
        r for r in devices if r["device_id"].startswith("sim-") and "scd4x" not in r["sensors"]
    ]
    assert "sps30" in device["sensors"]
    wait_for(
        lambda: "number_pm10" in _stored(influx, device["device_id"]).get("sps30", {}),
        what="the simulated UART SPS30's number concentrations stored",
    )


def test_a_uart_sps30_with_its_number_concentrations_reaches_the_api(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    device_id = "hall-sps30"
    (creds,) = stack.add_devices([(device_id, {"site": "hall", "sensors": ["sps30"]})])
    device = Sps30ShdlcDevice(lambda: (12.0, 20.0))
    device.warmup_s = 0.0
    sim = Sps30UartSimulator(device)
    sim.start()
    config = TypeAdapter(SensorConfig).validate_python(
        {"driver": "sps30", "port": sim.port, "interval_s": 1.0}
    )

    def open_sps30() -> SensorDriver:
        driver = open_driver(config)
        device.crc_burst(2)  # its first answers garbled: reads fail as "checksum", then flow
        return driver

    opener = SensorOpener("sps30", open_sps30, config.interval_s)
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", [opener], status_interval_s=1.0)

    def stored() -> bool:
        status = influx.query(
            f"SELECT last(errors_checksum) FROM sensor_status WHERE device_id = '{device_id}'"
        )
        numbers = _stored(influx, device_id).get("sps30", {}).get("number_pm10")
        return bool(numbers is not None and status and status[0]["values"][0][1])

    try:
        wait_for(stored, timeout_s=60, what="the UART SPS30's numbers and its bad frames stored")
    finally:
        edge.close()
        sim.stop()
    sps = _stored(influx, device_id)["sps30"]
    numbers = [sps[f"number_pm{s}"] for s in ("0_5", "1", "2_5", "4", "10")]
    assert sps["pm2_5"] == 12.0 and 0 < numbers[0] <= min(numbers[1:])
    assert sps["particle_size_typical"] == 0.55

    config_api = serve_config(stack.directory, None, None, None, False)
    with TestClient(create_app(ApiContext(config_api))) as client:
        quantities = ["number_pm0_5", "number_pm2_5", "particle_size_typical"]
        answer = client.get(
            "/api/v1/air",
            params={"device": device_id, "quantity": quantities, "every": "1h", "from": "-1h"},
        )
        assert answer.status_code == 200, answer.text
        (series,) = answer.json()["series"]
        assert series["sensor"] == "sps30"
        for quantity in quantities:
            assert [v for v in series["values"][quantity] if v is not None], quantity
        datastreams = client.get("/sta/v1.1/Datastreams", params={"$top": 100}).json()["value"]
        units = {d["name"]: d["unitOfMeasurement"]["symbol"] for d in datastreams}
        assert units[f"{device_id} number_pm2_5 (sps30)"] == "/cm3"
        assert units[f"{device_id} particle_size_typical (sps30)"] == "um"
        properties = client.get("/sta/v1.1/ObservedProperties", params={"$top": 100}).json()
        described = {p["name"]: p["description"] for p in properties["value"]}
        assert "0.3 to 2.5 µm" in described["number_pm2_5"]
