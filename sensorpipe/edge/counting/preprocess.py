"""Letterboxing: fit a camera frame into the model's input without distorting it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114  # the grey YOLO models are trained with


@dataclass(frozen=True, slots=True)
class Letterbox:
    scale: float
    pad_x: int
    pad_y: int

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (x1, y1, x2, y2) from model input pixels back to frame pixels."""
        out = boxes.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    try:
        import cv2  # optional: better quality when installed (it is, with the V4L2 extra)

        return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    except ImportError:
        ys = (np.arange(height) * image.shape[0] / height).astype(np.intp)
        xs = (np.arange(width) * image.shape[1] / width).astype(np.intp)
        return image[ys[:, None], xs[None, :]]


def letterbox_image(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, Letterbox]:
    """(HxWx3 uint8 canvas of the model's input size, how to map boxes back)."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_w, new_h = round(w * scale), round(h * scale)
    if (new_w, new_h) != (w, h):
        image = _resize(image, new_w, new_h)
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = image
    return canvas, Letterbox(scale, pad_x, pad_y)


def to_tensor(
    canvas: np.ndarray,
    *,
    pixel_scale: float = 1.0 / 255.0,
    bgr: bool = False,
    channels_last: bool = False,
    dtype: type = np.float32,
) -> np.ndarray:
    """A batch of one in the layout and type the model takes (NCHW or NHWC; float or uint8)."""
    if bgr:
        canvas = canvas[:, :, ::-1]
    batch = canvas[None] if channels_last else canvas.transpose(2, 0, 1)[None]
    if dtype == np.uint8:
        return np.ascontiguousarray(batch)  # models with uint8 input normalise in the graph
    return batch.astype(np.float32) * np.float32(pixel_scale)


def letterbox(
    image: np.ndarray,
    height: int,
    width: int,
    *,
    pixel_scale: float = 1.0 / 255.0,
    bgr: bool = False,
) -> tuple[np.ndarray, Letterbox]:
    """(NCHW float32 tensor, how to map boxes back). `image` is HxWx3 RGB uint8.

    Pixels are multiplied by `pixel_scale` (1/255 for YOLOv5/v8 models, 1.0 for models trained
    on raw values such as YOLOX), and given in BGR order when `bgr` is set.
    """
    canvas, box_map = letterbox_image(image, height, width)
    return to_tensor(canvas, pixel_scale=pixel_scale, bgr=bgr), box_map
