"""The read side of the quality flags, without InfluxDB: which stored values a flag filter
counts, the InfluxQL condition it makes, and the one-line errors for what cannot work."""

from __future__ import annotations

import re

import pytest

from sensorpipe.quality.flags import ALL_FLAGS
from sensorpipe.query.flagged import FlagFilter, _aggregate, check_flag_name, flag_reasons
from sensorpipe.query.influxql import QueryInputError


def _matches(flt: FlagFilter, stored: str) -> bool:
    """What InfluxDB's `=~` does with the filter's regular expression."""
    return re.search(flt.regex.strip("/"), stored) is not None


@pytest.mark.parametrize(
    ("names", "stored", "matched", "counted"),
    [
        ((), "fog,humidity", True, ("fog", "humidity")),
        (("fog",), "fog,humidity", True, ("fog",)),
        (("humidity",), "fog,humidity", True, ("humidity",)),
        (("fog",), "humidity", False, ()),
        (("spike", "stuck"), "stuck", True, ("stuck",)),
        (("range",), "warmup", False, ()),
    ],
)
def test_a_named_flag_matches_whole_names_in_the_stored_list(
    names: tuple[str, ...], stored: str, matched: bool, counted: tuple[str, ...]
) -> None:
    flt = FlagFilter("include", names)
    assert _matches(flt, stored) is matched
    assert flt.counted(stored) == counted


def test_the_condition_is_on_the_quantitys_flag_field() -> None:
    assert FlagFilter("only", ("fog",)).condition("pm2_5") == '"qc_pm2_5" =~ /(^|,)(fog)(,|$)/'
    assert FlagFilter().condition("count") == '"qc_count" =~ /./'


def test_unknown_flags_and_modes_are_refused_with_the_known_ones() -> None:
    with pytest.raises(
        QueryInputError, match=r"unknown flag 'fgo'; did you mean 'fog'\? \(known: clock, fog"
    ):
        check_flag_name("fgo")
    with pytest.raises(QueryInputError, match="flags 'drop': use one of include, exclude, only"):
        FlagFilter("drop").check()


def test_every_flag_has_its_sentence_for_the_legend() -> None:
    reasons = flag_reasons()
    assert list(reasons) == list(ALL_FLAGS)
    assert all(sentence and not sentence.endswith(".") for sentence in reasons.values())


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("median", 8.5), ("min", 2.0), ("max", 12.0), ("first", 12.0), ("last", 9.0)],
)
def test_an_interval_is_aggregated_as_influxql_does_in_time_order(
    aggregate: str, expected: float
) -> None:
    readings = [(3, 8.0), (1, 12.0), (2, 2.0), (4, 9.0)]  # (time, value), not in time order
    assert _aggregate(aggregate, readings) == expected


def test_an_interval_whose_readings_were_all_left_out_is_empty() -> None:
    assert _aggregate("max", []) is None
    assert _aggregate("stddev", [(1, 3.0)]) is None  # a sample's deviation needs two
    assert _aggregate("stddev", [(1, 2.0), (2, 4.0)]) == pytest.approx(2**0.5)
