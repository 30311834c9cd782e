"""Publishing kits' readings: signed with the gateway's key, confirmed by the broker.

A kit cannot sign, so the gateway that received its reading vouches for it: the message names
the gateway (`vouched_by`) and carries the gateway's Ed25519 signature, which the ingest checks
against the gateway registered for that kit. `publish` returns only once the broker has
acknowledged the message (QoS 1 PUBACK): from then on the broker's persistent queue for the
ingest holds it. When the broker is not connected or does not acknowledge in time it raises
`BrokerUnavailable`, and the caller tells its sender so (HTTP 503, an MQTT message not
acknowledged upstream) instead of claiming the reading was taken.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.protocol.brokerlink import Client, connect_failure, describe_refusal
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import AnyMessage
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker did not take the message: not connected, or no PUBACK in time."""


class KitPublisher:
    def __init__(
        self,
        *,
        gateway_id: str,
        private_key: str,
        host: str,
        port: int,
        password: str,
        tls: bool = False,
        ca_file: Path | None = None,
        keepalive_s: int = 30,
    ) -> None:
        self.gateway_id = gateway_id
        self.host = host
        self.port = port
        self._tls = tls
        self._signer = Signer(private_key)
        self._connected = threading.Event()
        self.last_problem: str | None = "not connected yet"
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=gateway_id,  # the broker uses the user name as client id anyway
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(gateway_id, password)
        if tls:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        self._keepalive_s = keepalive_s

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def sign(self, message: AnyMessage) -> bytes:
        """The message as this gateway vouches for it: `vouched_by` set, signed, encoded."""
        vouched = message.model_copy(update={"vouched_by": self.gateway_id, "sig": None})
        return encode(vouched, self._signer.sign)

    def publish(self, message: AnyMessage, *, timeout_s: float = 10.0) -> None:
        """Publish `message` for its device; returns once the broker acknowledged it."""
        if not self._connected.is_set():
            raise BrokerUnavailable(f"broker {self.host}:{self.port}: {self.last_problem}")
        payload = self.sign(message)
        info = self._client.publish(topic_for(message.device_id, message.kind), payload, qos=1)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:  # lost the connection before it was sent
            raise BrokerUnavailable(f"broker {self.host}:{self.port}: {exc}") from None
        if not info.is_published():
            raise BrokerUnavailable(
                f"broker {self.host}:{self.port} did not acknowledge within {timeout_s:g} s"
            )

    # paho callbacks (its network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_problem = describe_refusal(reason, "[broker]")
            log.warning("%s", self.last_problem)
            return
        self.last_problem = None
        self._connected.set()
        log.info("connected to the broker at %s:%d", self.host, self.port)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected.is_set():
            log.warning("lost the broker at %s:%d (%s)", self.host, self.port, reason)
        self._connected.clear()
        self.last_problem = f"disconnected ({reason})"

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._connected.clear()
        self.last_problem = connect_failure(
            client,
            host=self.host,
            port=self.port,
            tls=self._tls,
            connect_timeout_s=10.0,
            section="[broker]",
        )
        log.warning("cannot reach the broker: %s", self.last_problem)
