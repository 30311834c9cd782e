"""`sensorpipe crowd backtest` on a CSV file of counts: the WAPE per horizon of the model and
both baselines, every forecast in the CSV columns the issue names, and bad lines refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.series import CountsInputError, iso, read_counts_csv
from tests.test_crowd_forecast import synthetic

ARGS = ["--timezone", "Pacific/Auckland", "--country", "NZ", "--subdiv", "AUK", "--trees", "150"]


def _write(path: Path, weeks: int = 14, sites: int = 3) -> None:
    c = synthetic(weeks, sites, start="2024-06-03T00:00")
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_utc", "site", "count"])
        for i in range(c.hours):
            for s, name in enumerate(c.names):
                v = c.values[i, s]
                w.writerow([iso(c.time(i)), name, "" if i == 500 else int(v)])


@pytest.fixture(scope="module")
def counts_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crowd") / "counts.csv"
    _write(path)
    return path


def test_backtest_prints_wape_and_writes_every_forecast(counts_csv: Path, tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    out = tmp_path / "forecasts.csv"
    span = ["--train-until", "2024-08-26", "--from", "2024-08-26", "--to", "2024-09-09"]
    args = ["crowd", "backtest", "--counts-csv", str(counts_csv), *span, *ARGS]
    args += ["--horizon", "1h", "--horizon", "3h", "--exclude-training", "2024-07-01/2024-07-03"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["from"] == "2024-08-25T12:00:00Z"  # midnight in Auckland (NZST)
    assert summary["to"] == "2024-09-08T12:00:00Z"
    assert summary["train_until"] == "2024-08-25T12:00:00Z"  # trained on the hours before it
    assert set(summary["horizons"]) == {"1h", "3h"}
    for h in summary["horizons"].values():
        assert set(h["wape_percent"]) == {"model", "seasonal_naive", "mean_4_weeks"}
        wape = h["wape_percent"]
        assert 0 < wape["model"] < min(wape["seasonal_naive"], wape["mean_4_weeks"]), wape
        assert h["scored_hours"] == 14 * 24 * 3
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["device", "target_time", "horizon", "forecast"]
    assert len(rows) - 1 == summary["forecasts_written"] == 2 * 14 * 24 * 3
    assert rows[1][:3] == ["site-0", "2024-08-25T12:00:00Z", "1h"]
    assert {r[2] for r in rows[1:]} == {"1h", "3h"}
    assert all(float(r[3]) >= 0 for r in rows[1:])
    # The table: one line per horizon, the model's WAPE beside both baselines'.
    table = CliRunner().invoke(main, [*args, "--device", "site-1"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith("1 device, 2024-08-25T12:00:00Z .. 2024-09-08T12:00:00Z")
    # trained on the hours before the first scored one: the same instant, not an hour later
    assert "trained on the counts before 2024-08-25T12:00:00Z;" in lines[0]
    assert lines[1].split()[:3] == ["horizon", "model", "seasonal"]
    assert [line.split()[0] for line in lines[2:]] == ["1h", "3h"]
    assert "training on" in table.stderr  # progress on stderr


def test_area_counts_are_written_under_area(counts_csv: Path, tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    out = tmp_path / "f.csv"
    args = ["crowd", "backtest", "--counts-csv", str(counts_csv), "--area", "site-2", *ARGS]
    args += ["--train-until", "2024-08-26", "--from", "2024-09-02", "--to", "2024-09-03"]
    result = CliRunner().invoke(main, [*args, "--horizon", "2h", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["area", "target_time", "horizon", "forecast"]
    assert {r[0] for r in rows[1:]} == {"site-2"} and len(rows) == 25


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("2024-01-01T00:00:00Z,a,abc", "line 3: count 'abc' is not a number >= 0"),
        ("2024-01-01T00:00:00Z,a,-4", "line 3: count '-4' is not a number >= 0"),
        ("2024-01-01 25:00,a,4", "line 3: time_utc '2024-01-01 25:00' is not ISO 8601"),
        ("2024-01-01T00:30:00Z,a,4", "line 3: time_utc '2024-01-01T00:30:00Z' is not on the hour"),
        ("2024-01-01T00:00:00Z,a", "line 3: 2 columns, expected 3 or more"),
    ],
)
def test_bad_lines_are_refused_with_their_number(tmp_path: Path, line: str, said: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"time_utc,site,count\n2023-12-31T23:00:00Z,a,5\n{line}\n")
    with pytest.raises(CountsInputError) as err:
        read_counts_csv(path)
    assert str(err.value).startswith(f"{path}: {said}")
    assert "\n" not in str(err.value)


def test_an_empty_count_is_missing_not_zero(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("time_utc,site,count\n2024-01-01T00:00:00Z,a,5\n2024-01-01T02:00:00Z,a,\n")
    c = read_counts_csv(path)
    assert c.hours == 3 and c.values[0, 0] == 5
    assert np.isnan(c.values[1:, 0]).all()  # the absent hour and the empty count


def test_a_repeated_site_and_hour_keeps_the_first_as_import_csv_does(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "time_utc,site,count\n2024-01-01T00:00:00Z,a,5\n2024-01-01T00:00:00Z,b,1\n"
        "2024-01-01T00:00:00Z,a,9\n2024-01-01T01:00:00Z,a,6\n2024-01-01T00:00:00Z,a,5\n"
    )
    c = read_counts_csv(path)
    assert (c.values[:, 0].tolist(), c.duplicates, c.first_duplicate_line) == ([5, 6], 2, 4)
    assert read_counts_csv(path, only=["b"]).duplicates == 0  # only the sites read


def test_the_backtest_says_how_many_repeated_rows_it_dropped(
    counts_csv: Path, tmp_path: Path
) -> None:
    pytest.importorskip("lightgbm")
    text = counts_csv.read_text()
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(text + "".join(text.splitlines(keepends=True)[1:4]))  # 3 rows again
    args = ["crowd", "backtest", "--counts-csv", str(repeated), "--device", "site-0", *ARGS]
    args += ["--train-until", "2024-08-26", "--from", "2024-09-02", "--to", "2024-09-03"]
    result = CliRunner().invoke(main, [*args, "--horizon", "1h", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    first = len(text.splitlines()) + 1  # the line of the first repeat
    # site-0's row only: the other two repeats are of sites not read
    assert (summary["duplicates_dropped"], summary["first_duplicate_line"]) == (1, first)
    table = CliRunner().invoke(main, [*args, "--horizon", "1h"])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[-1] == (
        f"note: 1 row of --counts-csv repeats a site and hour read before (the first at line "
        f"{first}): dropped, the first read kept"
    )
