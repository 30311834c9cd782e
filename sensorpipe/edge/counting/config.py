"""The `[counting]` section of the edge configuration, and what it builds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sensorpipe.edge.counting.errors import ModelError
from sensorpipe.edge.counting.modelspec import (
    DEFAULT_CONF,
    REAL_MODEL,
    ModelSpec,
    default_class_map,
    load_spec,
    sidecar_of,
    validate_class_map,
)
from sensorpipe.protocol.counting import DIRECTION_PATTERN

if TYPE_CHECKING:  # numpy and ONNX Runtime: imported only when counting is configured
    from sensorpipe.edge.counting.pipeline import CountingPipeline
    from sensorpipe.edge.counting.sources import FrameSource


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    kind: Literal["video", "v4l2", "picamera2"]
    path: str | None = Field(default=None, description="video file, for kind = video")
    device: int | str = Field(default=0, description="V4L2 device number or /dev/videoN")
    width: int = Field(default=640, ge=32, le=4096)
    height: int = Field(default=360, ge=32, le=4096)
    fps: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _video_needs_path(self) -> SourceConfig:
        if self.kind == "video" and not self.path:
            raise ValueError("a video source needs `path`")
        return self


class CountingConfig(_Strict):
    # Default: the shipped COCO detector for real streets (models/coco-nanodet-m-416.onnx).
    model: str = Field(
        default=str(REAL_MODEL),
        description="ONNX detector; relative paths are relative to the config",
    )
    # Default: from the JSON file beside the model (`<name>.json`), as the shipped models have.
    classes: list[str] | None = Field(
        default=None, min_length=1, description="the model's class names, in order"
    )
    class_map: dict[str, str] | None = Field(
        default=None, description="model class -> count class or 'ignore'"
    )
    layout: Literal["auto", "yolov8", "yolov5", "end2end", "tfod"] = "auto"
    # A Pi 4 or 5 has four cores: by default two for inference, the rest for camera and agent.
    threads: int = Field(default=2, ge=1, le=16)
    conf_threshold: float | None = Field(default=None, gt=0, lt=1)  # default: the model's
    iou_threshold: float = Field(default=0.45, gt=0, lt=1)
    # What the model was trained on: pixels scaled by 1/255 (YOLOv5/v8/11, the shipped model)
    # or raw 0..255 (pixel_scale = 1.0, e.g. YOLOX), in RGB or BGR order.
    pixel_scale: float = Field(default=1.0 / 255.0, gt=0, le=1)
    channels: Literal["rgb", "bgr"] = "rgb"
    interval_s: float = Field(default=60.0, ge=10, le=3600)
    # Counting line in frame fractions: x1, y1, x2, y2 (default: a vertical line mid-frame).
    line: tuple[float, float, float, float] = (0.5, 0.0, 0.5, 1.0)
    directions: tuple[str, str] = ("left_to_right", "right_to_left")
    source: SourceConfig

    @model_validator(mode="after")
    def _consistent(self) -> CountingConfig:
        if self.class_map is not None:
            # Targets are checked now; model class names once the model's list is known.
            validate_class_map(self.classes or list(self.class_map), self.class_map)
        if not all(0.0 <= v <= 1.0 for v in self.line):
            raise ValueError("line coordinates are fractions of the frame, between 0 and 1")
        for d in self.directions:
            if not re.match(DIRECTION_PATTERN, d):
                raise ValueError(f"direction name {d!r} must match {DIRECTION_PATTERN}")
        return self


def resolve_model(config: CountingConfig, base_dir: Path) -> ModelSpec:
    """The model path, classes, class map and threshold: from the config, else the sidecar."""
    model = Path(config.model)
    if not model.is_absolute():
        model = base_dir / model
    if config.classes is not None and (
        config.class_map is not None or not sidecar_of(model).is_file()
    ):
        classes = config.classes
        class_map = config.class_map or default_class_map(classes)
        conf = DEFAULT_CONF
    else:
        spec = load_spec(model)
        classes = config.classes or spec.classes
        class_map = config.class_map or spec.class_map
        conf = spec.conf_threshold
    try:
        validate_class_map(classes, class_map)
    except ValueError as exc:
        raise ModelError(f"{model}: {exc}") from exc
    if config.conf_threshold is not None:
        conf = config.conf_threshold
    return ModelSpec(model, classes, class_map, conf)


def build_pipeline(config: CountingConfig, base_dir: Path) -> CountingPipeline:
    from sensorpipe.edge.counting.detector import Detector
    from sensorpipe.edge.counting.pipeline import CountingPipeline

    spec = resolve_model(config, base_dir)
    detector = Detector(
        spec.path,
        spec.classes,
        layout=config.layout,
        threads=config.threads,
        conf_threshold=spec.conf_threshold,
        iou_threshold=config.iou_threshold,
        pixel_scale=config.pixel_scale,
        bgr=config.channels == "bgr",
    )
    return CountingPipeline(
        detector,
        spec.class_map,
        line=config.line,
        directions=config.directions,
        interval_s=config.interval_s,
    )


def open_source(config: SourceConfig) -> FrameSource:
    from sensorpipe.edge.counting.sources import OpenCvSource, PiCameraSource

    if config.kind == "picamera2":
        return PiCameraSource(width=config.width, height=config.height, fps=config.fps)
    if config.kind == "video":
        return OpenCvSource(path=config.path, fps=config.fps)
    return OpenCvSource(
        device=config.device, width=config.width, height=config.height, fps=config.fps
    )
