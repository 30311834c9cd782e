"""Counting accuracy on the synthetic street under each condition, per class.

    python -m bench.conditions [--seeds 2000-2004] [--minutes 15] [--model PATH ...]
                               [--jobs N] [--json]

For each model (default: the shipped synthetic detector), each condition (none, each of
perspective, crowds, parked, shadows, night, rain, motion_blur, jpeg, then all day conditions
together) and each held-out seed, count the street and print the per-class WAPE over one
interval of the whole sequence, with the number of visible true crossings and of crossings
hidden behind parked vehicles (see `sensorpipe.firmware_sim.count_eval`). With several seeds,
the last lines per condition give the worst and the mean WAPE of each class over the seeds.
`--jobs N` counts N streets at once in separate processes (one inference thread each); the
figures do not depend on it, only `processing_fps` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sensorpipe.firmware_sim.conditions import CONDITIONS
from sensorpipe.firmware_sim.count_eval import DEFAULT_MODEL, evaluate

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


def _count(plan: tuple[Path, str, int], minutes: float) -> dict[str, Any]:
    model, run, seed = plan
    result = evaluate(seed, minutes, model=model, interval_minutes=minutes, conditions=run)
    return {
        "model": model.name,
        "conditions": run,
        "seed": seed,
        "wape": {k: c.wape for k, c in result.classes.items()},
        "true": {k: sum(c.true.values()) for k, c in result.classes.items()},
        "hidden": {k: sum(c.hidden.values()) for k, c in result.classes.items()},
        "processing_fps": round(result.frames / result.seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="one held-out seed (same as --seeds N)")
    parser.add_argument("--seeds", default="2000", help="seeds, e.g. 2000-2004 or 2000,2002")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--conditions", default=",".join(RUNS))
    parser.add_argument("--jobs", type=int, default=1, help="streets counted at once")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds)
    models = args.model or [DEFAULT_MODEL]
    runs = args.conditions.split(",")
    plan = [(model, run, seed) for model in models for run in runs for seed in seeds]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        # map keeps the plan's order, so rows print as they would one by one.
        for row in pool.map(_count, plan, [args.minutes] * len(plan)):
            rows.append(row)
            if not args.json:
                cells = _cells(row["wape"], row["true"], row["hidden"])
                print(
                    f"{row['model']:26s} {row['conditions']:12s} {row['seed']:5d}  {cells}",
                    flush=True,
                )
            last_of_condition = row["seed"] == seeds[-1]
            if last_of_condition and len(seeds) > 1 and not args.json:
                per_class: dict[str, list[float]] = {}
                for r in rows[-len(seeds) :]:
                    for k, w in r["wape"].items():
                        per_class.setdefault(k, []).append(w)
                for label, pick in (("worst", max), ("mean ", statistics.fmean)):
                    cells = "  ".join(
                        f"{k} {pick(per_class[k]) * 100:5.1f}%" for k in sorted(per_class)
                    )
                    head = f"{row['model']:26s} {row['conditions']:12s} {label}"
                    print(f"{head}  {cells}", flush=True)
    if args.json:
        json.dump(rows, sys.stdout)
        print()


if __name__ == "__main__":
    main()
