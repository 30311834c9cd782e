"""The SensorThings query options parser, the stable ids, and how count observations get
their counter's running_fraction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from sensorpipe.api.problems import ApiProblem
from sensorpipe.api.sta.catalog import AirSource, CountSource
from sensorpipe.api.sta.ids import (
    MAX_SAFE_INTEGER,
    observation_id,
    parse_observation_id,
    stable_id,
)
from sensorpipe.api.sta.observations import ObservationRow, render, with_running_fraction
from sensorpipe.api.sta.odata import (
    TOP_DEFAULT,
    TOP_MAX,
    Comparison,
    DateTime,
    OrderBy,
    parse_datetime,
    parse_filter,
    parse_options,
    split_top_level,
)
from sensorpipe.ingest.influx import InfluxClient


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) * 1_000_000_000


def test_defaults() -> None:
    o = parse_options([])
    assert (o.top, o.skip, o.count, o.orderby, o.select, o.expand, o.filter) == (
        TOP_DEFAULT,
        0,
        False,
        [],
        None,
        [],
        [],
    )


def test_paging_count_select_orderby() -> None:
    o = parse_options(
        [
            ("$top", "7"),
            ("$skip", "20"),
            ("$count", "true"),
            ("$select", "id, name"),
            ("$orderby", "name desc, id"),
            ("other", "ignored"),
        ]
    )
    assert (o.top, o.skip, o.count, o.select) == (7, 20, True, ["id", "name"])
    assert o.orderby == [OrderBy(("name",), True), OrderBy(("id",), False)]
    assert o.raw[0] == ("$top", "7") and len(o.raw) == 5


def test_expand_with_nested_options() -> None:
    o = parse_options(
        [("$expand", "Datastreams($top=2;$select=name,id;$filter=name eq 'a;b'),Locations")]
    )
    assert [e.name for e in o.expand] == ["Datastreams", "Locations"]
    inner = o.expand[0].options
    assert inner.top == 2 and inner.select == ["name", "id"]
    assert inner.filter == [Comparison(("name",), "eq", "a;b")]
    assert o.expand[1].options.top == TOP_DEFAULT


def test_filter_comparisons_and_literals() -> None:
    got = parse_filter(
        "phenomenonTime ge 2024-05-01T00:00:00Z and (result lt -1.5e2 and name eq 'it''s') "
        "and 10 le result and properties/site ne null and Datastream/@iot.id eq 42 and x eq true"
    )
    assert got == [
        Comparison(("phenomenonTime",), "ge", DateTime(_ns("2024-05-01T00:00:00+00:00"))),
        Comparison(("result",), "lt", -150.0),
        Comparison(("name",), "eq", "it's"),
        Comparison(("result",), "ge", 10),
        Comparison(("properties", "site"), "ne", None),
        Comparison(("Datastream", "@iot.id"), "eq", 42),
        Comparison(("x",), "eq", True),
    ]


def test_datetimes_are_exact_and_zoned() -> None:
    base = _ns("2024-05-01T12:00:00+00:00")
    assert parse_datetime("2024-05-01T12:00:00Z", "p") == DateTime(base)
    assert parse_datetime("2024-05-01T14:00:00+02:00", "p") == DateTime(base)
    assert parse_datetime("2024-05-01T12:00Z", "p") == DateTime(base)
    assert parse_datetime("2024-05-01T12:00:00.000000001Z", "p") == DateTime(base + 1)
    assert parse_datetime("2024-05-01T12:00:00.5Z", "p") == DateTime(base + 500_000_000)
    assert parse_datetime("1970-01-01T00:00:00Z", "p") == DateTime(0)
    # The years the rest of the API takes (InfluxDB's), before 1970 and past 2200 included.
    assert parse_datetime("1969-12-31T23:59:59Z", "p") == DateTime(-(10**9))
    assert parse_datetime("1677-01-01T00:00:00Z", "p").ns < -(2**63)  # past InfluxDB's start
    assert parse_datetime("2262-12-31T23:59:59Z", "p").ns > 2**63
    assert parse_datetime("2201-01-01T00:00:00Z", "p").ns == _ns("2201-01-01T00:00:00+00:00")
    now = datetime.now(UTC).replace(microsecond=0)
    assert parse_datetime(now.isoformat(), "p") == DateTime(int(now.timestamp()) * 10**9)


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00",  # no zone
        "2024-02-30T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:00:00+25:00",
        "1676-12-31T23:59:59Z",
        "2263-01-01T00:00:00Z",
        "2024-05-01",
    ],
)
def test_bad_datetimes(text: str) -> None:
    with pytest.raises(ApiProblem) as e:
        parse_datetime(text, "$filter")
    assert e.value.status == 400


@pytest.mark.parametrize(
    "params",
    [
        [("$top", "-1")],
        [("$top", str(TOP_MAX + 1))],
        [("$top", "1.5")],
        [("$top", "")],
        [("$top", "99999999999999999999")],
        [("$skip", "1e3")],
        [("$count", "True")],
        [("$orderby", "name up")],
        [("$orderby", "name asc desc")],
        [("$orderby", "a,b,c,d,e,f")],
        [("$orderby", "")],
        [("$select", "name;drop")],
        [("$select", "")],
        [("$expand", "Datastreams/Observations")],
        [("$expand", "Datastreams($expand=Thing)")],
        [("$expand", "Datastreams($top=1"), ("$top", "1")],
        [("$expand", "Datastreams(top=1)")],
        [("$expand", "Datastreams($top)")],
        [("$expand", "Thing,Thing")],
        [("$expand", "Datastreams($top=5000)")],
        [("$top", "1"), ("$top", "1")],
        [("$format", "json")],
        [("$filter", "x" * 3000)],
    ],
)
def test_bad_options(params: list[tuple[str, str]]) -> None:
    with pytest.raises(ApiProblem) as e:
        parse_options(params)
    assert e.value.status == 400
    assert len(e.value.detail) < 400


@pytest.mark.parametrize(
    "text",
    [
        "",
        "result",
        "result gt",
        "result gt 1 and",
        "result gt 1 or result lt 0",
        "not result gt 1",
        "result gt 1)",
        "(result gt 1",
        "result add 1 gt 2",
        "result gt 'a",
        "result gt 1; DROP DATABASE x",
        "result gt 1\nDROP",
        "result =~ /x/",
        'name eq "x"',
        "substringof('a', name)",
        "geo.intersects(location, geography'POINT(1 2)')",
        "1 eq 1",
        "name eq name",
        "result gt 1e999",
        "result gt 123456789012345678",
        "result gt 1 and " * 40 + "result gt 1",
        "phenomenonTime gt 2024-05-01T00:00:00",
        "a/b/c/d/e eq 1",
        "(" * 500 + "result gt 1" + ")" * 500,
        "(" * 11 + "result gt 1" + ")" * 11,
    ],
)
def test_bad_filters(text: str) -> None:
    with pytest.raises(ApiProblem) as e:
        parse_filter(text)
    assert e.value.status == 400
    assert len(e.value.detail) < 400


def test_filters_nest_up_to_ten_parentheses() -> None:
    assert parse_filter("(" * 10 + "result gt 1" + ")" * 10) == parse_filter("result gt 1")
    assert len(parse_filter("((result gt 1) and (result lt 2)) and (result ne 0)")) == 3


def test_split_top_level_respects_quotes_and_parentheses() -> None:
    assert split_top_level("a(b,c),'d,e',f", ",", "p") == ["a(b,c)", "'d,e'", "f"]
    for bad in ("a(b", "a)b", "'a"):
        with pytest.raises(ApiProblem):
            split_top_level(bad, ",", "p")


def test_stable_ids() -> None:
    a = stable_id("Thing", "dev-1")
    assert a == stable_id("Thing", "dev-1")
    assert 0 < a <= MAX_SAFE_INTEGER
    assert a != stable_id("Location", "dev-1") != stable_id("Thing", "dev-2")
    # The parts are separated: ("ab", "c") is not ("a", "bc").
    assert stable_id("Datastream", "ab", "c") != stable_id("Datastream", "a", "bc")
    ids = {stable_id("Thing", f"dev-{i}") for i in range(10_000)}
    assert len(ids) == 10_000 and max(ids) <= MAX_SAFE_INTEGER


def test_observation_ids_round_trip() -> None:
    assert parse_observation_id(observation_id(123, 1714521600000, "edge")) == (
        123,
        1714521600000,
        "edge",
    )
    assert parse_observation_id(observation_id(5, 0, "import:sensor-community")) == (
        5,
        0,
        "import:sensor-community",
    )
    assert observation_id(5, -60_000, "ttn") == "5--60000-ttn"
    assert parse_observation_id("5--60000-ttn") == (5, -60_000, "ttn")
    # Ids written before the source was part of them still read.
    assert parse_observation_id("5--60000") == (5, -60_000, None)
    for bad in (
        "1-2-Edge",
        "1-2-edge:",
        "1-2-edge-",
        "1-2-import:x_y",
        "",
        "1",
        "1-",
        "-1",
        "0-1",
        "1-01",
        "a-1",
        "1-2-3",
        "1-2--edge",
        "1 -2",
        "1-2\n",
        "1" * 17 + "-1",
        "1--0",
        "1---1",
        "1--01",
    ):
        assert parse_observation_id(bad) is None, bad


class _CannedInflux:
    """Answers every query with the same counter points, and keeps the queries."""

    def __init__(self, values: list[list[object]]) -> None:
        self.values = values
        self.queries: list[str] = []

    def query(self, q: str, *, database: str | None = None) -> list[dict[str, Any]]:
        self.queries.append(q)
        return [{"name": "counter", "columns": ["time", "running_fraction"], "values": self.values}]


def test_running_fraction_null_when_unreported_absent_when_not_read() -> None:
    source = CountSource("cam-1", "car", "left_to_right")
    rows = [ObservationRow(t, 3, 60.0) for t in (0, 60_000, 120_000, 180_000)]
    influx = _CannedInflux([[0, 0.5], [60_000, 1.0], [180_000, 1.0]])
    out = with_running_fraction(cast(InfluxClient, influx), source, rows, limit=10)
    assert [r.running_fraction for r in out] == [0.5, 1.0, None, 1.0]
    (q,) = influx.queries
    assert '"counter"' in q and "'cam-1'" in q and " LIMIT 10" in q
    assert "time >= 0ms AND time <= 180000ms" in q
    assert render(out[2], source)["parameters"] == {"interval_s": 60.0, "running_fraction": None}
    # The LIMIT reached at 60 000: the rows after it were not looked up, and say nothing.
    influx = _CannedInflux([[0, 0.5], [60_000, 1.0]])
    out = with_running_fraction(cast(InfluxClient, influx), source, rows, limit=2)
    assert [r.running_looked_up for r in out] == [True, True, False, False]
    assert render(out[3], source)["parameters"] == {"interval_s": 60.0}
    # Newest first: the query goes newest first too, and the oldest rows are the ones left.
    influx = _CannedInflux([[180_000, 1.0], [120_000, 0.5]])
    out = with_running_fraction(
        cast(InfluxClient, influx), source, rows[::-1], newest_first=True, limit=2
    )
    assert "ORDER BY time DESC" in influx.queries[0]
    assert [(r.running_fraction, r.running_looked_up) for r in out] == [
        (1.0, True),
        (0.5, True),
        (None, False),
        (None, False),
    ]
    # Air observations ask nothing more.
    air = _CannedInflux([])
    assert (
        with_running_fraction(
            cast(InfluxClient, air), AirSource("a", "sds011", "pm2_5"), rows, limit=10
        )
        == rows
    )
    assert air.queries == []


def test_times_past_influxdbs_ends_compare_as_they_mean() -> None:
    from sensorpipe.api.sta.observations import INFLUX_MAX_NS, INFLUX_MIN_NS, _where

    source = AirSource("a", "sds011", "pm2_5")
    early = parse_datetime("1677-01-01T00:00:00Z", "p")
    late = parse_datetime("2262-12-31T00:00:00Z", "p")
    every, none = f"time >= {INFLUX_MIN_NS}", f"time > {INFLUX_MAX_NS}"
    assert INFLUX_MIN_NS == -(2**63) + 2 and INFLUX_MAX_NS == 2**63 - 2
    for value, op, expected in (
        (early, "gt", every),
        (early, "ge", every),
        (early, "lt", none),
        (early, "le", none),
        (early, "eq", none),
        (late, "gt", none),
        (late, "ge", none),
        (late, "eq", none),
        (late, "lt", every),
        (late, "le", every),
    ):
        where = _where(source, [Comparison(("phenomenonTime",), op, value)])
        assert where.endswith(f" AND {expected}"), (op, where)
    inside = parse_datetime("1900-01-01T00:00:00Z", "p")
    where = _where(source, [Comparison(("phenomenonTime",), "gt", inside)])
    assert where.endswith(f"time > {inside.ns}") and inside.ns < 0
