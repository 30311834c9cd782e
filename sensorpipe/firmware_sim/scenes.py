"""Synthetic street scenes for the counting pipeline: frames, boxes and true line crossings.

A fixed camera looks across a street: two sidewalks, two bike lanes and two road lanes at
different depths (far lanes are smaller and drawn first, so near traffic occludes them).
People, cyclists, cars and trucks cross the frame at varied speeds in both directions.
Lighting drifts and jumps (clouds), and every frame gets sensor noise. Everything follows from
the seed: the same seed gives the same frames, the same boxes and the same crossings.

Ground truth:
- `Frame.boxes`: for training, the visible objects as detector classes (a cyclist is a
  person box plus a bicycle box, as in COCO); objects less than 30 % visible are left out.
- `Scene.crossings()`: when each object's centre crosses the counting line, in which
  direction, as a count class.

Seeds 0-999 are for training; evaluation uses seeds from 1000 up, never seen in training.

`conditions` (see conditions.py) add what real streets have: perspective, people in pairs
and lingering, parked vehicles, shadows, night, rain, motion blur and JPEG artefacts. The
objects of a seed do not change when conditions are added; what the conditions add comes from
a second random stream of the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from sensorpipe.firmware_sim import conditions as cond

WIDTH, HEIGHT = 320, 180
DETECTOR_CLASSES = ("person", "bicycle", "car", "truck")
MIN_VISIBLE = 0.3
LEFT_TO_RIGHT, RIGHT_TO_LEFT = "left_to_right", "right_to_left"

Color = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    baseline: int  # image row of the ground line
    scale: float  # perspective: far lanes are smaller
    kinds: tuple[str, ...]
    direction: int  # +1 left to right, -1 right to left, 0 both


LANES = (
    Lane("far_sidewalk_a", 60, 0.72, ("pedestrian",), -1),
    Lane("far_sidewalk_b", 66, 0.74, ("pedestrian",), 1),
    Lane("far_bike", 78, 0.8, ("cyclist",), 0),
    Lane("far_road", 102, 0.88, ("car", "truck"), -1),
    Lane("near_road", 130, 0.96, ("car", "truck"), 1),
    Lane("near_bike", 150, 1.0, ("cyclist",), 0),
    Lane("near_sidewalk_a", 166, 1.04, ("pedestrian",), 1),
    Lane("near_sidewalk_b", 174, 1.08, ("pedestrian",), -1),
)
# Parked vehicles stand along the far kerb, between the far bike lane and the far road lane.
PARKING = Lane("parking", 92, 0.84, ("car", "truck"), 0)
PAVEMENT_ROWS = (63, 170)  # where the street lights shine
# Arrivals per lane per minute, and speeds in pixels per second at scale 1.
RATES = {"pedestrian": 2.0, "cyclist": 2.0, "car": 3.5, "truck": 0.7}
SPEEDS = {
    "pedestrian": (12.0, 20.0),
    "cyclist": (38.0, 60.0),
    "car": (70.0, 130.0),
    "truck": (60.0, 95.0),
}


@dataclass(frozen=True, slots=True)
class Box:
    cls: int  # index in DETECTOR_CLASSES
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Crossing:
    time_s: float
    count_class: str
    direction: str
    # Behind parked vehicles on one side of the line all the way up to it: a camera at this spot
    # cannot see it come (or go), so cannot see it cross. Evaluation neither asks for it nor
    # holds it against a count (an ignore region, as in KITTI's and MOTChallenge's truth).
    hidden: bool = False


@dataclass
class Frame:
    time_s: float
    image: np.ndarray  # HEIGHT x WIDTH x 3, uint8, RGB
    boxes: list[Box]


@dataclass
class _Part:
    cls: int | None  # detector class this part is labelled as, None for unlabelled parts
    dx: int
    dy: int
    rgb: np.ndarray  # h x w x 3
    mask: np.ndarray  # h x w bool


@dataclass
class _Object:
    kind: str  # count class in the making: pedestrian, cyclist, car, truck
    lane: Lane
    t0: float  # time its centre is at x0
    x0: float
    speed: float  # px/s, signed
    width: int
    parts: list[_Part]
    step_parts: list[_Part] | None = None  # alternate walking pose
    pause_x: float | None = None  # lingering: stands still here ...
    pause_s: float = 0.0  # ... this long
    baseline_dy: int = 0  # walking beside someone: a little nearer the camera

    def centre_x(self, t: float) -> float:
        if self.speed == 0:
            return self.x0
        if self.pause_x is None:
            return self.x0 + self.speed * (t - self.t0)
        reach = self.t0 + (self.pause_x - self.x0) / self.speed
        if t < reach:
            return self.x0 + self.speed * (t - self.t0)
        if t < reach + self.pause_s:
            return self.pause_x
        return self.x0 + self.speed * (t - self.t0 - self.pause_s)

    def time_at(self, x: float) -> float:
        """When the centre reaches x (moving objects only)."""
        t = self.t0 + (x - self.x0) / self.speed
        if (
            self.pause_x is not None
            and (self.pause_x - self.x0) / self.speed < (x - self.x0) / self.speed
        ):
            t += self.pause_s
        return t

    @property
    def moving(self) -> bool:
        return self.speed != 0

    def count_class(self) -> str:
        return "heavy_vehicle" if self.kind == "truck" else self.kind


# --- sprites -------------------------------------------------------------------------------
def _canvas(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)


def _rect(rgb: np.ndarray, mask: np.ndarray, y0: int, y1: int, x0: int, x1: int, c: Color) -> None:
    rgb[y0:y1, x0:x1] = c
    mask[y0:y1, x0:x1] = True


def _disc(
    rgb: np.ndarray, mask: np.ndarray, cy: float, cx: float, r: float, c: Color, ring: float = 0.0
) -> None:
    yy, xx = np.ogrid[: rgb.shape[0], : rgb.shape[1]]
    d = np.hypot(yy - cy, xx - cx)
    m = (d <= r) & (d >= r - ring) if ring else d <= r
    rgb[m] = c
    mask |= m


def _line(
    rgb: np.ndarray,
    mask: np.ndarray,
    p: tuple[float, float],
    q: tuple[float, float],
    c: Color,
    width: int = 1,
) -> None:
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) * 2 + 2
    ys = np.linspace(p[0], q[0], n).round().astype(int)
    xs = np.linspace(p[1], q[1], n).round().astype(int)
    for oy in range(width):
        y = np.clip(ys + oy, 0, rgb.shape[0] - 1)
        x = np.clip(xs, 0, rgb.shape[1] - 1)
        rgb[y, x] = c
        mask[y, x] = True


def _clothes(rng: np.random.Generator) -> tuple[Color, Color, Color]:
    skin = tuple(int(v) for v in rng.choice([[233, 192, 160], [198, 134, 94], [120, 80, 55]]))
    shirt = tuple(int(v) for v in rng.integers(20, 236, 3))
    pants = tuple(int(v) for v in rng.integers(10, 120, 3))
    return skin, shirt, pants


def _person(s: float, clothes: tuple[Color, Color, Color], seated: bool, step: bool) -> _Part:
    h, w = max(12, round(30 * s)), max(6, round(11 * s))
    rgb, mask = _canvas(h, w)
    skin, shirt, pants = clothes
    head = max(2.0, 2.8 * s)
    _disc(rgb, mask, head + 0.5, w / 2 - 0.5, head, skin)
    torso_top, torso_bottom = round(2 * head + 1), round(h * (0.62 if not seated else 0.66))
    _rect(rgb, mask, torso_top, torso_bottom, round(w * 0.15), round(w * 0.85), shirt)
    leg_w = max(2, round(w * 0.3))
    if seated:  # knees forward to the pedals
        _rect(rgb, mask, torso_bottom - 2, torso_bottom + 2, round(w * 0.2), w, pants)
        _rect(rgb, mask, torso_bottom, h, w - leg_w, w, pants)
    elif step:
        _line(rgb, mask, (torso_bottom, w * 0.35), (h - 1, 0), pants, leg_w)
        _line(rgb, mask, (torso_bottom, w * 0.65), (h - 1, w - 1), pants, leg_w)
    else:
        _rect(rgb, mask, torso_bottom, h, round(w * 0.2), round(w * 0.2) + leg_w, pants)
        _rect(rgb, mask, torso_bottom, h, round(w * 0.8) - leg_w, round(w * 0.8), pants)
    return _Part(0, 0, 0, rgb, mask)


def _bicycle(rng: np.random.Generator, s: float) -> _Part:
    h, w = max(8, round(16 * s)), max(14, round(28 * s))
    rgb, mask = _canvas(h, w)
    frame_c = tuple(int(v) for v in rng.integers(30, 230, 3))
    r = h / 2 - 0.5
    for cx in (r, w - 1 - r):
        _disc(rgb, mask, h - 1 - r, cx, r, (25, 25, 25), ring=max(1.2, 1.6 * s))
    _line(rgb, mask, (h - 1 - r, r), (h * 0.25, w * 0.45), frame_c, 2)
    _line(rgb, mask, (h * 0.25, w * 0.45), (h - 1 - r, w - 1 - r), frame_c, 2)
    _line(rgb, mask, (h - 1 - r, r), (h - 1 - r, w * 0.55), frame_c, 2)
    _line(rgb, mask, (h * 0.2, w * 0.75), (h - 1 - r, w - 1 - r), frame_c, 2)
    return _Part(1, 0, 0, rgb, mask)


def _vehicle(rng: np.random.Generator, s: float, truck: bool, facing: int) -> _Part:
    if truck:
        h, w = round(46 * s), round(112 * s)
    else:
        h, w = round(26 * s), round(round(rng.uniform(54, 66)) * s)
    rgb, mask = _canvas(h, w)
    paint = tuple(int(v) for v in rng.integers(15, 240, 3))
    glass: Color = (150, 185, 205)
    wheel_r = max(3.0, (7.0 if truck else 5.0) * s)
    body_bottom = h - round(wheel_r * 0.8)
    if truck:
        cab_w = round(w * 0.22)
        box_c = tuple(int(v) for v in rng.integers(120, 250, 3))
        _rect(rgb, mask, 0, body_bottom, 0, w - cab_w - 2, box_c)
        _rect(rgb, mask, round(h * 0.3), body_bottom, w - cab_w, w, paint)
        _rect(rgb, mask, round(h * 0.36), round(h * 0.55), w - cab_w + 3, w - 3, glass)
        wheels: tuple[float, ...] = (wheel_r + 3, w * 0.45, w - cab_w * 0.5)
    else:
        _rect(rgb, mask, round(h * 0.45), body_bottom, 0, w, paint)
        _rect(rgb, mask, 0, round(h * 0.48), round(w * 0.22), round(w * 0.78), paint)
        _rect(rgb, mask, round(h * 0.12), round(h * 0.45), round(w * 0.27), round(w * 0.48), glass)
        _rect(rgb, mask, round(h * 0.12), round(h * 0.45), round(w * 0.52), round(w * 0.73), glass)
        wheels = (w * 0.2, w * 0.8)
    for cx in wheels:
        _disc(rgb, mask, h - 1 - wheel_r, cx, wheel_r, (20, 20, 20))
    if facing < 0:
        rgb, mask = rgb[:, ::-1].copy(), mask[:, ::-1].copy()
    return _Part(3 if truck else 2, 0, 0, rgb, mask)


def _make_object(rng: np.random.Generator, kind: str, lane: Lane, t: float) -> _Object:
    direction = lane.direction or int(rng.choice([-1, 1]))
    lo, hi = SPEEDS[kind]
    speed = direction * rng.uniform(lo, hi) * lane.scale
    s = lane.scale * rng.uniform(0.92, 1.08)
    step_parts = None
    if kind == "pedestrian":
        clothes = _clothes(rng)
        parts = [_person(s, clothes, seated=False, step=False)]
        step_parts = [_person(s, clothes, seated=False, step=True)]
    elif kind == "cyclist":
        bike = _bicycle(rng, s)
        rider = _person(s * 0.95, _clothes(rng), seated=True, step=False)
        rider.dx = round(bike.rgb.shape[1] * 0.3)
        rider.dy = -rider.rgb.shape[0] + round(bike.rgb.shape[0] * 0.55)
        if direction < 0:
            bike.rgb, bike.mask = bike.rgb[:, ::-1].copy(), bike.mask[:, ::-1].copy()
            rider.rgb, rider.mask = rider.rgb[:, ::-1].copy(), rider.mask[:, ::-1].copy()
            rider.dx = bike.rgb.shape[1] - rider.dx - rider.rgb.shape[1]
        parts = [bike, rider]
    else:
        parts = [_vehicle(rng, s, kind == "truck", direction)]
    left = min(p.dx for p in parts)
    right = max(p.dx + p.rgb.shape[1] for p in parts)
    width = right - left
    # Enter just outside the frame so that the object is seen whole before the line.
    x0 = -width / 2 - 2 if direction > 0 else WIDTH + width / 2 + 2
    return _Object(kind, lane, t, x0, speed, width, parts, step_parts)


# --- the scene -----------------------------------------------------------------------------
class Scene:
    """A deterministic street; `frames(fps, seconds)` renders it, `crossings()` tells the truth."""

    def __init__(
        self,
        seed: int,
        *,
        line_x: float = WIDTH / 2,
        duration_s: float = 900.0,
        traffic: float = 1.0,
        conditions: str | Iterable[str] = (),
    ) -> None:
        self.seed = seed
        self.line_x = line_x
        self.duration_s = duration_s
        self.conditions = cond.parse_conditions(conditions)
        rng = np.random.default_rng(seed)
        extra = np.random.default_rng([seed, 7])  # what conditions add; the base stays as is
        self._background = self._draw_background(rng)
        self._noise = rng.normal(0.0, 4.0, (4, HEIGHT, WIDTH, 3)).astype(np.int16)
        self._light = self._lighting(rng, duration_s)
        self.objects = self._traffic(rng, duration_s, traffic)
        if "crowds" in self.conditions:
            self.objects = self._crowds(extra, self.objects)
        if "parked" in self.conditions:
            self.objects = self._parked(extra) + self.objects
        if "shadows" in self.conditions:
            self._background = self._building_shadows(extra, self._background)
        self._perspective = (
            cond.Perspective(HEIGHT, WIDTH) if "perspective" in self.conditions else None
        )
        self._street_lights = cond.street_lights(HEIGHT, WIDTH, PAVEMENT_ROWS)
        self._blurred: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _crowds(self, rng: np.random.Generator, objects: list[_Object]) -> list[_Object]:
        """Some people walk in pairs; some linger near the counting line."""
        out = []
        for o in objects:
            out.append(o)
            if o.kind != "pedestrian":
                continue
            if rng.random() < 0.3:
                side = 1 if rng.random() < 0.5 else -1
                offset = rng.uniform(0.3, 0.9) * o.width * side
                mate = _make_object(rng, "pedestrian", o.lane, o.t0)
                mate.x0, mate.speed = o.x0 + offset, o.speed
                mate.baseline_dy = 3
                out.append(mate)
            if rng.random() < 0.2:
                toward = 1 if o.speed > 0 else -1
                o.pause_x = self.line_x + toward * rng.uniform(-40.0, 40.0)
                o.pause_s = float(rng.uniform(2.0, 8.0))
        for o in out:  # a pair lingers together
            if o.baseline_dy:
                lead = next(p for p in out if p.lane is o.lane and p.t0 == o.t0 and p is not o)
                if lead.pause_x is not None:
                    o.pause_x = lead.pause_x + (o.x0 - lead.x0)
                    o.pause_s = lead.pause_s
        out.sort(key=lambda o: o.t0)
        return out

    def _parked(self, rng: np.random.Generator) -> list[_Object]:
        parked = []
        x = float(rng.uniform(-30, 20))
        while x < WIDTH + 30:
            kind = "truck" if rng.random() < 0.25 else "car"
            o = _make_object(rng, kind, PARKING, 0.0)
            o.speed, o.x0 = 0.0, x + o.width / 2
            parked.append(o)
            x += o.width + float(rng.uniform(4, 60))
        return parked

    @staticmethod
    def _building_shadows(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
        """Diagonal shade cast by the buildings over part of the street."""
        out = background.astype(np.float32)
        yy, xx = np.mgrid[:HEIGHT, :WIDTH]
        for _ in range(2):
            x0 = rng.uniform(0, WIDTH)
            width = rng.uniform(40, 90)
            slant = rng.uniform(0.4, 0.9)
            inside = (xx - x0 - slant * (yy - 56) >= 0) & (xx - x0 - slant * (yy - 56) < width)
            out[inside & (yy >= 56)] *= 0.62
        return np.clip(out, 0, 255).astype(np.uint8)

    def _draw_background(self, rng: np.random.Generator) -> np.ndarray:
        img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        img[:] = (170, 190, 205)
        x = 0
        while x < WIDTH:  # facades with windows
            w = int(rng.integers(40, 90))
            top = int(rng.integers(0, 25))
            wall = rng.integers(90, 200, 3)
            img[top:56, x : x + w] = wall
            for wy in range(top + 5, 50, 12):
                for wx in range(x + 5, x + w - 8, 14):
                    img[wy : wy + 7, wx : wx + 8] = rng.integers(40, 110, 3)
            x += w
        img[56:70] = (150, 150, 145)  # far sidewalk
        img[70:80] = (165, 95, 85)  # far bike lane
        img[80:134] = (70, 72, 75)  # road
        img[106:108, ::24] = (220, 220, 220)
        for dx in range(1, 12):
            img[106:108, dx::24] = (220, 220, 220)
        img[134:152] = (165, 95, 85)  # near bike lane
        img[152:] = (155, 155, 150)  # near sidewalk
        texture = rng.normal(0.0, 5.0, (HEIGHT, WIDTH, 1))
        return np.clip(img.astype(np.float32) + texture, 0, 255).astype(np.uint8)

    @staticmethod
    def _lighting(rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """Brightness per second: slow drift plus sudden cloud shadows."""
        n = int(duration_s) + 2
        t = np.arange(n)
        level = 0.95 + 0.15 * np.sin(t / 97.0 + rng.uniform(0, math.tau))
        clouds = np.ones(n)
        start = 0
        while start < n:
            start += int(rng.integers(20, 90))
            length = int(rng.integers(5, 40))
            clouds[start : start + length] = rng.uniform(0.6, 0.85)
        return (level * clouds).astype(np.float32)

    def _traffic(
        self, rng: np.random.Generator, duration_s: float, traffic: float
    ) -> list[_Object]:
        objects: list[_Object] = []
        for lane in LANES:
            for kind in lane.kinds:
                rate = RATES[kind] * traffic / 60.0 / (2 if lane.kinds == ("car", "truck") else 1)
                t = float(rng.exponential(1 / rate))
                while t < duration_s:
                    objects.append(_make_object(rng, kind, lane, t))
                    t += float(rng.exponential(1 / rate))
        objects.sort(key=lambda o: o.t0)
        return self._keep_apart(objects)

    @staticmethod
    def _keep_apart(objects: list[_Object]) -> list[_Object]:
        """No object drives through another in its own lane and direction: wait or slow down."""
        last: dict[tuple[str, int], _Object] = {}
        for o in objects:
            key = (o.lane.name, 1 if o.speed > 0 else -1)
            ahead = last.get(key)
            if ahead is not None:
                # Enter no earlier than when the rear of the one ahead is 6 px past the
                # entry point (both enter with their centre half their width outside) ...
                o.t0 = max(o.t0, ahead.t0 + (ahead.width + 6) / abs(ahead.speed))
                # ... and, while it is still in view, do not drive faster than it.
                leaves = ahead.t0 + (WIDTH + ahead.width + 4) / abs(ahead.speed)
                if o.t0 < leaves and abs(o.speed) > abs(ahead.speed):
                    o.speed = ahead.speed
            last[key] = o
        return objects

    def crossings(self) -> list[Crossing]:
        out = []
        parked = self._parked_mask()
        for o in self.objects:
            if not o.moving:
                continue  # parked
            t = o.time_at(self.line_x)
            if 0 <= t < self.duration_s:
                direction = LEFT_TO_RIGHT if o.speed > 0 else RIGHT_TO_LEFT
                hidden = parked is not None and self._hidden_at_line(o, parked)
                out.append(Crossing(t, o.count_class(), direction, hidden))
        out.sort(key=lambda c: c.time_s)
        return out

    def _parked_mask(self) -> np.ndarray | None:
        """Pixels covered by parked vehicles (they never move), or None without any."""
        parked = [o for o in self.objects if not o.moving]
        if not parked:
            return None
        mask = np.zeros((HEIGHT, WIDTH), bool)
        for o in parked:
            for x, y, p in self._placed(o, self.line_x if o.moving else o.x0):
                self._paint(mask, p.mask, x, y)
        return mask

    def _hidden_at_line(self, o: _Object, parked: np.ndarray) -> bool:
        """On one side of the line, less than MIN_VISIBLE of it (the share below which it has
        no truth box either) shows at every point from half to one and a half widths away."""
        if o.lane.baseline + o.baseline_dy >= PARKING.baseline:
            return False  # drawn in front of the parking lane
        step = max(6.0, 0.5 * o.width)
        for side in (-1, 1):
            shares = []
            for k in (1, 2, 3):
                total = seen = 0
                for x, y, p in self._placed(o, self.line_x + side * k * step):
                    covered = np.zeros((HEIGHT, WIDTH), bool)
                    self._paint(covered, p.mask, x, y)
                    total += int(p.mask.sum())
                    seen += int((covered & ~parked).sum())
                shares.append(seen / total if total else 0.0)
            if max(shares) < MIN_VISIBLE:
                return True
        return False

    @staticmethod
    def _placed(o: _Object, centre_x: float) -> list[tuple[int, int, _Part]]:
        left = round(centre_x - o.width / 2)
        bottom = o.lane.baseline + o.baseline_dy
        base_h = o.parts[0].rgb.shape[0]
        return [(left + p.dx, bottom - base_h + p.dy, p) for p in o.parts]

    @staticmethod
    def _paint(target: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
        h, w = mask.shape
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, WIDTH), min(y + h, HEIGHT)
        if x0 < x1 and y0 < y1:
            target[y0:y1, x0:x1] |= mask[y0 - y : y1 - y, x0 - x : x1 - x]

    def render(self, t: float, frame_index: int = 0) -> Frame:
        light = self._light[min(int(t), len(self._light) - 1)]
        image = self._background.copy()
        owner = np.full((HEIGHT, WIDTH), -1, np.int32)
        drawn: list[tuple[int, _Part, int, int]] = []
        lamps: list[tuple[float, float, int]] = []  # headlights: x, y, +1 white / -1 red
        visible = [o for o in self.objects if abs(o.centre_x(t) - WIDTH / 2) < WIDTH / 2 + o.width]
        visible.sort(key=lambda o: o.lane.baseline + o.baseline_dy)  # far first
        blur = "motion_blur" in self.conditions
        for o in visible:
            parts = o.parts
            if o.step_parts is not None and int(abs(o.centre_x(t)) / 6) % 2:
                parts = o.step_parts
            left = round(o.centre_x(t) - o.width / 2)
            bottom = o.lane.baseline + o.baseline_dy
            if "shadows" in self.conditions:
                self._shadow(image, left, bottom, o.width, o.lane.scale)
            base_h = parts[0].rgb.shape[0]
            # Moving right now: a lingering person standing still is not smeared.
            moving = o.centre_x(t) != o.centre_x(t - cond.EXPOSURE_S)
            length = round(abs(o.speed) * cond.EXPOSURE_S) if blur and moving else 0
            for p in parts:
                x = left + p.dx
                y = bottom - base_h + p.dy
                if length > 1:
                    ok = self._blit_blurred(image, owner, p, x, y, len(drawn), length, o.speed)
                else:
                    ok = self._blit(image, owner, p, x, y, len(drawn))
                if ok:
                    drawn.append((len(drawn), p, x, y))
            if o.kind in ("car", "truck") and o.moving:
                h = parts[0].rgb.shape[0]
                front = left + (o.width if o.speed > 0 else 0)
                back = left + (0 if o.speed > 0 else o.width)
                lamps.append((front, bottom - 0.35 * h, 1))
                lamps.append((back, bottom - 0.4 * h, -1))
        boxes = self._boxes(owner, drawn)
        if "night" in self.conditions:
            rng = np.random.default_rng([self.seed, frame_index, 3])
            image = cond.night(image, self._street_lights, rng)
            image = self._headlights(image, lamps)
        else:
            lit = image.astype(np.int16)
            lit = (lit * light).astype(np.int16) + self._noise[frame_index % len(self._noise)]
            image = np.clip(lit, 0, 255).astype(np.uint8)
        if self._perspective is not None:
            image = self._perspective.image(image)
            boxes = self._warp_boxes(boxes)
        if "rain" in self.conditions:
            image = cond.rain(image, np.random.default_rng([self.seed, frame_index, 5]))
        if "jpeg" in self.conditions:
            image = cond.jpeg(image)
        return Frame(t, image, boxes)

    def _warp_boxes(self, boxes: list[Box]) -> list[Box]:
        assert self._perspective is not None
        out = []
        for b in boxes:
            warped = self._perspective.box(b.x1, b.y1, b.x2, b.y2)
            if warped is not None:
                out.append(Box(b.cls, *warped))
        return out

    @staticmethod
    def _shadow(image: np.ndarray, left: int, bottom: int, width: int, scale: float) -> None:
        """A soft, flat shadow on the ground, cast a little to the right."""
        cx, cy = left + width / 2 + 5 * scale, bottom - 1
        rx, ry = width * 0.6, max(2.0, 3.5 * scale)
        y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, HEIGHT)
        x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, WIDTH)
        if y0 >= y1 or x0 >= x1:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        shade = np.where(d < 1.0, 0.55 + 0.45 * d, 1.0)
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * shade[..., None]).astype(np.uint8)

    @staticmethod
    def _headlights(image: np.ndarray, lamps: list[tuple[float, float, int]]) -> np.ndarray:
        out = image.astype(np.float32)
        yy, xx = np.mgrid[:HEIGHT, :WIDTH].astype(np.float32)
        for x, y, kind in lamps:
            if not -20 < x < WIDTH + 20:
                continue
            d2 = (xx - x) ** 2 + (yy - y) ** 2
            if kind > 0:
                out += (255.0 * np.exp(-d2 / 6.0))[..., None]
                out += (60.0 * np.exp(-d2 / 300.0))[..., None]  # glow on the road
            else:
                out[..., 0] += 200.0 * np.exp(-d2 / 4.0)
        return np.clip(out, 0, 255).astype(np.uint8)

    def _blit_blurred(
        self,
        image: np.ndarray,
        owner: np.ndarray,
        p: _Part,
        x: int,
        y: int,
        ident: int,
        length: int,
        speed: float,
    ) -> bool:
        key = (id(p), length)
        if key not in self._blurred:
            self._blurred[key] = cond.blur_sprite(p.rgb, p.mask, length)
        rgb, alpha = self._blurred[key]
        if speed > 0:
            x -= length - 1  # the smear trails behind
        h, w = alpha.shape
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, WIDTH), min(y + h, HEIGHT)
        if x0 >= x1 or y0 >= y1:
            return False
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        c = rgb[y0 - y : y1 - y, x0 - x : x1 - x]
        region = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = (region * (1 - a[..., None]) + c * a[..., None]).astype(np.uint8)
        owner[y0:y1, x0:x1][a > 0.5] = ident
        return True

    @staticmethod
    def _blit(image: np.ndarray, owner: np.ndarray, p: _Part, x: int, y: int, ident: int) -> bool:
        h, w = p.mask.shape
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, WIDTH), min(y + h, HEIGHT)
        if x0 >= x1 or y0 >= y1:
            return False
        m = p.mask[y0 - y : y1 - y, x0 - x : x1 - x]
        region = image[y0:y1, x0:x1]
        region[m] = p.rgb[y0 - y : y1 - y, x0 - x : x1 - x][m]
        owner[y0:y1, x0:x1][m] = ident
        return True

    @staticmethod
    def _boxes(owner: np.ndarray, drawn: list[tuple[int, _Part, int, int]]) -> list[Box]:
        boxes = []
        counts = np.bincount(owner[owner >= 0].ravel(), minlength=len(drawn))
        for ident, p, x, y in drawn:
            if p.cls is None:
                continue
            h, w = p.mask.shape
            total = int(p.mask.sum())
            # Visible share of the whole sprite: cut off by the frame edge or by nearer traffic.
            if total == 0 or counts[ident] / total < MIN_VISIBLE:
                continue
            x1, y1 = max(x, 0), max(y, 0)
            x2, y2 = min(x + w, WIDTH), min(y + h, HEIGHT)
            boxes.append(Box(p.cls, float(x1), float(y1), float(x2), float(y2)))
        return boxes

    def frames(
        self, fps: float, seconds: float | None = None, start_s: float = 0.0
    ) -> Iterator[Frame]:
        end = self.duration_s if seconds is None else min(self.duration_s, start_s + seconds)
        i = 0
        while (t := start_s + i / fps) < end:
            yield self.render(t, i)
            i += 1
