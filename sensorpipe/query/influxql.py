"""Builds InfluxQL for the `air` measurement from user-facing filters.

Every user value goes in as an escaped string literal or a validated identifier, so a device id
or site name can never change the statement.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sensorpipe.ingest.influx import identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import SOURCE_TAG, check_source
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.query.bbox import BBox, bbox_condition

AGGREGATES = ("mean", "median", "min", "max", "count", "last", "first", "stddev")
_DURATION = re.compile(r"^\d+(ms|s|m|h|d|w)$")
_RELATIVE = re.compile(r"^-(\d+(ms|s|m|h|d|w))$")
GROUP_TAGS = ("device_id", "site", "sensor")


class QueryInputError(ValueError):
    """A filter the user gave cannot be used; the message says what would work."""


# The times InfluxDB can store and compare: int64 nanoseconds since the epoch, but for its two
# ends (InfluxQL refuses a bound past them: "overflowed duration").
INFLUX_MIN_NS = -(2**63) + 2
INFLUX_MAX_NS = 2**63 - 2
INFLUX_MIN_TEXT = "1677-09-21T00:12:43.145224194Z"
INFLUX_MAX_TEXT = "2262-04-11T23:47:16.854775806Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_ns(t: datetime) -> int:
    """`t` in nanoseconds since the epoch, exactly (datetime has microseconds)."""
    return ((t - _EPOCH) // timedelta(microseconds=1)) * 1000


def check_influx_range(t: datetime, given: str, name: str) -> None:
    """Refuse a time InfluxDB cannot hold, with its exact range, rather than let the query
    overflow inside InfluxDB."""
    if not INFLUX_MIN_NS <= datetime_ns(t) <= INFLUX_MAX_NS:
        raise QueryInputError(
            f"{name} {given[:40]!r} is outside the times InfluxDB can hold "
            f"({INFLUX_MIN_TEXT} .. {INFLUX_MAX_TEXT}): give a time between them"
        )


def check_first_interval(t: datetime, every_ns: int, given: str, every: str) -> None:
    """Refuse a `from` whose interval (intervals are aligned to the epoch, as InfluxDB's GROUP
    BY time() aligns them) starts before the times InfluxDB can hold: the query would
    overflow inside InfluxDB however late in that interval `from` lies."""
    ns = datetime_ns(t)
    if ns - ns % every_ns >= INFLUX_MIN_NS:
        return
    earliest = -(-INFLUX_MIN_NS // every_ns) * every_ns  # the first interval inside the range
    first = _EPOCH + timedelta(microseconds=earliest // 1000)
    raise QueryInputError(
        f"from {given[:40]!r} with every {every}: its interval starts before the times "
        f"InfluxDB can hold ({INFLUX_MIN_TEXT} .. {INFLUX_MAX_TEXT}); give a from of "
        f"{first.isoformat().replace('+00:00', 'Z')} or later"
    )


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_ns(text: str) -> int:
    """A duration `_DURATION` matches (5m, 30s, 1w), in nanoseconds."""
    m = _DURATION.match(text)
    if m is None:
        raise QueryInputError(f"window {text!r}: use a duration like 30s, 5m, 1h, 1d")
    unit = m.group(1)
    return int(text[: -len(unit)]) * round(_UNIT_SECONDS[unit] * 1000) * 1_000_000


def parse_time(
    value: str, now: datetime | None = None, *, relative_example: str = "-1h or -30m"
) -> datetime:
    """'now', a relative '-1h', a date (midnight UTC) or an ISO 8601 time with offset."""
    now = now or datetime.now(UTC)
    if value == "now":
        return now
    m = _RELATIVE.match(value)
    if m:
        amount = m.group(1)
        unit = m.group(2)
        try:
            return now - timedelta(seconds=int(amount[: -len(unit)]) * _UNIT_SECONDS[unit])
        except (OverflowError, ValueError):
            raise QueryInputError(f"time {value!r}: too far back (before year 1)") from None
    if _DATE.match(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            raise QueryInputError(f"time {value!r}: no such date") from None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryInputError(
            f"time {value!r}: use 'now', a relative time like {relative_example}, a date like "
            f"2026-11-01 (midnight UTC), or ISO 8601 like 2026-11-01T00:00:00Z"
        ) from None
    if ts.tzinfo is None:
        raise QueryInputError(f"time {value!r} has no UTC offset; add Z or +01:00")
    return ts


def time_expression(value: str) -> str:
    """The InfluxQL for a time `parse_time` accepts ('now' and '-1h' stay relative)."""
    if value == "now":
        return "now()"
    m = _RELATIVE.match(value)
    if m:
        return f"now() - {m.group(1)}"
    return string_literal(parse_time(value).isoformat())


def tag_values(tag: str) -> str:
    """InfluxQL listing every value of `tag` in the `air` measurement."""
    return f"SHOW TAG VALUES FROM {identifier(storage.AIR)} WITH KEY = {identifier(tag)}"


@dataclass
class AirQuery:
    devices: Sequence[str] = ()
    sites: Sequence[str] = ()
    quantities: Sequence[str] = ()
    sources: Sequence[str] = ()  # provenance: edge, airrohr, ttn, import:<format>
    start: str = "-1h"
    end: str = "now"
    every: str | None = None
    aggregate: str = "mean"
    limit: int | None = None
    # Only readings in this box (their own position, or their device's location: bbox_devices).
    bbox: BBox | None = None
    bbox_devices: Sequence[str] = ()
    # More WHERE conditions, ANDed (query.flagged: the flag conditions on `qc_<quantity>`).
    conditions: Sequence[str] = ()
    columns: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        for source in self.sources:
            problem = check_source(source)
            if problem:
                raise QueryInputError(problem)
        for q in self.quantities:
            if q not in QUANTITIES:
                close = difflib.get_close_matches(q, list(QUANTITIES), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise QueryInputError(
                    f"unknown quantity {q!r}{hint} (known: {', '.join(QUANTITIES)})"
                )
        if self.every is not None and (
            not _DURATION.match(self.every) or not self.every.lstrip("0")[:1].isdigit()
        ):
            raise QueryInputError(f"window {self.every!r}: use a duration like 30s, 5m, 1h, 1d")
        if self.aggregate not in AGGREGATES:
            raise QueryInputError(
                f"aggregate {self.aggregate!r}: use one of {', '.join(AGGREGATES)}"
            )
        if self.limit is not None and self.limit < 1:
            raise QueryInputError(
                f"limit {self.limit}: give 1 or more (leave the limit out for every row)"
            )
        now = datetime.now(UTC)
        start, end = parse_time(self.start, now), parse_time(self.end, now)
        check_influx_range(start, self.start, "from")
        check_influx_range(end, self.end, "to")
        if self.every is not None:
            check_first_interval(start, duration_ns(self.every), self.start, self.every)
        if start == end:
            raise QueryInputError(
                f"from {self.start!r} and to {self.end!r} are the same time: no time lies "
                f"between them; give a later --to"
            )
        if start > end:
            raise QueryInputError(
                f"from {self.start!r} is not before to {self.end!r}: no time lies between "
                f"them; swap them"
            )
        self.columns = list(self.quantities or QUANTITIES)

    def to_influxql(self) -> str:
        if self.every:
            select = ", ".join(
                f"{self.aggregate}({identifier(q)}) AS {identifier(q)}" for q in self.columns
            )
        else:
            # Raw readings in a box come with their positions (a ride's route).
            positions = ["lat", "lon"] if self.bbox is not None else []
            select = ", ".join(identifier(q) for q in [*self.columns, *positions])
        where = [f"time >= {time_expression(self.start)}", f"time < {time_expression(self.end)}"]
        if self.bbox is not None:
            where.append(bbox_condition(self.bbox, tuple(self.bbox_devices)))
        where.extend(self.conditions)
        for tag, values in (
            ("device_id", self.devices),
            ("site", self.sites),
            (SOURCE_TAG, self.sources),
        ):
            if values:
                where.append(
                    "("
                    + " OR ".join(f"{identifier(tag)} = {string_literal(v)}" for v in values)
                    + ")"
                )
        group = [identifier(t) for t in GROUP_TAGS]
        if self.every:
            group.insert(0, f"time({self.every})")
        sql = (
            f"SELECT {select} FROM {identifier(storage.AIR)} WHERE {' AND '.join(where)} "
            f"GROUP BY {', '.join(group)}"
        )
        if self.every:
            sql += " fill(none)"
        if self.limit:
            sql += f" LIMIT {int(self.limit)}"
        return sql
