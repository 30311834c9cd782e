"""Conditions that make the synthetic street look more like a real one.

Each is a name for `Scene(conditions=...)` and `sensorpipe count-eval --conditions`:

- `perspective`: the camera hangs higher and looks down the street at a tilt: far rows are
  compressed, near rows magnified (objects grow as they come closer to the camera), and the
  street narrows towards the top (keystone). The counting line x = W/2 stays where it is.
- `crowds`: people walk side by side in pairs, and some linger for a few seconds near the
  counting line before walking on.
- `parked`: parked cars and vans along the far kerb, some across the counting line; they
  never cross it.
- `shadows`: every object casts a shadow on the ground, and buildings shade part of the street.
- `night`: dark and noisy (gain 0.35, gamma 1.6), pools of light under street lights,
  headlights and tail lights on vehicles.
- `rain`: streaks of rain and a grey haze over everything.
- `motion_blur`: moving objects smeared over the exposure (1/25 s).
- `jpeg`: JPEG compression artefacts (quality 30), as from a cheap camera or a re-encoded
  stream.

`DAY` is every condition but night, `ALL` every condition.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CONDITIONS = (
    "perspective",
    "crowds",
    "parked",
    "shadows",
    "night",
    "rain",
    "motion_blur",
    "jpeg",
)
DAY = tuple(c for c in CONDITIONS if c != "night")
EXPOSURE_S = 1 / 25
JPEG_QUALITY = 30
PERSPECTIVE_ROWS = 0.4  # vertical: source rows per output row run from 1.4 (top) to 0.6
PERSPECTIVE_WIDTH = 0.35  # horizontal: source width per output width from 1.35 to 0.65


def parse_conditions(text: str | Iterable[str]) -> frozenset[str]:
    """Names, comma-separated or as a list; `day` and `all` name the groups; `none` nothing."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    out: set[str] = set()
    for name in filter(None, names):
        if name == "none":
            continue
        if name == "day":
            out.update(DAY)
        elif name == "all":
            out.update(CONDITIONS)
        elif name in CONDITIONS:
            out.add(name)
        else:
            raise ValueError(
                f"unknown condition {name!r}: use {', '.join(CONDITIONS)}, 'day', 'all' or 'none'"
            )
    return frozenset(out)


class Perspective:
    """A fixed warp from the side-on scene to a higher, tilted camera's view."""

    def __init__(self, height: int, width: int) -> None:
        self.h, self.w = height, width
        v = np.arange(height, dtype=np.float64)
        u = np.arange(width, dtype=np.float64)
        src_y = self._src_y(v)
        gain = self._gain(v)
        src_x = width / 2 + (u[None, :] - width / 2) * gain[:, None]
        self._map_y = np.clip(np.round(src_y), 0, height - 1).astype(np.intp)[:, None]
        self._map_x = np.clip(np.round(src_x), 0, width - 1).astype(np.intp)
        self._map_y = np.broadcast_to(self._map_y, (height, width))

    def _src_y(self, v: np.ndarray) -> np.ndarray:
        k = PERSPECTIVE_ROWS
        return np.asarray(v * (1 + k) - k * v * v / self.h)

    def _gain(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 + PERSPECTIVE_WIDTH * (1.0 - 2.0 * v / self.h))

    def image(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(image[self._map_y, self._map_x])

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Where a scene point lands in the warped image."""
        k, h = PERSPECTIVE_ROWS, self.h
        # Solve y = v (1 + k) - k v^2 / h for v in [0, h].
        a, b, c = -k / h, 1 + k, -y
        v = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
        gain = float(self._gain(np.array([v]))[0])
        return self.w / 2 + (x - self.w / 2) / gain, float(v)

    def box(self, x1: float, y1: float, x2: float, y2: float) -> tuple[float, ...] | None:
        corners = [self.point(x, y) for x in (x1, x2) for y in (y1, y2)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        bx1, by1 = max(min(xs), 0.0), max(min(ys), 0.0)
        bx2, by2 = min(max(xs), float(self.w)), min(max(ys), float(self.h))
        full = (max(xs) - min(xs)) * (max(ys) - min(ys))
        if bx2 <= bx1 or by2 <= by1 or (bx2 - bx1) * (by2 - by1) < 0.3 * full:
            return None
        return bx1, by1, bx2, by2


def night(image: np.ndarray, light_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark, gamma-crushed, lit by street lights (`light_map`, added after), and noisy."""
    x = image.astype(np.float32) / 255.0
    dark = np.power(x * 0.35, 1.6) * 255.0
    lit = dark * (1.0 + light_map[..., None]) + 40.0 * light_map[..., None]
    lit += rng.normal(0.0, 6.0, image.shape)
    return np.clip(lit, 0, 255).astype(np.uint8)


def street_lights(height: int, width: int, rows: Iterable[int]) -> np.ndarray:
    """Light pools on the pavements: a gain per pixel, up to about 2.5 under each lamp."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    gain = np.zeros((height, width), np.float32)
    for row in rows:
        for lamp_x in range(30, width, 110):
            gain += 2.5 * np.exp(-(((xx - lamp_x) / 28.0) ** 2 + ((yy - row) / 12.0) ** 2))
    return gain


def rain(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey haze and about 120 light, slanted streaks."""
    h, w = image.shape[:2]
    out = image.astype(np.float32) * 0.78 + 0.22 * 175.0
    n = 120
    ys = rng.integers(0, h - 10, n)
    xs = rng.integers(0, w - 4, n)
    lengths = rng.integers(5, 10, n)
    for y, x, length in zip(ys, xs, lengths, strict=True):
        for i in range(int(length)):
            out[y + i, x + i // 3] += 45.0
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is in the dev and camera extras
        raise RuntimeError(
            "the jpeg condition needs OpenCV (pip install 'sensorpipe[camera]')"
        ) from None
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def blur_sprite(rgb: np.ndarray, mask: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A sprite smeared horizontally over `length` pixels: (rgb, alpha in 0..1), wider."""
    h, w = mask.shape
    pad = length - 1
    alpha = np.zeros((h, w + pad), np.float32)
    colour = np.zeros((h, w + pad, 3), np.float32)
    m = mask.astype(np.float32)
    for shift in range(length):
        alpha[:, shift : shift + w] += m
        colour[:, shift : shift + w] += rgb.astype(np.float32) * m[..., None]
    safe = np.maximum(alpha, 1e-6)
    out_rgb = colour / safe[..., None]
    return out_rgb, alpha / length
