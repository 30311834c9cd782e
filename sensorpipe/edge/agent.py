"""The edge agent: samples sensors on schedule, queues messages durably, publishes them.

Sampler (caller's thread) -> outbox (disk) -> publisher (paho's network thread) -> broker.
A failed read is counted and skipped, and a sensor that cannot be opened (no I2C bus, no
serial adapter) is reported in the log and in `sensor_status` and opened again every
`reopen_after_s`: the agent never stops because one sensor misbehaves, the others are read.
Messages are signed when they are handed to the broker, so `sent_at` and the link metadata
describe the actual transmission, also for entries sent from the backlog after an outage.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import ValidationError

from sensorpipe.edge import host
from sensorpipe.edge.config import EdgeConfig
from sensorpipe.edge.counting.intervals import IntervalCounts
from sensorpipe.edge.counting.loop import CountingLoop
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.duty import DutyCycle, LaserDriver
from sensorpipe.edge.errors import SensorError
from sensorpipe.edge.notify import Notifier
from sensorpipe.edge.outbox import Outbox, OutboxEntry, OutboxError
from sensorpipe.edge.problems import RepeatedProblem
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.protocol.codec import dumps_value, encode, encode_fields, encode_parts
from sensorpipe.protocol.messages import MESSAGE_ADAPTER, Reading, SendingFields, SensorHealth
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for

log = logging.getLogger(__name__)
FIRMWARE = "sensorpipe-edge/0.1.0"
# The Wi-Fi signal a message reports is read at most this often: reading /proc/net/wireless
# for each message would cost an outbox draining after an outage a file read per message.
RSSI_MAX_AGE_S = 10.0
# Starts the body of an outbox entry whose fields were validated when it was queued
# (`prepare`): then its fields, name and value by turns, each value as it appears in the
# message's canonical JSON, separated by NUL bytes (JSON text never holds one).
PREPARED_PARTS = b"sensorpipe-prepared/2\0"
# Marked an entry validated when queued by agents before PREPARED_PARTS: a JSON object with
# this key. Still sent as such after an upgrade.
PREPARED = "_prepared"
_PLACEHOLDER_LINK = {"uptime_s": 0.0, "firmware": FIRMWARE}


def prepare(draft: dict[str, Any]) -> bytes:
    """An outbox entry's body for a message draft (without `sent_at` and `link`).

    The draft is validated now, once, and kept as the message model dumps it, each field
    encoded as the signed message will hold it (PREPARED_PARTS): sending it then validates and
    encodes only what the agent adds (`sent_at`, `link`), not the readings again, which is most
    of the work of an outbox draining after an outage. A draft that does not validate is kept
    as JSON as it is: sending it sets it aside with the reason, as any entry that cannot be
    encoded."""
    try:
        message = MESSAGE_ADAPTER.validate_python(
            {**draft, "sent_at": draft["observed_at"], "link": _PLACEHOLDER_LINK}
        )
    except (ValidationError, KeyError):
        return json.dumps(draft).encode()
    fields = message.model_dump(mode="json", exclude={"sig", "sent_at", "link"})
    if fields.get("vouched_by") is None:  # as encode_fields leaves it out
        fields.pop("vouched_by", None)
    return PREPARED_PARTS + b"\0".join(
        part for name, value in fields.items() for part in (name.encode(), dumps_value(value))
    )


def read_body(body: bytes) -> dict[str, Any]:
    """The message fields an outbox entry's body holds, whichever form it has."""
    if not body.startswith(PREPARED_PARTS):
        fields: dict[str, Any] = json.loads(body)
        fields.pop(PREPARED, None)
        return fields
    parts = body[len(PREPARED_PARTS) :].split(b"\0")
    return {
        name.decode(): json.loads(value)
        for name, value in zip(parts[::2], parts[1::2], strict=True)
    }


@dataclass(frozen=True, slots=True)
class SensorOpener:
    """A sensor the agent opens itself: when it is first due, and again after a failed open."""

    model: str  # the `sensor` tag its readings and its status carry
    open: Callable[[], SensorDriver]
    interval_s: float
    duty: DutyCycle | None = None  # a laser PM sensor: its warm-up, wakes and running hours


@dataclass
class SensorSlot:
    model: str
    interval_s: float
    driver: SensorDriver | None = None
    opener: Callable[[], SensorDriver] | None = None
    next_due: float = 0.0
    next_open: float = 0.0
    reads_ok: int = 0
    reads_failed: int = 0  # failed reads, and failed attempts to open the sensor
    values_rejected: int = 0
    last_ok: bool = True
    last_error: str | None = None
    duty: DutyCycle | None = None
    problem: RepeatedProblem = field(init=False)

    def __post_init__(self) -> None:
        self.problem = RepeatedProblem(log, f"sensor {self.model}", first_pause_s=300.0)


@dataclass
class AgentStats:
    messages_queued: int = 0
    messages_dropped: int = 0  # numbered or not, the outbox could not keep them
    readings: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _iso(ts: float) -> str:
    # Milliseconds: the ingest stores points at ms precision, so identity survives a round trip.
    return datetime.fromtimestamp(round(ts, 3), UTC).isoformat(timespec="milliseconds")


class Agent:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        drivers: Sequence[tuple[SensorDriver, float]] = (),
        sensors: Sequence[SensorOpener] = (),
        outbox: Outbox,
        publisher_factory: Callable[..., Publisher] = Publisher,
        clock: Callable[[], float] = time.time,
        clock_synced: Callable[[], bool] = host.clock_synchronised,
        rssi: Callable[[], int | None] = host.wifi_rssi_dbm,
        counter: CountingLoop | None = None,
        reopen_after_s: float = 60.0,
        notifier: Notifier | None = None,
        summary_interval_s: float = 300.0,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.stats = AgentStats()
        self._slots = [SensorSlot(d.model, interval, driver=d) for d, interval in drivers]
        self._slots += [
            SensorSlot(s.model, s.interval_s, opener=s.open, duty=s.duty) for s in sensors
        ]
        self._reopen_after_s = reopen_after_s
        self._outbox_problem = RepeatedProblem(log, "outbox", level=logging.ERROR)
        self._lost_seqs: tuple[int | None, int | None] = (None, None)
        self._signer = Signer(config.private_key)
        self._clock = clock
        self._clock_synced = clock_synced
        self._rssi = rssi
        self._rssi_read: tuple[float, int | None] | None = None  # (monotonic time, value)
        self._started = time.monotonic()
        self._sending_key: tuple[Any, ...] | None = None  # _sending_parts's last answer
        self._sending: dict[str, bytes] = {}
        self._next_status = 0.0
        self.counter = counter
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        self._summary_interval_s = summary_interval_s
        self._last_did = "started"
        self._announced: set[str] = set()  # sensors whose first queued reading was logged
        self.publisher = publisher_factory(
            outbox=outbox,
            mqtt_config=config.mqtt,
            client_id=f"edge-{config.device_id}",
            finalize=self._finalize,
        )

    # --- sampling -------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, drain_timeout_s: float = 5.0) -> str | None:
        """Sample until `stop` is set, then give the publisher a moment to empty the outbox.

        The agent also ends by itself when its counter's frame source ends (a video file at its
        end, a camera that stopped delivering frames), after the last interval's counts are in
        the outbox; it then returns why. None: it was stopped.
        """
        ended: list[str] = []

        def counting_ended(error: str | None) -> None:
            if error is not None:
                return  # logged by the counter; the air sensors go on
            assert self.counter is not None
            ended.append(f"the frame source ended after {self.counter.frames} frames")
            log.info("%s: stopping the agent", ended[0])
            stop.set()

        host.limit_malloc_arenas()  # before the publisher's and paho's threads start
        self.publisher.start()
        if self.counter is not None:
            self.counter.start(self.queue_counts, on_end=counting_ended)
        notifier = self.notifier
        ping_every = notifier.watchdog_interval_s
        next_ping = 0.0
        next_summary = time.monotonic() + self._summary_interval_s
        ready = False
        try:
            while not stop.is_set():
                now = time.monotonic()
                self._wake_due(now)
                due = [s for s in self._slots if s.next_due <= now]
                if due:
                    self.sample(due)
                    for s in due:
                        following = s.next_due + s.interval_s
                        # Behind by an interval or more (and after the first reading, due at
                        # 0): one interval from now, not at once again.
                        s.next_due = following if following > now else now + s.interval_s
                if now >= self._next_status:
                    self.queue_status()
                    self._next_status = now + self.config.status_interval_s
                if not ready:
                    # Every sensor was tried once and the outbox is open: readings are kept
                    # from now on, whether the broker is reachable or not.
                    ready = True
                    notifier.ready(self._last_did)
                    host.trim_memory()  # what starting up used and freed
                elif due:
                    notifier.status(self._last_did)
                if now >= next_summary:
                    log.info("%s", self.summary())
                    next_summary = now + self._summary_interval_s
                    host.trim_memory()
                wakes = [s.next_due for s in self._slots] + [self._next_status, next_summary]
                wakes += [w for s in self._slots if (w := self._wake_at(s)) is not None]
                if ping_every is not None:
                    if now >= next_ping and self.healthy():
                        notifier.watchdog()
                        next_ping = now + ping_every
                    wakes.append(max(next_ping, now + min(1.0, ping_every)))
                stop.wait(max(0.0, min(wakes) - time.monotonic()))
        finally:
            notifier.stopping(f"stopping; {self.summary()}")
            if self.counter is not None:
                self.counter.stop()  # flushes the open interval into the outbox
            self.publisher.stop(drain_timeout_s=drain_timeout_s)
            for slot in self._slots:
                if slot.driver is not None:
                    slot.driver.close()
                if slot.duty is not None:
                    slot.duty.slept(time.monotonic())
        return ended[0] if ended else None

    def healthy(self) -> bool:
        """What the watchdog ping vouches for besides the sampling loop itself: the thread
        that moves the outbox to the broker still runs."""
        return bool(getattr(self.publisher, "alive", True))

    def summary(self) -> str:
        """Totals since the start, for the log line every few minutes."""
        confirmed = getattr(self.publisher, "confirmed", 0)
        try:
            depth: int | str = self.outbox.depth()
        except OutboxError:
            depth = "unreadable"
        return (
            f"{self.stats.readings} readings, {confirmed} messages confirmed by the ingest, "
            f"outbox depth {depth}"
        )

    def sample(self, slots: Sequence[SensorSlot]) -> int | None:
        """Read the given sensors once and queue one air message; the outbox id, if any."""
        observed = self._clock()
        readings: list[dict[str, Any]] = []
        shown: dict[str, str] = {}  # sensor: its values, for the first-reading line
        for slot, driver in self._open(slots):
            if slot.duty is not None and slot.duty.wake_s and not slot.duty.awake:
                continue  # its wake failed (counted): reading it asleep would only time out
            try:
                values = driver.read()
            except Exception as exc:  # a driver fault in one sensor must not stop the others
                self._failed(slot, str(exc) if isinstance(exc, SensorError) else repr(exc))
                continue
            finally:
                self._sleep(slot, driver)
            slot.reads_ok += 1
            if slot.duty is not None and not slot.duty.warm(time.monotonic()):
                continue  # the laser is warming up: a reading known to be unstable
            if slot.model not in self._announced:
                shown[slot.model] = ", ".join(f"{q} {v:g}" for q, v in values.items())
            slot.last_ok = True
            slot.problem.resolved(f"sensor {slot.model} reads again", level=logging.INFO)
            for quantity, value in values.items():
                try:
                    reading = Reading(
                        quantity=quantity,
                        value=round(value, 3),
                        unit=QUANTITIES[quantity].unit if quantity in QUANTITIES else "",
                        sensor=slot.model,
                    )
                except ValidationError as exc:
                    slot.values_rejected += 1
                    slot.last_error = f"implausible value: {exc.errors()[0]['msg']}"[:200]
                    log.warning("%s: dropped %s=%r: %s", slot.model, quantity, value, exc)
                    continue
                readings.append(reading.model_dump(mode="json"))
        if not readings:
            self._last_did = "no sensor could be read: " + "; ".join(
                f"{s.model}: {s.last_error}" for s in slots if not s.last_ok
            )
            return None
        self.stats.readings += len(readings)
        entry = self._queue("air", observed, {"readings": readings})
        if entry is not None:
            sensors = sorted({r["sensor"] for r in readings})
            n = len(readings)
            self._last_did = f"queued {n} reading{'' if n == 1 else 's'} of {', '.join(sensors)}"
            first = [f"{m} ({v})" for m, v in shown.items() if m in sensors]
            if first:
                log.info("first reading queued: %s", "; ".join(first))
                self._announced.update(m for m, _ in shown.items() if m in sensors)
        return entry

    def _open(self, slots: Sequence[SensorSlot]) -> list[tuple[SensorSlot, SensorDriver]]:
        """The slots whose driver is open, with it, opening those that are due first. A sensor
        that cannot be opened is reported once all are tried, so that its line can say what
        is read meanwhile."""
        failed: list[tuple[SensorSlot, Exception]] = []
        for slot in slots:
            if slot.driver is not None or slot.opener is None:
                continue
            if time.monotonic() < slot.next_open:
                continue
            try:
                slot.driver = slot.opener()
            except Exception as exc:  # no bus, no port, wrong chip, a missing package
                slot.next_open = time.monotonic() + self._reopen_after_s
                failed.append((slot, exc))
                continue
            if slot.duty is not None:
                slot.duty.woke(time.monotonic())  # opening a laser sensor wakes it
            slot.problem.resolved(f"sensor {slot.model} opened", level=logging.WARNING)
        for slot, error in failed:
            retry = f"; trying again every {self._reopen_after_s:.0f} s"
            self._failed(slot, f"not available: {error}", retry + self._meanwhile(slot))
        return [(s, s.driver) for s in slots if s.driver is not None]

    # --- duty cycling of laser PM sensors (sensorpipe.edge.duty) ----------------------------
    @staticmethod
    def _wake_at(slot: SensorSlot) -> float | None:
        return slot.duty.wake_at(slot.next_due) if slot.duty is not None else None

    def _wake_due(self, now: float) -> None:
        """Wake the duty-cycled sensors whose next reading is due within their `wake_s`."""
        for slot in self._slots:
            at = self._wake_at(slot)
            if at is None or now < at:
                continue
            duty = slot.duty
            assert duty is not None
            # At the start (next_due 0), the first reading waits for the wake too.
            slot.next_due = max(slot.next_due, now + duty.wake_s)
            if slot.driver is None:
                self._open([slot])  # opening wakes it
            else:
                try:
                    cast(LaserDriver, slot.driver).wake()
                except Exception as exc:  # counted as a failed read
                    self._failed(slot, str(exc) if isinstance(exc, SensorError) else repr(exc))
                else:
                    duty.woke(now)
            if not duty.awake:  # not opened, or not woken: tried again for the next reading
                slot.next_due += slot.interval_s

    def _sleep(self, slot: SensorSlot, driver: SensorDriver) -> None:
        """After a duty-cycled sensor's reading: sleep until the next wake."""
        duty = slot.duty
        if duty is None:
            return
        if duty.wake_s:
            try:
                cast(LaserDriver, driver).sleep()
            except Exception as exc:  # still running: its hours go on counting
                log.debug("%s: cannot put it to sleep: %s", slot.model, exc)
                return
            duty.slept(time.monotonic())
        else:
            duty.hours.checkpoint(time.monotonic())

    def _meanwhile(self, slot: SensorSlot) -> str:
        """What the agent measures while `slot` cannot be opened."""
        read = [s.model for s in self._slots if s is not slot and s.driver is not None]
        if read:
            return f", meanwhile {', '.join(read)} {'is' if len(read) == 1 else 'are'} read"
        if self.counter is not None:
            return "; no sensor can be read meanwhile, counting goes on"
        return "; no sensor can be read, so nothing is measured until one opens"

    def _failed(self, slot: SensorSlot, error: str, detail: str = "") -> None:
        slot.reads_failed += 1
        slot.last_ok = False
        slot.last_error = error[:200]
        # Driver errors name their sensor already; the log line names it once.
        slot.problem.report(error.replace(f"{slot.model}: ", "", 1), detail)

    def sensor_health(self) -> list[SensorHealth]:
        return [
            SensorHealth(
                sensor=s.model,
                ok=s.last_ok,
                reads_ok=s.reads_ok,
                reads_failed=s.reads_failed,
                frames_bad=s.driver.frames_bad if s.driver is not None else 0,
                values_rejected=s.values_rejected,
                last_error=s.last_error,
                laser_hours=(
                    round(s.duty.hours.hours(s.model, time.monotonic()), 4)
                    if s.duty is not None
                    else None
                ),
            )
            for s in self._slots
        ]

    def queue_status(self) -> int | None:
        health = [h.model_dump(mode="json") for h in self.sensor_health()]
        return self._queue("status", self._clock(), {"sensors": health})

    def queue_counts(self, counts: IntervalCounts, model_id: str) -> int | None:
        """One count message per interval: numbers only, every class and direction listed."""
        payload = {
            "interval_end": _iso(counts.end),
            "model_id": model_id,
            "running_fraction": counts.running_fraction,
            "frames": counts.frames,
            "counts": [
                {"count_class": cls, "direction": direction, "count": n}
                for (cls, direction), n in counts.counts.items()
            ],
        }
        return self._queue("count", counts.start, payload)

    def _queue(self, kind: str, observed: float, payload: dict[str, Any]) -> int | None:
        """Put one message in the outbox; its id, or None if the outbox could not keep it
        (a full disk). Such a loss is counted (`stats.messages_dropped`, and the outbox's
        `dropped`, which every later message reports as `outbox_dropped`), its sequence
        number stays used (a gap centrally), and the log says so."""
        seq: int | None = None
        try:
            seq = self.outbox.next_seq()
            draft = {
                "v": 1,
                "kind": kind,
                "device_id": self.config.device_id,
                "seq": seq,
                "observed_at": _iso(observed),
                "clock_synced": self._clock_synced(),
                "location": self._location(),
                **payload,
            }
            entry_id = self.outbox.put(
                topic_for(self.config.device_id, kind), prepare(draft), seq=seq
            )
        except OutboxError as exc:
            self.stats.messages_dropped += 1
            if seq is not None:
                self._lost_seqs = (self._lost_seqs[0] or seq, seq)
            self._outbox_problem.report(
                str(exc),
                f"; {kind} message {seq or '(unnumbered)'} lost, "
                f"{self.outbox.dropped} since the start (reported as outbox_dropped)",
            )
            return None
        if self._outbox_problem.active:
            first, last = self._lost_seqs
            self._outbox_problem.resolved(
                f"the outbox keeps messages again; those it lost have sequence numbers "
                f"{first}-{last} (a gap centrally, and counted in outbox_dropped)",
                level=logging.WARNING,
            )
            self._lost_seqs = (None, None)
        self.stats.messages_queued += 1
        self.stats.kinds[kind] = self.stats.kinds.get(kind, 0) + 1
        self.publisher.notify()
        return entry_id

    def _location(self) -> dict[str, Any] | None:
        loc = self.config.location
        if loc is None:
            return None
        n = loc.precision_decimals
        return {"lat": round(loc.lat, n), "lon": round(loc.lon, n), "alt_m": loc.alt_m}

    def _signal(self) -> int | None:
        now = time.monotonic()
        if self._rssi_read is None or now - self._rssi_read[0] >= RSSI_MAX_AGE_S:
            self._rssi_read = (now, self._rssi())
        return self._rssi_read[1]

    # --- called by the publisher when it hands an entry to the broker -----------------------
    def _finalize(self, entry: OutboxEntry, link: LinkState) -> bytes:
        if entry.body.startswith(PREPARED_PARTS):
            parts = entry.body[len(PREPARED_PARTS) :].split(b"\0")
            fields = {
                name.decode(): value for name, value in zip(parts[::2], parts[1::2], strict=True)
            }
            fields.update(self._sending_parts(link))
            return encode_parts(fields, self._signer.sign)
        draft = json.loads(entry.body)
        prepared = draft.pop(PREPARED, False)
        draft["sent_at"] = _iso(self._clock())
        draft["link"] = {
            "rssi_dbm": self._signal(),
            "reconnects": link.reconnects,
            "outbox_depth": link.outbox_depth,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "firmware": FIRMWARE,
            "backlog": link.backlog,
            "outbox_dropped": self.outbox.dropped,
        }
        try:
            if prepared:  # validated when queued: only what was added now
                sending = SendingFields.model_validate(
                    {"sent_at": draft["sent_at"], "link": draft["link"]}
                )
                draft.update(sending.model_dump(mode="json"))
                return encode_fields(draft, self._signer.sign)
            message = MESSAGE_ADAPTER.validate_python(draft)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return encode(message, self._signer.sign)

    def _sending_parts(self, link: LinkState) -> dict[str, bytes]:
        """`sent_at` and `link`, validated and encoded: once for all the entries handed over in
        the same millisecond with the same link state (an outbox draining after an outage)."""
        stamp = round(self._clock(), 3)
        key = (link, stamp, self.outbox.dropped, self._signal())
        if key == self._sending_key:
            return self._sending
        try:
            sending = SendingFields.model_validate(
                {
                    "sent_at": _iso(stamp),
                    "link": {
                        "rssi_dbm": key[3],
                        "reconnects": link.reconnects,
                        "outbox_depth": link.outbox_depth,
                        "uptime_s": round(time.monotonic() - self._started, 3),
                        "firmware": FIRMWARE,
                        "backlog": link.backlog,
                        "outbox_dropped": key[2],
                    },
                }
            ).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        if sending["link"].get("kit") is None:  # as encode_fields leaves it out
            sending["link"].pop("kit", None)
        self._sending_key = key
        self._sending = {name: dumps_value(value) for name, value in sending.items()}
        return self._sending
