"""The pieces of the agent's sensor loop: each sensor's worker thread, a round of reads, what a
read came to, the kind of a failure and the back-off.

The agent (edge.agent) starts a round when sensors are due: each due sensor's worker opens its
driver if need be and reads it, in parallel, so a slow or hanging sensor never delays another's
reading. The round is queued as one air message once every sensor in it answered (or after
`GROUP_WAIT_S`: a sensor answering later gets a message of its own); a sensor still busy after
its `read_timeout_s` is counted as a timeout and left out of further rounds until its call
returns. The drivers' contract is edge.drivers.base.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sensorpipe.edge.errors import SensorError
from sensorpipe.protocol.messages import ERROR_KIND_PATTERN

if TYPE_CHECKING:
    from sensorpipe.edge.drivers.base import SensorDriver

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
# Bad frames (checksum errors) are logged as a summary, at most once this often per sensor.
STORM_LINE_S = 60.0
# The most kinds a sensor's `errors` holds (SensorHealth): further kinds count as "other".
MAX_KINDS = 16
_KIND = re.compile(ERROR_KIND_PATTERN)


def error_kind(exc: BaseException) -> str:
    """The kind a failed read is counted as (edge.errors, drivers.base)."""
    if isinstance(exc, SensorError):
        kind = str(getattr(exc, "kind", "read"))
        return kind if _KIND.fullmatch(kind) else "read"
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


@dataclass(eq=False)
class Outcome:
    """What one sensor's part of a round came to."""

    round: Round
    slot: object  # the agent's SensorSlot
    opened: SensorDriver | None = None  # a driver opened for this read
    open_error: Exception | None = None
    values: dict[str, float] | None = None
    read_error: Exception | None = None
    hung: str | None = None  # "open" or "read": still running after its timeout


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
        self.doing = "read"  # what the current job does now: "open" or "read"

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
        self.doing = "read"
        try:
            outcome.values = driver.read()
        except Exception as exc:  # counted by kind: one sensor's fault must not stop others
            outcome.read_error = exc
