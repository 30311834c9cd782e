"""Moves outbox entries to the broker and keeps them until the ingest has kept them.

Guarantee: an entry leaves the outbox only when the ingest confirmed it (protocol.ack: stored
in InfluxDB, or kept centrally as a dead letter). The broker's PUBACK only marks it sent: a
broker killed between two autosaves forgets what it acknowledged. Sent entries without a
confirmation are offered again after every reconnect and after `confirm_timeout_s`; entries
not yet sent are retried from disk after a restart of the agent. With `confirm` off (a broker
without the sensorpipe ingest behind it), the PUBACK is enough and the entry goes at once.

An entry that can never be delivered is set aside once (the outbox's rejected list, counted
in its `dropped`: a gap and a count centrally, like any loss) instead of being retried
forever: one the broker refuses for good (MQTT 5 "not authorised", "topic name invalid",
"payload format invalid"), one that cannot be encoded, and one larger than the broker accepts
(the protocol's 64 KiB, or less if the broker's CONNACK says so), which is refused before it
is sent because the broker would answer it by disconnecting. Other refusals ("quota
exceeded": the broker's queue for the ingest is full) are retried after a pause. Duplicates
are possible and harmless: the ingest stores each message under its observation time, so a
repeated message overwrites itself.

A broker that cannot be reached, refuses the connection, or does not answer it (a port that
accepts but never speaks MQTT is given up on after `connect_timeout_s`, protocol.brokerlink),
is reported at once with the reason (WARNING), and again only after growing pauses while the
client keeps trying (problems.RepeatedProblem); reaching it again is reported too. So is a
link on which nothing the broker acknowledged gets confirmed for `confirm_timeout_s` (no
ingest behind the broker, or one that cannot store), with the likely causes.
Bookkeeping the outbox cannot write (a full disk) is kept and tried again; the entry is at
worst sent once more.

All of it runs in paho's network thread, after each pass of its loop (brokerlink.Client's
`after_io`): the PUBACKs read in a pass are booked with one outbox write and answered with the
next entries, with no hand-over between threads (each would wait for Python's GIL). The
sampler's thread only wakes the loop (`notify`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorpipe.edge.config import MqttConfig
from sensorpipe.edge.outbox import Outbox, OutboxEntry, OutboxError
from sensorpipe.edge.problems import RepeatedProblem
from sensorpipe.protocol.ack import ack_topic, decode_ack
from sensorpipe.protocol.brokerlink import (
    Client,
    connect_failure_at,
    describe_closed_unanswered,
    describe_refusal,
)
from sensorpipe.protocol.codec import MAX_PAYLOAD_BYTES
from sensorpipe.protocol.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Finalize = Callable[[OutboxEntry, "LinkState"], bytes]
# PUBACK reason codes that will not change on a retry: the entry is set aside.
REFUSED_FOR_GOOD = {0x87, 0x90, 0x99}  # not authorised, topic name invalid, payload format
REFUSED_PAUSE_S = 5.0  # before offering entries again that the broker refused for now
# Entries read from the outbox at once, to hand to the broker as the window allows: one read
# for many messages when an outbox drains after an outage, not one for each PUBACK.
READ_AHEAD = 500
OUTBOX_RETRY_S = 1.0  # before reading an outbox again that could not be read
# A link counts as back once it has held this long: one that drops again at once is the same
# problem, not a "connected again" line a second.
STABLE_LINK_S = 30.0


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the publisher knows about its connection when it hands an entry to the broker."""

    reconnects: int
    outbox_depth: int
    backlog: bool


def make_client(client_id: str, config: MqttConfig) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(config.username, config.password)
    if config.tls:
        client.tls_set(ca_certs=config.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.connect_timeout = config.connect_timeout_s  # TCP connection and TLS handshake
    # Within the keepalive: paho would otherwise close the silent connection first, unreported.
    client.connack_timeout_s = min(config.connect_timeout_s, float(config.keepalive_s))
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)  # the window below bounds what paho holds
    return client


def publish_overhead(topic: str) -> int:
    """Bytes an MQTT 5 PUBLISH at QoS 1 adds to its payload, at most: fixed header (5),
    topic length (2) and topic, packet id (2), properties length (1)."""
    return 10 + len(topic.encode())


class Publisher:
    def __init__(
        self,
        *,
        outbox: Outbox,
        mqtt_config: MqttConfig,
        client_id: str,
        finalize: Finalize,
        window: int = 100,
        client_factory: Callable[[str, MqttConfig], Client] = make_client,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._config = mqtt_config
        self._finalize = finalize
        self._window = window
        self._max_payload_bytes = max_payload_bytes
        self._broker_max_packet: int | None = None  # from the broker's CONNACK, if it says
        where = f"{mqtt_config.host}:{mqtt_config.port}"
        self._unreachable = RepeatedProblem(
            log, f"cannot connect to the broker at {where}", clock=clock
        )
        self._lost_link = RepeatedProblem(
            log, f"disconnected from the broker at {where}", occurrence="disconnection"
        )
        # Messages the ingest kept as dead letters instead of storing them (protocol.ack's
        # `rejected`): confirmed, so they leave the outbox, but said here, not only centrally.
        self._set_aside_centrally = RepeatedProblem(
            log, "the ingest set a message aside instead of storing it", first_pause_s=300.0
        )
        self._outbox_problem = RepeatedProblem(log, "outbox bookkeeping", level=logging.ERROR)
        # Entries the broker acknowledged that no confirmation followed: since when, how many.
        self._unconfirmed_since: float | None = None
        self._unconfirmed_acks = 0
        self._unconfirmed = RepeatedProblem(
            log,
            "no confirmations from the ingest",
            clock=clock,
            first_pause_s=mqtt_config.confirm_timeout_s,
            max_pause_s=max(900.0, mqtt_config.confirm_timeout_s),
        )
        self._unbooked: deque[Callable[[], object]] = deque()  # outbox writes to do again
        self._aside: set[int] = set()  # entries being set aside (the outbox may not know yet)
        self._client = client_factory(client_id, mqtt_config)
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        # The publisher's work runs in paho's network thread, after each pass of its loop
        # (brokerlink.Client.after_io): the callbacks only note what arrived, for it.
        self._client.after_io = self._after_io
        self._acks: deque[tuple[int, Any]] = deque()  # PUBACKs
        self._confirms: queue.Queue[list[int]] = queue.Queue()
        self._reconnected = threading.Event()
        # Confirmations come only once the subscription stands: nothing is sent before that.
        self._subscribed = threading.Event()
        self._confirming = mqtt_config.confirm
        self._paused_until = 0.0
        # Sending pace (max_messages_per_s): a token bucket holding a second's worth.
        rate = mqtt_config.max_messages_per_s
        self._pace = TokenBucket(rate=rate, burst=max(1.0, rate), now=clock())
        self._clock = clock
        self._next_requeue = time.monotonic() + mqtt_config.confirm_timeout_s
        self._stop = threading.Event()
        self._started = False
        self._failed: BaseException | None = None  # what stopped the publisher's work
        self._outbox_retry_at = 0.0
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox entry id
        self._last_handed = 0
        self._ahead: deque[OutboxEntry] = deque()  # read from the outbox, not yet handed over
        self._more_waiting = False  # the last read ahead found as many entries as it asked for
        self._handed_since_flush = 0
        self._connected_since: float | None = None  # wall clock: what came before is backlog
        self._connected_at: float | None = None  # monotonic: how long the link has held
        self._answered = False  # the broker answered this attempt's CONNECT
        self._connections = 0
        self.acked = 0  # PUBACKs: the broker has the entry
        self.confirmed = 0  # entries the ingest confirmed, removed from the outbox
        self.resent = 0  # sent entries offered again for want of a confirmation
        self.refused = 0  # entries set aside: refused by the broker, unencodable, too large
        self.connect_failures = 0

    @property
    def alive(self) -> bool:
        """Entries are handed to the broker: paho's network thread runs (or has not started
        yet), and the work in it has not failed."""
        return self._failed is None and bool(getattr(self._client, "network_alive", True))

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
        self._started = True

    def notify(self) -> None:
        """New entries are in the outbox."""
        self._client.wake()

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop; first wait up to `drain_timeout_s` for the outbox to empty."""
        deadline = time.monotonic() + drain_timeout_s
        with contextlib.suppress(OutboxError):  # an outbox that cannot be read has no drain
            while time.monotonic() < deadline and (self._outbox.depth() or self._in_flight):
                time.sleep(0.05)
        self._stop.set()
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()

    # --- paho callbacks: in its network thread; they note what arrived for _after_io ------
    def _on_pre_connect(self, client: Any, userdata: Any) -> None:
        self._answered = False

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._answered = True
        if reason.is_failure:
            self.connect_failures += 1
            self._unreachable.report(describe_refusal(reason, "[mqtt]"), "; still trying")
            return
        self._connections += 1
        self._connected_since = time.time()
        self._connected_at = time.monotonic()
        self._broker_max_packet = getattr(props, "MaximumPacketSize", None)
        # paho keeps 20 messages in flight unless told otherwise, and ignores the broker's
        # Receive Maximum (a broker disconnects a client that sends more): the window, within
        # what the broker takes (MQTT 5: 65,535 when its CONNACK does not say).
        receive_maximum = getattr(props, "ReceiveMaximum", None) or 65_535
        client.limit_in_flight(min(self._window, receive_maximum))
        where = f"{self._config.host}:{self._config.port}"
        if not self._unreachable.resolved(f"connected to the broker at {where}"):
            log.info("connected to %s", where)
        self._subscribed.clear()
        if self._confirming:
            client.subscribe(ack_topic(self._config.username), qos=1)
        else:
            self._subscribed.set()
        if self._connections > 1:
            # Confirmations published while we were away are gone (clean start), and a broker
            # that restarted may have lost what it acknowledged: offer every sent entry again.
            self._reconnected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.connect_failures += 1
        reason = connect_failure_at(client, self._config, "[mqtt]")
        self._unreachable.report(reason, "; still trying")

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        stopping = self._stop.is_set()
        if self._connected_at is not None and not stopping:
            # Monotonic: a Pi's clock jumps when it first synchronises.
            held = time.monotonic() - self._connected_at
            hint = ""
            if held < STABLE_LINK_S and getattr(reason, "value", None) in (0x80, 0x8E):
                # Mosquitto closes the older of two connections with the same client id.
                hint = (
                    "; is another client logged in as this device (a second agent, or "
                    "`edge check` beside `edge run`)?"
                )
            self._lost_link.report(str(reason), f"{hint}; reconnecting")
        elif not self._answered and not stopping:  # closed before it answered CONNECT
            self.connect_failures += 1
            c = self._config
            self._unreachable.report(
                describe_closed_unanswered(port=c.port, tls=c.tls, section="[mqtt]"),
                "; still trying",
            )
        self._connected_since = self._connected_at = None
        self._subscribed.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append((mid, reason))

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

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            ack = decode_ack(bytes(msg.payload))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring a malformed acknowledgement on %s: %s", msg.topic, exc)
            return
        numbers = ack.numbers()
        for aside in ack.rejected:
            self._set_aside_centrally.report(
                aside.code,
                f" (sequence number {aside.seq}: {aside.detail}); `sensorpipe ingest rejects` "
                "on the server shows them",
            )
        self._confirms.put(numbers)

    # --- after each pass of paho's loop, in its thread -----------------------------------
    def _after_io(self) -> None:
        """Book what arrived (PUBACKs, confirmations) and hand the next entries over: once a
        pass of paho's loop, so a batch of PUBACKs read at once is booked with one write."""
        if self._stop.is_set() or self._failed is not None:
            return
        if time.monotonic() < self._outbox_retry_at:
            return
        try:
            self._pump()
        except OutboxError as exc:  # cannot even read the outbox: try again shortly
            self._outbox_problem.report(str(exc))
            self._outbox_retry_at = time.monotonic() + OUTBOX_RETRY_S
        except Exception as exc:  # a bug: the agent sees `alive` go false and stops
            log.exception("the outbox publisher failed")
            self._failed = exc

    def _pump(self) -> None:
        since = self._connected_at
        if (
            self._lost_link.active
            and since is not None
            and time.monotonic() - since >= STABLE_LINK_S
        ):
            # Said once the link has held a while: a link that drops again at once (another
            # client with this device's name) is one problem, not a line a second.
            self._lost_link.resolved("connected again", level=logging.INFO)
        if not self._book_again():
            return  # the disk is still full: nothing new until the bookkeeping is done
        self._handle_acks()
        self._handle_confirms()
        self._offer_unconfirmed_again()
        if (
            self._connected_since is not None
            and self._subscribed.is_set()
            and time.monotonic() >= self._paused_until
        ):
            self._hand_over()
            self._flush_after_backlog()

    def _flush_after_backlog(self) -> None:
        """Once a backlog (more than a window's worth) has gone and every PUBACK is in, write
        the outbox's bookkeeping at once (readings queued meanwhile may keep the outbox from
        emptying, which would write it too): the outbox file shows the backlog gone. Not for
        single messages (outbox module docstring)."""
        if (
            self._handed_since_flush >= self._window
            and not self._in_flight
            and not self._ahead
            and not self._more_waiting
        ):
            self._handed_since_flush = 0
            self._book(self._outbox.flush)

    def _book(self, write: Callable[[], object]) -> None:
        """Write to the outbox now, or, if that fails (a full disk), as soon as it can. In
        order: a confirmation must not overtake the mark of the entry it removes."""
        self._unbooked.append(write)
        self._book_again()

    def _book_again(self) -> bool:
        """Do the outbox writes that are due, in order; True when none is left."""
        while self._unbooked:
            try:
                self._unbooked[0]()
            except OutboxError as exc:
                self._outbox_problem.report(str(exc), f"; {len(self._unbooked)} writes wait")
                return False
            self._unbooked.popleft()
        self._outbox_problem.resolved("outbox bookkeeping works again", level=logging.WARNING)
        return True

    def _handle_confirms(self) -> None:
        while True:
            try:
                numbers = self._confirms.get_nowait()
            except queue.Empty:
                return
            self._book(functools.partial(self._count_confirmed, numbers))
            self._unconfirmed_since = None
            self._unconfirmed_acks = 0
            self._unconfirmed.resolved("confirmations from the ingest arrive again")

    def _count_confirmed(self, numbers: list[int]) -> None:
        first = self.confirmed == 0
        self.confirmed += self._outbox.confirm(numbers)
        if first and self.confirmed:
            log.info(
                "first confirmation from the ingest: %d messages stored end to end",
                self.confirmed,
            )

    def _offer_unconfirmed_again(self) -> None:
        now = time.monotonic()
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._in_flight.clear()  # their PUBACKs will not come on this connection
            self._rewind(0)
            cutoff = math.inf
        elif self._confirming and now >= self._next_requeue:
            cutoff = time.time() - self._config.confirm_timeout_s
            self._check_confirmations(now)  # once a round of sending again
        else:
            return
        self._next_requeue = now + self._config.confirm_timeout_s / 4
        again = self._outbox.requeue(sent_before=cutoff)
        if again:
            log.info("offering %d sent entries again: no confirmation from the ingest", again)
            self.resent += again
            self._rewind(0)

    def _check_confirmations(self, now: float) -> None:
        """Say when nothing the broker acknowledged was confirmed for `confirm_timeout_s` while
        connected: the readings pile up in the outbox, and only the log can say why.

        A private key that is not the registered one does not show here: the ingest confirms
        what it rejects (bad_signature) like what it stores, as a dead letter it keeps."""
        since = self._unconfirmed_since
        if since is None or self._connected_since is None:
            return
        waited = now - since
        if waited < self._config.confirm_timeout_s:
            return
        took = f"{waited:.0f} s" if waited < 120 else f"{waited / 60:.0f} min"
        self._unconfirmed.report(
            "nothing the broker acknowledged has been confirmed",
            f" ({self._unconfirmed_acks} messages in {took}; they stay in the outbox and are "
            f"sent again): is the ingest running and connected to this broker, and InfluxDB "
            f"up? Does the broker's ACL let this device read its confirmations (regenerate it "
            f"with `sensorpipe gateway config`)?",
        )

    def _handle_acks(self) -> None:
        delivered: list[int] = []  # booked at once: one outbox call for a batch of PUBACKs
        while True:
            try:
                mid, reason = self._acks.popleft()
            except IndexError:
                break
            entry_id = self._in_flight.pop(mid, None)
            if entry_id is None:
                continue
            if not getattr(reason, "is_failure", False):
                self.acked += 1
                delivered.append(entry_id)
            elif reason.value in REFUSED_FOR_GOOD:
                self._set_aside(entry_id, f"broker: {reason}")
            else:  # e.g. quota exceeded: the same entry will do later
                log.warning("broker refused outbox entry %d for now: %s", entry_id, reason)
                self._rewind(min(self._last_handed, entry_id - 1))
                self._paused_until = time.monotonic() + REFUSED_PAUSE_S
        if not delivered:
            return
        if self._confirming:
            if self._unconfirmed_since is None:
                self._unconfirmed_since = time.monotonic()
            self._unconfirmed_acks += len(delivered)
            self._book(functools.partial(self._outbox.mark_sent_many, delivered))
        else:
            self._book(functools.partial(self._outbox.remove_many, delivered))

    def _hand_over(self) -> None:
        now = self._clock()
        room = min(self._window - len(self._in_flight), int(self._pace.level(now)))
        if room <= 0:
            return
        connected_since = self._connected_since or time.time()
        if not self._ahead:
            after, limit = self._last_handed, max(room, READ_AHEAD)
            self._ahead.extend(self._outbox.pending(after_id=after, limit=limit))
            self._more_waiting = len(self._ahead) == limit
        depth = self._outbox.depth()
        handed = 0
        while handed < room and self._ahead:
            entry = self._ahead.popleft()
            if entry.id in self._aside:
                continue
            state = LinkState(
                reconnects=self.reconnects,
                outbox_depth=depth,
                backlog=entry.created_at < connected_since,
            )
            self._last_handed = entry.id
            try:
                payload = self._finalize(entry, state)
            except ValueError as exc:
                self._set_aside(entry.id, f"encode: {exc}", entry.seq)
                continue
            limit = self.payload_limit(entry.topic)
            if len(payload) > limit:
                # The broker would disconnect us for it, after every reconnect again.
                reason = f"too large: {len(payload)} bytes, the broker accepts {limit}"
                self._set_aside(entry.id, reason, entry.seq)
                continue
            # paho sends it on its loop's next pass, right after this one.
            info = self._client.publish(entry.topic, payload, qos=1)
            self._in_flight[info.mid] = entry.id
            self._pace.take(1.0, now=now)  # within `room`: never refused
            self._handed_since_flush += 1
            handed += 1

    def _rewind(self, last_handed: int) -> None:
        """Hand over again from the entry after `last_handed` (what was read ahead may be
        stale: entries offered again, or refused for now)."""
        self._last_handed = last_handed
        self._ahead.clear()

    def payload_limit(self, topic: str) -> int:
        """The largest payload the broker takes on `topic`."""
        if self._broker_max_packet is None:
            return self._max_payload_bytes
        return min(self._max_payload_bytes, self._broker_max_packet - publish_overhead(topic))

    def _set_aside(self, entry_id: int, reason: str, seq: int | None = None) -> None:
        """The entry will never be delivered: once, logged, counted, out of the queue."""
        self.refused += 1
        number = f" (sequence number {seq})" if seq is not None else ""
        log.error(
            "outbox entry %d%s set aside, it cannot be delivered: %s; it shows centrally "
            "as a gap and in outbox_dropped",
            entry_id,
            number,
            reason,
        )
        self._aside.add(entry_id)
        self._book(functools.partial(self._reject, entry_id, reason))

    def _reject(self, entry_id: int, reason: str) -> None:
        self._outbox.reject(entry_id, reason)
        self._aside.discard(entry_id)
