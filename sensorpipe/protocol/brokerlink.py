"""Connecting to the broker, for the edge agent and the ingest alike: an attempt that fails says
why, in words the person who wrote the configuration can act on.

paho retries by itself and tells `on_connect_fail` only that an attempt failed, not why; and a
port that accepts the connection but never answers CONNECT it waits on for the keepalive, then
closes without a callback. `Client` keeps the reason of the last failed attempt and gives up
on an unanswered CONNECT after `connack_timeout_s`; the `describe_*` functions turn what went
wrong into one sentence. `section` names the configuration section the hints point to
(`[mqtt]` on a device, `[broker]` for the ingest).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt

BAD_LOGIN = (0x86, 0x87)  # CONNACK: bad user name or password, not authorised


class NoMqttAnswer(TimeoutError):
    """The other end accepted the connection but did not answer CONNECT: not an MQTT broker
    (an HTTP port, a listener that never speaks), or one too busy to answer."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no CONNACK within {timeout_s:g} s")
        self.timeout_s = timeout_s


class Client(mqtt.Client):
    """paho's client, keeping why its last attempt to connect failed (`last_connect_error`),
    and giving up on a connection that was accepted but never answered after
    `connack_timeout_s`: such an attempt fails like any other (`on_connect_fail`, with a
    NoMqttAnswer) and is retried after paho's growing delay.

    `after_io`, if set, runs in paho's network thread (`loop_start`) after each pass of its
    loop while connected: after what arrived was read and handed to the callbacks, and at
    least once a second. Work done there needs no hand-over between threads: a program that
    answers PUBACKs with new PUBLISHes (the edge's outbox publisher) would otherwise wait for
    Python's GIL twice a message. `wake()` makes the loop pass at once, from any thread."""

    last_connect_error: OSError | None = None
    connack_timeout_s: float = 10.0
    after_io: Callable[[], None] | None = None
    _connect_sent_at: float | None = None
    _network_thread: threading.Thread | None = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self._connect_sent_at = None
        try:
            result = super().reconnect()
        except OSError as exc:  # socket.gaierror, ConnectionRefusedError, TimeoutError, SSL
            self.last_connect_error = exc
            raise
        self._connect_sent_at = time.monotonic()
        return result

    def limit_in_flight(self, n: int) -> None:
        """Send at most `n` QoS 1/2 messages before their acknowledgements (paho: 20, and it
        ignores the broker's Receive Maximum). paho's own setter refuses to change it on an
        open connection; called from `on_connect`, it applies before paho sends anything on
        the new one."""
        self._max_inflight_messages = max(1, n)

    def loop_misc(self) -> mqtt.MQTTErrorCode:
        # Called by paho's network loop at least once a second (its select timeout).
        sent_at = self._connect_sent_at
        if sent_at is not None and self.is_connected():
            self._connect_sent_at = None
        elif sent_at is not None and time.monotonic() - sent_at >= self.connack_timeout_s:
            self._connect_sent_at = None
            self.last_connect_error = NoMqttAnswer(self.connack_timeout_s)
            on_connect_fail = self.on_connect_fail
            if on_connect_fail is not None:
                on_connect_fail(self, self.user_data_get())
            # The loop takes this for a lost connection: it waits its reconnect delay, then
            # reconnect() closes this socket and tries again.
            return mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
        result = super().loop_misc()
        after_io = self.after_io
        if after_io is not None and result == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
            after_io()
        return result

    def wake(self) -> None:
        """Make the network loop pass (and run `after_io`) now, not at its next timeout: the
        byte paho itself writes to its loop's socket pair when something is published from
        another thread."""
        writer = self._sockpairW
        if writer is not None:
            with contextlib.suppress(OSError):  # full: the loop is woken already
                writer.send(b"\0")

    def loop_start(self) -> mqtt.MQTTErrorCode:
        result = super().loop_start()
        self._network_thread = self._thread  # paho forgets it when the thread ends
        return result

    @property
    def network_alive(self) -> bool:
        """paho's network thread runs (`loop_start`), or was not started yet."""
        thread = self._network_thread
        return thread is None or thread.is_alive()


def describe_connect_error(
    exc: OSError,
    *,
    host: str,
    port: int,
    tls: bool,
    connect_timeout_s: float,
    section: str,
    untrusted: str | None = None,
) -> str:
    """Why a connection attempt failed (`Client.last_connect_error`). `untrusted`: what to
    check when the broker's certificate is not trusted, where the caller knows better than
    "ca_file" (the CA a join code carries)."""
    if untrusted is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted ({exc.verify_message}){untrusted}"
    if isinstance(exc, NoMqttAnswer):
        hint = "" if tls else f" (or its TLS port: then set tls = true in {section})"
        return (
            f"no MQTT answer from {host}:{port} within {exc.timeout_s:g} s: is it an MQTT "
            f"broker{hint}?"
        )
    if isinstance(exc, socket.gaierror):
        return f"the host name {host!r} does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection refused: nothing listens on port {port} (wrong port, the broker "
            "down, or a firewall)"
        )
    if tls and _tls_mismatch(exc):
        return (
            f"the TLS handshake failed ({_os_reason(exc)}): is port {port} the broker's TLS "
            f"port? With tls = true it must be (usually 8883), not a plain-text one (1883)"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        if tls and "handshake" in str(exc):  # ssl's own words for its timeout
            return (
                f"no answer to the TLS handshake from {host}:{port} within "
                f"{connect_timeout_s:g} s: is it the broker's TLS port?"
            )
        return "no answer (wrong host, or a firewall in between)"
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS failed: {_os_reason(exc)} (check ca_file in {section} and the broker's "
            f"certificate)"
        )
    return _os_reason(exc)


def connect_failure(
    client: mqtt.Client,
    *,
    host: str,
    port: int,
    tls: bool,
    connect_timeout_s: float,
    section: str,
) -> str:
    """Why `client`'s last connection attempt failed, for its on_connect_fail callback."""
    exc = getattr(client, "last_connect_error", None)
    if exc is None:
        return "no connection"
    return describe_connect_error(
        exc, host=host, port=port, tls=tls, connect_timeout_s=connect_timeout_s, section=section
    )


class BrokerAddress(Protocol):
    """Where a configuration section says the broker is: `[mqtt]` on a device, `[broker]` for
    the ingest."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> bool: ...
    @property
    def connect_timeout_s(self) -> float: ...


def connect_failure_at(client: mqtt.Client, broker: BrokerAddress, section: str) -> str:
    """`connect_failure` for the broker a configuration section names."""
    return connect_failure(
        client,
        host=broker.host,
        port=broker.port,
        tls=broker.tls,
        connect_timeout_s=broker.connect_timeout_s,
        section=section,
    )


def ca_file_problem(path: Path) -> str | None:
    """Why `path` cannot serve as the CA file paho will load at connect time, or None."""
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        return f"{path} does not exist"
    except IsADirectoryError:
        return f"{path} is a directory"
    except ssl.SSLError as exc:  # an OSError too: first
        return f"{path} holds no PEM certificate ({exc.reason or exc})"
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    return None


def describe_refusal(reason: Any, section: str) -> str:
    """Why the broker refused CONNECT, from its CONNACK reason code."""
    hint = f" (check username and password in {section})" if reason.value in BAD_LOGIN else ""
    return f"the broker refused the connection: {reason}{hint}"


def describe_closed_unanswered(*, port: int, tls: bool, section: str) -> str:
    """The connection stood and was closed before the broker answered CONNECT: what a
    broker's TLS port does to a plain-text client."""
    hint = "" if tls else f"; if port {port} is the broker's TLS port, set tls = true in {section}"
    return f"the connection was closed before the broker answered{hint}"


def _tls_mismatch(exc: OSError) -> bool:
    """A handshake that ended as a plain-text listener ends one: a reset or a closed
    connection (Mosquitto), or an answer that is no TLS at all (an HTTP port)."""
    if isinstance(exc, ConnectionResetError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return True
    reason = getattr(exc, "reason", None) or ""
    return isinstance(exc, ssl.SSLError) and reason in (
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNEXPECTED_EOF_WHILE_READING",
    )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(getattr(exc, "reason", None) or exc)
    return exc.strerror or str(exc) or type(exc).__name__
