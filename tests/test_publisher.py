"""The publisher against a scripted MQTT client: when an outbox entry may leave, and when it
is sent again. The real broker and ingest are in tests/integration."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sensorpipe.edge.config import MqttConfig
from sensorpipe.edge.outbox import MemoryOutbox, OutboxEntry, OutboxError
from sensorpipe.edge.publisher import LinkState, Publisher, make_client
from sensorpipe.protocol.ack import SetAside, encode_ack
from sensorpipe.protocol.brokerlink import Client, NoMqttAnswer
from tests.helpers import wait_for
from tests.test_brokerlink import SilentListener

OK = ReasonCode(PacketTypes.CONNACK, identifier=0)


@dataclass
class Sent:
    topic: str
    payload: bytes
    mid: int


class ScriptedClient:
    """Records what the publisher does; the test plays the broker's part via the callbacks.

    As paho's network thread does, a thread of its own runs `after_io` (the publisher's work)
    after each thing the broker did, when woken, and at least twice a second."""

    def __init__(self) -> None:
        self.after_io: Callable[[], None] | None = None
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent: list[Sent] = []
        self.subscriptions: list[str] = []
        self._mid = 0
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_publish: Any = None
        self.on_message: Any = None
        self.on_subscribe: Any = None
        self.on_connect_fail: Any = None
        self.on_pre_connect: Any = None
        self.last_connect_error: OSError | None = None

    def connect_async(self, *args: Any, **kwargs: Any) -> None:
        pass

    def loop_start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._woken.wait(0.5)
            self._woken.clear()
            if self.after_io is not None:
                self.after_io()

    def wake(self) -> None:
        self._woken.set()

    @property
    def network_alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def loop_stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(5)

    def disconnect(self) -> None:
        pass

    def subscribe(self, topic: str, qos: int) -> None:
        self.subscriptions.append(topic)

    def limit_in_flight(self, n: int) -> None:
        self.max_in_flight = n

    def publish(self, topic: str, payload: bytes, qos: int) -> Any:
        self._mid += 1
        self.sent.append(Sent(topic, payload, self._mid))
        return SimpleNamespace(mid=self._mid)

    # --- the broker's side ---
    def connect(self, props: Any = None) -> None:
        self.on_pre_connect(self, None)
        self.on_connect(self, None, None, OK, props)
        self.wake()

    def fail_connect(self, exc: OSError) -> None:
        """paho's loop failed to connect (it retries by itself)."""
        self.on_pre_connect(self, None)
        self.last_connect_error = exc
        self.on_connect_fail(self, None)

    def close_before_answering(self) -> None:
        """The other end accepted the connection and closed it without a CONNACK."""
        self.on_pre_connect(self, None)
        reason = ReasonCode(PacketTypes.DISCONNECT, identifier=0x80)  # unspecified error
        self.on_disconnect(self, None, None, reason, None)

    def refuse_connect(self, code: int) -> None:
        self.on_pre_connect(self, None)
        self.on_connect(self, None, None, ReasonCode(PacketTypes.CONNACK, identifier=code), None)
        # paho closes the connection after a refusal, as the broker does.
        reason = ReasonCode(PacketTypes.DISCONNECT, identifier=0x80)
        self.on_disconnect(self, None, None, reason, None)

    def drop(self) -> None:
        self.on_disconnect(self, None, None, OK, None)

    def suback(self, code: int = 1) -> None:
        self.on_subscribe(self, None, 1, [ReasonCode(PacketTypes.SUBACK, identifier=code)], None)
        self.wake()

    def puback(self, sent: Sent, code: int = 0) -> None:
        self.on_publish(self, None, sent.mid, ReasonCode(PacketTypes.PUBACK, identifier=code), None)
        self.wake()

    def deliver_ack(self, seqs: list[int]) -> None:
        msg = SimpleNamespace(topic="sensorpipe/ack/v1/dev-1", payload=encode_ack(seqs))
        self.on_message(self, None, msg)
        self.wake()


def _as_queued(entry: OutboxEntry, _link: LinkState) -> bytes:
    return entry.body


def _publisher(
    outbox: MemoryOutbox,
    *,
    clock: Callable[[], float] = time.monotonic,
    finalize: Callable[[OutboxEntry, LinkState], bytes] = _as_queued,
    **mqtt: Any,
) -> tuple[Publisher, ScriptedClient]:
    client = ScriptedClient()
    config = MqttConfig(username="dev-1", password="x", **mqtt)
    publisher = Publisher(
        outbox=outbox,
        mqtt_config=config,
        client_id="dev-1",
        finalize=finalize,
        client_factory=lambda _id, _config: client,  # type: ignore[arg-type, return-value]
        clock=clock,
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


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_nothing_confirmed_for_the_timeout_is_said_with_likely_causes_then_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 2)
    # A clock that stands still: the pause before the same line again never ends.
    publisher, client = _publisher(outbox, clock=lambda: 0.0, confirm_timeout_s=1.0)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.connect()
            client.suback()
            wait_for(lambda: len(client.sent) == 2, what="two entries sent")
            for sent in client.sent:
                client.puback(sent)
            wait_for(
                lambda: _lines(caplog, "no confirmations from the ingest"),
                timeout_s=10,
                what="the warning that nothing is confirmed",
            )
            time.sleep(2.0)  # several more rounds of sending again, each without a confirmation
            (line,) = _lines(caplog, "no confirmations from the ingest")
            assert line.startswith(
                "no confirmations from the ingest: nothing the broker acknowledged has been "
                "confirmed (2 messages in "
            )
            assert "is the ingest running and connected to this broker" in line
            assert caplog.records[0].levelno == logging.WARNING
            client.deliver_ack([1, 2])
            wait_for(
                lambda: _lines(caplog, "confirmations from the ingest arrive again"),
                what="the end of it said",
            )
            wait_for(lambda: outbox.depth() == 0, what="the entries confirmed")
    finally:
        publisher.stop()


def test_nothing_confirmed_is_not_said_while_the_broker_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = MemoryOutbox()
    _fill(outbox, 1)
    publisher, client = _publisher(outbox, confirm_timeout_s=1.0)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.connect()
            client.suback()
            wait_for(lambda: len(client.sent) == 1, what="the entry sent")
            client.puback(client.sent[0])
            wait_for(lambda: publisher.acked == 1, what="its PUBACK handled")
            client.drop()  # its confirmation may be lost with the connection: no fault of it
            time.sleep(2.5)  # more than twice the timeout
        assert _lines(caplog, "no confirmations") == []
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


def test_a_message_larger_than_the_broker_takes_is_set_aside_once_and_the_rest_flows() -> None:
    outbox = MemoryOutbox()
    outbox.put("sensorpipe/v1/dev-1/air", b"m1", seq=1)
    outbox.put("sensorpipe/v1/dev-1/air", b"x" * (65 * 1024), seq=2)  # over the 64 KiB limit
    outbox.put("sensorpipe/v1/dev-1/air", b"m3", seq=3)
    publisher, client = _publisher(outbox, confirm=False)
    try:
        client.connect()
        wait_for(lambda: len(client.sent) == 2, what="the two others sent")
        assert [m.payload for m in client.sent] == [b"m1", b"m3"]
        ((entry, reason),) = outbox.rejected()
        assert entry.seq == 2 and reason == "too large: 66560 bytes, the broker accepts 65536"
        assert publisher.refused == 1 and outbox.dropped == 1  # reported as outbox_dropped
        for sent in client.sent:
            client.puback(sent)
        wait_for(lambda: outbox.depth() == 0, what="the others delivered")
        client.drop()
        client.connect()  # after a reconnect it is not tried again
        time.sleep(0.3)
        assert len(client.sent) == 2 and publisher.refused == 1
    finally:
        publisher.stop()


def test_the_broker_s_own_packet_limit_counts_when_it_states_one() -> None:
    outbox = MemoryOutbox()
    topic = "sensorpipe/v1/dev-1/air"
    outbox.put(topic, b"y" * 900, seq=1)
    outbox.put(topic, b"y" * 1100, seq=2)
    publisher, client = _publisher(outbox, confirm=False)
    try:
        props = Properties(PacketTypes.CONNACK)
        props.MaximumPacketSize = 1000 + 10 + len(topic)
        client.connect(props)
        wait_for(lambda: len(client.sent) == 1, what="the entry that fits")
        wait_for(lambda: publisher.refused == 1, what="the one that does not")
        assert publisher.payload_limit(topic) == 1000
        assert "1100 bytes, the broker accepts 1000" in outbox.rejected()[0][1]
    finally:
        publisher.stop()


def test_an_unreachable_broker_is_reported_at_once_with_its_reason_then_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    publisher, client = _publisher(MemoryOutbox(), clock=lambda: now[0], port=1884)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.fail_connect(ConnectionRefusedError(111, "Connection refused"))
            (line,) = [r for r in caplog.records]
            assert line.levelno == logging.WARNING
            assert "cannot connect to the broker at 127.0.0.1:1884" in line.getMessage()
            assert "connection refused: nothing listens on port 1884" in line.getMessage()
            for _ in range(20):  # paho retries every few seconds
                now[0] += 2.0
                client.fail_connect(ConnectionRefusedError(111, "Connection refused"))
            assert len(caplog.records) == 1  # the same reason is not repeated at once ...
            now[0] += 30.0
            client.fail_connect(ConnectionRefusedError(111, "Connection refused"))
            assert len(caplog.records) == 2  # ... but after a while, with how often
            assert "; 21 times in the last 70 s; still trying" in caplog.records[-1].getMessage()
            unresolvable = socket.gaierror(-2, "Name or service not known")
            client.fail_connect(unresolvable)  # a new reason is said at once
            assert "does not resolve" in caplog.records[-1].getMessage()
            client.refuse_connect(0x86)
            assert "check username and password" in caplog.records[-1].getMessage()
            now[0] += 5.0
            client.connect()
            assert "connected to the broker at 127.0.0.1:1884" in caplog.records[-1].getMessage()
            assert "after 24 failed attempts" in caplog.records[-1].getMessage()
        assert publisher.connect_failures == 24
    finally:
        publisher.stop()


def test_a_port_that_accepts_but_never_answers_is_reported_with_its_reason_then_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    publisher, client = _publisher(MemoryOutbox(), clock=lambda: now[0], port=8086)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            for _ in range(5):  # the client gives up after its timeout and tries again
                client.fail_connect(NoMqttAnswer(10.0))
                now[0] += 12.0
            (line,) = caplog.records
            assert line.levelno == logging.WARNING
            assert line.getMessage() == (
                "cannot connect to the broker at 127.0.0.1:8086: no MQTT answer from "
                "127.0.0.1:8086 within 10 s: is it an MQTT broker (or its TLS port: then set "
                "tls = true in [mqtt])?; still trying"
            )
            now[0] += 60.0
            client.fail_connect(NoMqttAnswer(10.0))
            assert "; 5 times in the last 2 min; still trying" in caplog.records[-1].getMessage()
        assert publisher.connect_failures == 6
    finally:
        publisher.stop()


@pytest.mark.parametrize(
    ("tls", "exc", "said"),
    [
        (
            True,
            ConnectionResetError(104, "Connection reset by peer"),
            "the TLS handshake failed (Connection reset by peer): is port 1883 the broker's "
            "TLS port? With tls = true it must be (usually 8883)",
        ),
        (
            True,
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            "the TLS handshake failed (WRONG_VERSION_NUMBER): is port 1883 the broker's TLS",
        ),
        (
            True,
            TimeoutError("_ssl.c:1011: The handshake operation timed out"),
            "no answer to the TLS handshake from 127.0.0.1:1883 within 10 s: is it the "
            "broker's TLS port?",
        ),
        (False, TimeoutError("timed out"), "no answer (wrong host, or a firewall in between)"),
    ],
)
def test_a_tls_mismatch_is_named_as_one(
    caplog: pytest.LogCaptureFixture, tls: bool, exc: OSError, said: str
) -> None:
    if isinstance(exc, ssl.SSLError):
        exc.reason = "WRONG_VERSION_NUMBER"  # set by the ssl module when it raises it
    publisher, client = _publisher(MemoryOutbox(), port=1883, tls=tls)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.fail_connect(exc)
        (line,) = caplog.records
        assert said in line.getMessage()
    finally:
        publisher.stop()


def test_a_connection_closed_before_the_broker_answered_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher, client = _publisher(MemoryOutbox(), port=8883)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.close_before_answering()  # a TLS port that got plain text
            client.close_before_answering()
            (line,) = caplog.records
            assert line.getMessage() == (
                "cannot connect to the broker at 127.0.0.1:8883: the connection was closed "
                "before the broker answered; if port 8883 is the broker's TLS port, set "
                "tls = true in [mqtt]; still trying"
            )
            client.refuse_connect(0x86)  # answered, then closed: the refusal is the reason
            (refused,) = caplog.records[1:]
            assert "refused the connection" in refused.getMessage()
        assert publisher.connect_failures == 3
    finally:
        publisher.stop()


def test_the_agent_s_client_gives_up_on_a_port_that_never_answers() -> None:
    """paho alone would wait the keepalive, then close the connection without a word."""
    silent = SilentListener()
    config = MqttConfig(username="u", password="p", port=silent.port, connect_timeout_s=1.0)
    client = cast(Client, make_client("dev-1", config))
    failures: list[OSError | None] = []
    client.on_connect_fail = lambda _c, _userdata: failures.append(client.last_connect_error)
    client.connect_async("127.0.0.1", silent.port, keepalive=config.keepalive_s)
    client.loop_start()
    try:
        wait_for(lambda: len(failures) >= 2, timeout_s=30, what="two attempts given up")
        assert all(isinstance(f, NoMqttAnswer) and f.timeout_s == 1.0 for f in failures)
        assert len(silent.accepted) >= 2  # each attempt a new connection
    finally:
        client.loop_stop()
        silent.close()
    # paho would close the silent connection itself at the keepalive, unreported.
    short_keepalive = MqttConfig(username="u", password="p", keepalive_s=5)
    assert cast(Client, make_client("dev-1", short_keepalive)).connack_timeout_s == 5.0


class FlakyOutbox(MemoryOutbox):
    """An outbox on a disk that is full for a while: its writes fail while `full` is set."""

    full = False

    def mark_sent(self, entry_id: int) -> None:
        if self.full:
            raise OutboxError("cannot mark an entry sent: database or disk is full")
        super().mark_sent(entry_id)

    def confirm(self, seqs: Any) -> int:
        if self.full:
            raise OutboxError("cannot remove confirmed entries: database or disk is full")
        return super().confirm(seqs)


def test_bookkeeping_a_full_disk_refuses_is_done_once_it_has_room() -> None:
    outbox = FlakyOutbox()
    _fill(outbox, 2)
    publisher, client = _publisher(outbox)
    try:
        client.connect()
        client.suback()
        wait_for(lambda: len(client.sent) == 2, what="two entries sent")
        outbox.full = True
        client.puback(client.sent[0])
        client.deliver_ack([1])
        client.puback(client.sent[1])
        time.sleep(0.5)
        assert publisher.alive and outbox.depth() == 2
        assert len(client.sent) == 2  # nothing sent twice meanwhile
        outbox.full = False
        wait_for(lambda: outbox.depth() == 1, what="the confirmed entry removed")
        assert [e.seq for e in outbox.pending()] == []  # the other is marked sent, kept
        client.deliver_ack([2])
        wait_for(lambda: outbox.depth() == 0, what="the second confirmed")
    finally:
        publisher.stop()


def test_a_backlog_drains_at_the_configured_pace() -> None:
    """An outbox full after an outage is sent at max_messages_per_s, within the network's
    quota per device, not all at once."""
    now = [0.0]
    outbox = MemoryOutbox()
    _fill(outbox, 50)
    publisher, client = _publisher(outbox, clock=lambda: now[0], max_messages_per_s=5)
    try:
        client.connect()
        client.suback()
        wait_for(lambda: len(client.sent) == 5, what="a second's worth sent")
        time.sleep(0.6)  # the pump runs again (every 0.5 s at least): still the same second
        assert len(client.sent) == 5
        now[0] = 2.0  # two seconds later: at most one more second's worth (the bucket's size)
        wait_for(lambda: len(client.sent) == 10, what="the next second's worth")
        time.sleep(0.6)
        assert len(client.sent) == 10
    finally:
        publisher.stop()


def test_a_message_the_ingest_set_aside_leaves_the_outbox_and_is_said_on_the_device(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A confirmation that names a message kept as a dead letter: it leaves the outbox like
    any confirmed one, and the agent's log says why (once, then less often), not only the
    server's dead-letter store."""
    outbox = MemoryOutbox()
    _fill(outbox, 3)
    publisher, client = _publisher(outbox)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.publisher"):
            client.connect()
            client.suback()
            wait_for(lambda: len(client.sent) == 3, what="three entries sent")
            aside = [
                SetAside(seq=n, code="bad_signature", detail="does not verify") for n in (1, 2)
            ]
            msg = SimpleNamespace(
                topic="sensorpipe/ack/v1/dev-1", payload=encode_ack([1, 2, 3], aside)
            )
            client.on_message(client, None, msg)
            client.wake()
            wait_for(lambda: outbox.depth() == 0, what="the confirmed entries removed")
        (line,) = _lines(caplog, "set a message aside")
        assert "bad_signature (sequence number 1: does not verify)" in line
        assert "`sensorpipe ingest rejects` on the server" in line
    finally:
        publisher.stop()


def test_a_link_taken_over_again_and_again_is_one_problem_with_a_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another client with this device's name (a second agent): the broker closes this
    connection each time the other logs in. Said once, with the likely cause, not a line a
    second; and no "connected again" while the link does not hold."""
    outbox = MemoryOutbox()
    publisher, client = _publisher(outbox)
    taken_over = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    try:
        with caplog.at_level(logging.INFO, logger="sensorpipe.edge.publisher"):
            for _ in range(5):
                client.connect()
                client.suback()
                client.on_disconnect(client, None, None, taken_over, None)
            client.connect()
            time.sleep(1.0)  # the pump runs: the link has not held for STABLE_LINK_S
        (line,) = _lines(caplog, "disconnected from the broker")
        assert "another client logged in as this device" in line
        assert _lines(caplog, "connected again") == []
    finally:
        publisher.stop()


def test_a_clock_set_forward_does_not_make_a_fresh_link_look_stable(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Pi without a real-time clock sets its clock when it first synchronises, often by days:
    how long the link has held is measured on the monotonic clock, so a link a second old is
    not said to be "connected again" (held 30 s) because the wall clock jumped."""
    outbox = MemoryOutbox()
    publisher, client = _publisher(outbox)
    taken_over = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    try:
        with caplog.at_level(logging.INFO, logger="sensorpipe.edge.publisher"):
            client.connect()
            client.suback()
            client.on_disconnect(client, None, None, taken_over, None)
            client.connect()
            wall = time.time
            monkeypatch.setattr(time, "time", lambda: wall() + 86_400.0)  # synchronised
            time.sleep(1.0)  # the pump runs: the link has held a second
        assert _lines(caplog, "disconnected from the broker")
        assert _lines(caplog, "connected again") == []
    finally:
        publisher.stop()


def test_a_publisher_whose_work_fails_is_no_longer_alive_so_the_watchdog_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the work done in paho's thread (not an entry that cannot be encoded: that is
    set aside) stops the publisher and says so; the agent's watchdog ping then stops."""

    def broken(entry: OutboxEntry, _link: LinkState) -> bytes:
        raise RuntimeError("a bug")

    outbox = MemoryOutbox()
    _fill(outbox, 2)
    publisher, client = _publisher(outbox, finalize=broken)
    try:
        assert publisher.alive
        with caplog.at_level(logging.ERROR, logger="sensorpipe.edge.publisher"):
            client.connect()
            client.suback()
            wait_for(lambda: not publisher.alive, what="the publisher given up")
        assert "the outbox publisher failed" in caplog.text and "a bug" in caplog.text
        assert outbox.depth() == 2 and not client.sent
    finally:
        publisher.stop()
