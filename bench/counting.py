"""Per-frame cost of on-device counting, one inference thread, at the model's input size.

    python -m bench.counting [--frames N] [--model PATH] [--json]

Frames of a held-out synthetic street are rendered first (not timed), then the counting
pipeline runs over them: letterbox preprocessing, ONNX inference, decoding with NMS, and
tracking with line crossing. By default the fp32 model runs first (the baseline), then the
shipped static-int8 model in the same process, with its figures as ratios to fp32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.counting.detector import Detector, StageTimes
from edge.counting.pipeline import CountingPipeline
from firmware_sim.scenes import DETECTOR_CLASSES, Scene
from stack.count_eval import DEFAULT_MODEL, DIRECTIONS, FP32_MODEL, SHIPPED_CLASS_MAP


def measure(
    model: Path, frames: list[tuple[float, np.ndarray]], threads: int = 1
) -> dict[str, Any]:
    detector = Detector(model, list(DETECTOR_CLASSES), threads=threads)
    pipeline = CountingPipeline(detector, SHIPPED_CLASS_MAP, directions=DIRECTIONS)
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
    return {
        "model": model.name,
        "input": [1, 3, detector.input_height, detector.input_width],
        "threads": threads,
        "frames": n,
        **{k: round(v, 3) for k, v in per_frame.items()},
        "total_ms": round(wall / n * 1000, 3),
        "fps": round(n / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=620)
    parser.add_argument(
        "--model",
        type=Path,
        default=FP32_MODEL,
        help="model to time (default: fp32, then the shipped int8 against it)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scene = Scene(1001, duration_s=args.frames / 5.0 + 1)
    frames = [(f.time_s, f.image) for f in scene.frames(5.0)][: args.frames]
    result = measure(args.model, frames)
    if args.model == FP32_MODEL and DEFAULT_MODEL.exists():
        quantized = measure(DEFAULT_MODEL, frames)
        quantized["inference_vs_fp32"] = round(
            quantized["inference_ms"] / result["inference_ms"], 3
        )
        quantized["fps_vs_fp32"] = round(quantized["fps"] / result["fps"], 3)
        result["int8"] = quantized
    if args.json:
        print(json.dumps(result))
        return
    rows = [result] + ([result["int8"]] if "int8" in result else [])
    print(f"{len(frames) - 20} frames of 320x180, one inference thread")
    print(
        f"{'model':34s} {'prep':>6s} {'infer':>6s} {'decode':>6s} {'track':>6s} "
        f"{'total':>6s} {'fps':>6s}"
    )
    for r in rows:
        print(
            f"{r['model']:34s} {r['preprocess_ms']:6.2f} {r['inference_ms']:6.2f} "
            f"{r['decode_ms']:6.2f} {r['tracking_ms']:6.2f} {r['total_ms']:6.2f} {r['fps']:6.1f}"
        )
    if "int8" in result:
        q = result["int8"]
        print(
            f"int8 vs fp32: inference {q['inference_vs_fp32']:.2f}x the time, "
            f"{q['fps_vs_fp32']:.2f}x the frames per second"
        )


if __name__ == "__main__":
    main()
