"""Logging a problem that keeps happening (no broker, a sensor that will not open, a full disk)
without flooding a log, and without going quiet about it. The edge agent and the ingest use it.

The first occurrence is logged at once with its reason, and so is a changed reason. The same
reason again is logged only after a pause that doubles each time (`first_pause_s` up to
`max_pause_s`), with how often it happened meanwhile. `resolved` says once that it is over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RepeatedProblem:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        first_pause_s: float = 60.0,
        max_pause_s: float = 900.0,
        occurrence: str = "failed attempt",
    ) -> None:
        self._log = logger
        self._occurrence = occurrence  # what one report is, in `resolved`'s line
        self.what = what
        self._level = level
        self._clock = clock
        self._first_pause_s = first_pause_s
        self._max_pause_s = max_pause_s
        self.count = 0  # occurrences since the problem began (0: no problem now)
        self._began = 0.0
        self._reason: str | None = None
        self._pause_s = first_pause_s
        self._next_line = 0.0
        self._last_line = 0.0
        self._unlogged = 0  # occurrences since the last line
        self._lock = threading.Lock()  # the sampler and the counter may report at once

    @property
    def active(self) -> bool:
        return self.count > 0

    def report(self, reason: str, detail: str = "") -> bool:
        """One more occurrence; `detail` goes into the line when one is written. True if
        a line was written."""
        with self._lock:
            return self._report(reason, detail)

    def _report(self, reason: str, detail: str) -> bool:
        now = self._clock()
        if self.count == 0:
            self._began = now
        self.count += 1
        self._unlogged += 1
        if reason != self._reason:
            self._reason = reason
            self._pause_s = self._first_pause_s
            suffix = ""
        elif now >= self._next_line:
            suffix = f"; {self._unlogged} times in the last {self._since_line(now)}"
            self._pause_s = min(self._pause_s * 2, self._max_pause_s)
        else:
            return False
        self._log.log(self._level, "%s: %s%s%s", self.what, reason, suffix, detail)
        self._last_line = now
        self._next_line = now + self._pause_s
        self._unlogged = 0
        return True

    def resolved(self, message: str, *, level: int | None = None) -> bool:
        """The problem is over: log `message` with how long it lasted, if there was one.
        True if there was."""
        with self._lock:
            return self._resolved(message, level)

    def _resolved(self, message: str, level: int | None) -> bool:
        if self.count == 0:
            return False
        took = self._clock() - self._began
        plural = "" if self.count == 1 else "s"
        self._log.log(
            self._level if level is None else level,
            "%s (after %d %s%s over %.0f s)",
            message,
            self.count,
            self._occurrence,
            plural,
            took,
        )
        self.count = 0
        self._reason = None
        self._unlogged = 0
        return True

    def _since_line(self, now: float) -> str:
        seconds = now - self._last_line
        return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
