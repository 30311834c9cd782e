"""Runs the counting pipeline on a frame source in its own thread.

Guarantee: every interval the pipeline closes is handed to `on_interval` exactly once, in
order; at `stop()`, and when the source ends or fails, the open interval is flushed as a
partial one, and only then is `on_end` called (with the error, or None when the source simply
ended: a video file at its end). Frames go from the source to the pipeline and are dropped; a
failing source or model stops counting (logged, and visible downstream as intervals with a
low running fraction), never the agent: what to do about it is `on_end`'s decision.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sensorpipe.edge.counting.intervals import IntervalCounts

if TYPE_CHECKING:  # numpy: not on an agent without counting, which imports this module
    from sensorpipe.edge.counting.pipeline import CountingPipeline
    from sensorpipe.edge.counting.sources import FrameSource

log = logging.getLogger(__name__)


class CountingLoop:
    def __init__(
        self,
        pipeline: CountingPipeline,
        source: FrameSource,
        on_interval: Callable[[IntervalCounts, str], object] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.on_interval = on_interval
        self.on_end: Callable[[str | None], object] | None = None
        self.frames = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting", daemon=True)

    def start(
        self,
        on_interval: Callable[[IntervalCounts, str], object] | None = None,
        *,
        on_end: Callable[[str | None], object] | None = None,
    ) -> None:
        """Count in a thread; `on_end(error)` when the source ends or fails, not after stop()."""
        if on_interval is not None:
            self.on_interval = on_interval
        if on_end is not None:
            self.on_end = on_end
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _emit(self, counts: IntervalCounts) -> None:
        if self.on_interval is not None:
            self.on_interval(counts, self.pipeline.detector.model_id)

    def _run(self) -> None:
        try:
            for t, frame in self.source.frames():
                for counts in self.pipeline.process(t, frame):
                    self._emit(counts)
                self.frames += 1
                if self._stop.is_set():
                    break
        except Exception as exc:  # a camera or model failure must not take the agent down
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            log.error("counting stopped: %s", self.error)
        finally:
            self.source.close()
            last = self.pipeline.flush()
            if last is not None:
                self._emit(last)
        if not self._stop.is_set() and self.on_end is not None:
            self.on_end(self.error)
