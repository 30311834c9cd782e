"""`sensorpipe count-eval`: the counting pipeline against the truth of a synthetic street.

Runs the full on-device pipeline (letterbox, ONNX detector, decoding and NMS, class mapping,
tracker, counting line, intervals) over a synthetic sequence whose seed was never used in
training (training uses seeds below 1000), and compares its counts per interval, class and
direction with the scene's true line crossings.

Metrics per class, over every (interval, direction) cell:
- WAPE: sum of |predicted - true| over sum of true (0 = perfect);
- MAE: mean |predicted - true| per cell, in passers-by;
- bias: sum of (predicted - true) over sum of true (negative = undercounting).

Crossings the scene marks `hidden` (behind parked vehicles up to the line on one side, so no
camera at this spot sees them cross) are an ignore region, as in KITTI's and MOTChallenge's
truth: a cell with v visible and h hidden crossings has error 0 for any count from v to v + h,
and the distance to that range outside it. WAPE divides by the visible crossings. The hidden
crossings are reported per class and direction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.intervals import IntervalCounts
from sensorpipe.edge.counting.modelspec import DEFAULT_CONF, MODELS, load_spec, sidecar_of
from sensorpipe.edge.counting.pipeline import CountingPipeline
from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, LEFT_TO_RIGHT, RIGHT_TO_LEFT, Scene

# Static int8 counts as well as fp32 on held-out streets and is faster: it is the default.
DEFAULT_MODEL = MODELS / "street-detector.int8.onnx"
FP32_MODEL = MODELS / "street-detector.onnx"
SHIPPED_CLASS_MAP = {
    "person": "pedestrian",
    "bicycle": "cyclist",
    "car": "car",
    "truck": "heavy_vehicle",
}
DIRECTIONS = (LEFT_TO_RIGHT, RIGHT_TO_LEFT)
FIRST_HELD_OUT_SEED = 1000


@dataclass
class ClassResult:
    predicted: dict[str, int]
    true: dict[str, int]
    hidden: dict[str, int]
    wape: float
    mae: float
    bias: float


@dataclass
class EvalResult:
    seed: int
    minutes: float
    fps: float
    interval_minutes: float
    model_id: str
    frames: int
    seconds: float
    classes: dict[str, ClassResult] = field(default_factory=dict)
    intervals: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "conditions": self.conditions,
            "minutes": self.minutes,
            "fps": self.fps,
            "interval_minutes": self.interval_minutes,
            "model_id": self.model_id,
            "frames": self.frames,
            "processing_fps": round(self.frames / self.seconds, 1),
            "classes": {name: c.__dict__ for name, c in self.classes.items()},
            "intervals": self.intervals,
        }


def evaluate(
    seed: int,
    minutes: float,
    *,
    model: Path = DEFAULT_MODEL,
    fps: float = 5.0,
    interval_minutes: float = 15.0,
    threads: int = 1,
    conditions: str | Iterable[str] = (),
    progress: Callable[[float], None] | None = None,
) -> EvalResult:
    if seed < FIRST_HELD_OUT_SEED:
        raise ValueError(
            f"seed {seed} is a training seed; evaluate on {FIRST_HELD_OUT_SEED} or above"
        )
    duration = minutes * 60.0
    interval_s = interval_minutes * 60.0
    scene = Scene(seed, duration_s=duration, conditions=conditions)
    if sidecar_of(model).is_file():  # the shipped models say what their classes are
        spec = load_spec(model)
        classes, class_map, conf = spec.classes, spec.class_map, spec.conf_threshold
    else:
        classes, class_map, conf = list(DETECTOR_CLASSES), SHIPPED_CLASS_MAP, DEFAULT_CONF
    detector = Detector(model, classes, threads=threads, conf_threshold=conf)
    pipeline = CountingPipeline(detector, class_map, directions=DIRECTIONS, interval_s=interval_s)
    closed: list[IntervalCounts] = []
    started = time.perf_counter()
    frames = 0
    for frame in scene.frames(fps):
        closed += pipeline.process(frame.time_s, frame.image)
        frames += 1
        if progress is not None and frames % int(fps * 30) == 0:
            progress(frame.time_s / duration)
    last = pipeline.flush()
    if last is not None:
        closed.append(last)
    seconds = time.perf_counter() - started

    n_intervals = max(1, math.ceil(duration / interval_s))
    truth = [dict.fromkeys(pipeline.intervals.keys, 0) for _ in range(n_intervals)]
    hidden = [dict.fromkeys(pipeline.intervals.keys, 0) for _ in range(n_intervals)]
    for c in scene.crossings():
        key = (c.count_class, c.direction)
        index = min(int(c.time_s // interval_s), n_intervals - 1)
        (hidden if c.hidden else truth)[index][key] += 1
    predicted = [dict.fromkeys(pipeline.intervals.keys, 0) for _ in range(n_intervals)]
    for counts in closed:
        index = min(int(counts.start // interval_s), n_intervals - 1)
        for key, n in counts.counts.items():
            predicted[index][key] += n

    result = EvalResult(seed, minutes, fps, interval_minutes, detector.model_id, frames, seconds)
    result.conditions = sorted(scene.conditions)
    for cls in sorted({k[0] for k in pipeline.intervals.keys}):
        errors = [
            _error(predicted[i][(cls, d)], truth[i][(cls, d)], hidden[i][(cls, d)])
            for i in range(n_intervals)
            for d in DIRECTIONS
        ]
        total_true = sum(truth[i][(cls, d)] for i in range(n_intervals) for d in DIRECTIONS)
        result.classes[cls] = ClassResult(
            predicted={d: sum(p[(cls, d)] for p in predicted) for d in DIRECTIONS},
            true={d: sum(t[(cls, d)] for t in truth) for d in DIRECTIONS},
            hidden={d: sum(h[(cls, d)] for h in hidden) for d in DIRECTIONS},
            wape=round(sum(abs(e) for e in errors) / total_true, 4) if total_true else 0.0,
            mae=round(sum(abs(e) for e in errors) / len(errors), 3),
            bias=round(sum(errors) / total_true, 4) if total_true else 0.0,
        )
    for i in range(n_intervals):
        result.intervals.append(
            {
                "start_s": i * interval_s,
                "predicted": {f"{c}/{d}": n for (c, d), n in predicted[i].items()},
                "true": {f"{c}/{d}": n for (c, d), n in truth[i].items()},
                "hidden": {f"{c}/{d}": n for (c, d), n in hidden[i].items()},
            }
        )
    return result


def _error(predicted: int, visible: int, hidden: int) -> int:
    """Signed distance of a count from the range the truth allows: visible to visible + hidden."""
    if predicted < visible:
        return predicted - visible
    return max(0, predicted - visible - hidden)
