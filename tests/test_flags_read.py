"""The read side of the quality flags, without InfluxDB: which stored values a flag filter
counts, the InfluxQL condition it makes, and the one-line errors for what cannot work."""

from __future__ import annotations

import re

import pytest

from sensorpipe.quality.flags import ALL_FLAGS
from sensorpipe.query.flagged import FlagFilter, check_flag_name, flag_reasons
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
    with pytest.raises(QueryInputError, match="works for mean and count only"):
        FlagFilter("exclude").check_aggregate("median")
    FlagFilter("only").check_aggregate("median")  # the flagged readings alone: any aggregate


def test_every_flag_has_its_sentence_for_the_legend() -> None:
    reasons = flag_reasons()
    assert list(reasons) == list(ALL_FLAGS)
    assert all(sentence and not sentence.endswith(".") for sentence in reasons.values())
