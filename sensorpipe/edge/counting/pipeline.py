"""Frame in, counts out: detector, class mapping, tracker, counting line, intervals.

`CountingPipeline.process(t, frame)` is called once per frame from one thread. The frame is
passed to the detector and then dropped; what the pipeline keeps between frames is boxes and
track ids, never pixels.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from sensorpipe.edge.counting.classes import suppression_groups, to_sightings
from sensorpipe.edge.counting.crossing import CountingLine, CrossingEvent
from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.intervals import IntervalCounter, IntervalCounts
from sensorpipe.edge.counting.tracker import Tracker
from sensorpipe.protocol.counting import COUNT_CLASSES


class CountingPipeline:
    def __init__(
        self,
        detector: Detector,
        class_map: dict[str, str],
        *,
        line: tuple[float, float, float, float] = (0.5, 0.0, 0.5, 1.0),
        directions: tuple[str, str] = ("left_to_right", "right_to_left"),
        interval_s: float = 60.0,
        max_age_s: float = 1.6,
    ) -> None:
        self.detector = detector
        self.class_map = class_map
        detector.set_groups(suppression_groups(detector.class_names, class_map))
        self.relative_line = line
        self.directions = directions
        self.tracker = Tracker(max_age_s=max_age_s)
        self.line: CountingLine | None = None
        classes = [c for c in COUNT_CLASSES if c in set(class_map.values())]
        self.intervals = IntervalCounter(interval_s, classes, directions)
        # The latest crossings, for evaluation and debugging; bounded on a long-running device.
        self.crossings: deque[CrossingEvent] = deque(maxlen=10_000)
        self.tracking_s = 0.0

    def process(self, t: float, frame: np.ndarray) -> list[IntervalCounts]:
        """Count one frame taken at `t` (seconds); returns the intervals it closed."""
        closed = self.intervals.frame(t)
        if self.line is None:
            h, w = frame.shape[:2]
            x1, y1, x2, y2 = self.relative_line
            self.line = CountingLine((x1 * w, y1 * h), (x2 * w, y2 * h), directions=self.directions)
        detections = self.detector.detect(frame)
        started = time.perf_counter()
        sightings = to_sightings(detections, self.detector.class_names, self.class_map)
        seen = self.tracker.update(sightings, t)
        for event in self.line.update(seen, t):
            self.crossings.append(event)
            self.intervals.crossing(event.count_class, event.direction)
        self.line.forget({tr.id for tr in self.tracker.tracks})
        self.tracking_s += time.perf_counter() - started
        return closed

    def flush(self) -> IntervalCounts | None:
        return self.intervals.flush()
