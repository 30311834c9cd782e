"""The synthetic street's real-world conditions: what each adds, and that truth stays true."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sensorpipe.firmware_sim.conditions import CONDITIONS, DAY, Perspective, parse_conditions
from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, HEIGHT, PARKING, WIDTH, Crossing, Scene


def test_condition_names_and_groups() -> None:
    assert parse_conditions("none") == frozenset()
    assert parse_conditions("rain, jpeg") == {"rain", "jpeg"}
    assert parse_conditions("day") == set(DAY) and "night" not in DAY
    assert parse_conditions(["all"]) == set(CONDITIONS)
    with pytest.raises(ValueError, match="unknown condition 'fog'"):
        parse_conditions("rain,fog")


def test_conditions_leave_the_seed_s_own_traffic_alone() -> None:
    plain = Scene(1004, duration_s=300)
    busy = Scene(1004, duration_s=300, conditions="all")
    moving = [(o.kind, o.t0, o.x0, o.speed) for o in busy.objects if o.moving]
    for o in plain.objects:
        assert (o.kind, o.t0, o.x0, o.speed) in moving
    # Plain frames are what they were before conditions existed: same seed, same pixels.
    again = Scene(1004, duration_s=300)
    np.testing.assert_array_equal(plain.render(12.0, 1).image, again.render(12.0, 1).image)


def test_parked_vehicles_are_seen_but_never_cross() -> None:
    plain = Scene(1005, duration_s=120)
    parked = Scene(1005, duration_s=120, conditions="parked")
    standing = [o for o in parked.objects if not o.moving]
    assert len(standing) >= 3 and all(o.kind in ("car", "truck") for o in standing)

    def unflagged(scene: Scene) -> list[tuple[float, str, str]]:
        return [(c.time_s, c.count_class, c.direction) for c in scene.crossings()]

    assert unflagged(parked) == unflagged(plain)
    assert not any(c.hidden for c in plain.crossings())
    frame = parked.render(1.0)
    assert len(frame.boxes) > len(plain.render(1.0).boxes)


def test_crowds_walk_in_pairs_and_linger() -> None:
    scene = Scene(1006, duration_s=600, conditions="crowds")
    walkers = [o for o in scene.objects if o.kind == "pedestrian"]
    pairs = [o for o in walkers if o.baseline_dy]
    assert pairs, "some people walk beside someone"
    for mate in pairs:
        lead = next(p for p in walkers if p.t0 == mate.t0 and p is not mate)
        assert lead.speed == mate.speed
    lingering = [o for o in walkers if o.pause_x is not None]
    assert lingering
    o = lingering[0]
    assert o.pause_x is not None
    reach = o.t0 + (o.pause_x - o.x0) / o.speed
    assert o.centre_x(reach + 0.5) == o.centre_x(reach + o.pause_s - 0.5) == o.pause_x
    assert o.centre_x(reach + o.pause_s + 1.0) != o.pause_x
    # Its true crossing is where its centre really is on the line.
    t = o.time_at(scene.line_x)
    assert o.centre_x(t) == pytest.approx(scene.line_x, abs=1e-6)
    assert len(scene.crossings()) > len(Scene(1006, duration_s=600).crossings())


def test_perspective_keeps_the_line_and_grows_near_objects() -> None:
    warp = Perspective(HEIGHT, WIDTH)
    for y in (0, 60, 120, HEIGHT - 1):
        assert warp.point(WIDTH / 2, y)[0] == pytest.approx(WIDTH / 2)
    near = warp.box(150, 150, 170, 178)
    far = warp.box(150, 40, 170, 68)
    assert near is not None and far is not None
    assert near[3] - near[1] > 28 > far[3] - far[1]  # near magnified, far compressed
    assert near[2] - near[0] > 20 > far[2] - far[0]
    scene = Scene(1007, duration_s=60, conditions="perspective")
    assert scene.crossings() == Scene(1007, duration_s=60).crossings()


def test_night_rain_blur_and_jpeg_change_the_pixels_not_the_truth() -> None:
    plain = Scene(1008, duration_s=120)
    frame = plain.render(30.0, 2)
    for name in ("night", "rain", "jpeg", "shadows"):  # motion blur: its own test below
        scene = Scene(1008, duration_s=120, conditions=name)
        other = scene.render(30.0, 2)
        assert other.image.shape == frame.image.shape and other.image.dtype == np.uint8
        assert not np.array_equal(other.image, frame.image), name
        assert scene.crossings() == plain.crossings(), name
        again = Scene(1008, duration_s=120, conditions=name).render(30.0, 2)
        np.testing.assert_array_equal(other.image, again.image)  # deterministic
    night = Scene(1008, duration_s=120, conditions="night")
    dark = night.render(30.0, 2).image
    assert dark.mean() < 0.5 * frame.image.mean()
    lit = [night.render(t).image for t in np.arange(0.0, 60.0, 2.0)]
    assert max(int(im.max()) for im in lit) >= 250  # headlights and street lights


def test_motion_blur_smears_fast_objects_only() -> None:
    plain = Scene(1009, duration_s=120)
    blurred = Scene(1009, duration_s=120, conditions="motion_blur")
    car = next(o for o in plain.objects if o.kind == "car" and 10 < o.time_at(WIDTH / 2) < 110)
    t = car.time_at(WIDTH / 2)
    row = car.lane.baseline - 8
    a = plain.render(t).image[row].astype(int)
    b = blurred.render(t).image[row].astype(int)
    # Edges soften: the largest step between neighbouring pixels along the car shrinks.
    assert np.abs(np.diff(b, axis=0)).max() < np.abs(np.diff(a, axis=0)).max()


def test_count_eval_refuses_unknown_conditions() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sensorpipe", "count-eval", "--conditions", "fog", "--minutes", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "unknown condition 'fog'" in done.stderr
    assert "Traceback" not in done.stderr


def _boxes_beside_the_line(scene: Scene, c: Crossing) -> list[int]:
    """For each side: at how many of the points half, one and one and a half widths from the
    line the renderer gave the crossing person or cyclist a truth box."""
    o = next(
        o for o in scene.objects if o.moving and abs(o.time_at(scene.line_x) - c.time_s) < 1e-9
    )
    step = max(6.0, 0.5 * o.width)
    sides = []
    for side in (-1, 1):
        seen = 0
        for k in (1, 2, 3):
            centre = scene.line_x + side * k * step
            frame = scene.render(o.time_at(centre))
            seen += any(
                abs((b.x1 + b.x2) / 2 - centre) < 3 and b.y2 <= o.lane.baseline + 2
                for b in frame.boxes
                if DETECTOR_CLASSES[b.cls] in ("person", "bicycle")
            )
        sides.append(seen)
    return sides


def test_a_crossing_marked_hidden_cannot_be_seen_on_one_side_of_the_line() -> None:
    scene = Scene(1005, duration_s=120, conditions="parked")
    hidden = [c for c in scene.crossings() if c.hidden]
    assert hidden and all(c.count_class in ("pedestrian", "cyclist") for c in hidden)
    for c in hidden:
        assert min(_boxes_beside_the_line(scene, c)) == 0, c
    # The same probe sees the people behind the parked cars that are not marked hidden.
    behind = [
        c
        for c in scene.crossings()
        if not c.hidden
        and c.count_class == "pedestrian"
        and next(
            o for o in scene.objects if o.moving and o.time_at(scene.line_x) == c.time_s
        ).lane.baseline
        < PARKING.baseline
    ]
    assert behind and all(_boxes_beside_the_line(scene, c) == [3, 3] for c in behind)


def test_bench_conditions_takes_seed_ranges() -> None:
    from bench.conditions import parse_seeds

    assert parse_seeds("2000-2004") == [2000, 2001, 2002, 2003, 2004]
    assert parse_seeds("2000,2003-2004") == [2000, 2003, 2004]
    with pytest.raises(SystemExit, match="not a seed"):
        parse_seeds("20x0")
