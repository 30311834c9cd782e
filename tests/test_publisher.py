"""The publisher against a scripted MQTT client: when an outbox entry may leave, and when it
is sent again. The real broker and ingest are in tests/integration."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from sensorpipe.edge.config import MqttConfig
from sensorpipe.edge.outbox import MemoryOutbox, OutboxEntry
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.protocol.ack import encode_ack
from tests.helpers import wait_for

OK = ReasonCode(PacketTypes.CONNACK, identifier=0)


@dataclass
class Sent:
    topic: str
    payload: bytes
    mid: int


class ScriptedClient:
    """Records what the publisher does; the test plays the broker's part via the callbacks."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.subscriptions: list[str] = []
        self._mid = 0
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_publish: Any = None
        self.on_message: Any = None
        self.on_subscribe: Any = None

    def connect_async(self, *args: Any, **kwargs: Any) -> None:
        pass

    def loop_start(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def subscribe(self, topic: str, qos: int) -> None:
        self.subscriptions.append(topic)

    def publish(self, topic: str, payload: bytes, qos: int) -> Any:
        self._mid += 1
        self.sent.append(Sent(topic, payload, self._mid))
        return SimpleNamespace(mid=self._mid)

    # --- the broker's side ---
    def connect(self) -> None:
        self.on_connect(self, None, None, OK, None)

    def drop(self) -> None:
        self.on_disconnect(self, None, None, OK, None)

    def suback(self, code: int = 1) -> None:
        self.on_subscribe(self, None, 1, [ReasonCode(PacketTypes.SUBACK, identifier=code)], None)

    def puback(self, sent: Sent, code: int = 0) -> None:
        self.on_publish(self, None, sent.mid, ReasonCode(PacketTypes.PUBACK, identifier=code), None)

    def deliver_ack(self, seqs: list[int]) -> None:
        msg = SimpleNamespace(topic="sensorpipe/ack/v1/dev-1", payload=encode_ack(seqs))
        self.on_message(self, None, msg)


def _publisher(outbox: MemoryOutbox, **mqtt: Any) -> tuple[Publisher, ScriptedClient]:
    client = ScriptedClient()
    config = MqttConfig(username="dev-1", password="x", **mqtt)

    def finalize(entry: OutboxEntry, _link: LinkState) -> bytes:
        return entry.body

    publisher = Publisher(
        outbox=outbox,
        mqtt_config=config,
        client_id="dev-1",
        finalize=finalize,
        client_factory=lambda _id, _config: client,  # type: ignore[arg-type, return-value]
    )
    publisher.start()
    return publisher, client


def _fill(outbox: MemoryOutbox, n: int) -> None:
    for seq in range(1, n + 1):
        outbox.put("sensorpipe/v1/dev-1/air", f"m{seq}".encode(), seq=seq)


def test_entries_leave_only_when_the_ingest_confirms_them() -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 3)
    publisher, client = _publisher(outbox)
    try:
        client.connect()
        time.sleep(0.3)
        assert client.sent == []  # not before the confirmations can arrive
        assert client.subscriptions == ["sensorpipe/ack/v1/dev-1"]
        client.suback()
        wait_for(lambda: len(client.sent) == 3, what="three entries sent")
        for sent in client.sent:
            client.puback(sent)
        wait_for(lambda: publisher.acked == 3, what="PUBACKs handled")
        assert outbox.depth() == 3  # the broker has them; the ingest has not said so
        client.deliver_ack([1, 3])
        wait_for(lambda: outbox.depth() == 1, what="confirmed entries removed")
        assert publisher.confirmed == 2
        # The broker restarts: entry 2 may be lost with it, so it goes again.
        client.drop()
        client.connect()
        client.suback()
        wait_for(lambda: len(client.sent) == 4, what="the unconfirmed entry sent again")
        assert client.sent[-1].payload == b"m2" and publisher.resent == 1
    finally:
        publisher.stop()


def test_an_entry_unconfirmed_for_the_timeout_is_sent_again() -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 1)
    publisher, client = _publisher(outbox, confirm_timeout_s=1.0)
    try:
        client.connect()
        client.suback()
        wait_for(lambda: len(client.sent) == 1, what="the entry sent")
        client.puback(client.sent[0])
        wait_for(lambda: len(client.sent) == 2, timeout_s=5, what="the entry sent again")
        client.puback(client.sent[1])
        client.deliver_ack([1])
        wait_for(lambda: outbox.depth() == 0, what="the entry confirmed")
    finally:
        publisher.stop()


def test_without_confirmations_the_broker_acknowledgement_is_enough() -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 2)
    publisher, client = _publisher(outbox, confirm=False)
    try:
        client.connect()
        wait_for(lambda: len(client.sent) == 2, what="entries sent without a subscription")
        assert client.subscriptions == []
        for sent in client.sent:
            client.puback(sent)
        wait_for(lambda: outbox.depth() == 0, what="entries removed on PUBACK")
    finally:
        publisher.stop()


def test_a_broker_refusing_the_confirmation_topic_falls_back_to_its_acknowledgements() -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 2)
    publisher, client = _publisher(outbox)
    try:
        client.connect()
        client.suback(0x87)  # not authorised: an ACL from before confirmations
        wait_for(lambda: len(client.sent) == 2, what="entries sent")
        for sent in client.sent:
            client.puback(sent)
        wait_for(lambda: outbox.depth() == 0, what="entries removed on PUBACK")
    finally:
        publisher.stop()


def test_refused_for_good_is_set_aside_refused_for_now_is_retried() -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 2)
    publisher, client = _publisher(outbox, confirm=False)
    try:
        client.connect()
        wait_for(lambda: len(client.sent) == 2, what="entries sent")
        client.puback(client.sent[0], 0x87)  # not authorised: never will be
        client.puback(client.sent[1], 0x97)  # quota exceeded: the broker's queue is full
        wait_for(lambda: len(client.sent) == 3, timeout_s=10, what="the refused-for-now resent")
        assert client.sent[2].payload == b"m2"
        assert [reason for _entry, reason in outbox.rejected()] == ["broker: Not authorized"]
        client.puback(client.sent[2])
        wait_for(lambda: outbox.depth() == 0, what="the retried entry accepted")
    finally:
        publisher.stop()
