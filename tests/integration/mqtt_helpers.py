"""A minimal device for tests: builds signed messages and publishes them with QoS 1."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import AirMessage, CountMessage, Link, Reading
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for
from sensorpipe.stack.local import LocalStack

# Observation times derive from the sequence number, so two messages never share a timestamp
# unless they are the same message.
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def air_message(
    device_id: str, seq: int, *, pm2_5: float = 12.5, observed_at: datetime | None = None
) -> AirMessage:
    observed = observed_at or BASE_TIME + timedelta(seconds=seq)
    return AirMessage(
        device_id=device_id,
        seq=seq,
        observed_at=observed,
        clock_synced=True,
        sent_at=datetime.now(UTC),
        link=Link(rssi_dbm=-61, reconnects=2, outbox_depth=4, uptime_s=123.5, firmware="test/1"),
        readings=[
            Reading(quantity="pm2_5", value=pm2_5, unit="ug/m3", sensor="sds011"),
            Reading(quantity="pm10", value=pm2_5 * 1.5, unit="ug/m3", sensor="sds011"),
        ],
    )


class TestDevice:
    __test__ = False  # not a pytest class

    def __init__(self, creds: DeviceCredentials, port: int) -> None:
        self.creds = creds
        self.signer = Signer(creds.private_key)
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{creds.device_id}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(creds.username, creds.password)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> Any:
        """Publish QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._acks, timeout=timeout_s):
                raise AssertionError("no PUBACK from the broker")
            return self._acks.pop(info.mid)

    def send(self, message: AirMessage | CountMessage) -> Any:
        return self.publish(
            topic_for(message.device_id, message.kind), encode(message, self.signer.sign)
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_fleet(
    stack: LocalStack,
    creds: list[DeviceCredentials],
    workdir: Path,
    *,
    interval_s: float,
    confirm_timeout_s: float = 600.0,
) -> Fleet:
    """Simulated devices against the stack, without deliberate frame errors."""
    fleet = Fleet(
        creds,
        broker_host="127.0.0.1",
        broker_port=stack.require_info().broker_port,
        workdir=workdir,
        interval_s=interval_s,
        bad_frame_rate=0.0,
        status_interval_s=2.0,
        confirm_timeout_s=confirm_timeout_s,
    )
    fleet.start()
    return fleet


def registered_device(stack: LocalStack, device_id: str, *, site: str) -> TestDevice:
    """A device newly registered in the running `stack` at `site`, connected to its broker."""
    (creds,) = stack.add_devices([(device_id, {"site": site})])
    return TestDevice(creds, stack.require_info().broker_port)
