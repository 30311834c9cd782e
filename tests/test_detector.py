"""The ONNX detector against small hand-built models in each layout, and bad models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.errors import ModelError

NAMES = ["person", "bicycle", "car", "truck"]


def constant_model(path: Path, output: np.ndarray, input_shape: list[int | str]) -> Path:
    """A model whose output is `output` whatever the image (but still reads the image)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[
            numpy_helper.from_array(output.astype(np.float32), "table"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


FRAME = np.zeros((180, 320, 3), np.uint8)  # letterboxed into 320x192: 6 px of padding on top


def test_yolov8_layout(tmp_path: Path) -> None:
    out = np.zeros((1, 8, 3), np.float32)
    out[0, :, 0] = [100, 56, 40, 20, 0.0, 0.0, 0.92, 0.0]  # a car
    out[0, :, 1] = [101, 57, 40, 20, 0.0, 0.0, 0.80, 0.0]  # the same car again: suppressed
    out[0, :, 2] = [20, 36, 10, 28, 0.20, 0.0, 0.0, 0.0]  # below the threshold
    det = Detector(constant_model(tmp_path / "m.onnx", out, [1, 3, 192, 320]), NAMES)
    assert det.layout == "yolov8" and (det.input_height, det.input_width) == (192, 320)
    found = det.detect(FRAME)
    assert found.classes.tolist() == [2]
    np.testing.assert_allclose(found.boxes[0], [80, 40, 120, 60], atol=1e-4)
    assert det.model_id.startswith("m@") and det.times.frames == 1


def test_yolov5_and_end2end_layouts(tmp_path: Path) -> None:
    v5 = np.zeros((1, 2, 9), np.float32)
    v5[0, 0] = [100, 56, 40, 20, 0.9, 0, 0, 1.0, 0]
    v5[0, 1] = [50, 50, 10, 10, 0.1, 1.0, 0, 0, 0]
    det = Detector(constant_model(tmp_path / "v5.onnx", v5, [1, 3, 192, 320]), NAMES)
    assert det.layout == "yolov5"
    assert det.detect(FRAME).classes.tolist() == [2]
    e2e = np.array([[[80, 46, 120, 66, 0.9, 3], [0, 0, 1, 1, 0.05, 0]]], np.float32)
    det = Detector(constant_model(tmp_path / "e2e.onnx", e2e, [1, 3, 192, 320]), NAMES)
    assert det.layout == "end2end"
    found = det.detect(FRAME)
    assert found.classes.tolist() == [3]
    np.testing.assert_allclose(found.boxes[0], [80, 40, 120, 60], atol=1e-4)


def test_coco_class_count_mismatch_is_explained(tmp_path: Path) -> None:
    coco_like = np.zeros((1, 84, 10), np.float32)
    path = constant_model(tmp_path / "coco.onnx", coco_like, [1, 3, 192, 320])
    with pytest.raises(
        ModelError,
        match=r"means 80 classes \(yolov8 layout\).*class list has 4.*yolov8 \[1, 8, N\]",
    ):
        Detector(path, NAMES)
    assert Detector(path, [f"c{i}" for i in range(80)]).layout == "yolov8"


def test_dynamic_input_size_is_refused_with_the_expected_shape(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "dyn.onnx", np.zeros((1, 8, 3)), [1, 3, "height", "width"])
    with pytest.raises(ModelError, match=r"expected a fixed \[1, 3, height, width\]"):
        Detector(path, NAMES)


def test_missing_and_broken_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Detector(tmp_path / "absent.onnx", NAMES)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Detector(junk, NAMES)
