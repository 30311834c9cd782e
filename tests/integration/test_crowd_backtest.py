"""`sensorpipe crowd backtest` on counts stored in a real InfluxDB: counts of two devices, each
hour made into the count message a counting device sends and stored by the ingest's own path
(`message_points` with its quality checker), one of them stuck at 0 for 30 hours (stored
flagged `stuck` from its 2nd hour: it should have counted 30 passers-by by then). The backtest
read from InfluxDB gives the same WAPE and the same forecasts as the backtest of the same
counts from a CSV file, and the stuck hours are neither scored nor fed as zeros."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.series import iso
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol.messages import ClassCount
from sensorpipe.quality.checker import QualityChecker
from tests.helpers import count_message, running_influxd
from tests.test_crowd_forecast import synthetic

pytestmark = pytest.mark.integration

RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
STUCK = slice(12 * 168 + 30, 12 * 168 + 60)  # device 1, in the backtest's weeks
ARGS = ["--timezone", "Pacific/Auckland", "--country", "NZ", "--subdiv", "AUK", "--trees", "150"]
ARGS += ["--train-until", "2024-08-26", "--from", "2024-08-26", "--to", "2024-09-09"]
ARGS += ["--horizon", "1h", "--horizon", "3h", "--json"]


def _counts() -> tuple[list[str], np.ndarray, int]:
    c = synthetic(14, 2, start="2024-06-03T00:00", seed=7)
    c.values[STUCK, 1] = 0
    return ["crowd-a", "crowd-b"], c.values, c.start


def _lines(names: list[str], values: np.ndarray, start: int) -> tuple[list[str], np.ndarray]:
    """The line protocol the ingest stores, and where its quality checker flagged a count."""
    lines = []
    flagged = np.zeros(values.shape, dtype=bool)
    for s, device in enumerate(names):
        checker = QualityChecker()
        for i in range(len(values)):
            t = datetime.fromtimestamp(start + i * 3600, UTC)
            # Two directions: the backtest sums a device's classes and directions.
            half = int(values[i, s]) // 2
            counts = [
                ClassCount(count_class="pedestrian", direction="in", count=half),
                ClassCount(
                    count_class="pedestrian", direction="out", count=int(values[i, s]) - half
                ),
            ]
            message = count_message(device, i + 1, t, counts)
            points = message_points(message, "street", RECEIPT, quality=checker)
            flagged[i, s] = any("qc_count" in p.fields for p in points)
            lines += [to_line(p) for p in points]
    return lines, flagged


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    names, values, start = _counts()
    with running_influxd(tmp_path_factory, "crowd", "x") as (influxd, root):
        client = InfluxClient(influxd.url, "x")
        lines, flagged = _lines(names, values, start)
        # The stuck run, from its 2nd hour (live, the hour it is judged stuck; the first
        # zero hour could still have been a quiet one).
        assert flagged[STUCK, 1].sum() == 29
        client.write(lines)
        client.close()
        path = root / "counts.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time_utc", "site", "count"])
            for i in range(len(values)):
                for s, name in enumerate(names):
                    # What the ingest flagged is no count: the file leaves it empty.
                    count = "" if flagged[i, s] else int(values[i, s])
                    w.writerow([iso(start + i * 3600), name, count])
        yield {"url": influxd.url, "csv": path, "root": root}


def _run(*args: str) -> tuple[dict[str, Any], list[list[str]], str]:
    out = Path(args[args.index("--out") + 1])
    result = CliRunner().invoke(main, ["crowd", "backtest", *args, *ARGS])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), list(csv.reader(out.open())), result.stderr


def test_stored_counts_give_the_same_backtest_as_the_file(stored: dict[str, Any]) -> None:
    pytest.importorskip("lightgbm")
    root = stored["root"]
    devices = ["--device", "crowd-a", "--device", "crowd-b"]
    influx = ["--influx-url", stored["url"], "--database", "x", "--out", str(root / "i.csv")]
    from_db, rows_db, progress = _run(*devices, *influx)
    from_file, rows_file, _ = _run("--counts-csv", str(stored["csv"]), "--out", str(root / "f.csv"))
    assert "read the counts of crowd-b (2/2)" in progress
    assert from_db["horizons"] == from_file["horizons"]
    assert rows_db == rows_file
    assert rows_db[0] == ["device", "target_time", "horizon", "forecast"]
    for h in from_db["horizons"].values():
        assert h["scored_hours"] <= 14 * 24 * 2 - 29  # the flagged stuck hours are not scored
        assert h["wape_percent"]["model"] < h["wape_percent"]["seasonal_naive"]
