"""A garden Pi with two soil probes and a DS18B20 tagged as docs/edge.md says (`soil_probe.bed2`,
`ds18b20.deep`), registered with those tags: the agent's readings pass the real ingest's check
of declared sensors, are stored under their own tags, and the second DS18B20's values carry the
DS18B20 data sheet's uncertainty in the API."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import (
    Ds18b20Config,
    SoilProbeConfig,
    open_driver,
    sensor_tag,
)
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.test_dashboard import History
from tests.integration.test_edge_failures import RunningAgent
from tests.test_soil_two_probes import two_probe_bus

DEVICE = "garden-02"
TAGS = ["soil_probe", "soil_probe.bed2", "ds18b20.deep"]


def _tags_stored(influx: InfluxClient) -> set[str]:
    series = influx.query(
        f"SHOW TAG VALUES FROM air WITH KEY = sensor WHERE device_id = '{DEVICE}'"
    )
    return {v[1] for s in series for v in s["values"]}


def test_second_probes_readings_are_stored_under_their_tags_with_their_models_uncertainty(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    (creds,) = stack.add_devices([(DEVICE, {"site": "bed", "sensors": TAGS})])
    bus = two_probe_bus()  # AIN0 35 %, AIN1 60 %
    w1 = W1Bus(tmp_path / "w1", [Ds18b20Probe("28-0000072a4b1c", lambda: 9.5)])
    configs: list[SoilProbeConfig | Ds18b20Config] = [
        SoilProbeConfig(driver="soil_ads1115", v_dry=2.6, v_wet=1.2, interval_s=0.1),
        SoilProbeConfig(
            driver="soil_ads1115", channel=1, v_dry=2.6, v_wet=1.2, interval_s=0.1,
            sensor="soil_probe.bed2",
        ),
        Ds18b20Config(
            driver="ds18b20", w1_root=str(w1.root), interval_s=0.1, sensor="ds18b20.deep"
        ),
    ]  # fmt: skip
    openers = [
        SensorOpener(
            sensor_tag(c),
            functools.partial(open_driver, c, i2c_bus_factory=lambda _n: bus),
            c.interval_s,
        )
        for c in configs
    ]
    started = datetime.now(UTC) - timedelta(minutes=1)
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", openers)
    try:
        wait_for(lambda: _tags_stored(influx) == set(TAGS), timeout_s=60, what="every tag stored")
    finally:
        edge.close()

    until = datetime.now(UTC) + timedelta(minutes=1)
    info = stack.require_info()
    history = History(stack, [], info.influx_url, info.database)
    api = TestClient(history.app(register_cache_s=0), raise_server_exceptions=False)
    answer = api.get(
        "/api/v1/air",
        params={
            "device": DEVICE,
            "quantity": ["soil_moisture", "soil_temperature"],
            "every": "1h",
            "from": started.isoformat(),
            "to": until.isoformat(),
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    series = {s["sensor"]: s for s in body["series"]}
    assert set(series) == set(TAGS)
    assert {v for v in series["soil_probe.bed2"]["values"]["soil_moisture"] if v} == {60}
    deep = series["ds18b20.deep"]
    assert {u for u in deep["uncertainty"]["soil_temperature"] if u is not None} == {0.5}
    assert "DS18B20 data sheet" in str(body["uncertainty_basis"])
    # SensorThings describes the second probe as its model: what it measures.
    sensors = api.get("/sta/v1.1/Sensors", params={"$filter": "name eq 'soil_probe.bed2'"})
    (bed2,) = sensors.json()["value"]
    assert "measures soil_moisture, soil_probe_voltage" in bed2["description"], bed2
