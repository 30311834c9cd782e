"""`sensorpipe query counts` printing an answer of count_series: table, CSV, JSON, the counter's
running fraction flagged, and one-line errors for unknown names and oversized requests."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.query import series
from sensorpipe.query.series import CountSeriesRequest, TooManyPoints

ANSWER: dict[str, Any] = {
    "from": "2026-11-20T08:00:00Z",
    "to": "2026-11-20T11:00:00Z",
    "every": "1h",
    "series": [
        {
            "device_id": "cam-1",
            "site": "oudwijk",
            "time": ["2026-11-20T08:00:00Z", "2026-11-20T09:00:00Z", "2026-11-20T10:00:00Z"],
            "running_fraction": [1.0, 0.5, None],
            "counts": [
                {"class": "cyclist", "direction": "left_to_right", "values": [120, 40, None]},
                {"class": "cyclist", "direction": "right_to_left", "values": [95, 0, None]},
            ],
        }
    ],
}


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[CountSeriesRequest]:
    requests: list[CountSeriesRequest] = []

    def fake(_influx: InfluxClient, req: CountSeriesRequest) -> dict[str, Any]:
        requests.append(req)
        return ANSWER

    monkeypatch.setattr(series, "count_series", fake)
    return requests


def counts(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["query", "counts", "--influx-url", "http://127.0.0.1:9", *args]
    )


def test_options_become_the_request(asked: list[CountSeriesRequest]) -> None:
    result = counts(
        "--device", "cam-1", "--site", "oudwijk", "--class", "cyclist", "--direction",
        "left_to_right", "--from", "2026-11-20T08:00:00Z", "--to", "2026-11-20T11:00:00Z",
        "--every", "1h", "--max-points", "500",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (req,) = asked
    assert (tuple(req.devices), tuple(req.sites)) == (("cam-1",), ("oudwijk",))
    assert (tuple(req.classes), tuple(req.directions)) == (("cyclist",), ("left_to_right",))
    assert (req.start, req.end, req.every, req.max_points) == (
        "2026-11-20T08:00:00Z",
        "2026-11-20T11:00:00Z",
        "1h",
        500,
    )


def test_table_flags_intervals_the_counter_did_not_run_whole(
    asked: list[CountSeriesRequest],
) -> None:
    result = counts()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "time", "device_id", "site", "class", "direction", "count", "running_fraction", "note",
    ]  # fmt: skip
    full = [ln for ln in lines if ln.startswith("2026-11-20T08")]
    assert len(full) == 2 and all("counter" not in ln for ln in full)
    assert "1.00" in full[0] and "120" in full[0]
    half = [ln for ln in lines if ln.startswith("2026-11-20T09")]
    assert len(half) == 2 and all("counter ran 50% of the interval" in ln for ln in half)
    silent = [ln for ln in lines if ln.startswith("2026-11-20T10")]
    assert all("counter did not report" in ln for ln in silent)
    assert "running_fraction is the share of the interval the counter ran" in result.stderr


def test_csv_and_json_parse_back_with_empty_counts_where_the_counter_was_silent(
    asked: list[CountSeriesRequest],
) -> None:
    rows = list(csv.DictReader(io.StringIO(counts("--format", "csv").stdout)))
    assert len(rows) == 6
    assert list(rows[0]) == [
        "time", "device_id", "site", "class", "direction", "count", "running_fraction",
    ]  # fmt: skip
    by_key = {(r["time"][11:13], r["direction"]): r for r in rows}
    assert by_key[("08", "left_to_right")]["count"] == "120"
    assert by_key[("09", "right_to_left")]["count"] == "0"  # counted nothing: a zero
    assert by_key[("09", "right_to_left")]["running_fraction"] == "0.5"
    assert by_key[("10", "left_to_right")]["count"] == ""  # did not report: nothing
    records = json.loads(counts("--format", "json").stdout)
    assert len(records) == 6
    silent = [r for r in records if r["time"] == "2026-11-20T10:00:00Z"]
    assert all(r["count"] is None and r["running_fraction"] is None for r in silent)
    assert sum(r["count"] or 0 for r in records) == 120 + 40 + 95


def test_too_many_points_is_one_line_that_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_influx: InfluxClient, req: CountSeriesRequest) -> dict[str, Any]:
        raise TooManyPoints(
            f"this request would return about 201,600 values, more than the "
            f"{req.max_points:,} one answer may hold; ask for a shorter time range"
        )

    monkeypatch.setattr(series, "count_series", refuse)
    result = counts("--max-points", "1000")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("Error: this request would return about 201,600 values")
    assert "more than the 1,000 one answer may hold" in result.output
    assert result.output.rstrip().endswith("or raise --max-points")


def test_unknown_names_are_errors_that_list_those_with_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(series, "count_series", lambda *_: {**ANSWER, "series": []})
    statements: list[str] = []

    def tag_values(_self: InfluxClient, q: str, **_: Any) -> list[dict[str, Any]]:
        statements.append(q)
        if "device_id" in q:
            return [{"values": [["device_id", "cam-1"], ["device_id", "cam-2"]]}]
        return [{"values": [["direction", "left_to_right"], ["direction", "right_to_left"]]}]

    monkeypatch.setattr(InfluxClient, "query", tag_values)
    result = counts("--device", "cam-9")
    assert result.exit_code == 1
    assert (
        "Error: unknown device 'cam-9': database 'sensorpipe' holds no counts from it "
        "(those with counts: cam-1, cam-2)"
    ) in result.output
    assert statements == ['SHOW TAG VALUES FROM "traffic" WITH KEY = "device_id"']
    statements.clear()
    result = counts("--device", "cam-1", "--direction", "up")
    assert "unknown direction 'up'" in result.output
    assert "(those with counts: left_to_right, right_to_left)" in result.output
    # Known names, no counts in the time range: said on stderr, not an error.
    monkeypatch.setattr(InfluxClient, "query", lambda *_a, **_k: [])
    quiet = counts("--format", "csv")
    assert quiet.exit_code == 0
    assert quiet.stdout.startswith("time,device_id,site,class,direction,count,running_fraction")
    assert "no counts match these filters from -24h to now" in quiet.stderr
