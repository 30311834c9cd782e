"""A sensor's health wherever the server shows its device, on a real stack: a device whose
BME280 never opens shows the BME280 not ok, with its error and since when, in `devices list`,
`stack status`, /api/v1/devices and SensorThings, and its SDS011 ok; a registered device that
has not delivered yet is "registered, no data yet", not "unknown"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.stack.local import LocalStack
from tests.integration.health_device import BME280_ERROR, deliver_with_a_silent_bme280

pytestmark = pytest.mark.integration


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _by_sensor(health: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h["sensor"]: h for h in health}


def test_a_bme280_that_never_opened_is_shown_not_ok_everywhere(
    stack: LocalStack, tmp_path: Path
) -> None:
    deliver_with_a_silent_bme280(stack, tmp_path, "balcony-01")
    stack.add_devices([("balcony-02", {"site": "balcony", "sensors": ["sds011"]})])
    d = str(stack.directory)

    listed = _cli("devices", "list", "--dir", d)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("balcony-01 "))
    assert lines[row + 1].startswith("  ! bme280 not ok since ")
    assert BME280_ERROR in lines[row + 1]
    assert not any("sds011 not ok" in line for line in lines)
    assert "(registered, no data yet)" in next(x for x in lines if x.startswith("balcony-02"))
    assert "(registered, no data yet)" not in lines[row]

    as_json = _cli("devices", "list", "--dir", d, "--json")
    entries = {e["device_id"]: e for e in json.loads(as_json.output)}
    health = _by_sensor(entries["balcony-01"]["sensor_health"])
    assert health["bme280"]["ok"] is False
    assert BME280_ERROR in health["bme280"]["last_error"]
    assert health["bme280"]["since"] is not None
    assert health["bme280"]["uptime_24h"] == 0.0
    assert health["sds011"]["ok"] is True and health["sds011"]["uptime_24h"] > 0
    assert entries["balcony-01"]["state"] is None
    assert entries["balcony-02"]["state"] == "registered, no data yet"

    status = _cli("stack", "status", "--dir", d)
    assert "SENSORS NOT OK on 1 device" in status.output
    (line,) = [x for x in status.output.splitlines() if x.strip().startswith("balcony-01")]
    assert "bme280 not ok since" in line and BME280_ERROR in line
    assert "registered, no data yet: balcony-02" in status.output
    status_json = json.loads(_cli("stack", "status", "--dir", d, "--json").output)
    assert [(s["device_id"], s["sensor"]) for s in status_json["sensors_not_ok"]] == [
        ("balcony-01", "bme280")
    ]

    # A registered device with nothing stored is not "unknown": exit 0 and what it is.
    query = _cli("query", "air", "--dir", d, "--device", "balcony-02", "--from", "-1h")
    assert query.exit_code == 0, query.output
    assert "device 'balcony-02': registered, no air readings from it yet" in query.output
    assert "unknown" not in query.output

    info = stack.require_info()
    config = ServeConfig(
        registry_path=str(stack.registry_path),
        influx=InfluxSettings(url=info.influx_url, database=info.database),
    )
    with TestClient(create_app(ApiContext(config))) as client:
        devices = {e["device_id"]: e for e in client.get("/api/v1/devices").json()["devices"]}
        api_health = _by_sensor(devices["balcony-01"]["sensor_health"])
        assert api_health["bme280"]["ok"] is False
        assert api_health["bme280"]["since"] == health["bme280"]["since"]
        assert BME280_ERROR in api_health["bme280"]["last_error"]
        assert api_health["sds011"]["ok"] is True
        assert devices["balcony-01"]["uptime_24h"] == 1.0  # the device's own uptime hides it
        assert api_health["bme280"]["uptime_24h"] == 0.0
        assert devices["balcony-01"]["notes"][0].startswith("bme280 not ok since")
        assert devices["balcony-02"]["state"] == "registered, no data yet"

        things = client.get("/sta/v1.1/Things", params={"$filter": "name eq 'balcony-01'"})
        (thing,) = things.json()["value"]
        sta_health = _by_sensor(thing["properties"]["sensor_health"])
        assert sta_health["bme280"]["ok"] is False and sta_health["sds011"]["ok"] is True
        streams = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()
        by_name = {s["properties"]["sensor"]: s["properties"] for s in streams["value"]}
        assert by_name["bme280"]["health"]["ok"] is False
        assert BME280_ERROR in by_name["bme280"]["health"]["last_error"]
        assert by_name["sds011"]["health"]["ok"] is True
