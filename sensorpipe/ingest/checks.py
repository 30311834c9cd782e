"""The ingest's checks: each message of a batch checked (signature, schema, registry),
numbered (redelivered, replayed, a gap before it) and turned into the points it stores; a
key enrollment kept and answered.

What it guarantees: checking loses nothing and stores nothing. Every message comes out as an
`Outcome`: its points and lines, or a rejection with its reason (a bug in validation is the
rejection `internal_error`), for the batch path to store or dead-letter. The verdicts of a
batch checked in several threads are those of one thread, each on its own message, in arrival
order. A rejection that depends only on the bytes and the registry (REPEATABLE) is remembered,
so a flood of one bad message costs a hash each; the memory goes when the registry changes.

Sequence numbers are kept in the writer thread only. After a restart they are read back from
InfluxDB within the backlog window (`seed_last_seq`, best effort): when they cannot be read, an
old message replayed afterwards is recorded as a first delivery; its points are the same.
Quality flags (quality.checker) are computed here too, in the writer thread, as messages
become points, so each series is judged in arrival order; the `[quality]` section configures
them, `enabled = false` leaves them out.
An enrollment's answer goes out at once (QoS 1, on the device's acknowledgement topic); the
first key a device enrols is kept before it is answered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.errors import QueryError, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import LineProtocolError, Point, to_line
from sensorpipe.ingest.link import Incoming
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.ingest.validate import RegistryView, Rejection, Validator
from sensorpipe.protocol.ack import ack_topic, encode_key_reply
from sensorpipe.protocol.enrollment import KEY_KIND, KeyEnrollment, KeyReply, KeyStore, fingerprint
from sensorpipe.protocol.messages import INT64_MAX, AnyMessage
from sensorpipe.protocol.provenance import EDGE
from sensorpipe.protocol.topics import parse_topic
from sensorpipe.quality.checker import QualityChecker

# The ingest's rooms share the one logger name its lines have always had.
log = logging.getLogger("sensorpipe.ingest.service")

# Rejections that depend on nothing but the bytes and the registry: the same payload on the same
# topic gets the same one again, from a cache, without parsing or verifying it again.
REPEATABLE = frozenset(
    {
        "bad_topic",
        "too_large",
        "bad_json",
        "malformed_json",
        "device_mismatch",
        "kind_mismatch",
        "unknown_device",
        "unsigned",
        "bad_signature",
        "wrong_signer",
    }
)
REJECTION_CACHE = 4096  # payloads remembered
_KEY_TOPIC_TAIL = "/" + KEY_KIND


@dataclass
class Outcome:
    """One message of a batch: checked and turned into points, or rejected and why."""

    item: Incoming
    message: AnyMessage | None = None
    points: list[Point] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    rejection: Rejection | None = None


Checked = AnyMessage | KeyEnrollment | Rejection  # what checking one message gives


@dataclass
class Checks:
    """The checks of one batch: done already, or under way in the pool as interleaved shares."""

    batch: list[Incoming]
    shares: list[Future[list[Checked]]]
    done: list[Checked] | None

    def results(self) -> list[Checked]:
        if self.done is None:
            parts = [share.result() for share in self.shares]
            n = len(parts)
            self.done = [parts[i % n][i // n] for i in range(len(self.batch))]
        return self.done


class Checker:
    """The checks of one ingest worker. `check` runs in the pool's threads (`start`), all else
    in the writer thread; the registry is refreshed (`refresh_registry`) only while no checks
    are under way."""

    def __init__(
        self,
        config: IngestConfig,
        registry: RegistryView,
        keys: KeyStore,
        *,
        publish: Callable[[str, bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`publish` sends an enrollment's answer to its device (QoS 1)."""
        self.config = config
        self._registry = registry
        self._keys = keys
        self._publish = publish
        self.validator = Validator(
            registry,
            clock=clock,
            max_future_s=config.max_future_s,
            max_backlog_s=config.max_backlog_s,
        )
        self._registry_generation = registry.generation
        # Rejections of recent bad payloads, by digest of topic and payload (REPEATABLE).
        self._known_bad: dict[bytes, Rejection] = {}
        self._last_seq: dict[str, int] = {}
        self.quality = QualityChecker(config.quality) if config.quality.enabled else None
        self._pool = ThreadPoolExecutor(config.validate_threads, thread_name_prefix="ingest-check")

    def close(self) -> None:
        self._pool.shutdown()

    def refresh_registry(self) -> bool:
        """Re-read a changed registry, forgetting the rejections that depended on the old one.
        True if it changed."""
        self._registry.refresh()
        if self._registry.generation == self._registry_generation:
            return False
        self._registry_generation = self._registry.generation
        self._known_bad.clear()
        return True

    def seed_last_seq(self, influx: InfluxClient) -> None:
        """The highest sequence number stored per device within the backlog window, so that
        after a restart a replayed old message is still known as one. Best effort."""
        window = int(self.config.max_backlog_s)
        try:
            series = influx.query(
                f"SELECT max(seq) FROM link WHERE time > now() - {window}s GROUP BY device_id"
            )
        except (StorageUnavailable, QueryError) as exc:
            log.warning("could not read the last sequence numbers from InfluxDB: %s", exc)
            return
        for s in series:
            device = s.get("tags", {}).get("device_id")
            if device and s.get("values"):
                self._last_seq[device] = max(self._last_seq.get(device, 0), int(s["values"][0][1]))

    def evaluate_all(
        self, items: list[Incoming], checked: list[Checked] | None = None
    ) -> list[Outcome]:
        """Each message checked (or its result from `start`, in `checked`), numbered and made
        into points, in arrival order."""
        if checked is None:
            checked = self.start(items).results()
        return [self._evaluate(item, result) for item, result in zip(items, checked, strict=True)]

    def start(self, items: list[Incoming]) -> Checks:
        """Check the messages in `validate_threads` interleaved shares side by side; they are
        numbered afterwards, in arrival order, by `_evaluate` (sequence state is kept in the
        writer thread only). The registry must not be refreshed while checks are under way."""
        n = min(self.config.validate_threads, len(items))
        if n <= 1:
            return Checks(items, [], [self.check(item) for item in items])
        shares = [self._pool.submit(self._check_share, items[i::n]) for i in range(n)]
        return Checks(items, shares, None)

    def _check_share(self, items: list[Incoming]) -> list[Checked]:
        return [self.check(item) for item in items]

    def check(self, item: Incoming) -> Checked:
        """The message checked, or why it is rejected. A payload rejected before (REPEATABLE)
        gets the same rejection from `_known_bad` without being parsed or verified again, so
        a flood of one bad message costs a hash each."""
        digest = hashlib.blake2b(item.topic.encode(), digest_size=16)
        digest.update(b"\x00")
        digest.update(item.payload)
        key = digest.digest()
        known = self._known_bad.get(key)
        if known is not None:
            return known
        try:
            if item.topic.endswith(_KEY_TOPIC_TAIL):
                return self.validator.check_enrollment(item.topic, item.payload)
            return self.validator.check(item.topic, item.payload)
        except Rejection as rejection:
            if rejection.code in REPEATABLE:
                if len(self._known_bad) >= REJECTION_CACHE:
                    self._known_bad.clear()
                self._known_bad[key] = rejection
            return rejection
        except Exception as exc:  # a validation bug: keep the message as a dead letter
            log.exception("validating %s failed unexpectedly", item.topic)
            return Rejection("internal_error", repr(exc)[:500])

    def _evaluate(self, item: Incoming, checked: Checked) -> Outcome:
        if isinstance(checked, KeyEnrollment):
            return self._enroll(item, checked)
        if isinstance(checked, Rejection):
            if item.topic.endswith(_KEY_TOPIC_TAIL):
                self._answer_enrollment(item, ok=False, reason=str(checked))
            return Outcome(item, rejection=checked)
        message = checked
        device = self._registry.device(message.device_id)
        site = device.site if device is not None else ""
        last = self._last_seq.get(message.device_id)
        # Seen before: a redelivery (MQTT's DUP flag) or a number at or below the highest one
        # seen (a replay). Its data points are rewritten as they were; its delivery metadata
        # is left as the first delivery recorded it.
        repeat = item.dup or (last is not None and message.seq <= last)
        gap: int | None
        if self.config.broker.shared_group is not None:
            # Each worker sees only part of a device's messages: no worker can tell a gap.
            # Gaps are then read from the stored numbers (`difference(seq)` on `link`).
            gap = None
        elif last is None:
            # Sequence numbers start at 1: a device's first message ever has no gap before it.
            gap = 0 if message.seq == 1 else None
        else:
            gap = max(0, message.seq - last - 1)
        self._last_seq[message.device_id] = max(message.seq, last or 0)
        receipt = Receipt(
            gateway=self.config.gateway_id,
            received_at_ms=round(item.received_at * 1000),
            redelivered=item.dup,
            seq_gap=gap,
            first_delivery=not repeat,
        )
        source = device.source if device is not None else EDGE
        points = message_points(message, site, receipt, source, self.quality)
        try:
            lines = [to_line(p) for p in points]
        except LineProtocolError as exc:
            return Outcome(item, rejection=Rejection("unstorable", str(exc)))
        return Outcome(item, message=message, points=points, lines=lines)

    def _enroll(self, item: Incoming, enrollment: KeyEnrollment) -> Outcome:
        """Keep the first key a device enrols (protocol.enrollment) and answer it; another key
        is refused and dead-lettered. Nothing is stored in InfluxDB for it."""
        device = enrollment.device_id
        try:
            kept, accepted = self._keys.enroll(device, enrollment.public_key)
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot write the key store %s: %s", self._keys.path, exc)
            rejection = Rejection("key_store", f"the server cannot keep keys now ({exc})")
            self._answer_enrollment(item, ok=False, reason=str(rejection))
            return Outcome(item, rejection=rejection)
        if not accepted:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(kept.enrolled_at))
            rejection = Rejection(
                "key_taken",
                f"{device} enrolled another key ({fingerprint(kept.public_key)}) at {when}; "
                f"to let it join again, on the server: sensorpipe devices reset-key {device}",
            )
            self._answer_enrollment(item, ok=False, reason=str(rejection))
            return Outcome(item, rejection=rejection)
        self._registry.forget_verifier(device)
        log.info("%s enrolled its key %s", device, fingerprint(kept.public_key))
        self._answer_enrollment(item, ok=True, fp=fingerprint(kept.public_key))
        return Outcome(item)

    def _answer_enrollment(
        self, item: Incoming, *, ok: bool, reason: str = "", fp: str = ""
    ) -> None:
        """Answer an enrollment on its device's acknowledgement topic (the one topic a device
        may read), naming its nonce; one too broken to name them gets no answer."""
        parsed = parse_topic(item.topic)
        try:
            nonce = json.loads(item.payload).get("nonce")
            reply = KeyReply(nonce=nonce, ok=ok, reason=reason[:500], fingerprint=fp)
        except (ValueError, AttributeError, RecursionError):
            return
        if parsed is not None:
            self._publish(ack_topic(parsed[0]), encode_key_reply(reply))


def sender_and_seq(outcome: Outcome) -> tuple[str, int] | None:
    """Whose message this is and its sequence number, for the confirmation.

    Stored messages are validated. A rejected one is confirmed to the device whose topic it
    came on (the broker lets only that device publish there) when it names that device and a
    plausible number: it is kept as a dead letter, and sending it again would not change its
    fate. A message too broken to name its number is not confirmed."""
    if outcome.message is not None:
        return outcome.message.device_id, outcome.message.seq
    parsed = parse_topic(outcome.item.topic)
    if parsed is None:
        return None
    try:
        body = json.loads(outcome.item.payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("device_id") != parsed[0]:
        return None
    seq = body.get("seq")
    if type(seq) is not int or not 0 <= seq <= INT64_MAX:
        return None
    return parsed[0], seq
