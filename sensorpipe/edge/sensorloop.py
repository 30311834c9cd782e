"""The pieces of the agent's sensor loop: each sensor's worker thread, a round of reads, what a
read came to, the kind of a failure and the back-off.

The agent (edge.agent) starts a round when sensors are due: each due sensor's worker opens its
driver if need be and reads it, in parallel, so a slow or hanging sensor never delays another's
reading. The round is queued as one air message once every sensor in it answered (or after
`GROUP_WAIT_S`: a sensor answering later gets a message of its own); a sensor still busy
after its `read_timeout_s` is counted as a timeout and left out of further rounds until its
call returns. A duty-cycled laser PM sensor (edge.duty) is woken by a job of its own on its
worker (a round of one, `Round.wake`, that reads nothing) and put to sleep by its worker right
after each read. The drivers' contract is edge.drivers.base.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sensorpipe.edge.errors import NO_ANSWER_ERRNOS, SensorError
from sensorpipe.protocol.messages import ERROR_KIND_PATTERN

if TYPE_CHECKING:
    from sensorpipe.edge.drivers.base import SensorDriver
    from sensorpipe.edge.duty import LaserDriver

log = logging.getLogger(__name__)

# A read (or an open) still running after this long is counted as a timeout (per sensor:
# SensorOpener.read_timeout_s). The SDS011's slowest honest read, a reopened port that wakes
# the sensor and sets its mode before the query, is three exchanges of up to 3 s.
READ_TIMEOUT_S = 10.0
# A sensor that keeps failing is tried every interval, then every 2, 4, 8 ... intervals, at
# most this far apart (or its interval, if that is longer); a good read resets it.
MAX_BACKOFF_S = 600.0
# Readings of one round that arrive within this of its start go into one message.
GROUP_WAIT_S = 1.0
PART_STEP_S = 0.001  # a round's later messages: observed a millisecond apart (Round.parts)
# Bad frames (checksum errors) are logged as a summary, at most once this often per sensor.
STORM_LINE_S = 60.0
# The most kinds a sensor's `errors` holds (SensorHealth): further kinds count as "other".
MAX_KINDS = 16
_KIND = re.compile(ERROR_KIND_PATTERN)


def error_kind(exc: BaseException) -> str:
    """The kind a failed read is counted as (edge.errors, drivers.base)."""
    if isinstance(exc, SensorError):
        kind = str(getattr(exc, "kind", "read"))
        if kind == "read" and isinstance(exc.__cause__, OSError):
            # A driver's plain SensorError over a bus or port error: what that error was.
            return error_kind(exc.__cause__)
        return kind if _KIND.fullmatch(kind) else "read"
    if isinstance(exc, OSError) and exc.errno in NO_ANSWER_ERRNOS:
        return "timeout"  # a NACK: nothing acknowledged (edge.errors.SensorTimeout)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "io"
    return "bug"


def backoff_delay(interval_s: float, failures_in_a_row: int, cap_s: float = MAX_BACKOFF_S) -> float:
    """Seconds from one attempt to the next after `failures_in_a_row` failed ones: the interval
    after one, doubling with each further one, at most `cap_s` (or the interval, if longer)."""
    if failures_in_a_row <= 1:
        return interval_s
    doubled = interval_s * 2.0 ** min(failures_in_a_row - 1, 40)
    return min(doubled, max(cap_s, interval_s))


@dataclass(eq=False)
class Round:
    """Sensors read together: their readings share a message and its observation time."""

    observed: float  # wall clock when the reads started (the message's observed_at)
    synced: bool  # whether the clock was synchronised then (the message's clock_synced)
    started: float  # monotonic
    group_wait_s: float = GROUP_WAIT_S
    pending: set[object] = field(default_factory=set)  # slots whose answer is awaited
    outcomes: list[Outcome] = field(default_factory=list)  # answered, not yet queued
    entry: int | None = None  # the outbox id of its (first) message
    # Messages queued from it so far: a reading slower than group_wait_s goes in a message of
    # its own, observed PART_STEP_S after the one before (the ingest keys a message's link
    # point by its device, kind and observation time: the same time would overwrite it).
    parts: int = 0
    wake: bool = False  # a duty-cycled sensor's wake (opening it if need be): nothing is read


@dataclass(eq=False)
class Outcome:
    """What one sensor's part of a round came to."""

    round: Round
    slot: object  # the agent's SensorSlot
    opened: SensorDriver | None = None  # a driver opened for this read
    open_error: Exception | None = None
    values: dict[str, float] | None = None
    read_error: Exception | None = None
    hung: str | None = None  # "open", "wake" or "read": still running after its timeout
    sleep_after: bool = False  # a duty-cycled sensor: put it to sleep right after the read
    # Monotonic times, for a laser's warm-up and running hours (edge.duty): when the sensor
    # was opened or woken, read, and put to sleep by this job.
    woke_at: float | None = None
    read_at: float | None = None
    slept_at: float | None = None


class SensorWorker:
    """One sensor's thread: opens its driver if need be and reads it, one job at a time, and
    hands each Outcome to `done` (which must not block). The agent gives it a job only once
    the previous one's outcome is in (SensorSlot.in_flight)."""

    def __init__(
        self,
        model: str,
        opener: Callable[[], SensorDriver] | None,
        done: Callable[[Outcome], None],
    ) -> None:
        self._model = model
        self._opener = opener
        self._done = done
        self._jobs: queue.SimpleQueue[tuple[Outcome, SensorDriver | None] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self.doing = "read"  # what the current job does now: "open", "wake" or "read"

    def submit(self, job: Outcome, driver: SensorDriver | None) -> None:
        """Read `driver` (opening one first if it is None) for `job`'s round."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"sensor-{self._model}", daemon=True
            )
            self._thread.start()
        self._jobs.put((job, driver))

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            outcome, driver = job
            try:
                self._work(outcome, driver)
            finally:
                self._done(outcome)

    def _work(self, outcome: Outcome, driver: SensorDriver | None) -> None:
        if driver is None:
            if self._opener is None:
                return
            self.doing = "open"
            try:
                driver = outcome.opened = self._opener()
            except Exception as exc:  # no bus, no port, wrong chip, a missing package
                outcome.open_error = exc
                return
            outcome.woke_at = time.monotonic()  # opening a laser PM sensor wakes it
            if outcome.round.wake:
                return
        elif outcome.round.wake:
            self.doing = "wake"
            try:
                cast("LaserDriver", driver).wake()
            except Exception as exc:  # counted as a failed read of this period
                outcome.read_error = exc
                return
            outcome.woke_at = time.monotonic()
            return
        self.doing = "read"
        try:
            outcome.values = driver.read()
            outcome.read_at = time.monotonic()
        except Exception as exc:  # counted by kind: one sensor's fault must not stop others
            outcome.read_error = exc
        finally:
            if outcome.sleep_after:
                self._sleep(outcome, driver)

    def _sleep(self, outcome: Outcome, driver: SensorDriver) -> None:
        try:
            cast("LaserDriver", driver).sleep()
        except Exception as exc:  # still running: its hours go on counting
            log.debug("%s: cannot put it to sleep: %s", self._model, exc)
            return
        outcome.slept_at = time.monotonic()
