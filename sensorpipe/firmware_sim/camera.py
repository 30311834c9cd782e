"""A camera that films a synthetic street: the frame source for tests, the fleet and the demo."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from sensorpipe.firmware_sim.scenes import Scene


class SyntheticCamera:
    """Frames of `scene` at `fps`. In real time, timestamps are wall-clock seconds and frames
    arrive at the camera's pace; otherwise they come as fast as they are taken, stamped with
    `start` plus scene time."""

    def __init__(
        self, scene: Scene, *, fps: float = 5.0, realtime: bool = True, start: float | None = None
    ) -> None:
        self.scene = scene
        self.fps = fps
        self.realtime = realtime
        self.start = time.time() if start is None else start
        self.frames_served = 0
        self._closed = False

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        began = time.monotonic()
        for frame in self.scene.frames(self.fps):
            if self._closed:
                return
            if self.realtime:
                delay = began + frame.time_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.frames_served += 1
            yield self.start + frame.time_s, frame.image

    def close(self) -> None:
        self._closed = True
