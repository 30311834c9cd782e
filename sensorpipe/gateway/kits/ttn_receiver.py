"""One The Things Stack application's uplinks, turned into signed messages of its nodes.

`TtnReceiver.handle` takes an uplink exactly as an integration delivered it (the MQTT bridge,
the webhook, the Storage Integration's gap filling) and either publishes it, as an air message
of the sensorpipe device registered for that node, signed by this gateway, or keeps it as a
dead letter with a reason, or both: the values that can be stored are published, and what
could not be mapped is kept (`unknown_field`, `schema`), never dropped unsaid.

What becomes of an uplink:
- `decoded_payload` fields map to readings through the application's `fields` (dotted paths
  for nested objects, `value * scale + offset`); `null` is no value; fields in
  `ignore_fields` are left alone; any other field is an `unknown_field` letter;
- the observation time is the Network Server's `received_at` (`time_source` "network", clock
  synchronised), so the same uplink delivered twice is the same point;
- `seq` is `f_cnt` continued across the node's sessions (ttn_state), `f_cnt` itself and
  `f_port` go into the kit link metadata with the number of gateways that heard it, their ids
  (strongest first, up to 8), the best RSSI (`Link.rssi_dbm`) and SNR, the spreading factor,
  bandwidth, frequency (Hz) and `consumed_airtime` (s); the firmware is the end device's
  `version_ids.firmware_version`, else "lorawan".

Limits: each node, registered or not, may send `uplink_burst` uplinks at once, then one every
`uplink_refill_s` seconds (the application's settings; by default a little above what the LoRa
duty cycle allows), timed by the Network Server's reception, so uplinks that arrive late and
together (queued while our broker was away, retried, fetched from the Storage Integration) pass
as they were sent (limits.SentRateLimiter). An uplink over it is dropped (counted, not
dead-lettered: a flood must not fill the store); a kit of this gateway that keeps exceeding it
for a sustained period is quarantined (gateway.kits.quarantine, reason `kit_flood`), and a
quarantined node's uplinks, whoever quarantined it, are dropped (counted) until an operator
lifts it. Dropped uplinks are still acknowledged upstream (handled: not fetched or taken
again), so The Things Stack neither resends them nor counts the application's webhook as
failing for its other nodes.

Time and order. An uplink whose Network Server time is beyond the ingest's window (further
ahead of the gateway's clock than `max_future_s`, older than `max_backlog_s`) is kept as a
`future_timestamp` or `too_old` letter before it moves any state: no sequence number is
given, it is not remembered as handled, and the bridge's progress does not move, so a forged
date cannot push later genuine uplinks below the node's stored numbers. An uplink at a time
already handled for its node but with another `f_cnt` would overwrite the stored reading (the
time is the point's key): it is refused and kept (`conflicting_uplink`).

Strangers. Letters of uplinks whose node is no kit of this gateway (not registered, another
gateway's, or unnamed) are bounded per application (`unknown_node_letters`,
`unknown_node_letter_bytes` per `unknown_node_window_s`, limits.Budget): beyond it the uplink
is dropped (`dropped` "letter_budget", counted, said once a minute), so invented node ids
cannot fill the dead-letter store.

Rejections (dead letters on topic `ttn:<application>@<tenant>/<device id>` with the exact
bytes): `malformed_json`, `too_large`, `schema` (not an uplink as The Things Stack sends it, a
mapped value that is no number or out of range), `device_mismatch` (topic and body disagree,
another application), `unknown_device` (a node not registered), `wrong_signer` (registered to
another gateway, whose broker account alone may publish for it), `not_decoded` (no
payload formatter output), `unknown_field`, `simulated` (made in the console, not measured),
`internal_error` (a bug here: kept to be looked at).

Pace: one kit's messages are published at most `PUBLISH_PER_KIT_S` (10) a second, so a day
of a node's uplinks fetched at once after an outage stays within the ingest's quota per device
(limits.Pacer); other kits' messages do not wait for it.

Delivery: `handle` returns once the message is acknowledged by the broker and its letters are
committed; otherwise it raises (`BrokerUnavailable`, `DeadLettersUnavailable`) and the caller
does not acknowledge the uplink upstream, so it comes again. An uplink published before is
handled again (ttn_state remembers a week of them, across restarts; of nodes that are no kit
of this gateway only those whose letter was kept): neither published nor dead-lettered twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from sensorpipe.gateway.kits.limits import Budget, Pacer, SentRateLimiter
from sensorpipe.gateway.kits.quarantine import KitQuarantine
from sensorpipe.gateway.kits.ttn_config import TtnApplication
from sensorpipe.gateway.kits.ttn_state import TtnState, UplinkKey
from sensorpipe.gateway.kits.ttn_uplink import ApplicationUp, ApplicationUplink
from sensorpipe.protocol.codec import DecodeError, parse_json
from sensorpipe.protocol.messages import AirMessage, KitLink, Link, Location, Reading
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import Registry

log = logging.getLogger(__name__)

KIT = "ttn"  # the gateway's counters by kit adapter
MAX_GATEWAY_IDS = 8  # KitLink keeps the strongest few
REMEMBERED = 4096  # uplinks handled lately, known without asking the state file
# The most messages a second published for one kit: the edge agent's own pace when it drains
# its outbox, half the ingest's default quota per device (20 a second), so the uplinks of a
# long outage fetched at once are not refused there. A live node sends one every few minutes.
PUBLISH_PER_KIT_S = 10.0
SAY_EVERY_S = 60.0  # how often a full budget for strangers' letters is said
# Decoded fields The Things Stack reads as the node's position (`locations["frm-payload"]`).
POSITION_FIELDS = frozenset({"latitude", "longitude", "altitude", "accuracy"})


@dataclass(frozen=True, slots=True)
class KitLetter:
    """A dead letter from a kit: where from (`ttn:<application>/<device>`), the exact bytes,
    the reason code and a one-line detail."""

    topic: str
    payload: bytes
    code: str
    detail: str
    device_id: str = ""  # the sensorpipe device registered for the node, when there is one


# Keeps letters, all or none, before it returns; raises when it cannot (disk full).
LetterSink = Callable[[Sequence[KitLetter]], None]


class Publisher(Protocol):
    """What publishes for the kits (publish.KitPublisher): signs as `gateway_id`, returns
    once the broker acknowledged, raises BrokerUnavailable otherwise."""

    gateway_id: str

    def publish(self, message: AirMessage, *, timeout_s: float = ...) -> None: ...


class Counting(Protocol):
    """The gateway's counters (context.Counters): /health and /metrics show them."""

    def add(self, kit: str, what: str, key: str, n: int = 1) -> None: ...


class DeadLettersUnavailable(RuntimeError):
    """The dead-letter store did not keep the letters. Retryable."""


@dataclass
class Handled:
    """What became of one uplink."""

    device_id: str | None = None  # the sensorpipe device, when the node is registered
    message: AirMessage | None = None  # published
    letters: list[KitLetter] = field(default_factory=list)
    # Handled before (published or dead-lettered): nothing was done this time.
    duplicate: bool = False
    # The Application Server's receive time (epoch ms), for the bridge's progress.
    as_received_ms: int | None = None
    # Not published and not kept, on purpose: "over_rate" (the node's rate limit),
    # "quarantined" (the node's kit is) or "letter_budget" (a node that is no kit of this
    # gateway, with its application's budget for such letters used up).
    dropped: str | None = None

    @property
    def codes(self) -> list[str]:
        return [letter.code for letter in self.letters]


@dataclass
class ReceiverStats:
    received: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """Every field, in their order; counters as plain dicts."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "rejected": dict(self.rejected), "dropped": dict(self.dropped)}


class TtnReceiver:
    def __init__(
        self,
        app: TtnApplication,
        *,
        publisher: Publisher,
        registry: Callable[[], Registry],
        letters: LetterSink,
        state: TtnState,
        counters: Counting | None = None,
        clock: Callable[[], float] = time.time,
        publish_timeout_s: float = 10.0,
        quarantine: KitQuarantine | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.app = app
        self.stats = ReceiverStats()
        self._counters = counters
        self._publisher = publisher
        self._registry = registry
        self._letters = letters
        self._state = state
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._quarantine = quarantine
        self._pacer = pacer or Pacer(PUBLISH_PER_KIT_S)
        self._rate = SentRateLimiter(
            burst=app.uplink_burst, refill_s=app.uplink_refill_s, clock=clock
        )
        # Uplinks handled (published, dead-lettered) lately: not handled again.
        self._handled: OrderedDict[UplinkKey, None] = OrderedDict()
        self._lock = threading.Lock()
        # Letters of nodes that are no kit of this gateway.
        self._strangers = Budget(
            items=app.unknown_node_letters,
            size=app.unknown_node_letter_bytes,
            window_s=app.unknown_node_window_s,
            clock=clock,
        )
        self._strangers_dropped = 0  # since it was last said
        self._strangers_said_at: float | None = None
        # One uplink of a node at a time from the check of its time to its state's update.
        self._node_locks: dict[str, threading.Lock] = {}

    def letter_topic(self, device: str) -> str:
        return f"ttn:{self.app.application}/{device}"

    def handle(self, raw: bytes, *, topic_device: str | None = None) -> Handled:
        """Publish and/or dead-letter one uplink (`raw`: the exact bytes received;
        `topic_device`: the device id its MQTT topic names). Raises `BrokerUnavailable` or
        `DeadLettersUnavailable` when it could not finish: the uplink must come again."""
        self.stats.received += 1
        result = Handled()
        device = topic_device or "unknown"
        try:
            up = self._parse(raw)
        except DecodeError as rejected:
            result.letters.append(
                KitLetter(self.letter_topic(device), raw, rejected.code, rejected.detail)
            )
            return self._finish(result, None)
        with self._node_lock(up.end_device_ids.device_id):
            return self._handle(raw, up, topic_device, result)

    def _node_lock(self, node: str) -> threading.Lock:
        with self._lock:
            if len(self._node_locks) > 100_000:
                self._node_locks = {k: v for k, v in self._node_locks.items() if v.locked()}
            return self._node_locks.setdefault(node, threading.Lock())

    def _handle(
        self, raw: bytes, up: ApplicationUp, topic_device: str | None, result: Handled
    ) -> Handled:
        device = up.end_device_ids.device_id
        key: UplinkKey | None = None
        try:
            self._check_identity(up, topic_device)
            key = _key(up)
            if key is not None and self._handled_before(key):
                result.duplicate = True
                self.stats.duplicates += 1
                if self._counters is not None:
                    self._counters.add(KIT, "uplinks", "duplicate")
                return result
            result.dropped, result.device_id = self._held_back(up)
            if result.dropped is not None:
                return self._finish(result, key)
            try:
                self._check_window(up)
            except DecodeError:
                key = None  # outside the window: not remembered, moves nothing
                raise
            if up.received_at is not None:
                result.as_received_ms = round(up.received_at.timestamp() * 1000)
            self._check_conflict(up, key)
            result.device_id = self._kit(up)
            message, problems = self._message(up, result.device_id)
        except DecodeError as rejected:
            result.letters.append(
                KitLetter(self.letter_topic(device), raw, rejected.code, rejected.detail)
            )
            return self._finish(result, key)
        except Exception as exc:  # a bug here: the uplink is kept to be looked at
            log.exception("handling an uplink of %s failed unexpectedly", self.app.application)
            result.letters.append(
                KitLetter(self.letter_topic(device), raw, "internal_error", repr(exc)[:500])
            )
            return self._finish(result, key)
        result.letters += [
            KitLetter(self.letter_topic(device), raw, code, detail) for code, detail in problems
        ]
        if message is not None:
            self._pacer.wait(message.device_id)
            # BrokerUnavailable propagates: nothing is acknowledged upstream, it comes again.
            self._publisher.publish(message, timeout_s=self._publish_timeout_s)
            result.message = message
        return self._finish(result, key)

    # --- steps ----------------------------------------------------------------------------
    @staticmethod
    def _parse(raw: bytes) -> ApplicationUp:
        obj = parse_json(raw)  # DecodeError: too_large, malformed_json
        try:
            up = ApplicationUp.model_validate(obj)
        except ValidationError as exc:
            raise DecodeError("schema", _summary(exc)) from None
        if up.uplink_message is None:
            kinds = ", ".join(k for k in obj if k not in ApplicationUp.model_fields) or "none"
            raise DecodeError("schema", f"not an uplink message (no uplink_message; has {kinds})")
        return up

    def _check_identity(self, up: ApplicationUp, topic_device: str | None) -> None:
        ids = up.end_device_ids
        if ids.application_ids.application_id != self.app.application_id:
            raise DecodeError(
                "device_mismatch",
                f"uplink of application {ids.application_ids.application_id!r}, received for "
                f"{self.app.application}",
            )
        if topic_device is not None and ids.device_id != topic_device:
            raise DecodeError(
                "device_mismatch",
                f"body names device {ids.device_id!r}, the topic {topic_device!r}",
            )

    def _check_window(self, up: ApplicationUp) -> None:
        """The ingest's window: not further ahead of the gateway's clock than max_future_s (by
        the Network Server's time, nor by the Application Server's), nor older than
        max_backlog_s."""
        now = self._clock()
        for at in (up.observed_at, up.received_at):
            if at is not None and at.timestamp() - now > self.app.max_future_s:
                raise DecodeError(
                    "future_timestamp",
                    f"received_at {at.isoformat()} is {at.timestamp() - now:.0f} s ahead of the "
                    f"gateway's clock (at most {self.app.max_future_s:g} s: max_future_s)",
                )
        observed = up.observed_at
        if observed is not None and now - observed.timestamp() > self.app.max_backlog_s:
            raise DecodeError(
                "too_old",
                f"received_at {observed.isoformat()} is {(now - observed.timestamp()) / 86400:.1f} "
                f"days old; the ingest's backlog window is {self.app.max_backlog_s / 86400:g} "
                f"days (max_backlog_s)",
            )

    def _check_conflict(self, up: ApplicationUp, key: UplinkKey | None) -> None:
        """Another uplink of this node at the same time was handled: this one would overwrite
        its reading (the time is the stored point's key)."""
        if key is None:
            return
        node, received_ms, f_cnt, _ = key
        others = [
            c for c in self._state.handled_at(self.app.application, node, received_ms) if c != f_cnt
        ]
        if others:
            observed = up.observed_at
            assert observed is not None
            raise DecodeError(
                "conflicting_uplink",
                f"f_cnt {f_cnt} at {observed.isoformat()}: an uplink of {node} at that time "
                f"(f_cnt {', '.join(str(c) for c in sorted(others))}) was handled before; "
                f"this one would overwrite its reading",
            )

    def _kit(self, up: ApplicationUp) -> str:
        """The sensorpipe device registered for the node, which this gateway vouches for."""
        ids = up.end_device_ids
        registry = self._registry()
        kit = registry.kit_by_ttn(self.app.application, ids.device_id)
        entry = None if kit is None else registry.devices.get(kit)
        if kit is None or entry is None:
            raise DecodeError(
                "unknown_device",
                f"TTN device {ids.device_id} of {self.app.application} is not registered; "
                f"`sensorpipe devices add-kit ttn --application {self.app.application} "
                f"--device-id {ids.device_id} --site ...` registers it",
            )
        if entry.gateway != self._publisher.gateway_id:
            raise DecodeError(
                "wrong_signer",
                f"{kit} is registered to gateway {entry.gateway!r}; this is "
                f"{self._publisher.gateway_id!r}, which the broker does not let publish for it",
            )
        return kit

    def _held_back(self, up: ApplicationUp) -> tuple[str | None, str | None]:
        """Why the uplink is dropped ("quarantined", "over_rate"; None: it goes on), and the
        node's kit when it is one of this gateway's. The limit holds for every node,
        registered or not (a node nobody registered must not fill the dead-letter store
        either); only this gateway's kits are quarantined."""
        node = up.end_device_ids.device_id
        registry = self._registry()
        kit = registry.kit_by_ttn(self.app.application, node)
        entry = None if kit is None else registry.devices.get(kit)
        ours = kit if entry is not None and entry.gateway == self._publisher.gateway_id else None
        quarantine = self._quarantine if ours is not None else None
        if quarantine is not None and ours is not None and quarantine.refusal(ours, KIT):
            return "quarantined", ours
        observed = up.observed_at
        sent_at = None if observed is None else observed.timestamp()
        if self._rate.allow(kit or self.letter_topic(node), sent_at):
            return None, ours
        if quarantine is not None and ours is not None:
            limit = (
                f"uplinks over its rate limit of {self._rate.burst} at once, then one every "
                f"{self._rate.refill_s:g} s"
            )
            quarantine.over_limit(KIT, ours, limit)
        return "over_rate", ours

    def _message(
        self, up: ApplicationUp, kit: str
    ) -> tuple[AirMessage | None, list[tuple[str, str]]]:
        """The message to publish (None: nothing to store) and the problems to keep."""
        ids = up.end_device_ids
        uplink = up.uplink_message
        assert uplink is not None
        if uplink.decoded_payload is None:
            warnings = "; ".join(uplink.decoded_payload_warnings)
            raise DecodeError(
                "not_decoded",
                f"f_cnt {uplink.f_cnt} on f_port {uplink.f_port} has no decoded_payload: set a "
                f"payload formatter for the application or device in the TTN console"
                + (f" (formatter warnings: {warnings})" if warnings else ""),
            )
        observed = up.observed_at
        if observed is None:
            raise DecodeError("schema", "no received_at: the uplink has no time")
        readings, problems = self._readings(uplink)
        if up.simulated and not self.app.store_simulated:
            would = ", ".join(f"{r.quantity}={r.value:g} {r.unit}" for r in readings) or "nothing"
            raise DecodeError(
                "simulated",
                f"simulated in the console, not measured; it would store {would}"
                + "".join(f"; {detail}" for _, detail in problems),
            )
        if not readings:
            return None, problems
        received_ms = round(observed.timestamp() * 1000)
        seq = self._state.seq(
            self.app.application,
            ids.device_id,
            session_key=uplink.session_key_id,
            f_cnt=uplink.f_cnt,
            received_ms=received_ms,
        )
        try:
            message = AirMessage(
                device_id=kit,
                seq=seq,
                observed_at=observed,
                clock_synced=True,
                sent_at=datetime.fromtimestamp(self._clock(), UTC),
                location=_position(uplink),
                link=_link(uplink),
                readings=readings,
            )
        except ValidationError as exc:
            raise DecodeError("schema", _summary(exc)) from None
        return message, problems

    def _readings(self, uplink: ApplicationUplink) -> tuple[list[Reading], list[tuple[str, str]]]:
        assert uplink.decoded_payload is not None
        values = flatten(uplink.decoded_payload)
        position = "frm-payload" in uplink.locations
        readings: list[Reading] = []
        bad: list[str] = []
        unknown: list[str] = []
        for path, value in values.items():
            mapping = self.app.fields.get(path)
            if mapping is None:
                if not (self._ignored(path) or (position and path in POSITION_FIELDS)):
                    unknown.append(path)
                continue
            if value is None:
                continue  # the formatter says it has no value
            if isinstance(value, bool) or not isinstance(value, int | float):
                bad.append(f"{path}: expected a number, got {_short(value)}")
                continue
            quantity = QUANTITIES[mapping.quantity]
            converted = mapping.convert(float(value))
            try:
                readings.append(
                    Reading(
                        quantity=mapping.quantity,
                        value=converted,
                        unit=quantity.unit,
                        sensor=mapping.sensor,
                    )
                )
            except ValidationError as exc:
                bad.append(f"{path} = {value!r}: {_summary(exc)}")
        problems: list[tuple[str, str]] = []
        if unknown:
            problems.append(
                (
                    "unknown_field",
                    f"decoded_payload fields without a mapping: {', '.join(sorted(unknown))} "
                    f"(map them under [ttn.fields] or list them in ignore_fields); "
                    f"f_cnt {uplink.f_cnt}",
                )
            )
        if bad:
            problems.append(("schema", "; ".join(bad) + f"; f_cnt {uplink.f_cnt}"))
        return readings, problems

    def _ignored(self, path: str) -> bool:
        return any(path == i or path.startswith(i + ".") for i in self.app.ignore_fields)

    def _handled_before(self, key: UplinkKey) -> bool:
        with self._lock:
            if key in self._handled:
                self._handled.move_to_end(key)
                return True
        return self._state.was_handled(self.app.application, key)

    def _finish(self, result: Handled, key: UplinkKey | None) -> Handled:
        if result.letters and result.device_id is None:
            self._within_budget(result)
        if result.letters and result.device_id is not None:
            result.letters = [replace(x, device_id=result.device_id) for x in result.letters]
        if result.letters:
            try:
                self._letters(result.letters)
            except Exception as exc:  # whatever the store raises: nothing was kept
                raise DeadLettersUnavailable(str(exc) or type(exc).__name__) from exc
        if key is not None:
            # In the state file (kept a week): this gateway's kits' uplinks, and other nodes'
            # only where their letter was kept, so within the budget of unknown nodes'
            # letters (500 a day: at most 3,500 rows a week). An invented node id per uplink,
            # dropped over that budget or over the rate, adds nothing; such uplinks are known
            # lately in memory only (REMEMBERED).
            if result.device_id is not None or result.letters:
                self._state.set_was_handled(self.app.application, key)
            with self._lock:
                self._handled[key] = None
                while len(self._handled) > REMEMBERED:
                    self._handled.popitem(last=False)
        for code in result.codes:
            self.stats.rejected[code] += 1
        if result.message is not None:
            self.stats.published += 1
        if result.dropped is not None:
            self.stats.dropped[result.dropped] += 1
        if self._counters is not None:
            if result.dropped is not None:
                outcome = f"dropped_{result.dropped}"
            elif result.message is not None:
                outcome = "published"
            else:
                outcome = "not_published"
            self._counters.add(KIT, "uplinks", outcome)
            if result.message is not None:
                self._counters.add(KIT, "values", "stored", len(result.message.readings))
            for code in result.codes:
                self._counters.add(KIT, "deadletters", code)
        return result

    def _within_budget(self, result: Handled) -> None:
        """Letters of a node that is no kit of this gateway: kept within the application's
        budget for them, else dropped (counted, said once a minute)."""
        size = sum(len(x.payload) for x in result.letters)
        if self._strangers.take(size):
            return
        n = len(result.letters)
        result.letters = []
        result.dropped = "letter_budget"
        if self._counters is not None:
            self._counters.add(KIT, "deadletters", "over_budget", n)
        with self._lock:
            self._strangers_dropped += 1
            now = self._clock()
            said = self._strangers_said_at
            if said is not None and now - said < SAY_EVERY_S:
                return
            self._strangers_said_at = now
            dropped, self._strangers_dropped = self._strangers_dropped, 0
        app = self.app
        log.warning(
            "The Things Stack %s: the dead-letter budget for unregistered nodes (%d letters, "
            "%d bytes per %g s: unknown_node_letters, unknown_node_letter_bytes, "
            "unknown_node_window_s) is used up; %d uplink(s) of such nodes dropped unkept since "
            "this was last said. `sensorpipe ingest rejects --reason unknown_device` lists those "
            "kept",
            app.application,
            app.unknown_node_letters,
            app.unknown_node_letter_bytes,
            app.unknown_node_window_s,
            dropped,
        )


# --- pure helpers ---------------------------------------------------------------------------
def _key(up: ApplicationUp) -> UplinkKey | None:
    """What tells one uplink from another: the node, its reception time, its counter."""
    observed = up.observed_at
    if observed is None or up.uplink_message is None:
        return None
    ms = round(observed.timestamp() * 1000)
    return (up.end_device_ids.device_id, ms, up.uplink_message.f_cnt, up.simulated)


def flatten(decoded: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path: {"sds011": {"pm25": 3}} -> {"sds011.pm25": 3}. Lists and
    empty objects are leaves."""
    out: dict[str, Any] = {}
    for key, value in decoded.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _link(uplink: ApplicationUplink) -> Link:
    heard = sorted(
        uplink.rx_metadata,
        key=lambda m: m.signal_dbm if m.signal_dbm is not None else -math.inf,
        reverse=True,
    )
    gateway_ids = list(dict.fromkeys(m.gateway[:64] for m in heard))
    rssis = [m.signal_dbm for m in heard if m.signal_dbm is not None]
    snrs = [s for s in (m.snr_db for m in heard) if s is not None]
    best_rssi = round(max(rssis)) if rssis else None
    lora = uplink.settings.data_rate.lora
    version = uplink.version_ids
    firmware = (version.firmware_version if version else None) or "lorawan"
    return Link(
        # An RSSI outside what the link metadata can hold (a simulated +42) is not stored.
        rssi_dbm=best_rssi if best_rssi is not None and -150 <= best_rssi <= 0 else None,
        uptime_s=0.0,
        firmware=firmware[:64],
        kit=KitLink(
            time_source="network",
            f_cnt=uplink.f_cnt,
            f_port=uplink.f_port,
            gateways=len(gateway_ids),
            gateway_ids=gateway_ids[:MAX_GATEWAY_IDS],
            snr_db=max(snrs) if snrs else None,
            spreading_factor=lora.spreading_factor if lora and lora.spreading_factor else None,
            bandwidth_hz=lora.bandwidth if lora and lora.bandwidth else None,
            frequency_hz=uplink.settings.frequency_hz,
            airtime_s=uplink.airtime_s,
        ),
    )


def _position(uplink: ApplicationUplink) -> Location | None:
    """Where a moving node was: the position The Things Stack read from its payload."""
    found = uplink.locations.get("frm-payload")
    if found is None:
        return None
    return Location(lat=found.latitude, lon=found.longitude, alt_m=found.altitude)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)[:500]
