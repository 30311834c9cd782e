"""The edge publisher's work runs in paho's network thread against a real Mosquitto: a backlog
drains in order without a thread of its own, and an entry queued after it (`notify`) is sent
too. (How soon `notify` wakes the loop is not checked: paho's loop also passes once a second.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.edge.config import MqttConfig
from sensorpipe.edge.outbox import MemoryOutbox, OutboxEntry
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.process import ManagedProcess, free_port, port_open
from tests.helpers import wait_for

TOPIC = "sensorpipe/v1/dev-1/air"


@pytest.fixture
def broker_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # Room for the whole backlog in the subscriber's queue (Mosquitto's default, 1,000, would
    # drop what the subscriber has not taken yet).
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10000\n")
    broker = ManagedProcess("mosquitto", [mosquitto_binary(), "-c", str(conf)], tmp_path / "m.log")
    broker.start(lambda: port_open(port))
    try:
        yield port
    finally:
        broker.stop()


def test_a_backlog_drains_in_order_with_the_work_in_paho_s_thread(broker_port: int) -> None:
    received: list[bytes] = []
    subscribed = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
    sub.on_subscribe = lambda *_args: subscribed.set()
    sub.connect("127.0.0.1", broker_port)
    sub.subscribe(TOPIC, qos=1)
    sub.loop_start()
    assert subscribed.wait(10)

    outbox = MemoryOutbox()
    for seq in range(1, 2001):
        outbox.put(TOPIC, f"m{seq}".encode(), seq=seq)
    threads: set[str] = set()

    def finalize(entry: OutboxEntry, _link: LinkState) -> bytes:
        threads.add(threading.current_thread().name)
        return entry.body

    config = MqttConfig(
        host="127.0.0.1",
        port=broker_port,
        username="dev-1",
        password="x",
        confirm=False,
        max_messages_per_s=10_000,
    )
    before = {t.name for t in threading.enumerate()}
    publisher = Publisher(outbox=outbox, mqtt_config=config, client_id="dev-1", finalize=finalize)
    publisher.start()
    try:
        wait_for(lambda: outbox.depth() == 0, timeout_s=60, what="the backlog sent")
        new_threads = {t.name for t in threading.enumerate()} - before
        # One thread for the publisher and its client: paho's, which does the work too.
        assert threads == new_threads == {"paho-mqtt-client-dev-1"}
        wait_for(lambda: len(received) == 2000, timeout_s=30, what="all messages at the broker")
        assert received == [f"m{seq}".encode() for seq in range(1, 2001)]

        # A new entry: `notify`, and the entry goes.
        outbox.put(TOPIC, b"later", seq=2001)
        publisher.notify()
        wait_for(lambda: received[-1:] == [b"later"], what="the new entry sent")
        assert publisher.alive and publisher.acked == 2001
    finally:
        publisher.stop()
        sub.disconnect()
        sub.loop_stop()
