"""Counting accuracy on the synthetic street under each condition, per class.

    python -m bench.conditions [--seed 2000] [--minutes 15] [--model PATH ...] [--json]

For each model (default: the shipped synthetic detector) and each condition (none, each of
perspective, crowds, parked, shadows, night, rain, motion_blur, jpeg, then all day conditions
together), count a held-out street and print the per-class WAPE over one interval of the whole
sequence, with the true number of crossings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware_sim.conditions import CONDITIONS
from stack.count_eval import DEFAULT_MODEL, evaluate

RUNS = ("none", *CONDITIONS, "day")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--conditions", default=",".join(RUNS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = args.model or [DEFAULT_MODEL]
    rows: list[dict[str, Any]] = []
    for model in models:
        for run in args.conditions.split(","):
            result = evaluate(
                args.seed, args.minutes, model=model, interval_minutes=args.minutes, conditions=run
            )
            row = {
                "model": model.name,
                "conditions": run,
                "wape": {k: c.wape for k, c in result.classes.items()},
                "true": {k: sum(c.true.values()) for k, c in result.classes.items()},
                "processing_fps": round(result.frames / result.seconds, 1),
            }
            rows.append(row)
            if not args.json:
                cells = "  ".join(
                    f"{k} {row['wape'][k] * 100:5.1f}% ({row['true'][k]:3d})"
                    for k in sorted(row["wape"])
                )
                print(f"{model.name:28s} {run:12s} {cells}", flush=True)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
