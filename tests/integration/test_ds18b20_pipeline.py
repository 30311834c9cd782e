"""A DS18B20 soil probe end to end: sysfs simulator -> real driver -> edge agent -> Mosquitto ->
ingest -> InfluxDB -> `/api/v1/air` and SensorThings, through a CRC burst, the probe unplugged
and plugged in again (its power-on 85 °C withheld): only the soil's own value is stored, and
the agent counts each fault by its kind."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sensorpipe.edge.agent import SensorOpener
from sensorpipe.edge.drivers.registry import Ds18b20Config, open_driver
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.test_dashboard import History
from tests.integration.test_edge_failures import RunningAgent

DEVICE = "soil-t-01"
PROBE = "28-0000072a4b1c"


def _stored(influx: InfluxClient, field: str) -> list[float]:
    series = influx.query(f"SELECT {field} FROM air WHERE device_id = '{DEVICE}'")
    return [v[1] for s in series for v in s["values"] if v[1] is not None]


def test_ds18b20_soil_temperature_reaches_the_api_through_its_faults(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    (creds,) = stack.add_devices([(DEVICE, {"site": "bed"})])
    probe = Ds18b20Probe(PROBE, lambda: 8.5)
    bus = W1Bus(tmp_path / "w1", [probe])  # converted by hand: each fault stays until fixed
    config = Ds18b20Config(driver="ds18b20", w1_root=str(bus.root), interval_s=0.1)
    opener = SensorOpener("ds18b20", functools.partial(open_driver, config), config.interval_s)
    edge = RunningAgent(stack, creds, tmp_path / "outbox.sqlite", [opener])
    started = datetime.now(UTC) - timedelta(minutes=1)

    def errors(kind: str) -> int:
        return sum(s.errors.get(kind, 0) for s in edge.agent._slots if s.model == "ds18b20")

    def more_stored(n: int, what: str) -> None:
        target = len(_stored(influx, "soil_temperature")) + n
        wait_for(
            lambda: len(_stored(influx, "soil_temperature")) >= target, timeout_s=60, what=what
        )

    try:
        more_stored(3, "soil temperatures stored")
        probe.crc_burst(1)
        bus.convert()
        wait_for(lambda: errors("checksum"), what="the CRC error counted")
        bus.convert()
        bus.disconnect(probe)
        wait_for(lambda: errors("not_found"), what="the unplugged probe counted")
        bus.reconnect(probe)  # powered up again: 85.000 °C until it converts
        wait_for(lambda: errors("power_on_reset"), what="the power-on value withheld")
        bus.convert()
        more_stored(3, "soil temperatures again after the faults")
    finally:
        edge.close()
    stored = _stored(influx, "soil_temperature")
    assert stored and set(stored) == {8.5}  # no 85 °C, no corrupted value
    assert _stored(influx, "temperature") == []

    until = datetime.now(UTC) + timedelta(minutes=1)
    asked = {"device": DEVICE, "quantity": "soil_temperature", "every": "1h"}
    info = stack.require_info()
    history = History(stack, [], info.influx_url, info.database)
    api = TestClient(history.app(register_cache_s=0), raise_server_exceptions=False)
    answer = api.get(
        "/api/v1/air", params={**asked, "from": started.isoformat(), "to": until.isoformat()}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["units"]["soil_temperature"] == "degC"
    (series,) = body["series"]
    assert series["sensor"] == "ds18b20"
    hours = [v for v in series["values"]["soil_temperature"] if v is not None]  # 1 or 2 hours
    assert hours and hours == pytest.approx([8.5] * len(hours), abs=1e-9)
    # Uncalibrated: the data sheet's ±0.5 °C (within -10..85 °C), said in the answer.
    assert {u for u in series["uncertainty"]["soil_temperature"] if u is not None} == {0.5}
    assert "±0.5 °C from -10 to 85 °C, ±2 °C outside" in str(body["uncertainty_basis"])

    things = api.get("/sta/v1.1/Things", params={"$filter": f"name eq '{DEVICE}'"}).json()
    (thing,) = things["value"]
    streams = api.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"]
    # The DS18B20 may measure soil or air: the datastream is the quantity its readings carry.
    assert [d["properties"]["quantity"] for d in streams] == ["soil_temperature"]
    (stream,) = streams
    assert stream["unitOfMeasurement"]["symbol"] == "Cel"
    observations = api.get(f"/sta/v1.1/Datastreams({stream['@iot.id']})/Observations").json()
    assert observations["value"] and {o["result"] for o in observations["value"]} == {8.5}
