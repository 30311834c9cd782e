"""The ingest's periodic jobs on one timer thread of their own, beside the writer thread: the
neighbour outlier (`ingest.neighbours`, `[quality.neighbours]`), the group calibrations' hourly
factors (`calibration.updating`, `[calibration]`), the crowding alerts (`crowd.alertjob`,
`[alerts]`; their webhooks are posted on a thread of their own, `crowd.webhookworker`, so a
slow one does not hold up the jobs here) and the forecast models' retraining (`crowd.retrain`,
`[forecast]`: a quick turn that starts or looks at a training in a child process, never the
training itself). The message path never waits for them; they may share the ingest's InfluxDB
client, whose connection pool serves both threads.

Each job runs when the schedule starts and then every `every_s` after its last run ended; jobs
that are due together run one after the other. A run that raises is logged, counted
(`on_error`) and tried again at the job's next turn: a job never ends the thread or the ingest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Job(Protocol):
    """What the schedule runs: `run_once` every `every_s` seconds."""

    name: str

    @property
    def every_s(self) -> float: ...

    def run_once(self) -> Any: ...


class Schedule:
    """Runs `jobs` on a thread of its own until `stop`."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        on_error: Callable[[Job, Exception], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = list(jobs)
        self._on_error = on_error
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-schedule", daemon=True)

    def start(self) -> None:
        if self.jobs:
            self._thread.start()

    def stop(self) -> None:
        """Let a run under way finish, then end the thread."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=30)

    def run_due(self, due: dict[int, float]) -> None:
        """Run each job whose time has come (`due`: job index -> monotonic time), once."""
        for i, job in enumerate(self.jobs):
            if self._stop.is_set() or due[i] > self._monotonic():
                continue
            try:
                job.run_once()
            except Exception as exc:  # a run that fails is tried again next turn
                log.warning("%s failed: %s; trying again in %gs", job.name, exc, job.every_s)
                if self._on_error is not None:
                    self._on_error(job, exc)
            due[i] = self._monotonic() + job.every_s

    def _loop(self) -> None:
        due = {i: self._monotonic() for i in range(len(self.jobs))}
        while not self._stop.is_set():
            self.run_due(due)
            self._stop.wait(max(0.0, min(due.values()) - self._monotonic()))
