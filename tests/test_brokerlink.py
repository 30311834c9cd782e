"""Connecting to the broker (protocol.brokerlink): why an attempt failed, in words, and a port
that accepts but never answers is given up on and tried again, not waited on unsaid."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.protocol.brokerlink import Client, NoMqttAnswer, describe_connect_error
from tests.helpers import wait_for


class SilentListener:
    """A TCP port that accepts connections and never says a word (not an MQTT broker)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self._server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._server.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def test_an_unanswered_connect_fails_after_the_timeout_and_is_tried_again(
    silent: SilentListener,
) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    client.connack_timeout_s = 1.0
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    failures: list[OSError | None] = []
    client.on_connect_fail = lambda _c, _u: failures.append(client.last_connect_error)
    client.connect_async("127.0.0.1", silent.port, keepalive=60)
    client.loop_start()
    try:
        # paho alone would wait the keepalive (60 s here), then close without a callback.
        wait_for(lambda: len(failures) >= 2, timeout_s=40, what="two attempts given up on")
        wait_for(lambda: len(silent.accepted) >= 2, timeout_s=10, what="a second connection")
    finally:
        client.disconnect()
        client.loop_stop()
    assert all(isinstance(f, NoMqttAnswer) and f.timeout_s == 1.0 for f in failures)
    assert not client.is_connected()


def _describe(exc: OSError, *, tls: bool = False) -> str:
    return describe_connect_error(
        exc, host="mqtt.example.nl", port=8883, tls=tls, connect_timeout_s=10, section="[broker]"
    )


def test_each_failure_is_described_with_what_to_check() -> None:
    assert _describe(ConnectionRefusedError(111, "Connection refused")) == (
        "connection refused: nothing listens on port 8883 (wrong port, the broker down, or a "
        "firewall)"
    )
    assert _describe(socket.gaierror(-2, "Name or service not known")) == (
        "the host name 'mqtt.example.nl' does not resolve (Name or service not known)"
    )
    assert _describe(NoMqttAnswer(10)) == (
        "no MQTT answer from mqtt.example.nl:8883 within 10 s: is it an MQTT broker (or its "
        "TLS port: then set tls = true in [broker])?"
    )
    assert "set tls = true" not in _describe(NoMqttAnswer(10), tls=True)
    assert _describe(TimeoutError("timed out")) == (
        "no answer (wrong host, or a firewall in between)"
    )
    assert _describe(TimeoutError("_ssl.c:990: The handshake operation timed out"), tls=True) == (
        "no answer to the TLS handshake from mqtt.example.nl:8883 within 10 s: is it the "
        "broker's TLS port?"
    )
    assert _describe(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), tls=True) == (
        "the TLS handshake failed (EOF occurred in violation of protocol): is port 8883 the "
        "broker's TLS port? With tls = true it must be (usually 8883), not a plain-text one "
        "(1883)"
    )
    assert _describe(OSError(113, "No route to host")) == "No route to host"
