"""Counting with the real (COCO) detector: TF layouts, one object one count, real footage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sensorpipe.edge.counting.classes import suppression_groups
from sensorpipe.edge.counting.clips import VTEST_LINE, fetch_vtest
from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.errors import ModelError
from sensorpipe.edge.counting.pipeline import CountingPipeline
from sensorpipe.edge.counting.video import (
    REAL_MODEL,
    Crossing,
    VideoCount,
    count_video,
    load_spec,
    parse_line,
    read_truth,
    score,
)

DATA = Path(__file__).parent / "data"
VTEST_TRUTH = Path(__file__).resolve().parent.parent / "eval" / "vtest" / "truth.csv"
NAMES = ["person", "bicycle", "car", "truck"]


def tfod_model(path: Path, *, named: bool = True, uint8: bool = True, classes: float = 2) -> Path:
    """An SSD-like export: NHWC input, normalised ymin/xmin/ymax/xmax boxes, scores, classes."""
    boxes = np.array([[[0.25, 0.25, 0.5, 0.5], [0.0, 0.0, 0.1, 0.1]]], np.float32)
    scores = np.array([[0.9, 0.2]], np.float32)
    ids = np.array([[classes, 0]], np.float32)
    count = np.array([2.0], np.float32)
    out_names = (
        ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]
        if named
        else ["TFLite_PostProcess", "TFLite_PostProcess:1", "TFLite_PostProcess:2", "n"]
    )
    tables = [boxes, scores, ids, count] if named else [boxes, ids, scores, count]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outputs = []
    for name, table in zip(out_names, tables, strict=True):
        inits.append(numpy_helper.from_array(table, f"{name}_t"))
        nodes.append(helper.make_node("Add", [f"{name}_t", "nothing"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(table.shape)))
    dtype = TensorProto.UINT8 if uint8 else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "tfod", [helper.make_tensor_value_info("image", dtype, [1, 300, 300, 3])], outputs
    )
    graph.initializer.extend(inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("uint8", [True, False])
def test_tensorflow_object_detection_layout(tmp_path: Path, named: bool, uint8: bool) -> None:
    det = Detector(tfod_model(tmp_path / "ssd.onnx", named=named, uint8=uint8), NAMES)
    assert det.layout == "tfod" and det.channels_last
    assert (det.input_height, det.input_width) == (300, 300)
    assert det.input_dtype == (np.uint8 if uint8 else np.float32)
    found = det.detect(np.zeros((300, 600, 3), np.uint8))  # letterboxed: 75 px bands
    assert found.classes.tolist() == [2] and found.scores.tolist() == pytest.approx([0.9])
    # Normalised (ymin, xmin, ymax, xmax) = (.25, .25, .5, .5) of the 300x300 input.
    np.testing.assert_allclose(found.boxes[0], [150, 0, 300, 150], atol=1e-3)


def test_class_ids_beyond_the_class_list_are_refused(tmp_path: Path) -> None:
    det = Detector(tfod_model(tmp_path / "ssd.onnx", classes=7), NAMES)
    with pytest.raises(ModelError, match=r"class id 7, but the class list has 4 classes"):
        det.detect(np.zeros((300, 300, 3), np.uint8))


def test_declared_class_count_must_match_the_class_list(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"declares 80 classes.*class list has 4"):
        Detector(REAL_MODEL, NAMES)
    path = tfod_model(tmp_path / "ultra.onnx")
    model = onnx.load(str(path))
    model.metadata_props.add(key="names", value="{0: 'person', 1: 'bicycle', 2: 'car'}")
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"declares 3 classes.*class list has 4"):
        Detector(path, NAMES)


def test_suppression_groups_follow_the_count_classes() -> None:
    spec = load_spec(REAL_MODEL)
    groups = suppression_groups(spec.classes, spec.class_map)
    index = {name: i for i, name in enumerate(spec.classes)}
    assert groups[index["car"]] == groups[index["truck"]] == groups[index["bus"]]
    assert groups[index["bicycle"]] == groups[index["motorcycle"]]
    assert groups[index["person"]] != groups[index["bicycle"]]
    assert groups[index["person"]] != groups[index["car"]]
    assert groups[index["dog"]] != groups[index["cat"]]  # ignored classes stay apart


def _image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"cannot read {path}"
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _slide(crop: np.ndarray, steps: int = 16) -> list[np.ndarray]:
    """The crop driven from left to right across a grey 640x360 street."""
    frames = []
    h, w = crop.shape[:2]
    for i in range(steps):
        frame = np.full((360, 640, 3), 128, np.uint8)
        x = int(10 + i * (640 - w - 20) / (steps - 1))
        frame[100 : 100 + h, x : x + w] = crop
        frames.append(frame)
    return frames


def test_one_real_vehicle_seen_as_car_and_truck_is_counted_once() -> None:
    # A real van-like truck from a photograph (darknet's dog.jpg), 1.5x: NanoDet reports it
    # as a car and as a truck at once, with near-identical boxes.
    crop = _image(DATA / "truck-crop.png")
    crop = cv2.resize(crop, None, fx=1.5, fy=1.5)
    frames = _slide(crop)
    spec = load_spec(REAL_MODEL)
    per_class = Detector(REAL_MODEL, spec.classes, conf_threshold=spec.conf_threshold)
    both = 0
    for frame in frames:
        names = {spec.classes[int(c)] for c in per_class.detect(frame).classes}
        both += {"car", "truck"} <= names
    assert both >= 3, "the crop should be the real double-detection case"

    detector = Detector(REAL_MODEL, spec.classes, conf_threshold=spec.conf_threshold)
    pipeline = CountingPipeline(detector, spec.class_map, line=(0.5, 0.0, 0.5, 1.0))
    for i, frame in enumerate(frames):
        found = detector.detect(frame)
        vehicles = [
            spec.classes[int(c)] for c in found.classes if spec.classes[int(c)] in ("car", "truck")
        ]
        assert len(vehicles) <= 1, f"frame {i}: one vehicle, boxes {vehicles}"
    for i, frame in enumerate(frames):
        pipeline.process(i * 0.2, frame)
    counted = [(e.count_class, e.direction) for e in pipeline.crossings]
    assert len(counted) == 1 and counted[0][1] == "left_to_right"
    assert counted[0][0] in ("car", "heavy_vehicle")


@pytest.mark.timeout(300)
def test_a_real_empty_street_looped_for_ten_minutes_counts_nothing() -> None:
    # The plaza of the real clip with every passer-by removed (per-pixel median over the clip),
    # two parked vans included; ten minutes at 2 fps with fresh sensor noise in every frame.
    plate = _image(DATA / "empty-street.jpg")
    spec = load_spec(REAL_MODEL)
    detector = Detector(REAL_MODEL, spec.classes, conf_threshold=spec.conf_threshold)
    pipeline = CountingPipeline(detector, spec.class_map, line=VTEST_LINE, interval_s=60)
    rng = np.random.default_rng(7)
    closed = []
    for i in range(10 * 60 * 2):
        noise = rng.normal(0.0, 4.0, plate.shape)
        frame = np.clip(plate + noise, 0, 255).astype(np.uint8)
        closed += pipeline.process(i * 0.5, frame)
    assert detector.times.frames == 1200
    assert list(pipeline.crossings) == []
    assert len(closed) == 9 and all(sum(c.counts.values()) == 0 for c in closed)


@pytest.fixture(scope="module")
def vtest() -> Path:
    return fetch_vtest()


@pytest.mark.timeout(300)
def test_counting_the_real_clip_meets_the_targets(vtest: Path) -> None:
    reports: list[tuple[float, int]] = []
    count = count_video(
        vtest, VTEST_LINE, fps=5, progress=lambda s, n: reports.append((s, n)), progress_every_s=0
    )
    assert [n for _, n in reports] == list(range(1, 399))  # progress, here after every frame
    assert reports[-1][0] == pytest.approx(79.4)
    truth = read_truth(VTEST_TRUTH)
    result = score(count, truth, tolerance_s=1.5)
    pedestrians = result.classes["pedestrian"]
    assert sum(pedestrians.true.values()) == 32
    assert pedestrians.wape is not None and pedestrians.wape <= 0.10
    for vehicle in ("car", "heavy_vehicle", "motorcycle"):
        assert sum(result.classes[vehicle].predicted.values()) == 0  # parked vans never cross
    assert result.precision is not None and result.precision >= 0.9
    assert count.frames == 398


def test_count_video_command_prints_totals_and_directions(vtest: Path, tmp_path: Path) -> None:
    # The first 12 s of the clip, re-encoded, through the command as a user runs it.
    short = tmp_path / "short.avi"
    source = cv2.VideoCapture(str(vtest))
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(120):
        ok, frame = source.read()
        assert ok
        writer.write(frame)
    writer.release()
    command = [
        sys.executable,
        "-m",
        "sensorpipe",
        "count-video",
        str(short),
        "--line",
        "307,0,307,576",
    ]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert set(out) >= {"totals", "by_direction", "frames", "seconds"}
    assert out["frames"] == 60 and out["seconds"] == pytest.approx(12.0)
    assert out["line"] == pytest.approx([0.4, 0.0, 0.4, 1.0], abs=1e-3)
    # Truth in these 12 s: 0.6 s and 9.0 s left to right, 7.0 s right to left.
    assert out["totals"]["pedestrian"] == 3
    assert out["by_direction"]["pedestrian"] == {"left_to_right": 2, "right_to_left": 1}
    assert out["totals"]["car"] == 0
    text = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "pedestrian" in text.stdout and "frames" in text.stdout


def test_bad_lines_and_truth_files_are_explained(tmp_path: Path) -> None:
    assert parse_line("0.5,0,0.5,1") == (0.5, 0.0, 0.5, 1.0)
    for bad, why in (("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"), ("1,1,1,1", "same")):
        with pytest.raises(ValueError, match=why):
            parse_line(bad)
    truth = tmp_path / "t.csv"
    truth.write_text("time_s,class,direction\n1.0,pedestrian,left_to_right\n2,dog,left_to_right\n")
    with pytest.raises(ValueError, match=r"t.csv:3: class 'dog'"):
        read_truth(truth)
    truth.write_text("t,c,d\n")
    with pytest.raises(ValueError, match="header"):
        read_truth(truth)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensorpipe",
            "count-video",
            str(tmp_path / "none.avi"),
            "--line",
            "0,0,1,1",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "not found" in done.stderr and "Traceback" not in done.stderr


def test_scoring_matches_within_the_tolerance_only() -> None:
    count = VideoCount("v", "m", 5.0, 10, 10.0, 1.0, (0.5, 0, 0.5, 1), ["pedestrian", "car"])
    count.crossings = [
        Crossing(1.0, "pedestrian", "left_to_right"),
        Crossing(5.0, "pedestrian", "left_to_right"),
        Crossing(6.0, "car", "right_to_left"),
    ]
    truth = [
        Crossing(1.4, "pedestrian", "left_to_right"),
        Crossing(9.0, "pedestrian", "left_to_right"),
        Crossing(6.0, "pedestrian", "right_to_left"),
    ]
    result = score(count, truth, tolerance_s=1.0)
    ped = result.classes["pedestrian"]
    assert (
        ped.matched == 1 and ped.precision == 0.5 and ped.recall == pytest.approx(1 / 3, abs=1e-4)
    )
    assert ped.wape == pytest.approx(1 / 3, abs=1e-4)  # |2-2| + |0-1| over 3
    assert result.classes["car"].precision == 0.0 and result.classes["car"].wape is None
    assert [c.time_s for c in result.unmatched_true] == [9.0, 6.0]


def test_count_eval_refuses_a_model_whose_classes_are_not_the_scene_s(tmp_path: Path) -> None:
    # The COCO model copied without its class list: count-eval assumes the synthetic street's
    # four classes, and the model's own metadata says 80.
    bare = tmp_path / "detector.onnx"
    bare.write_bytes(REAL_MODEL.read_bytes())
    command = [sys.executable, "-m", "sensorpipe", "count-eval", "--model", str(bare)]
    done = subprocess.run([*command, "--minutes", "0.5"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "declares 80 classes" in done.stderr and "class list has 4" in done.stderr
    assert "Traceback" not in done.stderr
