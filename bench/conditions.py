"""Counting accuracy on the synthetic street under each condition, per class.

    python -m bench.conditions [--seeds 2000-2004] [--minutes 15] [--model PATH ...] [--json]

For each model (default: the shipped synthetic detector), each condition (none, each of
perspective, crowds, parked, shadows, night, rain, motion_blur, jpeg, then all day conditions
together) and each held-out seed, count the street and print the per-class WAPE over one
interval of the whole sequence, with the number of visible true crossings and of crossings
hidden behind parked vehicles (see `stack.count_eval`). With several seeds, a last line per
condition gives the worst WAPE of each class over the seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firmware_sim.conditions import CONDITIONS
from stack.count_eval import DEFAULT_MODEL, evaluate

RUNS = ("none", *CONDITIONS, "day")


def parse_seeds(text: str) -> list[int]:
    """'2000-2004' or '2000,2003' (or a mix) to a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise SystemExit(f"--seeds: {part!r} is not a seed or a range like 2000-2004") from None
        seeds += range(low, high + 1)
    return seeds


def _cells(wape: dict[str, float], true: dict[str, int], hidden: dict[str, int]) -> str:
    out = []
    for k in sorted(wape):
        extra = f"+{hidden[k]}h" if hidden.get(k) else ""
        out.append(f"{k} {wape[k] * 100:5.1f}% ({true[k]:3d}{extra})")
    return "  ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="one held-out seed (same as --seeds N)")
    parser.add_argument("--seeds", default="2000", help="seeds, e.g. 2000-2004 or 2000,2002")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--conditions", default=",".join(RUNS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds)
    models = args.model or [DEFAULT_MODEL]
    rows: list[dict[str, Any]] = []
    for model in models:
        for run in args.conditions.split(","):
            worst: dict[str, float] = {}
            for seed in seeds:
                result = evaluate(
                    seed, args.minutes, model=model, interval_minutes=args.minutes, conditions=run
                )
                row = {
                    "model": model.name,
                    "conditions": run,
                    "seed": seed,
                    "wape": {k: c.wape for k, c in result.classes.items()},
                    "true": {k: sum(c.true.values()) for k, c in result.classes.items()},
                    "hidden": {k: sum(c.hidden.values()) for k, c in result.classes.items()},
                    "processing_fps": round(result.frames / result.seconds, 1),
                }
                rows.append(row)
                for k, w in row["wape"].items():
                    worst[k] = max(worst.get(k, 0.0), w)
                if not args.json:
                    cells = _cells(row["wape"], row["true"], row["hidden"])
                    print(f"{model.name:26s} {run:12s} {seed:5d}  {cells}", flush=True)
            if len(seeds) > 1 and not args.json:
                cells = "  ".join(f"{k} {worst[k] * 100:5.1f}%" for k in sorted(worst))
                print(f"{model.name:26s} {run:12s} worst  {cells}", flush=True)
    if args.json:
        json.dump(rows, sys.stdout)
        print()


if __name__ == "__main__":
    main()
