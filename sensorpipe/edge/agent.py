"""The edge agent: samples sensors on schedule, queues messages durably, publishes them.

Sampler (caller's thread; each sensor read in a thread of its own, edge.sensorloop) -> outbox
(disk) -> publisher (paho's network thread) -> broker. A failed read is counted per sensor and
kind (checksum, timeout, io, out_of_range, not_available, ...) and the sensor backed off
(every interval, then 2, 4, 8 ... intervals apart up to `max_backoff_s`; a good read resets
it); a read that hangs is bounded by the sensor's `read_timeout_s`; bad frames are summed up
in the log at most once a minute, not logged one by one. A sensor that cannot be opened (no
I2C bus, no serial adapter) is reported in the log and in `sensor_status` and opened again
after `reopen_after_s`, backed off likewise: the agent never stops because one sensor
misbehaves, and one sensor's fault never delays another's reading. All of it travels in the
status messages' sensor health (`errors`, `backoff_s`), which the server shows wherever it
shows the device.

Duty cycling (edge.duty): a laser PM sensor with `duty` is woken `wake_s` before each reading
(a job on its worker, like a read; opening it wakes it too) and put to sleep by its worker
right after the read; readings within `warmup_s` of its laser starting are discarded; its
laser's running hours travel in its sensor health (`laser_hours`). A sensor that cannot be
woken is not read: it is tried again for the next reading, one failed reading per period.

Time: readings are ordered by sequence number, never by wall-clock time, so a clock that jumps
back (a Pi without a real-time clock after a power cut, until NTP steps it) neither reorders
nor drops the outbox; each message says whether the clock was synchronised when its readings
were taken (`clock_synced`), and the agent says at start whether it is and by what
(host.clock_line), and in the log when it becomes synchronised or jumps.
Messages are signed when they are handed to the broker, so `sent_at` and the link metadata
describe the actual transmission, also for entries sent from the backlog after an outage.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sensorpipe.edge import host
from sensorpipe.edge.config import EdgeConfig
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.duty import DutyCycle, serial_key
from sensorpipe.edge.entries import Sealer, iso, prepare
from sensorpipe.edge.errors import SensorError
from sensorpipe.edge.healthfile import write_health
from sensorpipe.edge.notify import Notifier
from sensorpipe.edge.outbox import Outbox, OutboxEntry, OutboxError
from sensorpipe.edge.problems import RepeatedProblem
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.edge.sensorloop import (
    MAX_BACKOFF_S,
    MAX_KINDS,
    PART_STEP_S,
    READ_TIMEOUT_S,
    STORM_LINE_S,
    Outcome,
    Round,
    SensorWorker,
    backoff_delay,
    error_kind,
)
from sensorpipe.protocol.messages import Reading, SensorHealth
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for

if TYPE_CHECKING:  # a host without a camera never loads the counting code
    from sensorpipe.edge.counting.intervals import IntervalCounts
    from sensorpipe.edge.counting.loop import CountingLoop

log = logging.getLogger(__name__)
# While reads are under way, the loop looks for their answers this often.
POLL_S = 0.05
# A wall clock that moved this much less (or more) than the monotonic clock between two passes
# of the loop was set: said in the log.
CLOCK_JUMP_S = 2.0


@dataclass(frozen=True, slots=True)
class SensorOpener:
    """A sensor the agent opens itself: when it is first due, and again after a failed open."""

    model: str  # the `sensor` tag its readings and its status carry
    open: Callable[[], SensorDriver]
    interval_s: float
    duty: DutyCycle | None = None  # a laser PM sensor: its warm-up, wakes and running hours
    read_timeout_s: float = READ_TIMEOUT_S  # an open or read still running then is a timeout


@dataclass(eq=False)
class SensorSlot:
    model: str
    interval_s: float
    driver: SensorDriver | None = None
    opener: Callable[[], SensorDriver] | None = None
    read_timeout_s: float = READ_TIMEOUT_S
    next_due: float = 0.0
    next_open: float = 0.0
    reads_ok: int = 0
    reads_failed: int = 0  # failed reads, and failed attempts to open the sensor
    values_rejected: int = 0
    last_ok: bool = True
    last_error: str | None = None
    # Faults by kind (SensorHealth.errors); bad frames as "checksum".
    errors: dict[str, int] = field(default_factory=dict)
    failures_in_a_row: int = 0  # failed reads since the last good one
    open_failures: int = 0  # failed opens since it last opened
    backoff_s: float = 0.0  # seconds between attempts while backed off; 0: on schedule
    frames_seen: int = 0  # the driver's frames_bad, as last counted
    checksums_logged: int = 0  # "checksum" errors when the last summary line was written
    next_storm_line: float = 0.0  # monotonic; no summary line before
    last_storm_line: float | None = None
    worker: SensorWorker | None = None
    # Asked to read, its answer not yet taken in: not asked again meanwhile, nor closed.
    in_flight: bool = False
    duty: DutyCycle | None = None
    waking: bool = False  # its wake is under way (on its worker)
    problem: RepeatedProblem = field(init=False)

    def __post_init__(self) -> None:
        self.problem = RepeatedProblem(log, f"sensor {self.model}", first_pause_s=300.0)


@dataclass
class AgentStats:
    messages_queued: int = 0
    messages_dropped: int = 0  # numbered or not, the outbox could not keep them
    readings: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


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
        max_backoff_s: float = MAX_BACKOFF_S,
        clock_line: Callable[[], str] = host.clock_line,
        health_path: Path | None = None,
    ) -> None:
        """`health_path`: where each status message's sensor health is also saved, for `edge
        check` (edge.healthfile); None: nowhere."""
        self.config = config
        self.outbox = outbox
        self.stats = AgentStats()
        self._slots = [SensorSlot(d.model, interval, driver=d) for d, interval in drivers]
        self._slots += [
            SensorSlot(
                s.model,
                s.interval_s,
                opener=s.open,
                read_timeout_s=s.read_timeout_s,
                duty=s.duty,
            )
            for s in sensors
        ]
        self._reopen_after_s = reopen_after_s
        self._max_backoff_s = max_backoff_s
        self._clock_line = clock_line
        self._health_path = health_path
        self._rounds: list[Round] = []  # reads under way, or answered and not yet queued
        self._answers: queue.SimpleQueue[Outcome] = queue.SimpleQueue()  # from the workers
        self._answered = threading.Event()
        self._last_synced: bool | None = None  # the clock's state at the last round
        self._clock_pair: tuple[float, float] | None = None  # (wall, monotonic), last pass
        self._outbox_problem = RepeatedProblem(log, "outbox", level=logging.ERROR)
        self._lost_seqs: tuple[int | None, int | None] = (None, None)
        self._clock = clock
        self._clock_synced = clock_synced
        self._started = time.monotonic()
        self._sealer = Sealer(
            Signer(config.private_key), outbox, clock=clock, rssi=rssi, started=self._started
        )
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

    def _finalize(self, entry: OutboxEntry, link: LinkState) -> bytes:
        """Called by the publisher as it hands `entry` to the broker: the signed message."""
        return self._sealer.seal(entry, link)

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

        host.limit_malloc_arenas()  # before the publisher's, paho's and the sensors' threads
        log.info("%s", self._clock_line())
        self.publisher.start()
        if self.counter is not None:
            self.counter.start(self.queue_counts, on_end=counting_ended)
        notifier = self.notifier
        ping_every = notifier.watchdog_interval_s
        next_ping = 0.0
        next_summary = time.monotonic() + self._summary_interval_s
        ready = False
        first: Round | None = None
        try:
            while not stop.is_set():
                now = time.monotonic()
                self._watch_clock(now)
                self._wake_due(now)
                due = [s for s in self._slots if s.next_due <= now]
                if due:
                    started = self.start_round(due)
                    first = first or started
                    for s in due:
                        following = s.next_due + s.interval_s
                        # Behind by an interval or more (and after the first reading, due at
                        # 0): one interval from now, not at once again.
                        s.next_due = following if following > now else now + s.interval_s
                queued = self.collect()
                # The first status once every sensor was tried: what it says is known then.
                tried = first is None or first not in self._rounds
                if now >= self._next_status and tried:
                    self.queue_status()
                    self._next_status = now + self.config.status_interval_s
                if not ready and tried:
                    # Every sensor was tried once and the outbox is open: readings are kept
                    # from now on, whether the broker is reachable or not.
                    ready = True
                    notifier.ready(self._last_did)
                    host.trim_memory()  # what starting up used and freed
                elif queued:
                    notifier.status(self._last_did)
                if now >= next_summary:
                    log.info("%s", self.summary())
                    next_summary = now + self._summary_interval_s
                    host.trim_memory()
                status_at = self._next_status if tried else now + POLL_S
                wakes = [s.next_due for s in self._slots] + [status_at, next_summary]
                wakes += [w for s in self._slots if (w := self._wake_at(s)) is not None]
                if self._rounds:
                    wakes.append(now + POLL_S)
                if ping_every is not None and ready:
                    if now >= next_ping and self.healthy():
                        notifier.watchdog()
                        next_ping = now + ping_every
                    wakes.append(max(next_ping, now + min(1.0, ping_every)))
                stop.wait(max(0.0, min(wakes) - time.monotonic()))
        finally:
            notifier.stopping(f"stopping; {self.summary()}")
            if self.counter is not None:
                self.counter.stop()  # flushes the open interval into the outbox
            self._finish_rounds()
            self.publisher.stop(drain_timeout_s=drain_timeout_s)
            self._close_sensors()
        return ended[0] if ended else None

    def _finish_rounds(self, wait_s: float = 2.0) -> None:
        """At stop: queue what the reads under way deliver within `wait_s`."""
        deadline = time.monotonic() + wait_s
        while self._rounds and time.monotonic() < deadline:
            self._answered.wait(POLL_S)
            self._answered.clear()
            self.collect()
        for rnd in self._rounds:
            rnd.group_wait_s = 0.0  # what answered, queued now
        self.collect()

    def _close_sensors(self) -> None:
        for slot in self._slots:
            worker = slot.worker
            if worker is not None:
                worker.stop()
                if slot.in_flight:  # a hanging read: closing under it could crash the driver
                    log.warning("sensor %s: still in a %s; not closed", slot.model, worker.doing)
                    continue
            if slot.driver is not None:
                slot.driver.close()
                if slot.duty is not None:  # closing puts it to sleep
                    slot.duty.slept(time.monotonic())

    def _watch_clock(self, now: float) -> None:
        """Say in the log when the wall clock was set (NTP stepping it after a start without
        a real-time clock): readings keep their order by sequence number all the same."""
        wall = self._clock()
        if self._clock_pair is not None:
            moved = (wall - self._clock_pair[0]) - (now - self._clock_pair[1])
            if abs(moved) >= CLOCK_JUMP_S:
                log.warning(
                    "the clock was set %s by %.0f s (%s): readings keep their order by "
                    "sequence number, and their times are as the clock said when taken",
                    "back" if moved < 0 else "forward",
                    abs(moved),
                    "synchronised now" if self._clock_synced() else "not synchronised",
                )
        self._clock_pair = (wall, now)

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
        """Read the given sensors once, now, and queue one air message; the outbox id, if
        any. Waits for every sensor's answer, or its read timeout."""
        rnd = self.start_round(slots, group_wait_s=math.inf)
        while rnd in self._rounds:
            self._answered.wait(POLL_S)
            self._answered.clear()
            self.collect()
        return rnd.entry

    def start_round(
        self, slots: Sequence[SensorSlot], *, group_wait_s: float | None = None
    ) -> Round:
        """Ask each of `slots`' workers to read its sensor (opening it first if it is due to
        be opened); one still busy with an earlier read is left out."""
        now = time.monotonic()
        synced = self._clock_synced()
        if synced and self._last_synced is False:
            log.info("clock: synchronised now; readings from now on are marked so")
        self._last_synced = synced
        rnd = Round(self._clock(), synced, now)
        if group_wait_s is not None:
            rnd.group_wait_s = group_wait_s
        for slot in slots:
            if slot.driver is None and (slot.opener is None or now < slot.next_open):
                continue
            if slot.worker is None:
                slot.worker = SensorWorker(slot.model, slot.opener, self._answer)
            if slot.in_flight:
                continue  # its timeout was counted; it is read again once the call returns
            duty = slot.duty
            if duty is not None and duty.wake_s and not duty.awake:
                continue  # its wake failed (counted): reading it asleep would only time out
            rnd.pending.add(slot)
            slot.in_flight = True
            sleep_after = duty is not None and bool(duty.wake_s)
            slot.worker.submit(Outcome(rnd, slot, sleep_after=sleep_after), slot.driver)
        self._rounds.append(rnd)
        return rnd

    # --- duty cycling of laser PM sensors (sensorpipe.edge.duty) ----------------------------
    @staticmethod
    def _wake_at(slot: SensorSlot) -> float | None:
        if slot.duty is None or slot.waking:
            return None
        return slot.duty.wake_at(slot.next_due)

    def _wake_due(self, now: float) -> None:
        """Wake the duty-cycled sensors whose next reading is due within their `wake_s`: a job
        on the sensor's worker (opening it if it is not open yet, which wakes it)."""
        for slot in self._slots:
            at = self._wake_at(slot)
            if at is None or now < at:
                continue
            duty = slot.duty
            assert duty is not None
            # At the start (next_due 0), the first reading waits for the wake too.
            slot.next_due = max(slot.next_due, now + duty.wake_s)
            cannot_open = slot.driver is None and (slot.opener is None or now < slot.next_open)
            if slot.in_flight or cannot_open:
                # A read that hangs, or an open backed off: tried again for the next reading.
                slot.next_due += slot.interval_s
                continue
            if slot.worker is None:
                slot.worker = SensorWorker(slot.model, slot.opener, self._answer)
            rnd = Round(self._clock(), self._clock_synced(), now, wake=True)
            rnd.pending.add(slot)
            slot.in_flight = slot.waking = True
            slot.worker.submit(Outcome(rnd, slot), slot.driver)
            self._rounds.append(rnd)

    def _duty_answer(self, slot: SensorSlot, outcome: Outcome) -> None:
        """A duty-cycled sensor's wake, warm-up and sleep, as its worker's answer says."""
        duty = slot.duty
        if duty is None:
            return
        # A driver that reads the sensor's own id (the SDS011's device id): its hours go by it.
        serial = getattr(outcome.opened or slot.driver, "serial_number", None)
        if serial:
            at = outcome.woke_at or outcome.read_at or time.monotonic()
            duty.identify(serial_key(duty.model, str(serial)), at)
        if outcome.woke_at is not None:
            duty.woke(outcome.woke_at)
        if outcome.slept_at is not None:
            duty.slept(outcome.slept_at)
        elif not duty.wake_s and outcome.read_at is not None:
            duty.hours.checkpoint(outcome.read_at)  # always on: its hours reach the disk

    def _woken(self, slot: SensorSlot, rnd: Round, outcome: Outcome) -> None:
        """A wake's answer: a failed one is a failed reading of this period, and the sensor is
        tried again for the next reading (not backed off further: it sleeps meanwhile)."""
        slot.waking = False
        exc = outcome.read_error
        if outcome.hung is not None:
            self._count(slot, "timeout")
            self._failed(
                slot, f"{slot.model}: no answer within {slot.read_timeout_s:g} s: the wake hangs"
            )
        elif exc is not None:
            self._count(slot, error_kind(exc))
            self._failed(slot, str(exc) if isinstance(exc, SensorError) else repr(exc))
        if slot.duty is not None and not slot.duty.awake:  # not opened, or not woken
            slot.next_due += slot.interval_s

    def _answer(self, outcome: Outcome) -> None:  # in a sensor's worker thread
        self._answers.put(outcome)
        self._answered.set()

    def collect(self) -> bool:
        """Take in the workers' answers, count the reads that ran out of time, and queue the
        rounds (or the part of a round) that are complete. True if anything was queued."""
        while True:
            try:
                outcome = self._answers.get_nowait()
            except queue.Empty:
                break
            rnd = outcome.round
            slot = outcome.slot
            assert isinstance(slot, SensorSlot)
            slot.in_flight = False
            if outcome.opened is not None:  # used from the next round on
                slot.driver = outcome.opened
            self._duty_answer(slot, outcome)
            if outcome.slot in rnd.pending:
                rnd.pending.discard(outcome.slot)
                rnd.outcomes.append(outcome)
            else:
                self._late(outcome)
        now = time.monotonic()
        queued = False
        for rnd in list(self._rounds):
            for slot in [s for s in rnd.pending if isinstance(s, SensorSlot)]:
                if now - rnd.started >= slot.read_timeout_s:
                    rnd.pending.discard(slot)
                    doing = slot.worker.doing if slot.worker is not None else "read"
                    rnd.outcomes.append(Outcome(rnd, slot, hung=doing))
                    if rnd.wake:
                        slot.waking = False
            if rnd.outcomes and (not rnd.pending or now - rnd.started >= rnd.group_wait_s):
                entry = self._queue_round(rnd, rnd.outcomes)
                queued = queued or entry is not None
                if rnd.entry is None:
                    rnd.entry = entry
                rnd.outcomes = []
            if not rnd.pending and not rnd.outcomes:
                self._rounds.remove(rnd)
        for slot in self._slots:
            self._count_frames(slot)
            self._storm_line(slot)
        return queued

    def _late(self, outcome: Outcome) -> None:
        """An answer after its timeout was counted: a driver it opened is kept (collect), its
        reading (taken too late to carry the round's time) is not."""
        slot = outcome.slot
        assert isinstance(slot, SensorSlot)
        log.info("sensor %s: answered again after its timeout", slot.model)

    def _queue_round(self, rnd: Round, outcomes: list[Outcome]) -> int | None:
        """The answered part of a round, in the order of the sensors: opens and failures
        counted, readings queued as one air message."""
        order = {id(s): i for i, s in enumerate(self._slots)}
        outcomes = sorted(outcomes, key=lambda o: order.get(id(o.slot), 0))
        failed_opens: list[tuple[SensorSlot, Exception]] = []
        for outcome in outcomes:
            slot = outcome.slot
            assert isinstance(slot, SensorSlot)
            if outcome.opened is not None:
                slot.open_failures = 0
                slot.backoff_s = 0.0
                slot.problem.resolved(f"sensor {slot.model} opened", level=logging.WARNING)
            if outcome.open_error is not None:
                slot.open_failures += 1
                delay = backoff_delay(self._reopen_after_s, slot.open_failures, self._max_backoff_s)
                slot.backoff_s = delay if delay > self._reopen_after_s else 0.0
                slot.next_open = time.monotonic() + delay
                failed_opens.append((slot, outcome.open_error))
        # Reported once all are opened, so that the line can say what is read meanwhile.
        for slot, open_error in failed_opens:
            every = slot.backoff_s or self._reopen_after_s
            retry = f"; trying again every {every:.0f} s"
            self._failed(slot, f"not available: {open_error}", retry + self._meanwhile(slot))
            self._count(slot, "not_available")
        readings: list[dict[str, Any]] = []
        shown: dict[str, str] = {}  # sensor: its values, for the first-reading line
        for outcome in outcomes:
            slot = outcome.slot
            assert isinstance(slot, SensorSlot)
            if rnd.wake:
                self._woken(slot, rnd, outcome)
                continue
            if outcome.hung is not None:
                hangs = (
                    f"{slot.model}: no answer within {slot.read_timeout_s:g} s: the "
                    f"{outcome.hung} hangs (read again once it returns)"
                )
                self._read_failed(slot, rnd, hangs, "timeout")
                continue
            if outcome.read_error is not None:
                exc = outcome.read_error
                text = str(exc) if isinstance(exc, SensorError) else repr(exc)
                self._read_failed(slot, rnd, text, error_kind(exc))
                continue
            values = outcome.values
            if values is None:
                continue  # not opened
            slot.reads_ok += 1
            slot.failures_in_a_row = 0
            slot.backoff_s = 0.0
            duty = slot.duty
            if duty is not None and not duty.warm(outcome.read_at or time.monotonic()):
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
                    self._count(slot, "out_of_range")
                    slot.last_error = f"implausible value: {exc.errors()[0]['msg']}"[:200]
                    log.warning("%s: dropped %s=%r: %s", slot.model, quantity, value, exc)
                    continue
                readings.append(reading.model_dump(mode="json"))
        if not readings:
            if rnd.wake:
                return None
            failing = [o.slot for o in outcomes if isinstance(o.slot, SensorSlot)]
            self._last_did = "no sensor could be read: " + "; ".join(
                f"{s.model}: {s.last_error}" for s in failing if not s.last_ok
            )
            return None
        self.stats.readings += len(readings)
        observed = rnd.observed + PART_STEP_S * rnd.parts
        rnd.parts += 1
        entry = self._queue("air", observed, {"readings": readings}, synced=rnd.synced)
        if entry is not None:
            sensors = sorted({r["sensor"] for r in readings})
            n = len(readings)
            self._last_did = f"queued {n} reading{'' if n == 1 else 's'} of {', '.join(sensors)}"
            first = [f"{m} ({v})" for m, v in shown.items() if m in sensors]
            if first:
                log.info("first reading queued: %s", "; ".join(first))
                self._announced.update(m for m, _ in shown.items() if m in sensors)
        return entry

    def _meanwhile(self, slot: SensorSlot) -> str:
        """What the agent measures while `slot` cannot be opened."""
        # Open, or not yet tried (still opening in its worker): not those that failed to open.
        read = [
            s.model
            for s in self._slots
            if s is not slot and (s.driver is not None or s.open_failures == 0)
        ]
        if read:
            return f", meanwhile {', '.join(read)} {'is' if len(read) == 1 else 'are'} read"
        if self.counter is not None:
            return "; no sensor can be read meanwhile, counting goes on"
        return "; no sensor can be read, so nothing is measured until one opens"

    def _count(self, slot: SensorSlot, kind: str, n: int = 1) -> None:
        if kind not in slot.errors and len(slot.errors) >= MAX_KINDS - 1:
            kind = "other"
        slot.errors[kind] = slot.errors.get(kind, 0) + n

    def _read_failed(self, slot: SensorSlot, rnd: Round, error: str, kind: str) -> None:
        """A failed read: counted by kind, and the sensor backed off from the round's start."""
        self._count(slot, kind)
        slot.failures_in_a_row += 1
        delay = backoff_delay(slot.interval_s, slot.failures_in_a_row, self._max_backoff_s)
        slot.backoff_s = delay if delay > slot.interval_s else 0.0
        target = rnd.started + delay
        if slot.next_due <= rnd.started:  # not on the loop's schedule (sample())
            slot.next_due = max(slot.next_due, target)
        else:
            # Backed off by whole intervals on its schedule: from the round's start (a moment
            # after it was due) it drifted off the other sensors' schedule, read microseconds
            # after them in a round of its own whose message had their message's time to the
            # millisecond (the ingest keys a device's messages by it: one was lost).
            slack = min(1.0, slot.interval_s / 2)
            if target > slot.next_due + slack:
                periods = math.ceil((target - slack - slot.next_due) / slot.interval_s)
                slot.next_due += periods * slot.interval_s
        if kind == "checksum":  # summed up by _storm_line, not a line each
            slot.reads_failed += 1
            slot.last_ok = False
            slot.last_error = error[:200]
            return
        detail = f"; next try in {delay:.0f} s" if slot.backoff_s else ""
        self._failed(slot, error, detail)

    def _failed(self, slot: SensorSlot, error: str, detail: str = "") -> None:
        slot.reads_failed += 1
        slot.last_ok = False
        slot.last_error = error[:200]
        # Driver errors name their sensor already; the log line names it once.
        slot.problem.report(error.replace(f"{slot.model}: ", "", 1), detail)

    def _count_frames(self, slot: SensorSlot) -> None:
        """Bad frames the driver skipped since last looked at: "checksum" errors."""
        driver = slot.driver
        if driver is None:
            return
        try:
            seen = int(driver.frames_bad)
        except Exception:  # a driver bug must not stop the loop
            return
        if seen < slot.frames_seen:  # a driver opened anew counts from 0
            slot.frames_seen = 0
        if seen > slot.frames_seen:
            self._count(slot, "checksum", seen - slot.frames_seen)
            slot.frames_seen = seen

    def _storm_line(self, slot: SensorSlot) -> None:
        """Bad frames and checksum failures: the first said at once, the rest summed up at
        most every STORM_LINE_S (a mini-UART's storm is thousands of frames)."""
        total = slot.errors.get("checksum", 0)
        new = total - slot.checksums_logged
        now = time.monotonic()
        if new <= 0 or now < slot.next_storm_line:
            return
        if slot.last_storm_line is None:
            log.warning(
                "sensor %s: %d checksum error%s (bad frames); counted in its health, further "
                "ones summed up here at most every %.0f s",
                slot.model,
                new,
                "" if new == 1 else "s",
                STORM_LINE_S,
            )
        else:
            log.warning(
                "sensor %s: %d checksum errors in the last %.0f s, %d since the start; "
                "reads ok %d, failed %d",
                slot.model,
                new,
                now - slot.last_storm_line,
                total,
                slot.reads_ok,
                slot.reads_failed,
            )
        slot.checksums_logged = total
        slot.last_storm_line = now
        slot.next_storm_line = now + STORM_LINE_S

    def sensor_health(self) -> list[SensorHealth]:
        for slot in self._slots:
            self._count_frames(slot)
        return [
            SensorHealth(
                sensor=s.model,
                ok=s.last_ok,
                reads_ok=s.reads_ok,
                reads_failed=s.reads_failed,
                frames_bad=s.frames_seen,
                values_rejected=s.values_rejected,
                last_error=s.last_error,
                errors=dict(s.errors),
                backoff_s=float(s.backoff_s),
                laser_hours=(
                    round(s.duty.running_hours(time.monotonic()), 4) if s.duty is not None else None
                ),
            )
            for s in self._slots
        ]

    def queue_status(self) -> int | None:
        health = [h.model_dump(mode="json") for h in self.sensor_health()]
        if self._health_path is not None:
            write_health(self._health_path, health, self._clock())
        return self._queue("status", self._clock(), {"sensors": health})

    def queue_counts(self, counts: IntervalCounts, model_id: str) -> int | None:
        """One count message per interval: numbers only, every class and direction listed."""
        payload = {
            "interval_end": iso(counts.end),
            "model_id": model_id,
            "running_fraction": counts.running_fraction,
            "frames": counts.frames,
            "counts": [
                {"count_class": cls, "direction": direction, "count": n}
                for (cls, direction), n in counts.counts.items()
            ],
        }
        return self._queue("count", counts.start, payload)

    def _queue(
        self,
        kind: str,
        observed: float,
        payload: dict[str, Any],
        *,
        synced: bool | None = None,
    ) -> int | None:
        """Put one message in the outbox; its id, or None if the outbox could not keep it
        (a full disk). `synced`: whether the clock was synchronised at `observed` (asked
        now if not given). Such a loss is counted (`stats.messages_dropped`, and the outbox's
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
                "observed_at": iso(observed),
                # As it was when the readings were taken, if known, not as it is now.
                "clock_synced": self._clock_synced() if synced is None else synced,
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
