"""Building InfluxQL from user filters, and printing rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sensorpipe.query.influxql import (
    AirQuery,
    QueryInputError,
    parse_time,
    string_literal,
    time_expression,
)
from sensorpipe.query.output import render, rows_from_series


def test_aggregated_query() -> None:
    q = AirQuery(
        devices=["d1", "d2"],
        sites=["lombok"],
        quantities=["pm2_5"],
        start="-2h",
        every="5m",
        aggregate="median",
    )
    assert q.to_influxql() == (
        'SELECT median("pm2_5") AS "pm2_5" FROM "air" WHERE time >= now() - 2h AND time < now() '
        "AND (\"device_id\" = 'd1' OR \"device_id\" = 'd2') AND (\"site\" = 'lombok') "
        'GROUP BY time(5m), "device_id", "site", "sensor" fill(none)'
    )


def test_raw_query_with_absolute_times() -> None:
    q = AirQuery(
        quantities=["pm10", "temperature"],
        start="2026-11-01T00:00:00Z",
        end="2026-11-02T00:00:00+01:00",
        limit=10,
    )
    sql = q.to_influxql()
    assert sql.startswith('SELECT "pm10", "temperature" FROM "air"')
    assert "time >= '2026-11-01T00:00:00+00:00' AND time < '2026-11-02T00:00:00+01:00'" in sql
    assert sql.endswith(" LIMIT 10")


def test_injection_attempts_stay_inside_string_literals() -> None:
    evil = "x' OR 1=1; DROP DATABASE sensorpipe; --"
    sql = AirQuery(devices=[evil]).to_influxql()
    assert string_literal(evil) in sql
    assert "\"device_id\" = 'x\\' OR 1=1; DROP DATABASE sensorpipe; --'" in sql
    assert string_literal("back\\slash") == "'back\\\\slash'"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantities": ["pm25"]}, "did you mean 'pm2_5'"),
        ({"every": "5 minutes"}, "duration like"),
        ({"aggregate": "avg"}, "use one of"),
    ],
)
def test_bad_filters_say_what_would_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(QueryInputError, match=message):
        AirQuery(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["yesterday", "2026-11-01T00:00:00", "-1 h"])
def test_bad_times(value: str) -> None:
    with pytest.raises(QueryInputError):
        time_expression(value)


SERIES: list[dict[str, Any]] = [
    {
        "name": "air",
        "tags": {"device_id": "d1", "site": "s", "sensor": "sds011"},
        "columns": ["time", "pm2_5", "temperature"],
        "values": [[1790000000000, 12.5, None], [1790000060000, None, None]],
    },
    {
        "name": "air",
        "tags": {"device_id": "d1", "site": "s", "sensor": "bme280"},
        "columns": ["time", "pm2_5", "temperature"],
        "values": [[1790000000000, None, 18.25]],
    },
]


def test_rows_and_formats() -> None:
    rows = rows_from_series(SERIES, ["device_id", "site", "sensor"])
    assert len(rows) == 2  # the all-empty row is dropped
    columns = ["time", "device_id", "sensor", "pm2_5", "temperature"]
    assert json.loads(render(rows, columns, "json"))[0] == {
        "time": "2026-09-21T14:13:20.000+00:00",
        "device_id": "d1",
        "sensor": "bme280",
        "pm2_5": None,
        "temperature": 18.25,
    }
    # CSV: quantities with their unit in the header and to their precision (0.1 °C); JSON
    # above keeps the stored value.
    assert render(rows, columns, "csv").splitlines() == [
        "time,device_id,sensor,pm2_5_ugm3,temperature_degc",
        "2026-09-21T14:13:20.000+00:00,d1,bme280,,18.2",
        "2026-09-21T14:13:20.000+00:00,d1,sds011,12.5,",
    ]
    table = render(rows, columns, "table").splitlines()
    assert table[0].split() == columns and "12.50" in table[3]
    assert render([], columns, "table") == "(no data)"


def test_table_keeps_a_column_uniform_when_influxdb_drops_the_decimal_point() -> None:
    rows = [{"time": "t1", "pm10": 30.45}, {"time": "t2", "pm10": 33}]
    table = render(rows, ["time", "pm10"], "table").splitlines()
    assert table[2].split() == ["t1", "30.45"] and table[3].split() == ["t2", "33.00"]


def test_a_date_is_midnight_utc_and_a_time_range_must_run_forward() -> None:
    assert parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    sql = AirQuery(start="2026-11-01", end="2026-11-02").to_influxql()
    assert "time >= '2026-11-01T00:00:00+00:00' AND time < '2026-11-02T00:00:00+00:00'" in sql
    with pytest.raises(QueryInputError, match=r"is not before to '2026-11-01': .*swap them"):
        AirQuery(start="2026-11-02", end="2026-11-01")
    with pytest.raises(QueryInputError, match="is not before"):
        AirQuery(start="now", end="-1h")
    with pytest.raises(QueryInputError, match="no such date"):
        parse_time("2026-02-30")


def test_a_limit_below_one_is_refused_not_read_as_no_limit() -> None:
    with pytest.raises(QueryInputError, match="limit 0: give 1 or more"):
        AirQuery(limit=0)
    assert AirQuery(limit=1).to_influxql().endswith(" LIMIT 1")


def test_columns_of_every_row_are_printed_the_calibration_last() -> None:
    """A device with a BME280 and an SDS011 gives rows of both: the PM columns (and their
    uncertainty and indicative columns) are printed though the first row is the BME280's."""
    from sensorpipe.query.output import drop_empty_columns

    rows = [
        {"time": "t", "device_id": "d", "sensor": "bme280", "temperature": 9.5,
         "temperature_uncertainty_degc": 1.0, "pm2_5": None, "calibration": "raw"},
        {"time": "t", "device_id": "d", "sensor": "sds011", "pm2_5": 7.0,
         "pm2_5_uncertainty_ugm3": 5.3, "pm2_5_indicative": True, "calibration": "raw",
         "calibration_note": None},
    ]  # fmt: skip
    assert drop_empty_columns(rows, ["time", "calibration"]) == [
        "time", "device_id", "sensor", "temperature", "temperature_uncertainty_degc", "pm2_5",
        "pm2_5_uncertainty_ugm3", "pm2_5_indicative", "calibration",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("air", "clock, fog, humidity, neighbour, range, spike, stuck, warmup"),
        ("counts", "clock, stuck"),  # what a count can carry
    ],
)
def test_the_flag_option_names_its_flags_in_its_help(query: str, names: str) -> None:
    # The wheel has no docs/: the help itself lists the names --flag takes.
    from click.testing import CliRunner

    from sensorpipe.cli.main import main

    out = CliRunner().invoke(main, ["query", query, "--help"], terminal_width=400).output
    (line,) = [line for line in out.splitlines() if line.strip().startswith("--flag ")]
    assert f"one of {names})." in line
    assert "docs/" not in out


def test_a_flag_counts_never_carry_is_refused_for_counts() -> None:
    from click.testing import CliRunner

    from sensorpipe.cli.main import main
    from sensorpipe.quality.flags import COUNT_FLAGS
    from sensorpipe.query.flagged import FlagFilter

    with pytest.raises(QueryInputError, match=r"flag 'fog' is never raised on these values"):
        FlagFilter("only", ("fog",)).check(COUNT_FLAGS)
    FlagFilter("only", ("fog",)).check()  # air can carry it
    result = CliRunner().invoke(main, ["query", "counts", "--flag", "fog", "--dir", "/nonexistent"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: --flag: flag 'fog' is never raised on these values (they can carry: clock, stuck)\n"
    )
