"""The generated Mosquitto configuration, enforced by a real broker (no InfluxDB needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.broker import Broker
from sensorpipe.gateway.devices import DeviceCredentials, add_device, add_reader, set_ingest_account
from sensorpipe.gateway.mosquitto import MAX_PACKET_BYTES
from sensorpipe.ingest.config import new_shared_group
from sensorpipe.process import free_ports
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.topics import subscription
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


class Client:
    """A paho client that records connects, disconnects and messages."""

    def __init__(self, port: int, username: str | None, password: str | None, client_id: str):
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.disconnects: list[str] = []
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: dict[int, list[Any]] = {}  # message id -> reason codes
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused.append(str(reason))
        else:
            self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.disconnects.append(str(reason))
        self.connected.clear()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self.subacks[mid] = list(reasons)

    def subscribe(self, topic: str) -> list[Any]:
        """Subscribe with QoS 1 and return the broker's SUBACK reason codes."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.subacks, timeout_s=5, what=f"SUBACK for {topic}")
        return self.subacks[mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


READER = "auditor"  # a reading account beside the ingest's


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, dict[str, DeviceCredentials], str, str]]:
    """port, device credentials, the ingest's password, the reader's password."""
    registry = Registry()
    creds = {d: add_device(registry, d, site="centrum") for d in ("dev-a", "dev-b")}
    ingest_password = set_ingest_account(registry)
    reader_password = add_reader(registry, READER)
    (port,) = free_ports(1)
    b = Broker(tmp_path / "broker", registry, port=port)
    b.start()
    try:
        yield port, creds, ingest_password, reader_password
    finally:
        b.stop()


def _ingest(port: int, password: str, client_id: str = "sensorpipe-ingest") -> Client:
    c = Client(port, "ingest", password, client_id)
    assert c.connected.wait(30)
    assert not c.subscribe("sensorpipe/v1/#")[0].is_failure
    return c


def test_unknown_and_anonymous_clients_cannot_connect(broker: Any) -> None:
    port, creds, _, _ = broker
    for username, password in ((None, None), ("dev-a", "wrong"), ("stranger", "x")):
        c = Client(port, username, password, "intruder")
        wait_for(lambda: c.refused or c.disconnects, timeout_s=5)  # noqa: B023
        assert not c.connected.is_set(), username
        c.close()
    ok = Client(port, "dev-a", creds["dev-a"].password, "dev-a")
    assert ok.connected.wait(30)  # the same broker lets a registered device in
    ok.close()


def test_a_device_cannot_publish_as_another(broker: Any) -> None:
    port, creds, ingest_password, _ = broker
    ingest = _ingest(port, ingest_password)
    dev_a = Client(port, "dev-a", creds["dev-a"].password, "dev-a")
    assert dev_a.connected.wait(30)
    dev_a.client.publish("sensorpipe/v1/dev-b/air", b"forged", qos=1).wait_for_publish(5)
    dev_a.client.publish("sensorpipe/v1/dev-a/air", b"own", qos=1).wait_for_publish(5)
    wait_for(lambda: ingest.messages, timeout_s=5)
    time.sleep(0.3)
    assert [m.topic for m in ingest.messages] == ["sensorpipe/v1/dev-a/air"]
    dev_a.close()
    ingest.close()


def test_a_device_cannot_take_over_the_ingests_session(broker: Any) -> None:
    port, creds, ingest_password, _ = broker
    ingest = _ingest(port, ingest_password)
    # dev-a asks for the ingest's client id, with a clean start: without the username binding
    # this would disconnect the ingest and delete its queued messages.
    thief = Client(port, "dev-a", creds["dev-a"].password, "sensorpipe-ingest")
    assert thief.connected.wait(30)
    time.sleep(0.5)
    assert ingest.connected.is_set() and not ingest.disconnects, ingest.disconnects
    dev_b = Client(port, "dev-b", creds["dev-b"].password, "dev-b")
    assert dev_b.connected.wait(30)
    dev_b.client.publish("sensorpipe/v1/dev-b/air", b"still here", qos=1).wait_for_publish(5)
    wait_for(lambda: ingest.messages, timeout_s=5)
    for c in (thief, dev_b, ingest):
        c.close()


def test_retained_and_oversized_messages_are_refused(broker: Any) -> None:
    port, creds, ingest_password, _ = broker
    dev_a = Client(port, "dev-a", creds["dev-a"].password, "dev-a")
    assert dev_a.connected.wait(30)
    dev_a.client.publish("sensorpipe/v1/dev-a/air", b"stale", qos=1, retain=True)
    wait_for(lambda: dev_a.disconnects, timeout_s=5)  # the broker drops the connection
    # A subscriber arriving later gets no retained message.
    ingest = _ingest(port, ingest_password)
    time.sleep(0.5)
    assert ingest.messages == []
    big = Client(port, "dev-b", creds["dev-b"].password, "dev-b")
    assert big.connected.wait(30)
    big.client.publish("sensorpipe/v1/dev-b/air", b"x" * (MAX_PACKET_BYTES + 1), qos=1)
    wait_for(lambda: big.disconnects, timeout_s=5)
    time.sleep(0.3)
    assert ingest.messages == []
    for c in (dev_a, big, ingest):
        c.close()


def test_a_reader_account_reads_every_device_and_publishes_nothing(broker: Any) -> None:
    port, creds, ingest_password, reader_password = broker
    ingest = _ingest(port, ingest_password)
    auditor = Client(port, READER, reader_password, "anything")
    assert auditor.connected.wait(30)
    assert not auditor.subscribe("sensorpipe/v1/#")[0].is_failure
    device = Client(port, "dev-a", creds["dev-a"].password, "dev-a")
    assert device.connected.wait(30)
    device.client.publish("sensorpipe/v1/dev-a/air", b"real", qos=1).wait_for_publish(5)
    wait_for(lambda: auditor.messages, timeout_s=5)
    assert [m.payload for m in auditor.messages] == [b"real"]
    auditor.client.publish("sensorpipe/v1/dev-a/air", b"forged by a reader", qos=1)
    time.sleep(0.5)
    assert [m.payload for m in ingest.messages] == [b"real"]
    for c in (device, auditor, ingest):
        c.close()


def test_confirmations_reach_only_their_device_and_only_the_ingest_sends_them(
    broker: Any,
) -> None:
    port, creds, ingest_password, _ = broker
    ingest = _ingest(port, ingest_password)
    devices = {d: Client(port, d, creds[d].password, d) for d in ("dev-a", "dev-b")}
    for name, c in devices.items():
        assert c.connected.wait(30)
        assert c.subscribe("sensorpipe/ack/v1/#")[0].is_failure  # everyone's: refused
        assert not c.subscribe(f"sensorpipe/ack/v1/{name}")[0].is_failure  # its own
    ingest.client.publish("sensorpipe/ack/v1/dev-a", b"for a", qos=1).wait_for_publish(5)
    # dev-b forging a confirmation would make dev-a drop readings nobody stored.
    devices["dev-b"].client.publish("sensorpipe/ack/v1/dev-a", b"forged", qos=1)
    wait_for(lambda: devices["dev-a"].messages, timeout_s=5)
    time.sleep(0.5)
    assert [m.payload for m in devices["dev-a"].messages] == [b"for a"]
    assert devices["dev-b"].messages == []
    for c in (*devices.values(), ingest):
        c.close()


# What a device might subscribe to in order to read or disturb other devices' messages: the
# ingest's shared subscription under the names a device would try, everything, every device's
# readings, other devices' confirmations, and groups of its own.
SPY_TOPICS = (
    subscription("ingest"),
    "$share/ingest/sensorpipe/v1/#",
    "#",
    "sensorpipe/v1/+/+",
    "sensorpipe/v1/dev-b/+",
    "sensorpipe/ack/v1/dev-b",
    "sensorpipe/ack/v1/+",
    "$share/ingest/sensorpipe/ack/v1/+",
    "$SYS/#",
)


def test_a_device_subscribing_to_others_topics_gets_nothing_and_takes_nothing(
    broker: Any,
) -> None:
    """Mosquitto 2.0 grants these subscriptions (its ACL file is applied at delivery), so the
    device must receive nothing, and the readers sharing the stream must lose nothing: a
    shared-subscription member that is refused a message takes it from the whole group."""
    port, creds, ingest_password, reader_password = broker
    group = new_shared_group()
    readers = [
        Client(port, "ingest", ingest_password, "ingest"),
        Client(port, READER, reader_password, READER),
    ]
    for r in readers:
        assert r.connected.wait(30)
        assert not r.subscribe(subscription(group))[0].is_failure
    spy = Client(port, "dev-a", creds["dev-a"].password, "dev-a")
    assert spy.connected.wait(30)
    for topic in SPY_TOPICS:
        spy.subscribe(topic)  # granted or refused: either way it must yield nothing
    sender = Client(port, "dev-b", creds["dev-b"].password, "dev-b")
    assert sender.connected.wait(30)
    sent = [f"reading {i}".encode() for i in range(60)]
    for payload in sent:
        sender.client.publish("sensorpipe/v1/dev-b/air", payload, qos=1).wait_for_publish(5)
    readers[0].client.publish("sensorpipe/ack/v1/dev-b", b"for b", qos=1).wait_for_publish(5)
    received = lambda: sorted(m.payload for r in readers for m in r.messages)  # noqa: E731
    wait_for(lambda: len(received()) >= len(sent), timeout_s=10, what="every reading shared")
    time.sleep(0.5)
    assert received() == sorted(sent)
    assert all(r.messages for r in readers)  # both readers had their share
    assert spy.messages == []
    for c in (spy, sender, *readers):
        c.close()
