"""Moves outbox entries to the broker, at least once.

Guarantee: an entry leaves the outbox only when the broker acknowledged it (QoS 1 PUBACK with a
success reason code). Until then it is retried: by paho after a reconnect, and from disk after a
restart of the agent. A broker that refuses an entry for good (MQTT 5 "not authorised") moves it
to the outbox's rejected list instead of retrying forever. Duplicates are possible and harmless:
the ingest stores each message under its observation time, so a redelivery overwrites itself.
"""

from __future__ import annotations

import logging
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

from edge.config import MqttConfig
from edge.outbox import Outbox, OutboxEntry

log = logging.getLogger(__name__)

Finalize = Callable[[OutboxEntry, "LinkState"], bytes]


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
        self._acks: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox entry id
        self._last_handed = 0
        self._connected_since: float | None = None
        self._connections = 0
        self.acked = 0
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
        self._wake.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected_since is not None and not self._stop.is_set():
            log.warning("disconnected from broker: %s", reason)
        self._connected_since = None

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.put((mid, reason))
        self._wake.set()

    # --- pump thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            self._handle_acks()
            if self._connected_since is not None:
                self._hand_over()

    def _handle_acks(self) -> None:
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                return
            entry_id = self._in_flight.pop(mid, None)
            if entry_id is None:
                continue
            if getattr(reason, "is_failure", False):
                self.refused += 1
                log.error("broker refused outbox entry %d: %s", entry_id, reason)
                self._outbox.reject(entry_id, f"broker: {reason}")
            else:
                self.acked += 1
                self._outbox.remove(entry_id)

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
