"""Where frames come from: a video file, a V4L2 camera, or the Raspberry Pi camera.

Each source yields (time in seconds, HxWx3 RGB uint8 frame). The optional packages are
imported only when a source needs them; a missing one is a clear error that says what to
install. Frames are handed to the counter and never stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from sensorpipe.edge.counting.errors import SourceUnavailable

OPENCV_HINT = "install OpenCV: pip install 'sensorpipe[camera]' (or apt-get install python3-opencv)"
PICAMERA_HINT = "install picamera2 (Raspberry Pi OS: apt-get install python3-picamera2)"


class FrameSource(Protocol):
    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """Frames until the source ends or `close()` is called."""
        ...

    def close(self) -> None: ...


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise SourceUnavailable(f"this frame source needs OpenCV: {OPENCV_HINT}") from None
    return cv2


class OpenCvSource:
    """A video file (`path`) or a V4L2 camera (`device` number or /dev/videoN) via OpenCV."""

    def __init__(
        self,
        *,
        path: str | None = None,
        device: int | str | None = None,
        width: int = 640,
        height: int = 360,
        fps: float = 5.0,
    ) -> None:
        cv2 = _cv2()
        self._cv2 = cv2
        self._live = path is None
        target = path if path is not None else device
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2) if self._live else cv2.VideoCapture(target)
        if not capture.isOpened():
            raise SourceUnavailable(f"cannot open {'camera' if self._live else 'video'} {target}")
        if self._live:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            capture.set(cv2.CAP_PROP_FPS, fps)
        self._capture = capture
        self._period = 1.0 / fps
        self._file_fps = capture.get(cv2.CAP_PROP_FPS) or fps
        self._closed = False

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        index = 0
        started = time.time()
        step = max(1, round(self._file_fps / (1.0 / self._period)))  # subsample a file
        while not self._closed:
            ok, bgr = self._capture.read()
            if not ok:
                return
            index += 1
            if not self._live and (index - 1) % step:
                continue
            t = time.time() if self._live else started + (index - 1) / self._file_fps
            yield t, bgr[:, :, ::-1]

    def close(self) -> None:
        self._closed = True
        self._capture.release()


class PiCameraSource:
    """The Raspberry Pi camera through picamera2, delivering RGB frames of the asked size."""

    def __init__(self, *, width: int = 640, height: int = 360, fps: float = 5.0) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceUnavailable(
                f"the Pi camera source needs picamera2: {PICAMERA_HINT}"
            ) from None
        self._camera = Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (width, height), "format": "RGB888"},
            controls={"FrameRate": fps},
        )
        self._camera.configure(config)
        self._camera.start()
        self._closed = False

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        while not self._closed:
            frame = self._camera.capture_array("main")
            # picamera2's "RGB888" is BGR in memory order.
            yield time.time(), frame[:, :, ::-1]

    def close(self) -> None:
        self._closed = True
        self._camera.stop()
        self._camera.close()
