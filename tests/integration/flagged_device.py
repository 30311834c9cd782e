"""A stack whose ingest flags a stuck PM2.5 run from its 3rd reading, and a device that sends
it readings at 75 % and 99 % relative humidity and a stuck run: the quality flags' read side
(query, API, SensorThings, register, dashboard) tested on what the real ingest stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import AirMessage, Reading
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.conftest import _require_binaries
from tests.integration.mqtt_helpers import TestDevice, air_message

# (pm2_5, relative humidity) per message: PM2.5 flagged humidity, fog+humidity, -, -, stuck;
# PM10 (1.5 x PM2.5, its stuck run the default 30) humidity, fog+humidity, -, -, -.
SENT = [(12.0, 75.0), (13.0, 99.0), (8.0, 50.0), (8.0, 50.0), (8.0, 50.0)]


@contextmanager
def flagging_stack(directory: Path) -> Iterator[LocalStack]:
    """A running stack in `directory`, a PM2.5 run of 3 equal readings stuck."""
    _require_binaries()
    s = LocalStack(directory)
    ingest_toml = s.directory / "ingest" / "ingest.toml"
    ingest_toml.parent.mkdir(parents=True)
    ingest_toml.write_text("[quality.quantities.pm2_5]\nstuck_readings = 3\n", encoding="utf-8")
    s.up(detach=False, serve=False)
    try:
        yield s
    finally:
        s.down()


def send_flagged(
    stack: LocalStack,
    device_id: str,
    first: datetime,
    step: timedelta,
    location: dict[str, float] | None = None,
) -> None:
    """Register `device_id` (an sds011 and a bme280; at `location`, lat and lon, if given),
    send SENT from `first` on, one message every `step`, and wait until the ingest stored
    them."""
    info = stack.require_info()
    spec: dict[str, Any] = {"site": "s", "sensors": ["sds011", "bme280"]}
    if location is not None:
        spec["location"] = location
    (creds,) = stack.add_devices([(device_id, spec)])
    device = TestDevice(creds, info.broker_port)
    try:
        for seq, (pm2_5, rh) in enumerate(SENT, start=1):
            message = _message(device_id, seq, first + step * (seq - 1), pm2_5, rh)
            assert not device.send(message).is_failure
    finally:
        device.close()
    influx = InfluxClient(info.influx_url, info.database)
    stored = f"SELECT count(pm2_5) FROM air WHERE device_id = '{device_id}'"
    try:
        wait_for(
            lambda: [v[1] for s in influx.query(stored) for v in s["values"]] == [len(SENT)],
            what=f"{len(SENT)} PM points",
        )
    finally:
        influx.close()


def _message(device_id: str, seq: int, at: datetime, pm2_5: float, rh: float) -> AirMessage:
    base = air_message(device_id, seq, pm2_5=pm2_5, observed_at=at)
    readings = [
        *base.readings,
        Reading(quantity="relative_humidity", value=rh, unit="%", sensor="bme280"),
    ]
    return base.model_copy(update={"readings": readings})
