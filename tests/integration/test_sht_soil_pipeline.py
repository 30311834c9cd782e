"""SHT4x and a soil probe end to end: byte-level simulators -> real drivers -> edge agent ->
Mosquitto -> ingest -> InfluxDB -> `/api/v1/air` and SensorThings, with the SHT4x going
silent and sending bad CRCs on the way (the soil probe keeps being read meanwhile)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import (
    Sht4xConfig,
    SoilProbeConfig,
    open_driver,
    sensor_tag,
)
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sht import Sht4xDevice
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.live_server import live_server
from tests.integration.test_dashboard import READY, History, chart_data
from tests.integration.test_dashboard import open_browser as _open_browser
from tests.integration.test_edge_failures import RunningAgent

open_browser = _open_browser  # the fixture: one chromium page, its errors recorded


def _stored(influx: InfluxClient, device_id: str, field: str) -> list[float]:
    series = influx.query(f"SELECT {field} FROM air WHERE device_id = '{device_id}'")
    return [v[1] for s in series for v in s["values"] if v[1] is not None]


def _wait_for_more(influx: InfluxClient, field: str, more: int, what: str) -> None:
    """Wait until garden-01 has `more` values of `field` stored beyond what it has now (at
    least 3 in all)."""
    target = max(3, len(_stored(influx, "garden-01", field)) + more)
    wait_for(lambda: len(_stored(influx, "garden-01", field)) >= target, timeout_s=60, what=what)


def test_sht4x_and_soil_probe_readings_reach_the_api_through_faults(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path, open_browser: Any
) -> None:
    (creds,) = stack.add_devices([("garden-01", {"site": "g"})])
    bus = SimulatedI2CBus(1)
    sht = Sht4xDevice(lambda: (18.25, 63.5))
    bus.attach(0x44, sht)
    probe = SoilProbe(lambda: 35.0, v_dry=2.6, v_wet=1.2)
    bus.attach(0x48, Ads1115Device({0: probe}))
    configs: list[Sht4xConfig | SoilProbeConfig] = [
        Sht4xConfig(driver="sht4x", interval_s=0.1),
        SoilProbeConfig(driver="soil_ads1115", v_dry=2.6, v_wet=1.2, interval_s=0.1),
    ]
    openers = [
        SensorOpener(
            sensor_tag(c),  # as the agent names them: its status is checked against the register
            functools.partial(open_driver, c, i2c_bus_factory=lambda _n: bus),
            c.interval_s,
        )
        for c in configs
    ]
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", openers)
    started = datetime.now(UTC) - timedelta(minutes=1)
    try:
        _wait_for_more(influx, "temperature", 0, "SHT4x readings stored")
        # The SHT4x loses power and sends a burst of bad CRCs when it is back; the soil probe
        # goes on being read meanwhile.
        sht.silent = True
        _wait_for_more(influx, "soil_moisture", 3, "soil readings while the SHT4x is silent")
        sht.crc_burst(3)
        sht.silent = False
        _wait_for_more(influx, "temperature", 3, "SHT4x readings again after the fault")
    finally:
        edge.close()
    agent = edge.agent
    slots = {s.model: s for s in agent._slots}
    assert slots["sht4x"].reads_failed >= 4  # silent reads and the three bad CRCs
    assert all(abs(t - 18.25) < 0.01 for t in _stored(influx, "garden-01", "temperature"))
    assert all(abs(h - 63.5) < 0.01 for h in _stored(influx, "garden-01", "relative_humidity"))
    assert all(abs(m - 35.0) < 0.05 for m in _stored(influx, "garden-01", "soil_moisture"))
    voltages = _stored(influx, "garden-01", "soil_probe_voltage")
    assert voltages and all(abs(v - (2.6 - 1.4 * 0.35)) < 0.001 for v in voltages)

    info = stack.require_info()
    app = History(stack, [], info.influx_url, info.database).app(register_cache_s=0)
    api = TestClient(app, raise_server_exceptions=False)
    answer = api.get(
        "/api/v1/air",
        params={
            "device": "garden-01",
            "quantity": ["temperature", "relative_humidity", "soil_moisture", "soil_probe_voltage"],
            "from": started.isoformat(),
            "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            "every": "1h",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["units"]["soil_probe_voltage"] == "V"
    series = {s["sensor"]: s for s in body["series"]}

    # An hour's mean of many equal readings carries float noise (2.1100000000000017): approx.
    # One hour, or two where the run crossed an hour's end: each of them the same.
    def same(values: list[float | None], value: float) -> bool:
        return 1 <= len(values) <= 2 and values == pytest.approx([value] * len(values), abs=1e-9)

    assert same(series["sht4x"]["values"]["temperature"], 18.249)
    assert same(series["soil_probe"]["values"]["soil_moisture"], 35)
    assert same(series["soil_probe"]["values"]["soil_probe_voltage"], 2.11)

    (thing,) = api.get("/sta/v1.1/Things", params={"$filter": "name eq 'garden-01'"}).json()[
        "value"
    ]
    streams = api.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"]
    by_quantity = {d["properties"]["quantity"]: d for d in streams}
    assert {"temperature", "relative_humidity", "soil_moisture", "soil_probe_voltage"} <= set(
        by_quantity
    )
    assert by_quantity["soil_probe_voltage"]["unitOfMeasurement"]["name"] == "volt"
    soil = by_quantity["soil_moisture"]
    observations = api.get(f"/sta/v1.1/Datastreams({soil['@iot.id']})/Observations").json()
    assert observations["value"] and all(
        abs(o["result"] - 35.0) < 0.05 for o in observations["value"]
    )

    # The dashboard draws the soil moisture in a chart of its own beside the temperature.
    with live_server(app) as base:
        b = open_browser(base, viewport={"width": 1280, "height": 900})
        b.page.goto(f"{base}/#device=garden-01&range=24h")
        b.wait(READY)
        b.wait("#chart-soil[data-state=ready]")
        soil_chart = chart_data(b.page, "soil")
        drawn = [v for v in soil_chart[1] if v is not None]  # per 5 minutes: one or two
        assert drawn and set(drawn) == {35}
        assert b.page.locator("#chart-temperature").is_visible()
        assert "dry-to-wet" in b.page.locator("#chart-soil figcaption").inner_text()
        assert b.errors == []


def test_a_fleet_with_sht4x_and_soil_probes_loses_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    creds = stack.add_devices([("garden-f1", {"site": "gf"}), ("garden-f2", {"site": "gf"})])
    fleet = Fleet(
        creds,
        broker_host="127.0.0.1",
        broker_port=stack.require_info().broker_port,
        workdir=tmp_path,
        interval_s=0.2,
        sds011=False,
        sht4x=True,
        soil=True,
        ds18b20=True,
    )
    fleet.start()
    try:
        for device in ("garden-f1", "garden-f2"):
            wait_for(
                lambda d=device: (  # type: ignore[misc]
                    len(_stored(influx, d, "soil_moisture")) >= 3
                    and len(_stored(influx, d, "soil_temperature")) >= 3
                ),
                timeout_s=60,
                what=f"soil readings of {device}",
            )
    finally:
        left = fleet.stop()
    assert left == 0
    for device in ("garden-f1", "garden-f2"):
        assert all(30 <= m <= 60 for m in _stored(influx, device, "soil_moisture"))
        assert _stored(influx, device, "soil_probe_voltage")
        sensors = influx.query(
            f"SHOW TAG VALUES FROM air WITH KEY = sensor WHERE device_id = '{device}'"
        )
        assert {v[1] for s in sensors for v in s["values"]} == {
            "bme280", "sht4x", "soil_probe", "ds18b20"
        }  # fmt: skip
        assert all(9.0 <= t <= 13.0 for t in _stored(influx, device, "soil_temperature"))
