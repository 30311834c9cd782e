"""From the detector's classes to count classes, merging riders with what they ride.

The class map in the configuration names, for each model class, the count class it becomes
(or "ignore"). A detection mapped to `pedestrian` that sits on a detection mapped to a
ridden class (`cyclist`, `motorcycle`) is its rider: the two become one detection of the
ridden class, so a person on a bicycle is counted once, as a cyclist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensorpipe.edge.counting.decode import Detections, box_areas, intersection_matrix
from sensorpipe.edge.counting.modelspec import IGNORE as IGNORE
from sensorpipe.edge.counting.modelspec import validate_class_map as validate_class_map

RIDDEN = ("cyclist", "motorcycle")
# Count classes that one physical object can be mistaken between. A detector may call a van a
# car and a truck at once, or a moped a bicycle and a motorcycle; it never calls one object a
# person and a vehicle (a person on a bicycle is two objects, merged as a rider below).
OBJECT_GROUP = {
    "pedestrian": 0,
    "cyclist": 1,
    "motorcycle": 1,
    "car": 2,
    "heavy_vehicle": 2,
}


def suppression_groups(class_names: list[str], class_map: dict[str, str]) -> list[int]:
    """Per model class, the group it is suppressed within (see decode.nms).

    Classes mapped to count classes of one object group share a group; every other class
    (ignored ones) stays a group of its own.
    """
    own = len(OBJECT_GROUP) + 1
    groups = []
    for index, name in enumerate(class_names):
        target = class_map.get(name, IGNORE)
        groups.append(OBJECT_GROUP[target] if target in OBJECT_GROUP else own + index)
    return groups


@dataclass(frozen=True, slots=True)
class Sighting:
    """One object in one frame, already in count classes."""

    box: np.ndarray  # x1 y1 x2 y2, frame pixels
    score: float
    count_class: str


def _rider_overlap(person: np.ndarray, mount: np.ndarray) -> float:
    """Share of the person's box that overlaps the mount, if the person sits above it."""
    ix = min(person[2], mount[2]) - max(person[0], mount[0])
    iy = min(person[3], mount[3]) - max(person[1], mount[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    person_cy, mount_cy = (person[1] + person[3]) / 2, (mount[1] + mount[3]) / 2
    person_cx = (person[0] + person[2]) / 2
    if person_cy >= mount_cy or not mount[0] <= person_cx <= mount[2]:
        return 0.0
    return float(ix * iy / ((person[2] - person[0]) * (person[3] - person[1]) + 1e-9))


def to_sightings(
    d: Detections,
    class_names: list[str],
    class_map: dict[str, str],
    min_overlap: float = 0.1,
    duplicate_mount: float = 0.5,
) -> list[Sighting]:
    mapped = [class_map.get(class_names[int(c)], IGNORE) for c in d.classes]
    persons = [i for i, c in enumerate(mapped) if c == "pedestrian"]
    mounts = [i for i, c in enumerate(mapped) if c in RIDDEN]
    riders: dict[int, int] = {}  # person index -> mount index
    taken: set[int] = set()
    pairs = sorted(
        ((_rider_overlap(d.boxes[p], d.boxes[m]), p, m) for p in persons for m in mounts),
        reverse=True,
    )
    for overlap, p, m in pairs:
        if overlap < min_overlap:
            break
        if p in riders or m in taken:
            continue
        riders[p] = m
        taken.add(m)
    rider_of = {m: p for p, m in riders.items()}
    ridden: list[Sighting] = []  # mounts with their riders, merged
    rest: list[Sighting] = []
    for i, cls in enumerate(mapped):
        if cls == IGNORE or i in riders:
            continue
        box = d.boxes[i]
        score = float(d.scores[i])
        rider = rider_of.get(i)
        if rider is None:
            rest.append(Sighting(box, score, cls))
            continue
        r = d.boxes[rider]
        box = np.array(
            [min(box[0], r[0]), min(box[1], r[1]), max(box[2], r[2]), max(box[3], r[3])],
            np.float32,
        )
        ridden.append(Sighting(box, max(score, float(d.scores[rider])), cls))
    # One physical object, one count: a second box on a ridden bicycle (part of the wheel and
    # frame, overlapping the first too little for suppression) finds no rider of its own. Lying
    # mostly inside a ridden one, it is that bicycle again, not a riderless one beside it.
    riderless = [k for k, s in enumerate(rest) if s.count_class in RIDDEN]
    if not ridden or not riderless:
        return ridden + rest
    loose = np.stack([rest[k].box for k in riderless])
    inside = intersection_matrix(loose, np.stack([s.box for s in ridden]))
    inside /= box_areas(loose)[:, None] + 1e-9
    again = {riderless[k] for k in np.flatnonzero(inside.max(axis=1) >= duplicate_mount)}
    return ridden + [s for k, s in enumerate(rest) if k not in again]
