"""Per-frame cost of on-device counting, one inference thread, at the model's input size.

    python -m bench.counting [--frames N] [--model PATH] [--json]

Frames are prepared first (not timed), then the counting pipeline runs over them: letterbox
preprocessing, ONNX inference, decoding with suppression, and tracking with line crossing.
By default, in one process:
- the synthetic street detector, fp32 (the baseline), on 320x180 frames of a held-out
  synthetic street; then its static-int8 version, with ratios to fp32;
- the real-street detector (COCO NanoDet-m 416) on the real clip (768x576 frames of
  vtest.avi, fetched from Debian's opencv-doc), and on the synthetic frames too, for a ratio
  to the baseline on the same input.
With --model, that model alone, on real frames unless its classes are the synthetic ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sensorpipe.edge.counting.clips import fetch_vtest
from sensorpipe.edge.counting.detector import Detector, StageTimes
from sensorpipe.edge.counting.pipeline import CountingPipeline
from sensorpipe.edge.counting.sources import OpenCvSource
from sensorpipe.edge.counting.video import REAL_MODEL, load_spec
from sensorpipe.firmware_sim.count_eval import (
    DEFAULT_MODEL,
    DIRECTIONS,
    FP32_MODEL,
    SHIPPED_CLASS_MAP,
)
from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, Scene

Frames = list[tuple[float, np.ndarray]]


def classes_of(model: Path) -> tuple[list[str], dict[str, str]]:
    if model.name.startswith("street-detector"):
        return list(DETECTOR_CLASSES), SHIPPED_CLASS_MAP
    spec = load_spec(model)
    return spec.classes, spec.class_map


def real_frames(n: int) -> Frames:
    source = OpenCvSource(path=str(fetch_vtest()), fps=5.0)
    frames = []
    for t, image in source.frames():
        frames.append((t, np.ascontiguousarray(image)))
        if len(frames) == n:
            break
    source.close()
    return frames


def measure(model: Path, frames: Frames, threads: int = 1, label: str = "") -> dict[str, Any]:
    classes, class_map = classes_of(model)
    detector = Detector(model, classes, threads=threads)
    pipeline = CountingPipeline(detector, class_map, directions=DIRECTIONS)
    for t, image in frames[:20]:  # warm-up: first runs allocate and tune
        pipeline.process(t, image)
    detector.times = StageTimes()
    pipeline.tracking_s = 0.0
    started = time.perf_counter()
    for t, image in frames[20:]:
        pipeline.process(t + 1e6, image)
    wall = time.perf_counter() - started
    n = len(frames) - 20
    times = detector.times
    per_frame = {
        "preprocess_ms": times.preprocess / n * 1000,
        "inference_ms": times.inference / n * 1000,
        "decode_ms": times.decode / n * 1000,
        "tracking_ms": pipeline.tracking_s / n * 1000,
    }
    h, w = frames[0][1].shape[:2]
    return {
        "model": model.name,
        "frames_of": f"{label} {w}x{h}".strip(),
        "input": [1, 3, detector.input_height, detector.input_width],
        "threads": threads,
        "frames": n,
        **{k: round(v, 3) for k, v in per_frame.items()},
        "total_ms": round(wall / n * 1000, 3),
        "fps": round(n / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="one model to time (default: both shipped detectors, see above)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scene = Scene(1001, duration_s=args.frames / 5.0 + 1)
    synthetic = [(f.time_s, f.image) for f in scene.frames(5.0)][: args.frames]
    rows: list[dict[str, Any]] = []
    if args.model is not None:
        real = classes_of(args.model)[0] != list(DETECTOR_CLASSES)
        frames = real_frames(args.frames) if real else synthetic
        rows.append(measure(args.model, frames, label="real" if real else "synthetic"))
    else:
        base = measure(FP32_MODEL, synthetic, label="synthetic")
        rows.append(base)
        for model, frames, label in (
            (DEFAULT_MODEL, synthetic, "synthetic"),
            (REAL_MODEL, synthetic, "synthetic"),
            (REAL_MODEL, real_frames(args.frames), "real"),
        ):
            row = measure(model, frames, label=label)
            if label == "synthetic":
                row["inference_vs_baseline"] = round(row["inference_ms"] / base["inference_ms"], 3)
                row["fps_vs_baseline"] = round(row["fps"] / base["fps"], 3)
            rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return
    print("one inference thread; baseline: the fp32 synthetic detector on the same frames")
    print(
        f"{'model':28s} {'frames':>16s} {'prep':>6s} {'infer':>6s} {'decode':>6s} "
        f"{'track':>6s} {'total':>6s} {'fps':>6s} {'vs base':>8s}"
    )
    for r in rows:
        ratio = f"{r['fps_vs_baseline']:.2f}x" if "fps_vs_baseline" in r else "-"
        print(
            f"{r['model']:28s} {r['frames_of']:>16s} {r['preprocess_ms']:6.2f} "
            f"{r['inference_ms']:6.2f} {r['decode_ms']:6.2f} {r['tracking_ms']:6.2f} "
            f"{r['total_ms']:6.2f} {r['fps']:6.1f} {ratio:>8s}"
        )


if __name__ == "__main__":
    main()
