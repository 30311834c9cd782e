"""The ingest's link to the broker: connect, subscribe, receive, acknowledge, confirm.

What it guarantees: the subscription is QoS 1 on a persistent session (it outlives a restart
of the ingest for `session_expiry_s`) with manual acknowledgement. The link acknowledges a
message only when told to (`ack`), and only on the connection that delivered it: after a
reconnect the broker sends the unacknowledged ones again, so a message in hand when the
connection drops is redelivered, never lost. Receive Maximum keeps at most two batches in
flight (`connect_properties`): the broker holds the rest.

The one exception is a message the guard refuses (over its device's quota, or quarantined):
it is acknowledged at once in the network thread and goes no further (`ingest.guard` says
what that loses). Everything else waits in its device's lane for the writer.

A broker it cannot reach, or that refuses it, is said at once with the reason (WARNING), then
only after growing pauses while paho keeps trying (protocol.problems), and reaching it again
is said too. So is a connection the broker keeps dropping right after it stood: what the
broker does when another client connects with the same user name (its client id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorpipe.ingest.config import IngestConfig, check_ca_file
from sensorpipe.ingest.fair import FairQueue
from sensorpipe.ingest.stats import IngestStats
from sensorpipe.protocol.brokerlink import (
    Client,
    connect_failure_at,
    describe_closed_unanswered,
    describe_refusal,
)
from sensorpipe.protocol.problems import RepeatedProblem
from sensorpipe.protocol.topics import TOPIC_PREFIX, subscription

# The ingest's rooms share the one logger name its lines have always had.
log = logging.getLogger("sensorpipe.ingest.service")

# A connection that ends within this long after it stood, this many times in a row, is taken
# from the ingest: by another client with the same user name, which the broker uses as
# client id (each new connection ends the one before).
SHORT_LINK_S = 10.0
SHORT_LINKS_TAKEN_OVER = 3

_TOPIC_HEAD = TOPIC_PREFIX + "/"


def connect_properties(config: IngestConfig) -> Properties:
    """MQTT 5 CONNECT: a persistent session, and at most two batches in flight.

    Receive Maximum caps the QoS 1 messages the broker sends before the ingest acknowledges
    any; the ingest acknowledges only after storing, so while InfluxDB is slow or down it holds
    at most two batches in memory and the broker keeps the rest (backpressure). Two, not one:
    the next batch arrives while the writer checks and stores the one in hand; with room for
    one batch only, receiving and writing would take turns."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = config.broker.session_expiry_s
    props.ReceiveMaximum = min(2 * config.batch_max, 65535)
    return props


@dataclass(frozen=True, slots=True)
class Incoming:
    generation: int  # which MQTT connection delivered it; acks go only to that connection
    mid: int
    topic: str
    payload: bytes
    dup: bool
    received_at: float
    qos: int = 1
    device: str = ""  # the device its topic names ("" if none): whose quota and lane


def topic_device(topic: str) -> str:
    """The device a message topic names, cheaply ("" if it names none); the broker lets only
    that device publish there."""
    if not topic.startswith(_TOPIC_HEAD):
        return ""
    rest = topic[len(_TOPIC_HEAD) :]
    cut = rest.find("/")
    return rest[:cut] if cut > 0 else ""


class BrokerLink:
    """One ingest worker's MQTT connection. Its `on_*` callbacks run in paho's network thread,
    one at a time; `ack`, `publish` and `tend` are called from the writer thread."""

    def __init__(
        self,
        config: IngestConfig,
        stats: IngestStats,
        stop: threading.Event,
        *,
        admit: Callable[[str, int], str | None],
        lanes: FairQueue[Incoming],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`admit` is the guard's verdict on a message (None: it may go on); `lanes` is where
        admitted messages wait for the writer."""
        self.config = config
        self._stats = stats
        self._stop = stop
        self._admit = admit
        self._lanes = lanes
        self._clock = clock
        self._monotonic = monotonic
        self.generation = 0  # counts the connections made; see Incoming.generation
        b = config.broker
        where = f"{b.host}:{b.port}"
        self._unreachable = RepeatedProblem(
            log, f"cannot connect to the broker at {where}", clock=monotonic
        )
        self._lost_link = RepeatedProblem(
            log, f"disconnected from the broker at {where}", clock=monotonic
        )
        self._taken_over = RepeatedProblem(
            log,
            f"the broker at {where} keeps ending the ingest's connection right after it is made",
            clock=monotonic,
        )
        self._connected_since: float | None = None  # monotonic; None while not connected
        self._answered = False  # the broker answered this attempt's CONNECT
        self._short_links = 0  # connections in a row that ended within SHORT_LINK_S
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        b = self.config.broker
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=b.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.username_pw_set(b.username, b.password)
        if b.tls:
            check_ca_file(self.config)  # checked at load too; this config may come from code
            client.tls_set(ca_certs=b.ca_file)
        client.connect_timeout = b.connect_timeout_s  # TCP connection and TLS handshake
        # Within the keepalive: paho would otherwise close the silent connection first, unsaid.
        client.connack_timeout_s = min(b.connect_timeout_s, float(b.keepalive_s))
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.on_pre_connect = self.on_pre_connect
        client.on_connect = self.on_connect
        client.on_connect_fail = self.on_connect_fail
        client.on_disconnect = self.on_disconnect
        client.on_message = self.on_message
        return client

    def start(self) -> None:
        """Connect in paho's network thread, reconnecting until `stop`."""
        b = self.config.broker
        props = connect_properties(self.config)
        self.client.connect_async(
            b.host, b.port, b.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect; what is unacknowledged stays with the broker for the next session."""
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, items: list[Incoming]) -> None:
        """Acknowledge to the broker; only on the connection that delivered (after a reconnect
        the broker sends the unacknowledged ones again)."""
        for item in items:
            # A QoS 0 message has no acknowledgement (and no message id to give one for).
            if item.generation == self.generation and item.qos > 0:
                self.client.ack(item.mid, item.qos)

    def publish(self, topic: str, payload: bytes) -> None:
        """Send to a device (a confirmation, an answer to its enrollment), QoS 1."""
        self.client.publish(topic, payload, qos=1)

    # paho's callbacks run in its network thread, one at a time.
    def on_pre_connect(self, client: Any, userdata: Any) -> None:
        self._answered = False

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._answered = True
        if reason.is_failure:
            self._stats.connect_failures += 1
            self._unreachable.report(describe_refusal(reason, "[broker]"), "; still trying")
            return
        self.generation += 1
        self._connected_since = self._monotonic()
        self._stats.connected = True
        b = self.config.broker
        self._unreachable.resolved(f"connected to the broker at {b.host}:{b.port}")
        # After connections that did not last, this one is said once it lasts (`tend`): not a
        # line at every reconnect while another client keeps taking the connection.
        lasting = self._short_links == 0
        if lasting:
            self._lost_link.resolved("connected to the broker again", level=logging.INFO)
        topic = subscription(b.shared_group)
        client.subscribe(topic, qos=1)
        log.log(
            logging.INFO if lasting else logging.DEBUG,
            "connected to the broker at %s:%d, subscribed to %s (session present: %s)",
            b.host,
            b.port,
            topic,
            flags.session_present,
        )

    def on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._stats.connect_failures += 1
        reason = connect_failure_at(client, self.config.broker, "[broker]")
        self._unreachable.report(reason, "; still trying")

    def on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._stats.connected = False
        since, self._connected_since = self._connected_since, None
        if self._stop.is_set():
            return
        if since is None:
            if not self._answered:  # closed before the broker answered CONNECT
                self._stats.connect_failures += 1
                b = self.config.broker
                self._unreachable.report(
                    describe_closed_unanswered(port=b.port, tls=b.tls, section="[broker]"),
                    "; still trying",
                )
            return
        if self._monotonic() - since >= SHORT_LINK_S:
            self._short_links = 0
            self._lost_link.report(str(reason), "; reconnecting")
            return
        self._short_links += 1
        if self._short_links < SHORT_LINKS_TAKEN_OVER:
            self._lost_link.report(str(reason), "; reconnecting")
            return
        b = self.config.broker
        self._taken_over.report(
            f"{SHORT_LINKS_TAKEN_OVER} times or more in a row, each within {SHORT_LINK_S:g} s. "
            f"Probably another client is connected with the user name {b.username!r}: the "
            f"broker uses the user name as client id, so each connection ends the other's. "
            f"Give every ingest worker an account of its own"
        )

    def tend(self) -> None:
        """Once a connection has lasted, say that the trouble with it is over."""
        since = self._connected_since
        if since is not None and self._monotonic() - since >= SHORT_LINK_S:
            self._taken_over.resolved("the connection to the broker lasts again")
            self._lost_link.resolved("connected to the broker again", level=logging.INFO)

    def on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Before anything else, the guard's verdict (`ingest.guard`): a message it refuses is
        acknowledged to the broker at once and goes no further: not stored, not dead-lettered,
        not confirmed, so a sender that waits for confirmations (the edge agent) sends it again
        later. The rest wait in the device's lane."""
        topic = msg.topic
        device = topic_device(topic)
        payload = msg.payload
        qos = msg.qos
        verdict = self._admit(device, len(payload))
        if verdict is not None:
            if qos > 0:
                client.ack(msg.mid, qos)
            self._stats.note_shed(device, verdict, len(payload))
            return
        self._lanes.put(
            device,
            Incoming(
                self.generation,
                msg.mid,
                topic,
                bytes(payload),
                bool(msg.dup),
                self._clock(),
                qos,
                device,
            ),
        )
