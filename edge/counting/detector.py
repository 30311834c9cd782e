"""An ONNX object detector run with onnxruntime on the CPU.

Session options suit a Raspberry Pi: a configurable number of intra-op threads (leave a core
for the agent and the camera), one inter-op thread, sequential execution, all graph
optimisations. Any model in a common layout works (see decode.py) given its class list.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.counting.decode import Detections, decode, detect_layout, nms
from edge.counting.errors import ModelError
from edge.counting.preprocess import letterbox


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over frames; for benchmarks and status."""

    preprocess: float = 0.0
    inference: float = 0.0
    decode: float = 0.0
    frames: int = 0


class Detector:
    def __init__(
        self,
        model_path: Path | str,
        class_names: list[str],
        *,
        layout: str = "auto",
        threads: int = 1,
        conf_threshold: float = 0.35,
        iou_threshold: float = 0.45,
        pixel_scale: float = 1.0 / 255.0,
        bgr: bool = False,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one image input, found {len(inputs)}")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(d, int) for d in shape[2:]):
            raise ModelError(
                f"{path}: input {inputs[0].name!r} has shape {shape}; expected a fixed "
                f"[1, 3, height, width] such as [1, 3, 640, 640] (export with a fixed imgsz)"
            )
        self.input_name = inputs[0].name
        self.input_height, self.input_width = int(shape[2]), int(shape[3])
        self.class_names = class_names
        self.layout = detect_layout(self._session.get_outputs()[0].shape, len(class_names), layout)
        self.pixel_scale = pixel_scale
        self.bgr = bgr
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.model_id = f"{path.stem}@{_digest(path)}"
        self.times = StageTimes()

    def detect(self, frame: np.ndarray) -> Detections:
        """Boxes in frame pixels. The frame is used here and nowhere else kept."""
        t0 = time.perf_counter()
        tensor, box_map = letterbox(
            frame, self.input_height, self.input_width, pixel_scale=self.pixel_scale, bgr=self.bgr
        )
        t1 = time.perf_counter()
        (output,) = self._session.run(None, {self.input_name: tensor})[:1]
        t2 = time.perf_counter()
        raw = decode(np.asarray(output), self.layout, self.conf_threshold)
        if self.layout != "end2end":
            raw = nms(raw, self.iou_threshold)
        found = Detections(box_map.to_frame(raw.boxes), raw.scores, raw.classes)
        t3 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.inference += t2 - t1
        self.times.decode += t3 - t2
        self.times.frames += 1
        return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
