"""What `sensorpipe calibrate report` costs on the shared co-location data.

    python -m bench.calreport [--data DIR] [--out report.html] [--json]

A throw-away local stack (broker, ingest, InfluxDB) gets the shared sensor's month of 1-minute
data (`toco_toucan_RT01_raw.csv`, imported with `import csv` as docs/calibration.md shows) and
the reference's AirNow-Tech export; `calibrate fit` makes a calibration; then `calibrate
report` is timed as the command runs it (reading the pairs from InfluxDB, drawing, writing).

Figures: report_s (the command, in-process), pairs (the hours it drew), bytes (the page's
size); fit_s for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sensorpipe.cli.main import main

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "colocation"
STATION = "ref-370630099"
SENSOR_ARGS = [
    "--register", "--site", "burdens-creek", "--sensor", "toco-toucan", "--time", "Time",
    "--time-format", "%m/%d/%Y %H:%M", "--timezone", "-05:00",
    "--column", "PM2.5 (µg/m³)=pm2_5", "--column", "RH (%)=relative_humidity",
]  # fmt: skip


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    if result.exit_code != 0:
        raise SystemExit(f"sensorpipe {' '.join(args[:3])}: {result.output.strip()}")
    return str(result.stdout)


def measure(data: Path, out: Path | None = None) -> dict[str, Any]:
    from sensorpipe.stack.local import LocalStack

    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-calreport-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        stack.up(detach=False, serve=False, kits=False)
        try:
            d = ["--dir", str(stack.directory)]
            sensor = data / "toco_toucan_RT01_raw.csv"
            print("importing the shared sensor and reference", flush=True)
            _run("import", "csv", str(sensor), "--device", "rt01", *SENSOR_ARGS, *d)
            reference = data / "airnowtech_example_reference_data.csv"
            _run("import", "reference", "airnowtech", str(reference), "--site", "burdens-creek", *d)
            t = time.perf_counter()
            fit = json.loads(
                _run("calibrate", "fit", "--device", "rt01", "--reference", STATION, "--json", *d)
            )
            fit_s = time.perf_counter() - t
            page = Path(tmp) / "report.html"
            print(f"reporting {fit['id']}", flush=True)
            t = time.perf_counter()
            _run("calibrate", "report", fit["id"], "--out", str(page), *d)
            report_s = time.perf_counter() - t
            text = page.read_text(encoding="utf-8")
            if out is not None:
                shutil.copyfile(page, out)
        finally:
            stack.down()
    return {
        "pairs": text.count("<circle") // 2,
        "bytes": len(text.encode()),
        "method": fit["method"],
        "fit_s": round(fit_s, 2),
        "report_s": round(report_s, 2),
    }


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="Keep the report here.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.data, args.out)
    summary = (
        f"calibrate report on the shared co-location month: {result['report_s']} s "
        f"({result['pairs']} hourly pairs, a {result['bytes'] / 1024:.0f} KiB page); "
        f"calibrate fit took {result['fit_s']} s ({result['method']})"
    )
    print(json.dumps(result) if args.json else f"\n{summary}")


if __name__ == "__main__":
    main_()
