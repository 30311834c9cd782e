"""InfluxQL literals and times the query side writes: plain decimals, InfluxDB's time range."""

from __future__ import annotations

import pytest

from sensorpipe.query.bbox import bbox_condition, parse_bbox
from sensorpipe.query.influxql import AirQuery, QueryInputError
from sensorpipe.query.literals import number_literal


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (1e-05, "0.00001"),
        (-1.5e-07, "-0.00000015"),
        (52.1, "52.1"),
        (2.5e20, "250000000000000000000.0"),
        (3.0, "3.0"),
        (7, "7"),
    ],
)
def test_numbers_are_written_as_plain_decimals(value: float, written: str) -> None:
    assert number_literal(value) == written


def test_a_box_of_small_degrees_has_no_exponent() -> None:
    condition = bbox_condition(parse_bbox("0.00001,0.00001,0.0001,0.0001"))
    assert "e-" not in condition.lower()
    assert '"lat" >= 0.00001' in condition and '"lon" <= 0.0001' in condition


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2262-04-01", "2262-12-31"),
        ("1677-09-21T00:00:00Z", "1677-09-22"),
        ("2262-04-11T23:47:16.854776Z", "2262-04-12"),
    ],
)
def test_times_outside_influxdbs_range_are_refused_with_the_range(start: str, end: str) -> None:
    with pytest.raises(QueryInputError, match=r"1677-09-21T00:12:43\.145224194Z"):
        AirQuery(start=start, end=end)


def test_times_just_inside_influxdbs_range_are_taken() -> None:
    q = AirQuery(start="1677-09-21T00:12:44Z", end="2262-04-11T23:47:16Z")
    assert "2262-04-11T23:47:16" in q.to_influxql()


@pytest.mark.parametrize(
    ("every", "earliest"),
    [
        ("1d", "1677-09-22T00:00:00Z"),
        ("1h", "1677-09-21T01:00:00Z"),
        ("1m", "1677-09-21T00:13:00Z"),
    ],
)
def test_a_window_that_starts_before_influxdbs_range_is_refused(every: str, earliest: str) -> None:
    """1677-09-21T00:12:44Z is inside the range, but the window it lies in starts before it."""
    with pytest.raises(QueryInputError, match=rf"every {every}.*from of {earliest} or later"):
        AirQuery(start="1677-09-21T00:12:44Z", end="1677-09-23", every=every)
    AirQuery(start=earliest, end="1677-09-23", every=every)
