"""Counting pipeline parts: layouts, NMS, riders, tracker, line, intervals (no model needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorpipe.edge.counting.classes import Sighting, to_sightings, validate_class_map
from sensorpipe.edge.counting.config import SourceConfig, open_source
from sensorpipe.edge.counting.crossing import CountingLine
from sensorpipe.edge.counting.decode import Detections, decode, detect_layout, iou_matrix, nms
from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
from sensorpipe.edge.counting.intervals import IntervalCounter
from sensorpipe.edge.counting.preprocess import letterbox
from sensorpipe.edge.counting.tracker import Tracker

DATA = Path(__file__).parent / "data"
NAMES = ["person", "bicycle", "car", "truck"]
CLASS_MAP = {"person": "pedestrian", "bicycle": "cyclist", "car": "car", "truck": "heavy_vehicle"}


def test_layout_detection_and_clear_errors() -> None:
    assert detect_layout([1, 8, 1200], 4) == "yolov8"
    assert detect_layout([1, "N", 9], 4) == "yolov5"
    assert detect_layout([1, 300, 6], 4) == "end2end"
    assert detect_layout([1, 84, 8400], 80) == "yolov8"
    with pytest.raises(ModelError, match=r"yolov8 \[1, 8, N\], yolov5 \[1, N, 9\]"):
        detect_layout([1, 10, 1200], 4)
    with pytest.raises(ModelError, match="set `layout`"):
        detect_layout([1, 300, 6], 1)  # one class: yolov5 and end2end look alike
    assert detect_layout([1, 300, 6], 1, "end2end") == "end2end"
    with pytest.raises(ModelError, match="does not fit layout 'yolov5'"):
        detect_layout([1, 8, 1200], 4, "yolov5")
    with pytest.raises(ModelError, match="expected"):
        detect_layout([1, 8], 4)


def test_the_three_layouts_decode_to_the_same_boxes() -> None:
    # Two candidates: a car at (100, 50) 40x20 scoring 0.9, and a weak person.
    v8 = np.zeros((1, 8, 2), np.float32)
    v8[0, :4, 0] = [100, 50, 40, 20]
    v8[0, 4 + 2, 0] = 0.9
    v8[0, :4, 1] = [10, 10, 4, 8]
    v8[0, 4 + 0, 1] = 0.1
    v5 = np.zeros((1, 2, 9), np.float32)
    v5[0, 0, :5] = [100, 50, 40, 20, 0.95]
    v5[0, 0, 5 + 2] = 0.9 / 0.95
    v5[0, 1, :5] = [10, 10, 4, 8, 0.5]
    v5[0, 1, 5] = 0.2
    e2e = np.array([[[80, 40, 120, 60, 0.9, 2], [8, 6, 12, 14, 0.1, 0]]], np.float32)
    for output, layout in ((v8, "yolov8"), (v5, "yolov5"), (e2e, "end2end")):
        d = decode(output, layout, conf=0.35)
        assert len(d) == 1
        np.testing.assert_allclose(d.boxes[0], [80, 40, 120, 60], atol=1e-4)
        assert d.classes[0] == 2 and d.scores[0] == pytest.approx(0.9, abs=1e-5)


def test_nms_suppresses_within_a_class_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    d = Detections(boxes, np.array([0.9, 0.8, 0.7, 0.6], np.float32), np.array([0, 0, 1, 0]))
    kept = nms(d, 0.5)
    assert sorted(kept.scores.tolist()) == pytest.approx([0.6, 0.7, 0.9])
    assert iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)


def test_letterbox_maps_boxes_back_to_the_frame() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    tensor, box_map = letterbox(frame, 192, 320)
    assert tensor.shape == (1, 3, 192, 320) and tensor.dtype == np.float32
    assert (box_map.scale, box_map.pad_x, box_map.pad_y) == (0.5, 0, 6)
    back = box_map.to_frame(np.array([[10.0, 16.0, 30.0, 46.0]]))
    np.testing.assert_allclose(back, [[20, 20, 60, 80]])
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([114 / 255] * 3)  # the padding
    frame[:, :, 0] = 200  # red
    raw, _ = letterbox(frame, 192, 320, pixel_scale=1.0, bgr=True)  # as YOLOX expects
    assert raw[0, :, 100, 100].tolist() == [0.0, 0.0, 200.0]


def _det(*rows: tuple[float, float, float, float, int]) -> Detections:
    boxes = np.array([r[:4] for r in rows], np.float32)
    return Detections(boxes, np.full(len(rows), 0.9, np.float32), np.array([r[4] for r in rows]))


def test_a_person_on_a_bicycle_is_one_cyclist() -> None:
    d = _det((100, 40, 110, 70, 0), (95, 60, 125, 76, 1), (200, 40, 210, 70, 0))
    sightings = to_sightings(d, NAMES, CLASS_MAP)
    assert sorted(s.count_class for s in sightings) == ["cyclist", "pedestrian"]
    cyclist = next(s for s in sightings if s.count_class == "cyclist")
    assert cyclist.box.tolist() == [95, 40, 125, 76]  # rider and bicycle together


def test_a_person_beside_a_bicycle_stays_a_pedestrian() -> None:
    d = _det((60, 40, 70, 70, 0), (95, 60, 125, 76, 1))  # standing next to a parked bike
    assert sorted(s.count_class for s in to_sightings(d, NAMES, CLASS_MAP)) == [
        "cyclist",
        "pedestrian",
    ]
    ignored = to_sightings(_det((0, 0, 5, 5, 3)), NAMES, {**CLASS_MAP, "truck": "ignore"})
    assert ignored == []


def test_a_second_box_on_a_ridden_bicycle_is_not_a_second_cyclist() -> None:
    # Boxes from the street detector on one cyclist (development seed 2000, 30.8 s): the rider,
    # the whole bicycle, and a second bicycle box on its rear half that overlaps the first too
    # little for suppression (IoU 0.3). The rider sits on one of them; the other is the same
    # bicycle, not a riderless one.
    d = _det((158, 96, 171, 128, 0), (146, 117, 181, 137, 1), (152, 110, 177, 132, 1))
    assert [s.count_class for s in to_sightings(d, NAMES, CLASS_MAP)] == ["cyclist"]
    # Without the rule, two cyclists.
    kept = to_sightings(d, NAMES, CLASS_MAP, duplicate_mount=1.01)
    assert [s.count_class for s in kept] == ["cyclist", "cyclist"]
    # A riderless bicycle beside a ridden one (a parked bike, a walked one) stays.
    d = _det((158, 96, 171, 128, 0), (146, 117, 181, 137, 1), (176, 117, 211, 137, 1))
    assert [s.count_class for s in to_sightings(d, NAMES, CLASS_MAP)] == ["cyclist", "cyclist"]


def test_class_map_must_name_count_classes_and_model_classes() -> None:
    with pytest.raises(ValueError, match="not count classes"):
        validate_class_map(NAMES, {"car": "automobile"})
    with pytest.raises(ValueError, match="does not have"):
        validate_class_map(NAMES, {"bus": "heavy_vehicle"})


def _sighting(cx: float, cy: float, w: float, h: float, cls: str) -> Sighting:
    return Sighting(
        np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32), 0.9, cls
    )


def _run(tracks_per_frame: list[list[Sighting]], fps: float = 5.0) -> list[tuple[str, str]]:
    tracker = Tracker()
    line = CountingLine((160, 0), (160, 180))
    events = []
    for i, sightings in enumerate(tracks_per_frame):
        t = i / fps
        for e in line.update(tracker.update(sightings, t), t):
            events.append((e.count_class, e.direction))
    return events


def test_fast_car_at_five_fps_is_counted_once() -> None:
    frames = [[_sighting(-30 + 26 * i, 110, 60, 26, "car")] for i in range(16)]
    assert _run(frames) == [("car", "left_to_right")]


def test_jitter_on_the_line_does_not_count_twice() -> None:
    xs = [140, 144, 148, 152, 156, 159, 162, 158, 161, 157, 163, 159, 164, 168, 172]
    assert _run([[_sighting(x, 60, 10, 28, "pedestrian")] for x in xs]) == [
        ("pedestrian", "left_to_right")
    ]


def test_pedestrians_passing_each_other_are_both_counted_with_direction() -> None:
    frames = [
        [
            _sighting(120 + 4 * i, 62, 9, 26, "pedestrian"),
            _sighting(200 - 4 * i, 68, 9, 26, "pedestrian"),
        ]
        for i in range(20)
    ]
    assert sorted(_run(frames)) == [
        ("pedestrian", "left_to_right"),
        ("pedestrian", "right_to_left"),
    ]


def test_a_short_occlusion_on_the_line_does_not_lose_the_count() -> None:
    frames = []
    for i in range(24):
        x = 100 + 5 * i
        hidden = 145 <= x <= 170  # a truck drives in front of the cyclist for 1.2 s
        frames.append([] if hidden else [_sighting(x, 75, 24, 30, "cyclist")])
    assert _run(frames) == [("cyclist", "left_to_right")]


def test_an_object_that_turns_back_before_the_line_is_not_counted() -> None:
    xs = [130, 135, 140, 145, 150, 154, 150, 145, 140, 135, 130]
    assert _run([[_sighting(x, 60, 10, 28, "pedestrian")] for x in xs]) == []


def test_intervals_align_and_report_running_fraction() -> None:
    counter = IntervalCounter(60.0, ["car"], ("left_to_right", "right_to_left"))
    assert counter.frame(125.0) == []  # started mid-interval: the first one begins here
    counter.crossing("car", "left_to_right")
    for t in np.arange(125.2, 180.0, 0.2):
        assert counter.frame(float(t)) == []
    (first,) = counter.frame(180.0)
    assert (first.start, first.end) == (125.0, 180.0)
    assert first.counts == {("car", "left_to_right"): 1, ("car", "right_to_left"): 0}
    assert first.running_fraction == pytest.approx(1.0, abs=0.01)
    # The camera stalls: a gap counts for at most a second of running time. The second
    # interval saw frames at 180.0 (0.2 s after the last) and 190.0 (1 s of the 10 s gap).
    assert counter.frame(190.0) == []
    (second,) = counter.frame(240.0)
    assert (second.start, second.end) == (180.0, 240.0)
    assert second.running_fraction == pytest.approx(1.2 / 60.0, abs=0.001)
    counter.crossing("car", "right_to_left")  # belongs to the third interval
    assert second.counts[("car", "right_to_left")] == 0
    counter.frame(250.0)
    partial = counter.flush()
    assert partial is not None and (partial.start, partial.end) == (240.0, 250.0)
    assert partial.counts[("car", "right_to_left")] == 1


def test_missing_camera_packages_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceUnavailable, match="needs OpenCV: install"):
        open_source(SourceConfig(kind="v4l2"))
    with pytest.raises(SourceUnavailable, match="needs OpenCV"):
        open_source(SourceConfig(kind="video", path="street.mp4"))
    with pytest.raises(SourceUnavailable, match="apt-get install python3-picamera2"):
        open_source(SourceConfig(kind="picamera2"))


def test_suppression_groups_merge_one_vehicle_seen_as_two_classes() -> None:
    # Same van as car (0.8) and truck (0.7); a person and the bicycle they ride overlap too.
    boxes = np.array(
        [[100, 50, 160, 80], [101, 49, 161, 81], [20, 10, 30, 40], [15, 25, 40, 45]], np.float32
    )
    d = Detections(boxes, np.array([0.8, 0.7, 0.9, 0.85], np.float32), np.array([2, 3, 0, 1]))
    groups = np.array([0, 1, 2, 2])  # person, bicycle, car and truck together
    kept = nms(d, 0.45, groups)
    assert sorted(kept.classes.tolist()) == [0, 1, 2]  # the truck reading went; the car stays
    assert len(nms(d, 0.45)) == 4  # per class, both vehicle boxes would survive


def test_a_second_track_on_one_vehicle_never_crosses() -> None:
    # A truck crosses; from the third frame the detector also boxes its cab as a car (the cab
    # box lies inside the truck box, IoU 0.25, so suppression keeps both). Counted once.
    frames = []
    for i in range(16):
        cx = -40 + 26 * i
        frame = [_sighting(cx, 110, 100, 40, "heavy_vehicle")]
        if i >= 2:
            frame.append(_sighting(cx + 38, 115, 24, 30, "car"))
        frames.append(frame)
    assert _run(frames) == [("heavy_vehicle", "left_to_right")]


def test_two_people_side_by_side_are_both_counted() -> None:
    frames = [
        [
            _sighting(120 + 4 * i, 62, 10, 28, "pedestrian"),
            _sighting(126 + 4 * i, 64, 10, 28, "pedestrian"),  # half overlapping, same pace
        ]
        for i in range(20)
    ]
    assert _run(frames) == [("pedestrian", "left_to_right")] * 2


def _boxed(x1: float, y1: float, x2: float, y2: float, cls: str) -> Sighting:
    return Sighting(np.array([x1, y1, x2, y2], np.float32), 0.9, cls)


def _parked_car_and_passing_van(merge: bool) -> list[list[Sighting]]:
    """A car parked left of the line for 3 s; a van passes in front of it, right to left.

    With `merge`, for one frame the detector sees the parked car and the van's rear as one box
    that reaches past the line (what a real detector does while the two overlap).
    """
    frames = []
    for i in range(40):
        frame = []
        van_x1 = 330 - 20 * (i - 15)
        if i >= 15:
            frame.append(_boxed(van_x1, 60, van_x1 + 100, 102, "heavy_vehicle"))
        covered = i >= 15 and van_x1 < 161 and van_x1 + 100 > 112
        if merge and van_x1 == 130:
            frame.append(_boxed(140, 66, 240, 97, "car"))  # car and van rear as one box
        elif not covered:
            frame.append(_boxed(112, 70, 161, 92, "car"))
        frames.append(frame)
    return frames


def test_a_parked_car_is_not_dragged_across_the_line_by_a_passing_van() -> None:
    assert _run(_parked_car_and_passing_van(merge=False)) == [("heavy_vehicle", "right_to_left")]
    assert _run(_parked_car_and_passing_van(merge=True)) == [("heavy_vehicle", "right_to_left")]


def test_the_parked_car_rule_is_what_keeps_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import sensorpipe.edge.counting.tracker as tracker_module

    # Without the rule for standing vehicles, the merged box drags the parked car over the line.
    monkeypatch.setattr(tracker_module, "STILL_S", 1e9)
    assert sorted(_run(_parked_car_and_passing_van(merge=True))) == [
        ("car", "left_to_right"),
        ("heavy_vehicle", "right_to_left"),
    ]


def _replay(name: str) -> list[tuple[str, str]]:
    frames = json.loads((DATA / name).read_text())
    tracker = Tracker()
    line = CountingLine((160, 0), (160, 180))
    events = []
    for t, boxes in frames:
        sightings = [_boxed(x1, y1, x2, y2, cls) for x1, y1, x2, y2, cls in boxes]
        events += [
            (e.count_class, e.direction) for e in line.update(tracker.update(sightings, t), t)
        ]
    return events


def _replay_passing_parked_cars() -> list[tuple[str, str]]:
    """Nine seconds of the street detector's boxes on a synthetic street with parked cars
    (development seed 2001, all day conditions, from 57 s): a car drives right to left in
    front of a row of parked vehicles. As it passes, the detector sees a parked car wider than
    it stands (its box takes in part of the moving car) and boxes merging the moving car with
    parked ones."""
    return _replay("passing_parked_cars.json")


def test_a_passing_car_does_not_take_a_parked_cars_box() -> None:
    """Regression: the moving car's track took the parked car's widened box (which the parked
    car's own track refuses), lost the moving car, which was counted again on a new track."""
    cars = [e for e in _replay_passing_parked_cars() if e[0] == "car"]
    assert cars == [("car", "left_to_right"), ("car", "right_to_left")]


def test_the_parked_box_rule_is_what_keeps_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import sensorpipe.edge.counting.tracker as tracker_module

    own = tracker_module._fits_where_standing

    def only_the_parked_track(track: Any, s: Sighting, *, size: bool = True) -> bool:
        return own(track, s) if size else False  # other tracks may take a parked car's box

    monkeypatch.setattr(tracker_module, "_fits_where_standing", only_the_parked_track)
    cars = [e for e in _replay_passing_parked_cars() if e[0] == "car"]
    assert cars.count(("car", "right_to_left")) == 2


def _lorries_passing_a_parked_lorry() -> list[tuple[str, str]]:
    """13 s of the street detector's boxes (test seed 4001 with parked vehicles, from 805 s): a
    lorry drives right to left along the near lane, in front of a parked lorry of its size, and
    on past a parked car and across the line. The scene's truth: that one lorry crossed."""
    return [e for e in _replay("passing_parked_truck.json") if e[0] == "heavy_vehicle"]


def test_a_lorry_passing_a_parked_lorry_of_its_size_is_counted_once() -> None:
    assert _lorries_passing_a_parked_lorry() == [("heavy_vehicle", "right_to_left")]


def _parked_lorry_tracks() -> tuple[int, int]:
    """Ids of the track on the parked lorry (right of the line) in the first and last frame."""
    frames = json.loads((DATA / "passing_parked_truck.json").read_text())
    tracker = Tracker()
    ids = []
    for i, (t, boxes) in enumerate(frames):
        tracker.update([_boxed(x1, y1, x2, y2, c) for x1, y1, x2, y2, c in boxes], t)
        if i in (0, len(frames) - 1):
            (parked,) = [
                tr for tr in tracker.tracks if tr.count_class == "heavy_vehicle" and tr.box[0] > 200
            ]
            ids.append(parked.id)
    return ids[0], ids[1]


def test_the_passing_lorry_keeps_its_own_box(monkeypatch: pytest.MonkeyPatch) -> None:
    import sensorpipe.edge.counting.tracker as tracker_module

    # The parked lorry keeps its track from the first frame to the last, and the lorry that
    # crossed was counted on its own track.
    first, last = _parked_lorry_tracks()
    assert first == last
    # Without the exception for the moving vehicle's own box, the parked lorry's track takes it
    # (it fits where that one stands) and is dragged across the line, where it is counted; the
    # moving lorry's track ends up on the parked lorry. (The count happens to be one either way.)
    monkeypatch.setattr(tracker_module, "OWN_BOX_MARGIN", 0.0)
    first, last = _parked_lorry_tracks()
    assert first != last


def test_a_track_seen_twice_does_not_wait_long_for_a_box(monkeypatch: pytest.MonkeyPatch) -> None:
    import sensorpipe.edge.counting.tracker as tracker_module

    # A track born on two merged boxes, kept for max_age_s, catches a stray box beyond the line.
    monkeypatch.setattr(tracker_module, "TENTATIVE_HITS", 1)
    assert _lorries_passing_a_parked_lorry() == [("heavy_vehicle", "right_to_left")] * 2


def test_a_car_pulling_away_after_waiting_is_counted_once() -> None:
    # Waits 4 s left of the line (a red light), then pulls away at 30 px/s^2 and crosses.
    frames = []
    for i in range(50):
        t = max(0.0, i / 5.0 - 4.0)
        cx = 120 + 15 * t * t
        frames.append([_sighting(cx, 110, 50, 24, "car")])
    assert _run(frames) == [("car", "left_to_right")]


def test_a_person_waiting_beside_the_line_then_walking_on_is_counted_once() -> None:
    xs = [130 + 5 * i for i in range(5)] + [152] * 20 + [152 + 7 * i for i in range(1, 12)]
    assert _run([[_sighting(x, 60, 10, 28, "pedestrian")] for x in xs]) == [
        ("pedestrian", "left_to_right")
    ]


def test_a_stray_box_does_not_start_a_track_that_catches_another_object_later() -> None:
    # One stray car box right of the line; 1.4 s later a real car shows up left of the line
    # and drives on leftwards: only that car's crossing, none from the stray box's track.
    frames: list[list[Sighting]] = [[_sighting(200, 80, 50, 22, "car")]]
    frames += [[] for _ in range(6)]
    frames += [[_sighting(150 - 15 * i, 80, 50, 22, "car")] for i in range(8)]
    assert _run(frames) == []
