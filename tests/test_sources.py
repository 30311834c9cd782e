"""Frame sources: a video file through OpenCV, read as RGB at the configured rate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sensorpipe.edge.counting.config import SourceConfig, open_source
from sensorpipe.edge.counting.errors import SourceUnavailable
from sensorpipe.firmware_sim.scenes import Scene


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 180))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))  # OpenCV writes BGR
    writer.release()


def test_video_file_frames_come_back_as_rgb_at_the_configured_rate(tmp_path: Path) -> None:
    originals = [f.image for f in Scene(1010, duration_s=4.0).frames(10.0)]
    path = tmp_path / "street.avi"
    _write_video(path, originals, fps=10.0)
    source = open_source(SourceConfig(kind="video", path=str(path), fps=5.0))
    got = list(source.frames())
    source.close()
    assert len(got) == len(originals) // 2  # a 10 fps file counted at 5 fps
    times = [t for t, _ in got]
    assert np.allclose(np.diff(times), 0.2)
    for (_, frame), original in zip(got, originals[::2], strict=True):
        assert frame.shape == original.shape
        diff = np.abs(frame.astype(int) - original.astype(int)).mean()
        assert diff < 8, diff  # JPEG-compressed, but the same picture in the same channel order
    # Swapped channels would be far off: the red bike lanes are the tell.
    swapped = np.abs(got[0][1][:, :, ::-1].astype(int) - originals[0].astype(int)).mean()
    assert swapped > 15


def test_a_missing_video_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="cannot open video"):
        open_source(SourceConfig(kind="video", path=str(tmp_path / "absent.mp4")))
