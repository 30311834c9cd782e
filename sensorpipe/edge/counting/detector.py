"""An ONNX object detector run with onnxruntime on the CPU.

Session options suit a Raspberry Pi: a configurable number of intra-op threads (leave a core
for the agent and the camera), one inter-op thread, sequential execution, all graph
optimisations. Any model in a common layout works (see decode.py) given its class list.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorpipe.edge.counting.decode import (
    Detections,
    TfodOutputs,
    decode,
    decode_tfod,
    detect_layout,
    detect_tfod,
    expected_shapes,
    nms,
)
from sensorpipe.edge.counting.errors import ModelError
from sensorpipe.edge.counting.preprocess import letterbox_image, to_tensor


def _onnxruntime() -> Any:
    """onnxruntime, which only counting needs: it is the `counting` extra, so that a host that
    measures air only installs where onnxruntime has no wheel (32-bit Raspberry Pi OS)."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError(
            "counting needs onnxruntime, which is not installed: pip install "
            "'sensorpipe[counting]' (it has wheels for 64-bit Raspberry Pi OS and x86-64; "
            "a 32-bit Raspberry Pi OS cannot count, but measures air without it)"
        ) from None
    return onnxruntime


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
        ort = _onnxruntime()
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
        fixed = len(shape) == 4 and all(isinstance(d, int) for d in shape[1:])
        if fixed and shape[1] == 3:
            self.channels_last = False
            self.input_height, self.input_width = int(shape[2]), int(shape[3])
        elif fixed and shape[3] == 3:
            self.channels_last = True  # NHWC, as TensorFlow exports take it
            self.input_height, self.input_width = int(shape[1]), int(shape[2])
        else:
            raise ModelError(
                f"{path}: input {inputs[0].name!r} has shape {shape}; expected a fixed "
                f"[1, 3, height, width] such as [1, 3, 640, 640] (export with a fixed imgsz), "
                f"or [1, height, width, 3] for TensorFlow exports"
            )
        if inputs[0].type == "tensor(uint8)":
            self.input_dtype: type = np.uint8
        elif inputs[0].type == "tensor(float)":
            self.input_dtype = np.float32
        else:
            raise ModelError(f"{path}: input type {inputs[0].type}; expected float or uint8")
        self.input_name = inputs[0].name
        self.class_names = class_names
        _check_declared_classes(path, self._session, len(class_names))
        outputs = [(o.name, o.shape) for o in self._session.get_outputs()]
        self._tfod: TfodOutputs | None = None
        if layout in ("auto", "tfod") and len(outputs) > 1:
            self._tfod = detect_tfod(outputs)
        if self._tfod is not None:
            self.layout = "tfod"
        elif layout == "tfod":
            raise ModelError(
                f"{path}: outputs {outputs} are not the TF Object Detection API's; expected "
                f"{expected_shapes(len(class_names))}"
            )
        else:
            self.layout = detect_layout(outputs[0][1], len(class_names), layout)
        self.pixel_scale = pixel_scale
        self.bgr = bgr
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        # Suppression groups per class id (see decode.nms); the pipeline sets them from its
        # class map. By default each class is its own group.
        self.groups = np.arange(len(class_names), dtype=np.intp)
        self.model_id = f"{path.stem}@{_digest(path)}"
        self.times = StageTimes()

    def set_groups(self, groups: list[int]) -> None:
        if len(groups) != len(self.class_names):
            raise ValueError(f"{len(groups)} groups for {len(self.class_names)} classes")
        self.groups = np.asarray(groups, np.intp)

    def detect(self, frame: np.ndarray) -> Detections:
        """Boxes in frame pixels. The frame is used here and nowhere else kept."""
        t0 = time.perf_counter()
        canvas, box_map = letterbox_image(frame, self.input_height, self.input_width)
        tensor = to_tensor(
            canvas,
            pixel_scale=self.pixel_scale,
            bgr=self.bgr,
            channels_last=self.channels_last,
            dtype=self.input_dtype,
        )
        t1 = time.perf_counter()
        outputs = self._session.run(None, {self.input_name: tensor})
        t2 = time.perf_counter()
        if self._tfod is not None:
            raw = decode_tfod(
                outputs, self._tfod, self.input_height, self.input_width, self.conf_threshold
            )
        else:
            raw = decode(np.asarray(outputs[0]), self.layout, self.conf_threshold)
        if len(raw) and int(raw.classes.max()) >= len(self.class_names):
            raise ModelError(
                f"the model reported class id {int(raw.classes.max())}, but the class list has "
                f"{len(self.class_names)} classes (ids 0 to {len(self.class_names) - 1}); "
                f"give the model's full class list in `classes`"
            )
        # End-to-end and TF exports suppress per class in the graph; suppressing again per
        # group is what merges one object seen as two classes.
        raw = nms(raw, self.iou_threshold, self.groups)
        found = Detections(box_map.to_frame(raw.boxes), raw.scores, raw.classes)
        t3 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.inference += t2 - t1
        self.times.decode += t3 - t2
        self.times.frames += 1
        return found


def _check_declared_classes(path: Path, session: Any, nc: int) -> None:
    """Refuse a model whose metadata declares another number of classes than configured."""
    names = session.get_modelmeta().custom_metadata_map.get("names")
    if not names:
        return
    try:
        declared = json.loads(names)
    except ValueError:
        try:  # Ultralytics writes a Python dict literal: {0: 'person', 1: 'bicycle', ...}
            declared = ast.literal_eval(names)
        except (ValueError, SyntaxError):
            return
    if isinstance(declared, (list, dict)) and len(declared) != nc:
        raise ModelError(
            f"{path} declares {len(declared)} classes in its metadata, but the class list has "
            f"{nc}; give the model's class list in `classes`"
        )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
