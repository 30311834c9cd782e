"""Detector outputs in the common layouts to boxes, with non-maximum suppression in numpy.

Layouts (N candidate boxes, nc classes):
- `yolov8`: [1, 4 + nc, N]: centre x, centre y, width, height, then one score per class
  (YOLOv8 and YOLO11 exports, and the model shipped with sensorpipe);
- `yolov5`: [1, N, 5 + nc]: centre x, centre y, width, height, objectness, class scores;
- `end2end`: [1, N, 6]: x1, y1, x2, y2, score, class id, already suppressed (YOLOv10, or
  exports with NMS in the graph);
- `tfod`: the TensorFlow Object Detection API's outputs (SSD-MobileNet, SSDLite, EfficientDet
  exports, TFLite detection post-processing): boxes [1, N, 4] as normalised ymin, xmin, ymax,
  xmax; scores [1, N]; class ids [1, N]; optionally the number of valid rows [1].

Suppression is per *group* of classes, not per class: the pipeline puts classes that count as
the same kind of object (car, bus, truck) in one group, so one van seen as both a car and a
truck leaves one box, while a person and the bicycle they ride stay two boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensorpipe.edge.counting.errors import ModelError

LAYOUTS = ("yolov8", "yolov5", "end2end", "tfod")


@dataclass(frozen=True, slots=True)
class Detections:
    boxes: np.ndarray  # [K, 4] x1 y1 x2 y2, float32
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K] int, index into the model's class list

    def __len__(self) -> int:
        return len(self.scores)


def expected_shapes(nc: int) -> str:
    return (
        f"yolov8 [1, {4 + nc}, N], yolov5 [1, N, {5 + nc}], end2end [1, N, 6] or tfod "
        f"(boxes [1, N, 4], scores [1, N], classes [1, N], count [1])"
    )


def _model_classes(shape: Sequence[int | str | None]) -> str:
    """What a one-output shape says about the model's class count, for error messages."""
    readings = []
    if isinstance(shape[1], int) and shape[1] > 4:
        readings.append(f"{shape[1] - 4} classes (yolov8 layout)")
    if isinstance(shape[2], int) and shape[2] > 5:
        readings.append(f"{shape[2] - 5} classes (yolov5 layout)")
    return " or ".join(readings) if readings else "no class count we know"


def detect_layout(shape: Sequence[int | str | None], nc: int, configured: str = "auto") -> str:
    """The layout of a one-output model (dims other than the class axis may be symbolic)."""
    if len(shape) != 3:
        raise ModelError(f"model output has shape {list(shape)}; expected {expected_shapes(nc)}")
    candidates = []
    if shape[1] == 4 + nc:
        candidates.append("yolov8")
    if shape[2] == 5 + nc:
        candidates.append("yolov5")
    if shape[2] == 6:
        candidates.append("end2end")
    if configured != "auto":
        if configured not in candidates:
            raise ModelError(
                f"model output shape {list(shape)} does not fit layout {configured!r} with "
                f"{nc} classes; expected {expected_shapes(nc)}"
            )
        return configured
    if not candidates:
        raise ModelError(
            f"model output shape {list(shape)} means {_model_classes(shape)}, but the class "
            f"list has {nc} (check `classes` in the counting config); expected "
            f"{expected_shapes(nc)}"
        )
    if len(candidates) > 1:
        raise ModelError(
            f"model output shape {list(shape)} fits layouts {candidates}; set `layout` in the "
            f"counting config"
        )
    return candidates[0]


@dataclass(frozen=True, slots=True)
class TfodOutputs:
    """Which model output is which, for the `tfod` layout."""

    boxes: int
    scores: int
    classes: int
    count: int | None


def detect_tfod(outputs: Sequence[tuple[str, Sequence[int | str | None]]]) -> TfodOutputs | None:
    """The TF Object Detection API's outputs among these (name, shape) pairs, if they are."""
    boxes = [i for i, (_, s) in enumerate(outputs) if len(s) == 3 and s[2] == 4]
    rows = [i for i, (_, s) in enumerate(outputs) if len(s) == 2]
    counts = [i for i, (_, s) in enumerate(outputs) if len(s) <= 1]
    if len(boxes) != 1 or len(rows) < 2 or len(counts) > 1:
        return None
    names = {i: outputs[i][0].lower() for i in rows}
    scores = [i for i in rows if "score" in names[i]]
    classes = [i for i in rows if "class" in names[i]]
    if len(scores) == 1 and len(classes) == 1:
        score, cls = scores[0], classes[0]
    elif len(rows) == 2:
        # No telling names: the TFLite detection post-processing order is boxes, classes,
        # scores, count.
        cls, score = rows
    else:
        return None
    return TfodOutputs(boxes[0], score, cls, counts[0] if counts else None)


def decode_tfod(
    outputs: Sequence[np.ndarray], which: TfodOutputs, height: int, width: int, conf: float
) -> Detections:
    """Boxes in input pixels from normalised ymin, xmin, ymax, xmax."""
    boxes = np.asarray(outputs[which.boxes])[0]
    scores = np.asarray(outputs[which.scores])[0]
    classes = np.asarray(outputs[which.classes])[0]
    if which.count is not None:
        n = int(np.asarray(outputs[which.count]).reshape(-1)[0])
        boxes, scores, classes = boxes[:n], scores[:n], classes[:n]
    keep = scores >= conf
    b = boxes[keep]
    xyxy = np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], 1)
    return Detections(
        xyxy.astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.intp)
    )


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def decode(output: np.ndarray, layout: str, conf: float) -> Detections:
    """Candidates above `conf`, before suppression (end2end outputs are already suppressed)."""
    out = output[0]
    if layout in ("yolov8", "yolov5"):
        if layout == "yolov8":
            out = out.T  # [N, 4 + nc]
            cls_scores = out[:, 4:]
        else:
            cls_scores = out[:, 5:] * out[:, 4:5]  # class score times objectness
        classes = cls_scores.argmax(1)
        scores = cls_scores[np.arange(len(out)), classes]
        keep = scores >= conf
        boxes = _cxcywh_to_xyxy(out[keep, :4])
        return Detections(boxes.astype(np.float32), scores[keep], classes[keep])
    if layout == "end2end":
        keep = out[:, 4] >= conf
        return Detections(
            out[keep, :4].astype(np.float32), out[keep, 4], out[keep, 5].astype(np.intp)
        )
    raise ModelError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.asarray((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))


def intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of boxes a [A, 4] and b [B, 4]."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.asarray(np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [A, 4] and b [B, 4]."""
    inter = intersection_matrix(a, b)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.asarray(inter / (union + 1e-9))


def nms(d: Detections, iou_threshold: float, groups: np.ndarray | None = None) -> Detections:
    """Greedy: the best box suppresses its overlapping neighbours of the same group.

    `groups[class id]` is the group of each class; without it every class is its own group.
    The kept box keeps its own class (the most confident reading of the object).
    """
    if len(d) == 0:
        return d
    group = d.classes if groups is None else groups[d.classes]
    # Shift each group far apart so one pass suppresses within groups only.
    offset = group[:, None].astype(np.float32) * 100_000.0
    boxes = d.boxes + offset
    order = d.scores.argsort(kind="stable")[::-1]
    keep: list[int] = []
    while len(order):
        best = int(order[0])
        keep.append(best)
        if len(order) == 1:
            break
        ious = iou_matrix(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][ious < iou_threshold]
    idx = np.array(keep, np.intp)
    return Detections(d.boxes[idx], d.scores[idx], d.classes[idx])
