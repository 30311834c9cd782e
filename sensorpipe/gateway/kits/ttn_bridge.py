"""The MQTT bridge to one The Things Stack application, and gap filling from its storage.

The bridge connects to the application's MQTT server as `{application id}@{tenant id}` with
the API key as password, subscribes to `v3/{application id}@{tenant id}/devices/+/up` and hands
each uplink to the application's TtnReceiver, one at a time in arrival order, from a worker
thread (paho's network thread only queues them).

Delivery guarantee: at least once, as far as the server allows.
- The subscription asks for QoS 1 on a persistent session (clean session off, a stable
  client id), and an uplink is acknowledged (manual PUBACK) only once it is published to our
  broker (its PUBACK received) or kept as a dead letter. While our broker or the dead-letter
  store is away the worker retries the same uplink with backoff and acknowledges nothing; a
  server that speaks QoS 1 keeps the rest for the bridge, also while the bridge itself is down.
- The Things Stack's MQTT server sends with QoS 0 only and keeps nothing for a client that is
  away. So with `storage_url` set (the application's Storage Integration enabled), every
  connection (the first after a start too) is followed by a query for the uplinks received
  since the last one the bridge handled (less `backfill_margin_s`), asked again
  `backfill_settle_s` later (the storage writes in batches). Those are handled like live ones;
  what was handled before is not published twice (TtnReceiver remembers), and what is published
  again anyway lands on the same points (same device, same observation time). The last uplink
  handled is kept on disk (ttn_state), so a restart of the gateway is covered too. Uplinks
  that arrive while the worker is stuck wait in memory up to `max_pending`; beyond that they
  are dropped from memory and fetched from the storage once the worker moves again.
- Without `storage_url`, uplinks sent while the bridge or its connection is down are lost by
  the server: said once at start, as a warning.

Reconnecting is paho's (growing delays up to 30 s); each failure and each return is logged.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.kits.publish import BrokerUnavailable
from sensorpipe.gateway.kits.ttn_config import TtnApplication
from sensorpipe.gateway.kits.ttn_receiver import (
    KIT,
    Counting,
    DeadLettersUnavailable,
    Handled,
    TtnReceiver,
)
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.protocol.brokerlink import Client, connect_failure, describe_refusal
from sensorpipe.protocol.problems import RepeatedProblem

log = logging.getLogger(__name__)

RETRY_CAP_S = 10.0  # longest pause between tries of an uplink while our broker is away
STORAGE_RETRY_S = 60.0  # a storage query that failed is asked again after this long
STORAGE_PAGE = 500


class StorageUnavailable(RuntimeError):
    """The Storage Integration did not answer as expected. Retryable."""


class StorageIntegration:
    """The application's stored uplinks: `GET /api/v3/as/applications/{application id}/
    packages/storage/uplink_message?after=...&order=received_at&limit=...`, with the API key
    as bearer token (rights: read application traffic). The answer is one `{"result": ...}`
    line per ApplicationUp."""

    def __init__(
        self,
        app: TtnApplication,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        page: int = STORAGE_PAGE,
    ) -> None:
        assert app.storage_url is not None
        self.url = (
            f"{app.storage_url}/api/v3/as/applications/{app.application_id}"
            f"/packages/storage/uplink_message"
        )
        self._page = page
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def uplinks(self, after_ms: int) -> Iterator[bytes]:
        """Each stored uplink received after `after_ms` (epoch ms), oldest first, as JSON."""
        after = _rfc3339(after_ms)
        while True:
            params = {"after": after, "order": "received_at", "limit": str(self._page)}
            try:
                response = self._http.get(self.url, params=params)
            except httpx.HTTPError as exc:
                raise StorageUnavailable(f"{self.url}: {exc}") from None
            if response.status_code != 200:
                raise StorageUnavailable(
                    f"{self.url}: HTTP {response.status_code} {response.text[:200]!r}"
                )
            count, last = 0, None
            for line in response.text.splitlines():
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise StorageUnavailable(f"{self.url}: not JSON: {line[:100]!r}") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("result"), dict):
                    raise StorageUnavailable(f"{self.url}: unexpected answer {line[:200]!r}")
                result = obj["result"]
                count += 1
                last = result.get("received_at")
                yield json.dumps(result, separators=(",", ":")).encode()
            if count < self._page or not isinstance(last, str) or last == after:
                return
            after = last

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True, slots=True)
class _Uplink:
    generation: int  # the connection that delivered it: acknowledgements go only there
    mid: int
    qos: int
    device: str | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Backfill:
    after_ms: int


class TtnBridge:
    def __init__(
        self,
        app: TtnApplication,
        receiver: TtnReceiver,
        *,
        state: TtnState,
        client_id: str,
        api_key: str,
        storage: StorageIntegration | None = None,
        counters: Counting | None = None,
        max_pending: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        assert app.server is not None
        self.app = app
        self.receiver = receiver
        self.storage = storage
        self._counters = counters
        self.max_pending = max_pending
        self.dropped = 0  # uplinks dropped from memory (to be fetched from the storage)
        self._state = state
        self._queue: queue.Queue[_Uplink | _Backfill] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._generation = 0
        # While uplinks were dropped from memory: the progress before the first of them.
        self._dropped_after_ms: int | None = None
        self._timers: list[threading.Timer] = []
        self._timers_lock = threading.Lock()
        where = f"{app.server}:{app.port}"
        self._unreachable = RepeatedProblem(
            log, f"The Things Stack {app.application}: cannot connect to {where}", clock=monotonic
        )
        self._stuck = RepeatedProblem(
            log, f"The Things Stack {app.application}: uplinks not taken", clock=monotonic
        )
        self._worker = threading.Thread(
            target=self._work, name=f"ttn-{app.application_id}", daemon=True
        )
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,  # The Things Stack speaks 3.1.1
            clean_session=False,
            manual_ack=True,
        )
        client.username_pw_set(app.username, api_key)
        if app.tls:
            cafile = str(app.ca_file) if app.ca_file else None
            client.tls_set_context(ssl.create_default_context(cafile=cafile))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        if self.storage is None:
            log.warning(
                "The Things Stack %s: no storage_url, so uplinks sent while this bridge or its "
                "connection is down are lost (the MQTT server keeps nothing for it); enable "
                "the application's Storage Integration and set storage_url to fill such gaps",
                self.app.application,
            )
        self._worker.start()
        assert self.app.server is not None
        self._client.connect_async(self.app.server, self.app.port, keepalive=self.app.keepalive_s)
        self._client.loop_start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking uplinks; the one in hand is finished or left unacknowledged."""
        self._stop.set()
        with self._timers_lock:
            for timer in self._timers:
                timer.cancel()
        self._client.disconnect()
        self._client.loop_stop()
        self._worker.join(timeout_s)
        if self.storage is not None:
            self.storage.close()

    # --- paho callbacks (its network thread) ----------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._unreachable.report(describe_refusal(reason, f"[[ttn]] {self.app.application}"))
            return
        self._generation += 1
        self._connected.set()
        self._count("connections", "made")
        self._unreachable.resolved(
            f"The Things Stack {self.app.application}: connected to {self.app.server}"
        )
        client.subscribe(self.app.uplink_topic, qos=1)
        log.info(
            "The Things Stack %s: connected to %s:%d, subscribed to %s (session present: %s)",
            self.app.application,
            self.app.server,
            self.app.port,
            self.app.uplink_topic,
            flags.session_present,
        )
        if self.storage is not None:
            self._request_backfill()
            self._later(self.app.backfill_settle_s, self._request_backfill)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        assert self.app.server is not None
        self._unreachable.report(
            connect_failure(
                client,
                host=self.app.server,
                port=self.app.port,
                tls=self.app.tls,
                connect_timeout_s=10.0,
                section=f"[[ttn]] {self.app.application}",
            ),
            "; still trying",
        )

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stop.is_set():
            self._count("connections", "lost")
            self._unreachable.report(f"disconnected ({reason})", "; reconnecting")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        device = parts[3] if len(parts) == 5 and parts[4] == "up" else None
        if msg.qos == 0 and self._queue.qsize() >= self.max_pending:
            # QoS 0 cannot be refused: drop it from memory, fetch it from the storage later.
            self.dropped += 1
            self._count("uplinks", "dropped_from_memory")
            if self._dropped_after_ms is None:
                self._dropped_after_ms = self._state.handled_until(self.app.application) or 0
            return
        self._queue.put(_Uplink(self._generation, msg.mid, msg.qos, device, bytes(msg.payload)))

    # --- the worker -----------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._after_drops()
                continue
            try:
                if isinstance(item, _Backfill):
                    self._backfill(item.after_ms)
                else:
                    self._live(item)
            except Exception:  # a bug must not end the bridge
                log.exception("The Things Stack %s: bridge worker error", self.app.application)

    def _live(self, item: _Uplink) -> None:
        result = self._take(item.payload, item.device)
        if result is None:
            return  # stopping: left unacknowledged, the server sends it again (QoS 1)
        if item.qos > 0 and item.generation == self._generation:
            self._client.ack(item.mid, item.qos)
        if result.as_received_ms is not None and self._dropped_after_ms is None:
            self._state.set_handled(self.app.application, result.as_received_ms)

    def _take(self, payload: bytes, device: str | None) -> Handled | None:
        """Hand one uplink to the receiver until it is taken; None when stopping first."""
        delay = 0.2
        while not self._stop.is_set():
            try:
                result = self.receiver.handle(payload, topic_device=device)
            except (BrokerUnavailable, DeadLettersUnavailable) as exc:
                self._stuck.report(str(exc), "; trying again")
                if self._stop.wait(random.uniform(delay / 2, delay)):
                    return None
                delay = min(delay * 2, RETRY_CAP_S)
                continue
            self._stuck.resolved(f"The Things Stack {self.app.application}: uplinks taken again")
            return result
        return None

    def _backfill(self, after_ms: int) -> None:
        assert self.storage is not None
        newest = None
        try:
            for raw in self.storage.uplinks(after_ms):
                result = self._take(raw, None)
                if result is None:
                    return
                if not result.duplicate:
                    self._count("uplinks", "gap_filled")
                if result.as_received_ms is not None:
                    newest = max(newest or 0, result.as_received_ms)
        except StorageUnavailable as exc:
            log.warning(
                "The Things Stack %s: gap filling from the Storage Integration failed (%s); "
                "trying again in %.0f s",
                self.app.application,
                exc,
                STORAGE_RETRY_S,
            )
            self._count("storage", "failed")
            self._later(STORAGE_RETRY_S, lambda: self._queue.put(_Backfill(after_ms)))
            return
        if newest is not None:
            self._state.set_handled(self.app.application, newest)

    def _after_drops(self) -> None:
        """Once the worker is free again after uplinks were dropped from memory: fetch them."""
        after = self._dropped_after_ms
        if after is None:
            return
        self._dropped_after_ms = None
        if self.storage is None:
            log.error(
                "The Things Stack %s: %d uplinks were dropped while the bridge was stuck, and "
                "without storage_url they cannot be fetched again",
                self.app.application,
                self.dropped,
            )
            return
        self._queue.put(_Backfill(max(0, after - round(self.app.backfill_margin_s * 1000))))

    def _request_backfill(self) -> None:
        """Fetch what came since the last uplink handled (none handled yet: nothing)."""
        if self._stop.is_set():
            return
        until = self._state.handled_until(self.app.application)
        if until is not None:
            self._queue.put(_Backfill(max(0, until - round(self.app.backfill_margin_s * 1000))))

    def _count(self, what: str, key: str) -> None:
        if self._counters is not None:
            self._counters.add(KIT, what, key)

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(delay_s, action)
        timer.daemon = True
        with self._timers_lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()


def _rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
