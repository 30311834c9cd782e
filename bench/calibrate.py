"""What `sensorpipe calibrate fit` costs on a network's worth of data.

    python -m bench.calibrate [--devices N] [--days D] [--json]

A throw-away InfluxDB gets N devices (default 100) of 1-minute PM2.5 and relative humidity
readings over D days (default 365: the issue's year), an SDS011 each, and a reference station's
hourly PM2.5 and humidity over the same days; the device values follow the reference through
a gain, an offset, a humidity growth and noise, as a low-cost sensor beside a station does.
Then the fit's own work, as `calibrate fit --device ... --reference ...` does it: reading each
device's hourly means, counts and reading interval from InfluxDB (`calibration.data`), pairing
the hours and choosing a method by cross-validation (`calibration.fitting`).

Figures:
- points_written, write_s: the data set (both quantities of every reading counted as one
  point per reading) and how long InfluxDB took to take it, for scale;
- read_s: `training_pairs`, the InfluxDB queries of the fit; fit_s: `fit_pairs` on the pairs;
  fit_total_s: the two together, the time `calibrate fit` takes beyond starting;
- pairs, method, rmse_raw, rmse_calibrated: what the fit found (a check that it ran on the data,
  not a figure of speed).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sensorpipe.calibration.data import training_pairs
from sensorpipe.calibration.fitting import fit_pairs
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import free_port

START = datetime(2025, 1, 1, tzinfo=UTC)
REFERENCE = "ref-bench"
BATCH = 50_000


def _reference(days: int, rng: random.Random) -> list[tuple[float, float]]:
    """Hourly (PM2.5 µg/m³, RH %) of the reference: a daily cycle, weather spells, noise."""
    hours = []
    level, rh = 8.0, 70.0
    for h in range(days * 24):
        level = max(1.0, level + rng.gauss(0, 0.6) + (8.0 - level) * 0.02)
        rh = min(99.0, max(25.0, rh + rng.gauss(0, 2.0) + (70.0 - rh) * 0.05))
        daily = 1.0 + 0.3 * math.sin(2 * math.pi * (h % 24) / 24)
        hours.append((level * daily, rh + 10 * math.cos(2 * math.pi * (h % 24) / 24)))
    return hours


def _write(client: InfluxClient, lines: list[str]) -> None:
    for i in range(0, len(lines), BATCH):
        client.write(lines[i : i + BATCH])


def fill(client: InfluxClient, devices: int, days: int, seed: int = 11) -> int:
    """Write the data set; return the readings written (reference hours included)."""
    rng = random.Random(seed)
    ref = _reference(days, rng)
    t0 = int(START.timestamp() * 1000)
    lines = [
        f"air,device_id={REFERENCE},sensor=fem,site=bench pm2_5={pm:.2f},"
        f"relative_humidity={min(rh, 100.0):.1f} {t0 + h * 3_600_000}"
        for h, (pm, rh) in enumerate(ref)
    ]
    _write(client, lines)
    written = len(lines)
    for d in range(devices):
        gain, offset = rng.uniform(0.7, 1.4), rng.uniform(-2.0, 2.0)
        lines = []
        for h, (pm, rh) in enumerate(ref):
            growth = 1.0 + 0.25 / (100.0 / min(rh, 99.0) - 1.0)
            base = t0 + h * 3_600_000
            for m in range(60):
                if rng.random() < 0.02:  # a reading now and then lost
                    continue
                value = max(0.0, gain * pm * growth + offset + rng.gauss(0, 1.5))
                lines.append(
                    f"air,device_id=dev-{d:03d},sensor=sds011,site=bench "
                    f"pm2_5={value:.1f},relative_humidity={min(rh, 100.0):.1f} "
                    f"{base + m * 60_000}"
                )
        _write(client, lines)
        written += len(lines)
        print(f"  device {d + 1}/{devices}: {written:,} readings written", flush=True)
    return written


def measure(devices: int, days: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-calibrate-") as tmp:
        influxd = Influxd(
            Path(tmp) / "influxd",
            http_port=free_port(),
            rpc_port=free_port(),
            database="sensorpipe",
        )
        influxd.start()
        client = influxd.client()
        try:
            print(f"writing {devices} devices x {days} days of 1-minute readings", flush=True)
            t = time.perf_counter()
            written = fill(client, devices, days)
            write_s = time.perf_counter() - t
            names = [f"dev-{d:03d}" for d in range(devices)]
            end = START + timedelta(days=days)
            print("fitting: reading hourly means from InfluxDB", flush=True)
            t = time.perf_counter()
            training = training_pairs(client, names, REFERENCE, "pm2_5", START, end)
            read_s = time.perf_counter() - t
            print("fitting: cross-validating the methods", flush=True)
            t = time.perf_counter()
            fitted = fit_pairs(training.pairs, "pm2_5")
            fit_s = time.perf_counter() - t
        finally:
            client.close()
            influxd.stop()
    return {
        "devices": devices,
        "days": days,
        "points_written": written,
        "write_s": round(write_s, 1),
        "read_s": round(read_s, 2),
        "fit_s": round(fit_s, 2),
        "fit_total_s": round(read_s + fit_s, 2),
        "pairs": len(training.pairs),
        "method": fitted.method,
        "rmse_raw": round(fitted.raw["rmse"], 2),
        "rmse_calibrated": round(fitted.calibrated["rmse"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.devices, args.days)
    if args.json:
        print(json.dumps(result))
        return
    print()
    print(
        f"{result['devices']} devices x {result['days']} days of 1-minute PM2.5 and RH: "
        f"{result['points_written']:,} readings written in {result['write_s']} s"
    )
    print(f"calibrate fit, reading from InfluxDB : {result['read_s']:>8} s")
    print(f"calibrate fit, pairing + CV + fit    : {result['fit_s']:>8} s")
    print(f"calibrate fit, in all                : {result['fit_total_s']:>8} s")
    print(
        f"({result['pairs']:,} hourly pairs; chose {result['method']}: RMSE "
        f"{result['rmse_raw']} raw -> {result['rmse_calibrated']} calibrated)"
    )


if __name__ == "__main__":
    main()
