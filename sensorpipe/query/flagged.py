"""Quality flags on the read side: which readings of each interval were flagged, and aggregates
that leave flagged readings out (`exclude`) or show them alone (`only`).

The ingest stores a flagged reading's flags as the string field `qc_<quantity>` (sorted names
joined by ","), present only where a flag is raised (`protocol.storage`). InfluxQL compares a
missing field as false whatever the operator, so "not flagged" cannot be a WHERE condition:

- `only` is one: `qc_<quantity> =~ /(^|,)(fog|stuck)(,|$)/` (any flag: `/./`).
- `exclude` of the mean and the count is computed from two aggregates InfluxDB makes exactly:
  every reading's sum and count, less those of the flagged readings. Of the other aggregates
  (median, min, max, first, last, stddev) it is InfluxDB's aggregate in the intervals without a
  flagged reading, and in those with one, the aggregate of their unflagged readings computed
  here from the readings themselves (at most `RAW_READINGS_MAX` a series, else refused).
- Per interval, the flagged readings are counted (`count(qc_<quantity>)`) and their flag names
  listed (`distinct(qc_<quantity>)`), for the quantities that have ever been flagged (`SHOW
  FIELD KEYS`): a reading never checked (no `qc` field) counts as unflagged here.

Each query is made by the caller's `Statement`, which knows its filters, time range and
grouping: this module adds only the fields, the aggregate and the flag condition.
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sensorpipe.ingest.influx import InfluxClient, identifier
from sensorpipe.protocol import storage
from sensorpipe.quality.flags import ALL_FLAGS, FLAGS, parse
from sensorpipe.query.influxql import QueryInputError

FLAG_MODES = ("include", "exclude", "only")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The aggregates `exclude` computes from sums and counts; the others from the readings of the
# intervals with flagged readings, at most this many a series.
EXCLUDE_AGGREGATES = ("mean", "count")
RAW_READINGS_MAX = 200_000
QC_PREFIX = "qc_"

# (aggregate, fields, extra WHERE conditions) -> InfluxQL selecting `aggregate(field) AS field`
# with the caller's filters and grouping (GROUP BY time(...) and its tags); aggregate "": the
# fields of each reading, grouped by the tags alone, at most RAW_READINGS_MAX + 1 a series.
Statement = Callable[[str, Sequence[str], Sequence[str]], str]
# A series' tags (in the caller's order) and an interval's start (epoch ms).
Key = tuple[tuple[str, ...], int]


@dataclass(frozen=True)
class FlagFilter:
    """`include` (every reading, flags counted), `exclude` or `only` the flagged readings;
    `names`: only these flags count as flagged (none: any flag)."""

    mode: str = "include"
    names: tuple[str, ...] = ()

    def check(self, known: Sequence[str] = ALL_FLAGS) -> None:
        """`known`: the flags the values asked for can carry (counts: COUNT_FLAGS)."""
        if self.mode not in FLAG_MODES:
            raise QueryInputError(f"flags {self.mode!r}: use one of {', '.join(FLAG_MODES)}")
        for name in self.names:
            check_flag_name(name)
            if name not in known:
                raise QueryInputError(
                    f"flag {name!r} is never raised on these values (they can carry: "
                    f"{', '.join(known)})"
                )

    @property
    def regex(self) -> str:
        """The InfluxQL regular expression matching a stored value with one of the flags."""
        if not self.names:
            return "/./"
        return "/(^|,)(" + "|".join(sorted(set(self.names))) + ")(,|$)/"

    def condition(self, quantity: str) -> str:
        return f"{identifier(QC_PREFIX + quantity)} =~ {self.regex}"

    def counted(self, stored: str | None) -> tuple[str, ...]:
        """The flags of a stored value that this filter counts."""
        flags = parse(stored)
        return tuple(f for f in flags if f in self.names) if self.names else flags


def check_flag_name(name: str) -> None:
    if name not in FLAGS:
        close = difflib.get_close_matches(name, ALL_FLAGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise QueryInputError(f"unknown flag {name[:40]!r}{hint} (known: {', '.join(ALL_FLAGS)})")


def flagged_quantities(
    influx: InfluxClient, quantities: Sequence[str], measurement: str = storage.AIR
) -> list[str]:
    """Those of `quantities` that InfluxDB holds a `qc_<quantity>` field of in `measurement`
    (`qc_count` on traffic): the others were never flagged."""
    fields = {
        str(row[0])
        for s in influx.query(f"SHOW FIELD KEYS FROM {identifier(measurement)}")
        for row in s.get("values") or []
    }
    return [q for q in quantities if QC_PREFIX + q in fields]


def rows_by_key(
    influx: InfluxClient, influxql: str, tag_names: Sequence[str]
) -> list[tuple[Key, dict[str, Any]]]:
    out = []
    for s in influx.query(influxql):
        tags = s.get("tags") or {}
        key_tags = tuple(str(tags.get(t, "")) for t in tag_names)
        columns = s["columns"]
        for row in s.get("values") or []:
            out.append(((key_tags, int(row[0])), dict(zip(columns[1:], row[1:], strict=True))))
    return out


@dataclass
class IntervalFlags:
    """The flagged readings of one quantity in one interval: how many, and their flags."""

    count: int
    names: tuple[str, ...]

    @property
    def text(self) -> str:
        return ",".join(self.names)


def interval_flags(
    influx: InfluxClient,
    statement: Statement,
    quantities: Sequence[str],
    flt: FlagFilter,
    tag_names: Sequence[str],
    measurement: str = storage.AIR,
) -> dict[tuple[Key, str], IntervalFlags]:
    """Per (series, interval) and quantity with flagged readings: their count and flag names
    (with `flt.names`, those flags alone)."""
    found: dict[tuple[Key, str], IntervalFlags] = {}
    for q in flagged_quantities(influx, quantities, measurement):
        field = QC_PREFIX + q
        condition = [flt.condition(q)]
        for key, row in rows_by_key(influx, statement("count", [field], condition), tag_names):
            if row.get(field):
                found[(key, q)] = IntervalFlags(int(row[field]), ())
        names: dict[tuple[Key, str], set[str]] = {}
        for key, row in rows_by_key(influx, statement("distinct", [field], condition), tag_names):
            if (key, q) in found:
                names.setdefault((key, q), set()).update(flt.counted(row.get(field)))
        for k, flags in names.items():
            found[k].names = tuple(sorted(flags))
    return found


def filtered_values(
    influx: InfluxClient,
    statement: Statement,
    quantities: Sequence[str],
    aggregate: str,
    flt: FlagFilter,
    tag_names: Sequence[str],
    every_ms: int,
) -> dict[Key, dict[str, float | None]]:
    """Per (series, interval of `every_ms`): each quantity's aggregate without the flagged
    readings (`exclude`) or of them alone (`only`); an interval whose readings were all left
    out is None (or absent)."""
    flagged = flagged_quantities(influx, quantities)
    out: dict[Key, dict[str, float | None]] = {}
    if flt.mode == "only":
        for q in flagged:
            for key, row in rows_by_key(
                influx, statement(aggregate, [q], [flt.condition(q)]), tag_names
            ):
                out.setdefault(key, {})[q] = row.get(q)
        return out
    if aggregate not in EXCLUDE_AGGREGATES:
        return _recomputed(
            influx, statement, quantities, flagged, aggregate, flt, tag_names, every_ms
        )
    sums = _sum_count(influx, statement, quantities, [], tag_names)
    less: dict[Key, dict[str, tuple[float, int]]] = {}
    for q in flagged:
        for key, per_q in _sum_count(influx, statement, [q], [flt.condition(q)], tag_names).items():
            less.setdefault(key, {}).update(per_q)
    for key, per_q in sums.items():
        for q, (total, n) in per_q.items():
            f_total, f_n = less.get(key, {}).get(q, (0.0, 0))
            kept = n - f_n
            if aggregate == "count":
                out.setdefault(key, {})[q] = kept if n else None
            else:
                # Rounded past what a sensor resolves: the difference of two sums is not exact.
                out.setdefault(key, {})[q] = round((total - f_total) / kept, 9) if kept else None
    return out


def _recomputed(
    influx: InfluxClient,
    statement: Statement,
    quantities: Sequence[str],
    flagged: Sequence[str],
    aggregate: str,
    flt: FlagFilter,
    tag_names: Sequence[str],
    every_ms: int,
) -> dict[Key, dict[str, float | None]]:
    """`exclude` for an aggregate that sums and counts cannot make (median, min, max, ...):
    InfluxDB's aggregate where an interval holds no flagged reading; in the intervals that do,
    the aggregate of their unflagged readings, computed here from the readings themselves
    (read between the first and the last such interval, at most RAW_READINGS_MAX a series)."""
    out: dict[Key, dict[str, float | None]] = {}
    for key, row in rows_by_key(influx, statement(aggregate, quantities, []), tag_names):
        out[key] = {q: row.get(q) for q in quantities}
    for q in flagged:
        field = QC_PREFIX + q
        hit = {
            key
            for key, row in rows_by_key(
                influx, statement("count", [field], [flt.condition(q)]), tag_names
            )
            if row.get(field)
        }
        if not hit:
            continue
        lo = min(t for _, t in hit)
        hi = max(t for _, t in hit) + every_ms
        window = [f"time >= {lo}ms", f"time < {hi}ms"]
        kept: dict[Key, list[tuple[int, float]]] = {key: [] for key in hit}
        per_series: dict[tuple[str, ...], int] = {}
        for (tags, t), row in rows_by_key(influx, statement("", [q, field], window), tag_names):
            per_series[tags] = per_series.get(tags, 0) + 1
            if per_series[tags] > RAW_READINGS_MAX:
                raise QueryInputError(
                    f"flags exclude with aggregate {aggregate!r} reads every reading of the "
                    f"intervals with flagged readings: more than {RAW_READINGS_MAX:,} of one "
                    f"series; ask for a shorter time range, or the mean or count"
                )
            key = (tags, t - t % every_ms)
            value = row.get(q)
            if key in kept and value is not None and not flt.counted(row.get(field)):
                kept[key].append((t, float(value)))
        for key, readings in kept.items():
            out.setdefault(key, {})[q] = _aggregate(aggregate, readings)
    return out


def _aggregate(aggregate: str, readings: list[tuple[int, float]]) -> float | None:
    """What InfluxQL's `aggregate` gives of (time, value) readings (None of none)."""
    values = [v for _, v in sorted(readings)]
    if not values:
        return None
    if aggregate == "median":
        return statistics.median(values)
    if aggregate == "min":
        return min(values)
    if aggregate == "max":
        return max(values)
    if aggregate == "first":
        return values[0]
    if aggregate == "last":
        return values[-1]
    if aggregate == "stddev":  # the sample standard deviation, as InfluxQL's
        return statistics.stdev(values) if len(values) > 1 else None
    raise QueryInputError(f"aggregate {aggregate!r}: not one sensorpipe computes")


def _sum_count(
    influx: InfluxClient,
    statement: Statement,
    quantities: Sequence[str],
    conditions: Sequence[str],
    tag_names: Sequence[str],
) -> dict[Key, dict[str, tuple[float, int]]]:
    sums = dict(rows_by_key(influx, statement("sum", quantities, conditions), tag_names))
    counts = dict(rows_by_key(influx, statement("count", quantities, conditions), tag_names))
    out: dict[Key, dict[str, tuple[float, int]]] = {}
    for key, row in counts.items():
        for q in quantities:
            n = row.get(q)
            if n:
                out.setdefault(key, {})[q] = (float(sums.get(key, {}).get(q) or 0.0), int(n))
    return out


def flag_reasons(names: Sequence[str] = ALL_FLAGS) -> dict[str, str]:
    """Each flag's one sentence (quality.flags), for the API and the dashboard's legend."""
    return {name: FLAGS[name] for name in names if name in FLAGS}


def flag_rows(
    influx: InfluxClient,
    statement: Statement,
    rows: list[dict[str, Any]],
    quantities: Sequence[str],
    flt: FlagFilter,
    aggregate: str | None,
    tag_names: Sequence[str],
    every_ms: int = 0,
) -> list[dict[str, Any]]:
    """`sensorpipe query air`'s rows (time in ISO 8601, the tags, the quantities) with
    their flags: aggregated (`aggregate` given), `<quantity>_flagged` (how many readings of the
    interval were flagged) and `<quantity>_flags` (their flags); raw, `<quantity>_flags` (the
    reading's). With `exclude` or `only`, the values are those without the flagged readings or
    of them alone, and a row left without any value is left out."""
    if not rows:
        return rows
    by_key = {(tuple(str(r.get(t, "")) for t in tag_names), _epoch_ms(r["time"])): r for r in rows}
    flagged = flagged_quantities(influx, quantities)
    shown: set[str] = set()
    # Per row and quantity, whether its reading(s) count as flagged.
    hit: set[tuple[int, str]] = set()
    if aggregate is not None:
        found = interval_flags(influx, statement, flagged, flt, tag_names)
        for ((tags, t), q), f in found.items():
            row = by_key.get((tags, t))
            if row is not None:
                row[f"{q}_flagged"], row[f"{q}_flags"] = f.count, f.text
                shown.add(q)
        if flt.mode != "include":
            values = filtered_values(
                influx, statement, flagged, aggregate, flt, tag_names, every_ms
            )
            for key, row in by_key.items():
                for q in quantities:
                    if q in flagged or flt.mode == "only":
                        row[q] = values.get(key, {}).get(q)
    elif flagged:
        either = "(" + " OR ".join(flt.condition(q) for q in flagged) + ")"
        fields = [QC_PREFIX + q for q in flagged]
        for (tags, t), found_row in rows_by_key(influx, statement("", fields, [either]), tag_names):
            row = by_key.get((tags, t))
            if row is None:
                continue
            for q in flagged:
                counted = flt.counted(found_row.get(QC_PREFIX + q))
                if counted:
                    row[f"{q}_flags"] = ",".join(counted)
                    shown.add(q)
                    hit.add((id(row), q))
        if flt.mode != "include":
            for row in rows:
                for q in quantities:
                    if ((id(row), q) in hit) == (flt.mode == "exclude"):
                        row[q] = None
    for row in rows:  # every row the same columns, in the quantities' order
        for q in (q for q in quantities if q in shown):
            if aggregate is not None:
                row[f"{q}_flagged"] = row.pop(f"{q}_flagged", 0)
            row[f"{q}_flags"] = row.pop(f"{q}_flags", "")
    if flt.mode == "include":
        return rows
    return [r for r in rows if any(r.get(q) is not None for q in quantities)]


def _epoch_ms(iso: str) -> int:
    """A row's ISO 8601 time (UTC) as InfluxDB's epoch milliseconds."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (moment - _EPOCH) // timedelta(milliseconds=1)
