"""Counting a real video file, and comparing the count with hand-annotated crossings.

`count_video` runs the on-device pipeline (decode at the asked rate, letterbox, ONNX detector,
group suppression, class mapping, tracker, counting line) over a video file and returns every
crossing. `evaluate_video` compares those with a truth file of annotated crossings:

    time_s,class,direction
    3.4,pedestrian,left_to_right

A predicted crossing matches a true one of the same class and direction within `tolerance_s`
seconds (each used once, nearest first). Per class: WAPE over the direction cells
(sum |predicted - true| / sum true), precision (matched / predicted) and recall (matched /
true) of crossing events.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.modelspec import REAL_MODEL, load_spec
from sensorpipe.edge.counting.pipeline import CountingPipeline
from sensorpipe.edge.counting.sources import OpenCvSource
from sensorpipe.protocol.counting import COUNT_CLASSES

DIRECTIONS = ("left_to_right", "right_to_left")


def parse_line(text: str) -> tuple[float, float, float, float]:
    """`X1,Y1,X2,Y2`: frame fractions when every value is between 0 and 1, else pixels."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"line {text!r}: expected four numbers X1,Y1,X2,Y2") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"line {text!r}: expected four numbers X1,Y1,X2,Y2")
    if values[:2] == values[2:]:
        raise ValueError(f"line {text!r}: the two points are the same")
    if any(v < 0 for v in values):
        raise ValueError(f"line {text!r}: coordinates cannot be negative")
    return values[0], values[1], values[2], values[3]


@dataclass
class Crossing:
    time_s: float
    count_class: str
    direction: str


@dataclass
class VideoCount:
    video: str
    model_id: str
    fps: float
    frames: int
    seconds: float  # of video
    processing_s: float
    line: tuple[float, float, float, float]  # frame fractions
    classes: list[str]
    crossings: list[Crossing] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(self.classes, 0)
        for c in self.crossings:
            out[c.count_class] += 1
        return out

    @property
    def by_direction(self) -> dict[str, dict[str, int]]:
        out = {c: dict.fromkeys(DIRECTIONS, 0) for c in self.classes}
        for c in self.crossings:
            out[c.count_class][c.direction] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "model_id": self.model_id,
            "fps": self.fps,
            "line": list(self.line),
            "totals": self.totals,
            "by_direction": self.by_direction,
            "frames": self.frames,
            "seconds": round(self.seconds, 2),
            "processing_s": round(self.processing_s, 2),
            "crossings": [
                {"time_s": round(c.time_s, 2), "class": c.count_class, "direction": c.direction}
                for c in self.crossings
            ],
        }


def count_video(
    video: Path,
    line: tuple[float, float, float, float],
    *,
    fps: float = 5.0,
    model: Path = REAL_MODEL,
    threads: int = 1,
    conf_threshold: float | None = None,
    progress: Callable[[float, int], None] | None = None,
    progress_every_s: float = 5.0,
) -> VideoCount:
    """Every crossing of the line; `progress(video seconds, frames)` every `progress_every_s`."""
    if not video.is_file():
        raise ValueError(f"video file {video} not found")
    spec = load_spec(model)
    conf = spec.conf_threshold if conf_threshold is None else conf_threshold
    detector = Detector(spec.path, spec.classes, threads=threads, conf_threshold=conf)
    source = OpenCvSource(path=str(video), fps=fps)
    pipeline: CountingPipeline | None = None
    frames, start_t, last_t = 0, None, 0.0
    started = time.perf_counter()
    next_report = started + progress_every_s
    fractions = line
    try:
        for t, frame in source.frames():
            if pipeline is None:
                h, w = frame.shape[:2]
                if max(line) > 1.0:
                    x1, y1, x2, y2 = line
                    if max(x1, x2) > w or max(y1, y2) > h:
                        raise ValueError(f"line {line} lies outside the {w}x{h} frame")
                    fractions = (x1 / w, y1 / h, x2 / w, y2 / h)
                pipeline = CountingPipeline(
                    detector,
                    spec.class_map,
                    line=fractions,
                    directions=DIRECTIONS,
                    interval_s=3600.0,
                )
                start_t = t
            last_t = t - (start_t or 0.0)
            pipeline.process(last_t, frame)
            frames += 1
            if progress is not None and time.perf_counter() >= next_report:
                progress(last_t, frames)
                next_report = time.perf_counter() + progress_every_s
    finally:
        source.close()
    if pipeline is None:
        raise ValueError(f"{video}: no frame could be decoded")
    classes = [c for c in COUNT_CLASSES if c in set(spec.class_map.values())]
    result = VideoCount(
        video=str(video),
        model_id=detector.model_id,
        fps=fps,
        frames=frames,
        seconds=last_t + 1.0 / fps,
        processing_s=time.perf_counter() - started,
        line=fractions,
        classes=classes,
    )
    result.crossings = [Crossing(e.t, e.count_class, e.direction) for e in pipeline.crossings]
    return result


# --- evaluation against annotated crossings ---------------------------------------------------
def read_truth(path: Path) -> list[Crossing]:
    """Annotated crossings from a `time_s,class,direction` CSV; errors name the row."""
    if not path.is_file():
        raise ValueError(f"truth file {path} not found")
    rows: list[Crossing] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or [n.strip() for n in reader.fieldnames] != [
            "time_s",
            "class",
            "direction",
        ]:
            raise ValueError(f"{path}: the header must be time_s,class,direction")
        for number, row in enumerate(reader, start=2):
            cls, direction = row["class"].strip(), row["direction"].strip()
            try:
                t = float(row["time_s"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}:{number}: time_s {row['time_s']!r} is no number"
                ) from None
            if cls not in COUNT_CLASSES:
                raise ValueError(
                    f"{path}:{number}: class {cls!r} is not one of {', '.join(COUNT_CLASSES)}"
                )
            if direction not in DIRECTIONS:
                raise ValueError(
                    f"{path}:{number}: direction {direction!r} is not one of "
                    f"{', '.join(DIRECTIONS)}"
                )
            rows.append(Crossing(t, cls, direction))
    return rows


@dataclass
class ClassScore:
    true: dict[str, int]
    predicted: dict[str, int]
    matched: int
    wape: float | None  # None when nothing of the class truly crossed
    precision: float | None
    recall: float | None


@dataclass
class VideoEval:
    count: VideoCount
    tolerance_s: float
    classes: dict[str, ClassScore]
    precision: float | None
    recall: float | None
    unmatched_predicted: list[Crossing]
    unmatched_true: list[Crossing]

    def as_dict(self) -> dict[str, Any]:
        def rows(xs: list[Crossing]) -> list[dict[str, Any]]:
            return [
                {"time_s": round(c.time_s, 2), "class": c.count_class, "direction": c.direction}
                for c in xs
            ]

        return {
            **self.count.as_dict(),
            "tolerance_s": self.tolerance_s,
            "classes": {k: v.__dict__ for k, v in self.classes.items()},
            "precision": self.precision,
            "recall": self.recall,
            "unmatched_predicted": rows(self.unmatched_predicted),
            "unmatched_true": rows(self.unmatched_true),
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def match(
    predicted: list[Crossing], truth: list[Crossing], tolerance_s: float
) -> list[tuple[int, int]]:
    """(predicted index, true index) pairs: same class and direction, nearest in time first."""
    pairs = sorted(
        (abs(p.time_s - t.time_s), pi, ti)
        for pi, p in enumerate(predicted)
        for ti, t in enumerate(truth)
        if p.count_class == t.count_class
        and p.direction == t.direction
        and abs(p.time_s - t.time_s) <= tolerance_s
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for _, pi, ti in pairs:
        if pi in used_p or ti in used_t:
            continue
        used_p.add(pi)
        used_t.add(ti)
        out.append((pi, ti))
    return out


def score(count: VideoCount, truth: list[Crossing], tolerance_s: float) -> VideoEval:
    predicted = count.crossings
    pairs = match(predicted, truth, tolerance_s)
    matched_p = {p for p, _ in pairs}
    matched_t = {t for _, t in pairs}
    classes: dict[str, ClassScore] = {}
    names = [c for c in COUNT_CLASSES if c in set(count.classes) | {t.count_class for t in truth}]
    for cls in names:
        true = {
            d: sum(1 for t in truth if (t.count_class, t.direction) == (cls, d)) for d in DIRECTIONS
        }
        pred = {
            d: sum(1 for p in predicted if (p.count_class, p.direction) == (cls, d))
            for d in DIRECTIONS
        }
        matched = sum(1 for p, _ in pairs if predicted[p].count_class == cls)
        total_true, total_pred = sum(true.values()), sum(pred.values())
        error = sum(abs(pred[d] - true[d]) for d in DIRECTIONS)
        classes[cls] = ClassScore(
            true=true,
            predicted=pred,
            matched=matched,
            wape=_ratio(error, total_true),
            precision=_ratio(matched, total_pred),
            recall=_ratio(matched, total_true),
        )
    return VideoEval(
        count=count,
        tolerance_s=tolerance_s,
        classes=classes,
        precision=_ratio(len(pairs), len(predicted)),
        recall=_ratio(len(pairs), len(truth)),
        unmatched_predicted=[p for i, p in enumerate(predicted) if i not in matched_p],
        unmatched_true=[t for i, t in enumerate(truth) if i not in matched_t],
    )
