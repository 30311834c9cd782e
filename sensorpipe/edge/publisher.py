"""Moves outbox entries to the broker and keeps them until the ingest has kept them.

Guarantee: an entry leaves the outbox only when the ingest confirmed it (protocol.ack: stored
in InfluxDB, or kept centrally as a dead letter). The broker's PUBACK only marks it sent: a
broker killed between two autosaves forgets what it acknowledged. Sent entries without a
confirmation are offered again after every reconnect and after `confirm_timeout_s`; entries
not yet sent are retried from disk after a restart of the agent. With `confirm` off (a broker
without the sensorpipe ingest behind it), the PUBACK is enough and the entry goes at once.

A broker that refuses an entry for good (MQTT 5 "not authorised", "topic name invalid",
"payload format invalid") moves it to the outbox's rejected list instead of retrying forever;
other refusals ("quota exceeded": the broker's queue for the ingest is full) are retried after
a pause. Duplicates are possible and harmless: the ingest stores each message under its
observation time, so a repeated message overwrites itself.
"""

from __future__ import annotations

import logging
import math
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorpipe.edge.config import MqttConfig
from sensorpipe.edge.outbox import Outbox, OutboxEntry
from sensorpipe.protocol.ack import ack_topic, decode_ack

log = logging.getLogger(__name__)

Finalize = Callable[[OutboxEntry, "LinkState"], bytes]
# PUBACK reason codes that will not change on a retry: the entry is set aside.
REFUSED_FOR_GOOD = {0x87, 0x90, 0x99}  # not authorised, topic name invalid, payload format
REFUSED_PAUSE_S = 5.0  # before offering entries again that the broker refused for now


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the publisher knows about its connection when it hands an entry to the broker."""

    reconnects: int
    outbox_depth: int
    backlog: bool


def make_client(client_id: str, config: MqttConfig) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(config.username, config.password)
    if config.tls:
        client.tls_set(ca_certs=config.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)  # the window below bounds what paho holds
    return client


class Publisher:
    def __init__(
        self,
        *,
        outbox: Outbox,
        mqtt_config: MqttConfig,
        client_id: str,
        finalize: Finalize,
        window: int = 100,
        client_factory: Callable[[str, MqttConfig], mqtt.Client] = make_client,
    ) -> None:
        self._outbox = outbox
        self._config = mqtt_config
        self._finalize = finalize
        self._window = window
        self._client = client_factory(client_id, mqtt_config)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._acks: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._confirms: queue.Queue[list[int]] = queue.Queue()
        self._reconnected = threading.Event()
        # Confirmations come only once the subscription stands: nothing is sent before that.
        self._subscribed = threading.Event()
        self._confirming = mqtt_config.confirm
        self._paused_until = 0.0
        self._next_requeue = time.monotonic() + mqtt_config.confirm_timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox entry id
        self._last_handed = 0
        self._connected_since: float | None = None
        self._connections = 0
        self.acked = 0  # PUBACKs: the broker has the entry
        self.confirmed = 0  # entries the ingest confirmed, removed from the outbox
        self.resent = 0  # sent entries offered again for want of a confirmation
        self.refused = 0

    @property
    def reconnects(self) -> int:
        return max(0, self._connections - 1)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        self._client.connect_async(
            self._config.host,
            self._config.port,
            self._config.keepalive_s,
            clean_start=True,
            properties=props,
        )
        self._client.loop_start()
        self._thread.start()

    def notify(self) -> None:
        """New entries are in the outbox."""
        self._wake.set()

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop; first wait up to `drain_timeout_s` for the outbox to empty."""
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and (self._outbox.depth() or self._in_flight):
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho callbacks: network thread, so they only hand over to the pump thread ----------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self._connections += 1
        self._connected_since = time.time()
        log.info("connected to %s:%s", self._config.host, self._config.port)
        self._subscribed.clear()
        if self._confirming:
            client.subscribe(ack_topic(self._config.username), qos=1)
        else:
            self._subscribed.set()
        if self._connections > 1:
            # Confirmations published while we were away are gone (clean start), and a broker
            # that restarted may have lost what it acknowledged: offer every sent entry again.
            self._reconnected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected_since is not None and not self._stop.is_set():
            log.warning("disconnected from broker: %s", reason)
        self._connected_since = None
        self._subscribed.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.put((mid, reason))
        self._wake.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            # A broker whose ACL predates confirmations: the PUBACK has to do.
            log.error(
                "broker refused the confirmation topic (%s): entries leave the outbox on the "
                "broker's acknowledgement; regenerate the broker's ACL (`gateway config`)",
                reasons,
            )
            self._confirming = False
            self._reconnected.set()  # entries marked sent go once more, to leave on PUBACK
        self._subscribed.set()
        self._wake.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            numbers = decode_ack(bytes(msg.payload)).numbers()
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring a malformed acknowledgement on %s: %s", msg.topic, exc)
            return
        self._confirms.put(numbers)
        self._wake.set()

    # --- pump thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            self._handle_acks()
            self._handle_confirms()
            self._offer_unconfirmed_again()
            if (
                self._connected_since is not None
                and self._subscribed.is_set()
                and time.monotonic() >= self._paused_until
            ):
                self._hand_over()

    def _handle_confirms(self) -> None:
        while True:
            try:
                numbers = self._confirms.get_nowait()
            except queue.Empty:
                return
            self.confirmed += self._outbox.confirm(numbers)

    def _offer_unconfirmed_again(self) -> None:
        now = time.monotonic()
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._in_flight.clear()  # their PUBACKs will not come on this connection
            self._last_handed = 0
            cutoff = math.inf
        elif self._confirming and now >= self._next_requeue:
            cutoff = time.time() - self._config.confirm_timeout_s
        else:
            return
        self._next_requeue = now + self._config.confirm_timeout_s / 4
        again = self._outbox.requeue(sent_before=cutoff)
        if again:
            log.info("offering %d sent entries again: no confirmation from the ingest", again)
            self.resent += again
            self._last_handed = 0

    def _handle_acks(self) -> None:
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                return
            entry_id = self._in_flight.pop(mid, None)
            if entry_id is None:
                continue
            if not getattr(reason, "is_failure", False):
                self.acked += 1
                if self._confirming:
                    self._outbox.mark_sent(entry_id)
                else:
                    self._outbox.remove(entry_id)
            elif reason.value in REFUSED_FOR_GOOD:
                self.refused += 1
                log.error("broker refused outbox entry %d: %s", entry_id, reason)
                self._outbox.reject(entry_id, f"broker: {reason}")
            else:  # e.g. quota exceeded: the same entry will do later
                log.warning("broker refused outbox entry %d for now: %s", entry_id, reason)
                self._last_handed = min(self._last_handed, entry_id - 1)
                self._paused_until = time.monotonic() + REFUSED_PAUSE_S

    def _hand_over(self) -> None:
        room = self._window - len(self._in_flight)
        if room <= 0:
            return
        connected_since = self._connected_since or time.time()
        entries = self._outbox.pending(after_id=self._last_handed, limit=room)
        depth = self._outbox.depth()
        for entry in entries:
            state = LinkState(
                reconnects=self.reconnects,
                outbox_depth=depth,
                backlog=entry.created_at < connected_since,
            )
            try:
                payload = self._finalize(entry, state)
            except ValueError as exc:
                log.error("outbox entry %d cannot be encoded: %s", entry.id, exc)
                self._outbox.reject(entry.id, f"encode: {exc}")
                continue
            info = self._client.publish(entry.topic, payload, qos=1)
            self._in_flight[info.mid] = entry.id
            self._last_handed = entry.id
