"""A small multi-object tracker written for low frame rates.

At 5 fps a car moves a quarter of its length between frames, so overlap-based matching alone
fails. Each track predicts where its centre will be from a smoothed velocity; a sighting matches
when it lies within an ellipse of about one box size around that prediction. Matching is
greedy, cheapest pair first, and prefers the track's class. Tracks survive short gaps
(occlusion by passing traffic) on their prediction and are dropped after `max_age_s`.

A vehicle track that has stood still for a while (a parked car, a car at a red light) only
takes sightings of about its size that overlap where it stands. Otherwise a vehicle passing in
front of a parked one, whose box briefly merges with it, drags the parked car's track across the
counting line. A car pulling away gains speed gradually and keeps its track; people, who stop
and walk on at full pace from one frame to the next, are not held this way. The other way
round, no other track takes a sighting that overlaps a standing vehicle where it stands, even
one its own track refuses for its size: a car passing in front of a parked one would otherwise
take the parked car's widened box, lose the passing car, and the passing car would be counted
again on a new track. The one exception is the passing vehicle's own box: of the moving track's
size and nearer to where that track is going than to where the other stands.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sensorpipe.edge.counting.classes import OBJECT_GROUP, Sighting
from sensorpipe.edge.counting.decode import box_areas, intersection_matrix, iou_matrix

# Classes a detector may confuse or a rider merge may flip between; across groups, never.
_GROUP = {"pedestrian": 0, "cyclist": 0, "motorcycle": 0, "car": 1, "heavy_vehicle": 1}
# Two tracks of one object group whose boxes overlap this much in the same frame are one object:
# IoU for everyone; for vehicles also a box lying inside another (a cab inside its truck).
DUPLICATE_IOU = 0.6
DUPLICATE_INSIDE = 0.85
VEHICLES = OBJECT_GROUP["car"]
YOUNG_HITS = 2
# Standing still: the centre stays within this share of the box width (or STILL_PX) ...
STILL_SHARE = 0.15
STILL_PX = 2.0
# ... for this long; from then on a sighting needs this IoU with the box it stands in, and a
# width and height within STILL_SIZE of it.
STILL_S = 2.0
STILL_IOU = 0.45
STILL_SIZE = 1.25
# A moving vehicle takes a box where another stands only if the box is nearer to where it is
# going than this share of the box's distance from where the other stands.
OWN_BOX_MARGIN = 0.5
# A track seen only once or twice and not again within this time was a stray box: it goes.
# Left to live `max_age_s` on a velocity from one step (or none), it would catch a box far away
# a second later: the box of a lorry and a parked one merged for two frames, kept alive this
# way, caught a stray box beyond the line 1.4 s later and counted the lorry a second time.
TENTATIVE_HITS = 2
TENTATIVE_AGE_S = 0.6


@dataclass
class Track:
    id: int
    box: np.ndarray
    t: float
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    votes: Counter[str] = field(default_factory=Counter)
    prev_centre: tuple[float, float] | None = None
    anchor_box: np.ndarray | None = None  # where it has been standing since `still_since`
    still_since: float = 0.0

    def __post_init__(self) -> None:
        self.anchor_box = self.box.copy()
        self.still_since = self.t

    @property
    def centre(self) -> tuple[float, float]:
        return _centre(self.box)

    @property
    def count_class(self) -> str:
        return self.votes.most_common(1)[0][0]

    def standing(self, t: float) -> bool:
        """A vehicle that has stood still (within jitter) for at least `STILL_S` seconds."""
        return (
            t - self.still_since >= STILL_S
            and self.hits >= 3
            and OBJECT_GROUP[self.count_class] == VEHICLES
        )

    def predicted_centre(self, t: float) -> tuple[float, float]:
        if self.standing(t):
            return self.centre
        cx, cy = self.centre
        dt = t - self.t
        return cx + self.vx * dt, cy + self.vy * dt


class Tracker:
    def __init__(
        self, *, max_age_s: float = 1.6, gate: float = 1.0, class_penalty: float = 0.3
    ) -> None:
        self.max_age_s = max_age_s
        self.gate = gate
        self.class_penalty = class_penalty
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def _cost(self, track: Track, s: Sighting, t: float, stands_in: list[Track]) -> float:
        """`stands_in`: the standing tracks whose place `s` overlaps (`_fits_where_standing`)."""
        sx = (s.box[0] + s.box[2]) / 2
        w = (track.box[2] - track.box[0] + s.box[2] - s.box[0]) / 2 + 1.0
        if _GROUP[s.count_class] != _GROUP[track.count_class]:
            return math.inf  # a truck leaving the frame does not turn into a cyclist
        still = track.standing(t)
        if still and not _fits_where_standing(track, s):
            return math.inf  # a parked car does not drive off with the van passing it
        moving = track.hits >= 3 and abs(track.vx) > 5.0
        if moving:
            # Established motion: a sighting well behind the track's current position would
            # mean reversing, which is what swapping two objects that pass each other looks like.
            behind = (sx - track.centre[0]) * math.copysign(1.0, track.vx)
            if behind < -0.5 * w:
                return math.inf
        cost = _distance(track.predicted_centre(t), track.box, s.box)
        if not still:
            for other in stands_in:
                # Nor does a passing car take the parked car's own box: a box where a vehicle
                # stands is that vehicle's, widened or not. Unless it is the passing vehicle
                # itself, of its size and clearly nearer where it is going than where the other
                # stands: a lorry driving in front of a parked lorry of its size fits where that
                # one stands; given its box, the parked track is dragged over the line and
                # counted in the lorry's place, and the lorry's own track is left on the parked one.
                # A box merging the two lies about halfway, and stays the parked one's.
                assert other.anchor_box is not None
                anchor = other.anchor_box
                if not (
                    moving
                    and _same_size(track.box, s.box)
                    and cost < OWN_BOX_MARGIN * _distance(_centre(anchor), anchor, s.box)
                ):
                    return math.inf
        if track.hits == 1:
            cost /= 2.0  # no velocity yet: search twice as far around the first sighting
        if s.count_class != track.count_class:
            cost += self.class_penalty
        return cost

    def update(self, sightings: list[Sighting], t: float) -> list[Track]:
        """Match this frame's sightings; returns the tracks that were seen in it."""
        tentative_age = min(self.max_age_s, TENTATIVE_AGE_S)
        self.tracks = [
            tr
            for tr in self.tracks
            if t - tr.t <= (self.max_age_s if tr.hits > TENTATIVE_HITS else tentative_age)
        ]
        standing = [tr for tr in self.tracks if tr.standing(t)]
        stands_in = [
            [tr for tr in standing if _fits_where_standing(tr, s, size=False)] for s in sightings
        ]
        pairs = sorted(
            (self._cost(tr, s, t, stands_in[si]), ti, si)
            for ti, tr in enumerate(self.tracks)
            for si, s in enumerate(sightings)
        )
        used_tracks: set[int] = set()
        used_sightings: set[int] = set()
        seen: list[Track] = []
        for cost, ti, si in pairs:
            if cost > self.gate:
                break  # sorted: everything after is further away, or impossible (inf)
            if ti in used_tracks or si in used_sightings:
                continue
            used_tracks.add(ti)
            used_sightings.add(si)
            track, s = self.tracks[ti], sightings[si]
            self._advance(track, s, t)
            seen.append(track)
        for si, s in enumerate(sightings):
            if si not in used_sightings:
                track = Track(next(self._ids), s.box.copy(), t, votes=Counter([s.count_class]))
                self.tracks.append(track)
                seen.append(track)
        return self._drop_duplicates(seen)

    def _drop_duplicates(self, seen: list[Track]) -> list[Track]:
        """One object, one track: a young track born on an object another track follows goes.

        Suppression already leaves one box per object and group, so this only acts when a
        detector's boxes for one object differ more than suppression merges (a second box
        starts a second track); it keeps two tracks from following one object across the
        counting line. Established tracks are left alone: two people passing each other
        overlap too, and both are counted.
        """
        if len(seen) < 2:
            return seen
        boxes = np.stack([tr.box for tr in seen])
        ious = iou_matrix(boxes, boxes)
        inside = _inside_matrix(boxes)
        order = sorted(range(len(seen)), key=lambda i: (-seen[i].hits, seen[i].id))
        dropped: set[int] = set()
        for a_pos, a in enumerate(order):
            if a in dropped:
                continue
            for b in order[a_pos + 1 :]:
                if b in dropped or seen[b].hits > YOUNG_HITS:
                    continue
                group = OBJECT_GROUP[seen[a].count_class]
                if group != OBJECT_GROUP[seen[b].count_class]:
                    continue
                same = ious[a, b] >= DUPLICATE_IOU
                if group == VEHICLES:
                    same = same or max(inside[a, b], inside[b, a]) >= DUPLICATE_INSIDE
                if same:
                    dropped.add(b)
        if not dropped:
            return seen
        gone = {seen[i].id for i in dropped}
        self.tracks = [tr for tr in self.tracks if tr.id not in gone]
        return [tr for i, tr in enumerate(seen) if i not in dropped]

    @staticmethod
    def _advance(track: Track, s: Sighting, t: float) -> None:
        dt = max(t - track.t, 1e-3)
        old = track.centre
        track.prev_centre = old
        track.box = s.box.copy()
        new = track.centre
        vx, vy = (new[0] - old[0]) / dt, (new[1] - old[1]) / dt
        if track.hits == 1:
            track.vx, track.vy = vx, vy
        else:  # smooth: detections jitter by a pixel or two, and overlaps blur a box
            track.vx, track.vy = 0.7 * track.vx + 0.3 * vx, 0.7 * track.vy + 0.3 * vy
        track.t = t
        track.hits += 1
        track.votes[s.count_class] += 1
        assert track.anchor_box is not None
        ax = float(track.anchor_box[0] + track.anchor_box[2]) / 2
        ay = float(track.anchor_box[1] + track.anchor_box[3]) / 2
        width = float(track.box[2] - track.box[0])
        moved = math.hypot(new[0] - ax, new[1] - ay)
        if moved > max(STILL_PX, STILL_SHARE * width):
            track.anchor_box, track.still_since = track.box.copy(), t


def _inside_matrix(boxes: np.ndarray) -> np.ndarray:
    """[i, j]: the share of box j's area that lies inside box i."""
    return np.asarray(intersection_matrix(boxes, boxes) / (box_areas(boxes)[None, :] + 1e-9))


def _same_size(a: np.ndarray, b: np.ndarray) -> bool:
    """Width and height of `b` within `STILL_SIZE` of those of `a`."""
    ratios = (
        (b[2] - b[0]) / max(float(a[2] - a[0]), 1.0),
        (b[3] - b[1]) / max(float(a[3] - a[1]), 1.0),
    )
    return all(1 / STILL_SIZE <= r <= STILL_SIZE for r in ratios)


def _centre(box: np.ndarray) -> tuple[float, float]:
    return float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2


def _distance(at: tuple[float, float], a: np.ndarray, b: np.ndarray) -> float:
    """From `at` to the centre of box `b`, in the mean width and height of boxes `a` and `b`
    (plus a pixel): the tracker's matching cost."""
    w = (a[2] - a[0] + b[2] - b[0]) / 2 + 1.0
    h = (a[3] - a[1] + b[3] - b[1]) / 2 + 1.0
    bx, by = _centre(b)
    return float(np.hypot((bx - at[0]) / w, (by - at[1]) / h))


def _fits_where_standing(track: Track, s: Sighting, *, size: bool = True) -> bool:
    anchor = track.anchor_box
    assert anchor is not None
    if size and not _same_size(anchor, s.box):
        return False
    return bool(iou_matrix(anchor[None], s.box[None])[0, 0] >= STILL_IOU)
