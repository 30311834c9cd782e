"""A misbehaving device: sends messages the ingest must reject, one defect at a time.

It uses a real, registered device account, so each message passes the broker and reaches the
ingest; everything about it is valid except the one defect its kind names.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.protocol.codec import canonical_bytes
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for

FAULTS = (
    "malformed_json",
    "bad_signature",
    "unsigned",
    "out_of_range",
    "unknown_quantity",
    "device_mismatch",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FaultyDevice:
    def __init__(self, credentials: DeviceCredentials, *, host: str, port: int) -> None:
        self.credentials = credentials
        self._signer = Signer(credentials.private_key)
        self._stranger = Signer(generate_keypair()[0])
        self._seq = itertools.count(1)
        self._cycle = itertools.cycle(FAULTS)
        self._acked = threading.Semaphore(0)
        self._reasons: dict[int, Any] = {}
        self.sent: dict[str, int] = {}
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"faulty-{credentials.device_id}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(credentials.username, credentials.password)
        self._client.on_publish = self._on_publish
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._reasons[mid] = reason
        self._acked.release()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def message(self, fault: str) -> tuple[str, bytes]:
        device_id = self.credentials.device_id
        body: dict[str, Any] = {
            "v": 1,
            "kind": "air",
            "device_id": device_id,
            "seq": next(self._seq),
            "observed_at": _now(),
            "clock_synced": True,
            "sent_at": _now(),
            "location": None,
            "link": {
                "rssi_dbm": -60,
                "reconnects": 0,
                "outbox_depth": 0,
                "uptime_s": 1.0,
                "firmware": "faulty/1",
                "backlog": False,
            },
            "readings": [{"quantity": "pm2_5", "value": 10.0, "unit": "ug/m3", "sensor": "sds011"}],
        }
        topic = topic_for(device_id, "air")
        signer = self._signer
        if fault == "malformed_json":
            return topic, b'{"v": 1, "kind": "air", "device_id": "' + device_id.encode() + b'", '
        if fault == "out_of_range":
            body["readings"][0]["value"] = 6553.5  # what a stuck SDS011 register reads
        elif fault == "unknown_quantity":
            body["readings"][0].update(quantity="radon", unit="Bq/m3")
        elif fault == "device_mismatch":
            body["device_id"] = "someone-else"
        elif fault == "bad_signature":
            signer = self._stranger
        if fault != "unsigned":
            body["sig"] = signer.sign(canonical_bytes(body))
        return topic, json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def send(self, fault: str | None = None, timeout_s: float = 5.0) -> bool:
        """Publish one faulty message; True when the broker acknowledged it."""
        fault = fault or next(self._cycle)
        topic, payload = self.message(fault)
        info = self._client.publish(topic, payload, qos=1)
        if not self._acked.acquire(timeout=timeout_s):
            return False
        reason = self._reasons.pop(info.mid, None)
        ok = reason is not None and not reason.is_failure
        if ok:
            self.sent[fault] = self.sent.get(fault, 0) + 1
        return ok

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())
