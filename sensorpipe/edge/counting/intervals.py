"""Counts per interval, with how much of the interval the counter was actually running."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IntervalCounts:
    start: float  # seconds (epoch on a device, scene time in evaluation)
    end: float
    counts: dict[tuple[str, str], int]  # (count class, direction) -> passers-by, zeros included
    frames: int
    running_fraction: float


class IntervalCounter:
    """Intervals are aligned to multiples of `interval_s` (on a device: to the clock), so the
    counts of different devices line up; an interval is closed by the first frame after it.

    The first interval after a start begins at the first frame, and `flush` at shutdown ends
    the open one at the last frame: a restart mid-interval gives two partial intervals with
    different start times (two stored points) instead of one overwriting the other. Time not
    covered by any interval is time the counter did not run.
    """

    def __init__(
        self,
        interval_s: float,
        classes: list[str],
        directions: tuple[str, str],
        *,
        max_gap_s: float = 1.0,
    ) -> None:
        self.interval_s = interval_s
        self.keys = [(c, d) for c in classes for d in directions]
        self.max_gap_s = max_gap_s
        self._start: float | None = None
        self._end = 0.0
        self._counts: dict[tuple[str, str], int] = {}
        self._frames = 0
        self._covered = 0.0
        self._last_t: float | None = None

    def _open(self, t: float, *, aligned: bool) -> None:
        boundary = math.floor(t / self.interval_s) * self.interval_s
        self._start = boundary if aligned else t
        self._end = boundary + self.interval_s
        self._counts = dict.fromkeys(self.keys, 0)
        self._frames = 0
        self._covered = 0.0

    def frame(self, t: float) -> list[IntervalCounts]:
        """Account for a frame processed at `t`; returns intervals that ended before it."""
        closed = []
        if self._start is None:
            self._open(t, aligned=False)
        while t >= self._end:
            closed.append(self._close(self._end))
            self._open(self._end, aligned=True)
        if self._last_t is not None:
            # A frame stands for the time since the previous one, unless the camera stalled.
            self._covered += min(max(0.0, t - self._last_t), self.max_gap_s)
        self._last_t = t
        self._frames += 1
        return closed

    def crossing(self, count_class: str, direction: str) -> None:
        key = (count_class, direction)
        if key in self._counts:
            self._counts[key] += 1

    def _close(self, end: float) -> IntervalCounts:
        assert self._start is not None
        fraction = min(1.0, self._covered / max(end - self._start, 1e-9))
        return IntervalCounts(
            self._start, end, dict(self._counts), self._frames, round(fraction, 4)
        )

    def flush(self) -> IntervalCounts | None:
        """The open interval up to the last frame (at shutdown or the end of a recording)."""
        if self._start is None or self._last_t is None:
            return None
        # At least a millisecond long, so that the interval survives the message's ms times.
        out = self._close(max(self._last_t, self._start + 0.001))
        self._start = None
        self._last_t = None
        return out
