"""Throughput of `sensorpipe import` against writing the same points as raw line protocol, in
the same run, into the same influxd.

    python -m bench.importer [--rows N] [--sensors S] [--batch B] [--rounds R] [--json]

A Sensor.Community archive CSV of `--rows` SDS011 rows (default 1,000,000; `--sensors` sensors
of equal share, 10-second readings, PM10 and PM2.5 like the real archive, 0.1 % of the rows
broken the ways real files are: a value out of range, a damaged time) is generated first (not
timed). Each round then measures, each into a database of its own:

- import_rows_s: the import as `sensorpipe import sensor-community` runs it (the same
  Importer: header check, parsing, validation, line protocol, batches of `--batch` lines on the
  writer thread while parsing goes on, dead letters, registry, ledger, `imports` records),
  from the file's first byte until InfluxDB acknowledged the last batch;
- raw_rows_s (the baseline): the very lines the import wrote, prepared in memory beforehand,
  POSTed to /write by InfluxClient in batches of the same size, one after the other.

Figures are the medians over `--rounds` (default 3); the ratio is the median of the rounds'
ratios. influxd (InfluxDB 1.x from the Debian package) runs as a child process with its data
in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from statistics import median

from sensorpipe.importer.base import DeviceSpec, ImportContext, ImportOptions, Target
from sensorpipe.importer.files import inspect
from sensorpipe.importer.runner import Importer, prepare
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import free_ports

HEADER = "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
START = 1_704_067_200  # 2024-01-01T00:00:00Z


def generate(path: Path, rows: int, sensors: int, seed: int = 17) -> int:
    """Write the archive CSV; returns how many rows are broken on purpose."""
    rng = random.Random(seed)
    per_sensor = max(1, rows // sensors)
    broken = 0
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER)
        for i in range(rows):
            sensor = 10_000 + i // per_sensor
            t = START + (i % per_sensor) * 10
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            p1, p2 = rng.uniform(2, 80), rng.uniform(1, 40)
            if i % 1000 == 999:
                broken += 1
                if i % 2000 == 999:
                    p1 = 2500.0  # outside the plausible range
                else:
                    stamp = stamp[:10] + " 25:00:00"  # no such hour
            lat = 52.0 + (sensor % 100) / 1000
            f.write(f"{sensor};SDS011;{sensor + 5};{lat:.3f};5.121;{stamp};{p1:.2f};;;{p2:.2f};;\n")
    return broken


def lines_of(path: Path, batch: int) -> list[str]:
    """The line protocol the import writes for `path`, as a list (for the baseline)."""
    options = ImportOptions(user="bench", site="bench", batch_size=batch)
    (parser,) = prepare("sensor-community", [path], options)
    out: list[str] = []

    def resolve(spec: DeviceSpec) -> Target:
        return Target(spec.device_id, "bench", frozenset(spec.sensors), frozenset(), True)

    def flush(ctx: ImportContext) -> None:
        out.extend(ctx.lines)
        ctx.lines.clear()
        ctx.line_nos.clear()

    ctx = ImportContext(
        "sensor-community",
        inspect(path),
        options,
        resolve=resolve,
        declare=lambda *_: True,
        flush=flush,
        now_ms=int(time.time() * 1000),
    )
    with parser.file.open_text() as (text, _):
        parser.parse(ctx, text)
    ctx.flush()
    return out


def import_round(
    path: Path, influx: Influxd, workdir: Path, database: str, batch: int
) -> dict[str, float]:
    client = InfluxClient(influx.url, database, timeout_s=60)
    client.create_database()
    options = ImportOptions(user="bench", site="bench", batch_size=batch)
    stack = workdir / database
    stack.mkdir()
    t0 = time.perf_counter()
    parsers = prepare("sensor-community", [path], options)
    importer = Importer(
        "sensor-community",
        options,
        influx=client,
        registry_path=stack / "registry.toml",
        deadletter_path=stack / "deadletter.sqlite",
        ledger_path=stack / "ledger.sqlite",
    )
    (result,) = importer.run(parsers)
    seconds = time.perf_counter() - t0
    client.close()
    assert result.error is None, result.error
    return {"rows": result.rows, "stored": result.stored, "seconds": seconds}


def raw_round(lines: list[str], influx: Influxd, database: str, batch: int) -> float:
    client = InfluxClient(influx.url, database, timeout_s=60)
    client.create_database()
    t0 = time.perf_counter()
    for start in range(0, len(lines), batch):
        client.write(lines[start : start + batch])
    seconds = time.perf_counter() - t0
    client.close()
    return seconds


def stored_points(influx: Influxd, database: str) -> int:
    client = InfluxClient(influx.url, database, timeout_s=120)
    series = client.query('SELECT count("pm10") FROM "air"')
    client.close()
    return int(series[0]["values"][0][1]) if series else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda _m: None) if args.json else print

    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-import-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "2024-01-01_sds011_archive.csv"
        say(f"generating {args.rows} rows of a Sensor.Community archive CSV")
        broken = generate(csv_path, args.rows, args.sensors)
        size_mb = csv_path.stat().st_size / 1e6
        lines = lines_of(csv_path, args.batch)
        http_port, rpc_port = free_ports(2)
        influx = Influxd(
            workdir / "influxdb", http_port=http_port, rpc_port=rpc_port, database="unused"
        )
        say("starting influxd")
        influx.start()
        rounds = []
        try:
            for r in range(1, args.rounds + 1):
                say(f"round {r}/{args.rounds}: raw line protocol, then the import")
                raw_s = raw_round(lines, influx, f"raw{r}", args.batch)
                imp = import_round(csv_path, influx, workdir, f"import{r}", args.batch)
                raw_rate = args.rows / raw_s
                imp_rate = args.rows / imp["seconds"]
                say(
                    f"  raw {raw_rate:,.0f} rows/s, import {imp_rate:,.0f} rows/s "
                    f"({imp_rate / raw_rate:.2f}x)"
                )
                rounds.append((raw_rate, imp_rate, imp))
            stored = stored_points(influx, f"import{args.rounds}")
        finally:
            influx.stop()

    raw_rate = median(r for r, _, _ in rounds)
    imp_rate = median(i for _, i, _ in rounds)
    result = {
        "rows": args.rows,
        "file_mb": round(size_mb, 1),
        "rows_broken": broken,
        "points": len(lines),
        "batch": args.batch,
        "import_rows_s": round(imp_rate),
        "raw_rows_s": round(raw_rate),
        "import_vs_raw": round(median(i / r for r, i, _ in rounds), 3),
        "stored_rows": rounds[-1][2]["stored"],
        "points_in_influxdb": stored,
        "rounds": [
            {"raw_rows_s": round(r), "import_rows_s": round(i), "ratio": round(i / r, 3)}
            for r, i, _ in rounds
        ],
    }
    if args.json:
        print(json.dumps(result))
        return
    print()
    print(
        f"Sensor.Community CSV: {args.rows:,} rows ({result['file_mb']} MB, {broken} broken), "
        f"batches of {args.batch}, {args.rounds} rounds (medians)"
    )
    print(f"raw line protocol via InfluxClient : {result['raw_rows_s']:>10,} rows/s (baseline)")
    print(
        f"sensorpipe import sensor-community : {result['import_rows_s']:>10,} rows/s "
        f"({result['import_vs_raw']:.2f}x raw)"
    )
    print(
        f"stored rows {result['stored_rows']:,}, points counted in InfluxDB "
        f"{result['points_in_influxdb']:,}"
    )


if __name__ == "__main__":
    main()
