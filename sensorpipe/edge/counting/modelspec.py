"""A detector file and what goes with it: its class list, class map and threshold.

A model may carry a JSON file beside it (`<name>.json`, as the shipped models do) with
`classes` (its class names in id order) and optionally `class_map` and `conf_threshold`.
Without a class map, well-known names (person, bicycle, car, motorcycle, bus, truck) are
mapped to count classes and everything else is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sensorpipe.edge.counting.errors import ModelError
from sensorpipe.protocol.counting import COUNT_CLASSES
from sensorpipe.resources import MODELS

# The class map's target for a model class that is not counted.
IGNORE = "ignore"


def validate_class_map(class_names: list[str], class_map: dict[str, str]) -> None:
    unknown = [c for c in class_map.values() if c != IGNORE and c not in COUNT_CLASSES]
    if unknown:
        raise ValueError(
            f"class_map targets {unknown} are not count classes: use {', '.join(COUNT_CLASSES)} "
            f"or {IGNORE!r}"
        )
    missing = [c for c in class_map if c not in class_names]
    if missing:
        raise ValueError(f"class_map names {missing}, which the model does not have")


# COCO-trained NanoDet-m (training/convert_nanodet.py): the detector for real cameras.
REAL_MODEL = MODELS / "coco-nanodet-m-416.onnx"
DEFAULT_CLASS_MAP = {
    "person": "pedestrian",
    "pedestrian": "pedestrian",
    "bicycle": "cyclist",
    "cyclist": "cyclist",
    "car": "car",
    "motorcycle": "motorcycle",
    "motorbike": "motorcycle",
    "bus": "heavy_vehicle",
    "truck": "heavy_vehicle",
}
DEFAULT_CONF = 0.35


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    classes: list[str]
    class_map: dict[str, str]
    conf_threshold: float = DEFAULT_CONF


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name.split(".")[0] + ".json")


def load_spec(path: Path) -> ModelSpec:
    """The model and the class list from the JSON file beside it."""
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        raise ModelError(
            f'{path}: no class list; write {sidecar} with {{"classes": [...]}} (the model\'s '
            f'class names in id order) and optionally "class_map", or give `classes` in the '
            f"counting config"
        )
    try:
        card = json.loads(sidecar.read_text())
        classes = [str(c) for c in card["classes"]]
        conf = float(card.get("conf_threshold", DEFAULT_CONF))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{sidecar}: not a class list ({exc})") from exc
    class_map = card.get("class_map") or default_class_map(classes)
    if not any(v != IGNORE for v in class_map.values()):
        raise ModelError(f"{sidecar}: no model class maps to a count class")
    return ModelSpec(path, classes, dict(class_map), conf)


def default_class_map(classes: list[str]) -> dict[str, str]:
    return {name: DEFAULT_CLASS_MAP[name] for name in classes if name in DEFAULT_CLASS_MAP}
