"""Observations, read from InfluxDB a page at a time.

An air datastream's observations are the stored values of its quantity, one per point; a
count datastream's are the per-interval counts, their phenomenonTime the interval
(`start/end`, from the point's time and `interval_s`) and their resultTime its end.

Every query names the datastream's series by its tags and carries LIMIT and OFFSET, so no
request reads more than one page; `$filter` on phenomenonTime and result becomes a WHERE
clause built only from checked numbers and escaped names. A filter on phenomenonTime compares
the observation's (interval's) start.

A calibrated datastream's observations are its raw datastream's readings, calibrated as they
are read (never stored) by the calibration assigned to the device that covers each reading's
time (sensorpipe.calibration.readtime); its `parameters` name the calibration, the uncertainty
(± the calibration's RMSE, calibration.status.uncertainty) and the raw value. The query is
bounded to the time its assignments cover; a reading in a gap between two validity periods is
left out of its page (a page can then hold fewer than $top, and $count counts it). A method
with humidity takes the point's own relative_humidity, else the reference station's hourly RH,
as `query air` does; a reading with neither is left out. Its `result` cannot be filtered
(InfluxDB holds the raw values only); $orderby, $top, $skip and the time filters work as on
the raw datastream.

A count observation carries the counter's `running_fraction` for its interval (the `counter`
point of the device at the same time) in its parameters, so a half-running minute is not read
as a quiet street; a page reads them with one more query: the device's counter points in the
page's time range, with a LIMIT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sensorpipe.api.problems import bad_request
from sensorpipe.api.sta.catalog import AirSource, CalibratedSource, CountSource, Source
from sensorpipe.api.sta.odata import Comparison, DateTime, OrderBy
from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import EDGE, SOURCE_TAG
from sensorpipe.query.literals import number_literal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RH = "relative_humidity"
RAW = "raw"  # readtime's label of a row no calibration applied to
HOUR_MS = 3_600_000
# The times InfluxDB stores points at, in ns: int64 but for its two ends.
INFLUX_MIN_NS = -(2**63) + 2
INFLUX_MAX_NS = 2**63 - 2
# Observation ids name their time in ms; these are the ms InfluxDB can look a point up at.
MIN_TIME_MS = -(-INFLUX_MIN_NS // 1_000_000)
MAX_TIME_MS = INFLUX_MAX_NS // 1_000_000
_INFLUX_OPS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
TIME_PATHS = (("phenomenonTime",), ("resultTime",), ("id",), ("@iot.id",))
DATASTREAM_ID_PATHS = (("Datastream", "id"), ("Datastream", "@iot.id"))


@dataclass(frozen=True)
class ObservationRow:
    time_ms: int
    result: float | int
    interval_s: float | None  # counts only
    # Counts only: how much of the interval the counter ran; None when it did not report.
    running_fraction: float | None = None
    # False when the page spanned more counter points than its query could read and this
    # row's were not among them: then no running_fraction is written (null would say "did not
    # report").
    running_looked_up: bool = True
    # The point's provenance (its `source` tag; points stored before there were such tags came
    # from edge devices): part of the observation's id, as a device's own reading and an
    # imported one can share a time.
    source: str = EDGE
    # Quality flags (sensorpipe.quality): the check set's version (None: never checked) and
    # the flags raised on this value.
    qc: int | None = None
    flags: tuple[str, ...] = ()
    # Calibrated datastreams only: the point's own relative humidity (read to calibrate with),
    # the calibration that made `result`, and the raw value it was made from.
    humidity: float | None = None
    calibration: str | None = None
    raw: float | None = None


def iso_time(ms: int) -> str:
    """`ms` since the epoch as ISO 8601 in UTC with milliseconds: 2024-05-01T12:00:00.000Z."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _where(source: Source, conditions: list[Comparison]) -> str:
    """The WHERE clause: the datastream's series and the filter's conditions."""
    if isinstance(source, AirSource):
        tags = {"device_id": source.device_id, "sensor": source.sensor}
        value_field = source.quantity
    else:
        tags = {
            "device_id": source.device_id,
            "class": source.count_class,
            "direction": source.direction,
        }
        value_field = "count"
    parts = [f"{identifier(k)} = {string_literal(v)}" for k, v in tags.items()]
    if isinstance(source, CalibratedSource):
        parts += _covered(source)
    for c in conditions:
        op = _INFLUX_OPS[c.op]
        if c.path == ("resultQuality",):
            parts.append(_quality_condition(c, value_field))
        elif c.path == ("result",) and isinstance(source, CalibratedSource):
            raise bad_request(
                "$filter: the result of a calibrated datastream is computed when read and "
                "cannot be filtered; filter its raw datastream "
                f"(Datastreams({source.raw_datastream_id})) or on phenomenonTime",
                "$filter",
            )
        elif c.path == ("result",):
            parts.append(f"{identifier(value_field)} {op} {_number(c)}")
        else:
            parts.append(_time_condition(c, source))
    return " AND ".join(parts)


def _covered(source: CalibratedSource) -> list[str]:
    """The time its assignments cover, from the earliest start to the latest end (open where
    one is open)."""
    starts = [a.valid_from_ms for a in source.assignments]
    ends = [a.valid_to_ms for a in source.assignments]
    out = []
    if starts and None not in starts:
        out.append(f"time >= {min(s for s in starts if s is not None)}ms")
    if ends and None not in ends:
        out.append(f"time < {max(e for e in ends if e is not None)}ms")
    return out


def _quality_condition(c: Comparison, value_field: str) -> str:
    """`resultQuality eq 'fog'`: the values flagged fog (among others); `resultQuality ne
    null`: the values with any flag. InfluxQL cannot select a missing field, so the values
    without a flag cannot be filtered for."""
    from sensorpipe.quality.flags import ALL_FLAGS
    from sensorpipe.query.flagged import FlagFilter

    if c.op == "eq" and isinstance(c.value, str) and c.value in ALL_FLAGS:
        return FlagFilter("include", (c.value,)).condition(value_field)
    if c.op == "ne" and c.value is None:
        return FlagFilter().condition(value_field)
    raise bad_request(
        f"$filter: resultQuality can be compared as `resultQuality eq 'FLAG'` (values with "
        f"that quality flag; flags: {', '.join(ALL_FLAGS)}) or `resultQuality ne null` (values "
        f"with any flag); values without a flag cannot be filtered for",
        "$filter",
    )


def _number(c: Comparison) -> str:
    if isinstance(c.value, bool) or not isinstance(c.value, int | float):
        raise bad_request(
            f"$filter: result is compared with a number, not {c.value!r}"[:200], "$filter"
        )
    return number_literal(c.value)  # a plain decimal: InfluxQL cannot read 1e-05


def _time_condition(c: Comparison, source: Source) -> str:
    if c.path == ("resultTime",) and isinstance(source, CountSource):
        raise bad_request(
            "$filter: a count's resultTime is the end of its interval and cannot be filtered; "
            "filter on phenomenonTime (the interval's start)",
            "$filter",
        )
    if not isinstance(c.value, DateTime):
        raise bad_request(
            f"$filter: {'/'.join(c.path)} is compared with a date-time such as "
            f"2024-05-01T00:00:00Z",
            "$filter",
        )
    if c.op == "ne":
        raise bad_request(f"$filter: {'/'.join(c.path)} ne is not supported", "$filter")
    ns = c.value.ns
    if INFLUX_MIN_NS <= ns <= INFLUX_MAX_NS:
        return f"time {_INFLUX_OPS[c.op]} {ns}"
    # The years 1677 and 2262 reach past InfluxDB's ends (and past int64, which InfluxQL
    # refuses; its aggregates also return nothing for a bound at int64's end). No point lies
    # beyond an end, so the comparison holds for every point or for none: said with the ends.
    before_start = ns < INFLUX_MIN_NS
    holds = c.op in (("gt", "ge") if before_start else ("lt", "le"))
    return f"time >= {INFLUX_MIN_NS}" if holds else f"time > {INFLUX_MAX_NS}"


def check_conditions(conditions: list[Comparison]) -> None:
    """Refuse any comparison observations cannot be filtered by (the datastream-id ones are
    the caller's to take out first)."""
    for c in conditions:
        if c.path not in (("phenomenonTime",), ("resultTime",), ("result",), ("resultQuality",)):
            raise bad_request(
                f"$filter on Observations compares phenomenonTime, resultTime, result or "
                f"resultQuality "
                f"(or Datastream/@iot.id), not {'/'.join(c.path)!r}"[:300],
                "$filter",
            )


def descending(orderby: list[OrderBy]) -> bool:
    """Whether the observations go newest first; only their time can order them."""
    for o in orderby:
        if o.path not in TIME_PATHS:
            raise bad_request(
                f"$orderby on Observations: only by phenomenonTime (or resultTime, id), "
                f"not {'/'.join(o.path)!r}"[:300],
                "$orderby",
            )
    return bool(orderby) and orderby[0].descending


def _select_fields(source: Source) -> tuple[str, str]:
    """The columns an observation is read from (its value first, the `source` tag last: a
    tag selected with fields comes as a column, and the rows of every source stay one list
    in time order, paged together) and the measurement."""
    tag = identifier(SOURCE_TAG)
    if isinstance(source, AirSource):
        quality = f"{identifier('qc')}, {identifier('qc_' + source.quantity)}"
        if isinstance(source, CalibratedSource) and source.quantity != RH:
            quality += f", {identifier(RH)}"
        return f"{identifier(source.quantity)}, {quality}, {tag}", identifier(storage.AIR)
    return (
        f"{identifier('count')}, {identifier('interval_s')}, {identifier('qc')}, "
        f"{identifier('qc_count')}, {tag}",
        identifier(storage.TRAFFIC),
    )


def _rows(series: list[dict[str, Any]], source: Source) -> list[ObservationRow]:
    from sensorpipe.quality.flags import parse

    out = []
    for s in series:
        columns = s["columns"]
        for values in s.get("values") or []:
            row = dict(zip(columns, values, strict=True))
            if values[1] is None:
                continue
            interval = None
            if isinstance(source, CountSource):
                interval = float(row["interval_s"]) if row.get("interval_s") is not None else 0.0
            qc = row.get("qc")
            out.append(
                ObservationRow(
                    int(values[0]),
                    values[1],
                    interval,
                    source=str(row.get(SOURCE_TAG) or EDGE),
                    qc=int(qc) if qc is not None else None,
                    flags=parse(row.get(f"qc_{columns[1]}")),
                    humidity=row.get(RH),
                )
            )
    return out


def calibrated(
    influx: InfluxClient, source: Source, rows: list[ObservationRow]
) -> list[ObservationRow]:
    """`rows` of a calibrated datastream calibrated (readtime.calibrate_rows_grouped: a group
    calibration by the factor of the reading's hour), each naming its
    calibration; a row no calibration covers, or one whose method lacks its humidity, is left
    out. Rows of any other datastream as they are."""
    if not isinstance(source, CalibratedSource) or not rows:
        return rows
    from sensorpipe.calibration.readtime import (
        COLUMN,
        calibrate_rows_grouped,
        label_of,
        needing_humidity,
    )
    from sensorpipe.calibration.status import FACTORS

    q = source.quantity
    table = [
        {
            "time": iso_time(r.time_ms),
            "device_id": source.device_id,
            q: r.result,
            **({RH: r.humidity} if q != RH and r.humidity is not None else {}),
        }
        for r in rows
    ]
    reference_rh = _reference_humidity(
        influx, needing_humidity(table, source.assignments, source.records)
    )
    factors = {c: r[FACTORS] for c, r in source.records.items() if FACTORS in r}
    done = calibrate_rows_grouped(
        table, source.assignments, source.records, reference_rh, factors, None
    )
    made = [label_of(str(d[COLUMN]), q) for d in done]
    return [
        replace(r, result=d[q], calibration=c, raw=float(r.result))
        for r, d, c in zip(rows, done, made, strict=True)
        if c != RAW
    ]


def _reference_humidity(
    influx: InfluxClient, wanted: dict[str, list[int]]
) -> dict[str, dict[int, float]]:
    """Per reference station, its hourly RH over the times of the rows that need it."""
    from sensorpipe.calibration.data import Window, hourly

    out = {}
    for reference, times in wanted.items():
        window = Window(min(times) - min(times) % HOUR_MS, max(times) + HOUR_MS)
        out[reference] = {h: v for h, (v, _) in hourly(influx, reference, RH, window).items()}
    return out


def with_running_fraction(
    influx: InfluxClient,
    source: Source,
    rows: list[ObservationRow],
    *,
    newest_first: bool = False,
    limit: int,
) -> list[ObservationRow]:
    """`rows` (a page of count observations, in time order, newest first if so) with the
    counter's running_fraction at each one's time, read in one query of at most `limit`
    points. Should the page span more counter points than that (a sparse `$filter`), the rows
    past the points read are marked not looked up rather than given a None that would say the
    counter did not report."""
    if not isinstance(source, CountSource) or not rows:
        return rows
    lo = min(r.time_ms for r in rows)
    hi = max(r.time_ms for r in rows)
    q = (
        f"SELECT {identifier('running_fraction')} FROM {identifier(storage.COUNTER)} "
        f"WHERE {identifier('device_id')} = {string_literal(source.device_id)} "
        f"AND time >= {int(lo)}ms AND time <= {int(hi)}ms "
        f"ORDER BY time {'DESC' if newest_first else 'ASC'} LIMIT {int(limit)}"
    )
    found: dict[int, float] = {}
    last: int | None = None
    n = 0
    for s in influx.query(q):
        for row in s.get("values") or []:
            n += 1
            last = int(row[0])
            if row[1] is not None:
                found[last] = float(row[1])
    out = []
    for r in rows:
        beyond = (
            n >= limit
            and last is not None
            and (r.time_ms < last if newest_first else r.time_ms > last)
        )
        out.append(replace(r, running_fraction=found.get(r.time_ms), running_looked_up=not beyond))
    return out


def page(
    influx: InfluxClient,
    source: Source,
    conditions: list[Comparison],
    orderby: list[OrderBy],
    top: int,
    skip: int,
    *,
    counter_limit: int,
) -> tuple[list[ObservationRow], bool]:
    """One page of a datastream's observations, and whether more follow it; count
    observations with their running_fraction (read with at most `counter_limit` points)."""
    check_conditions(conditions)
    newest_first = descending(orderby)
    fields, measurement = _select_fields(source)
    q = (
        f"SELECT {fields} FROM {measurement} WHERE {_where(source, conditions)} "
        f"ORDER BY time {'DESC' if newest_first else 'ASC'} LIMIT {top + 1} OFFSET {skip}"
    )
    rows = _rows(influx.query(q), source)
    shown = with_running_fraction(
        influx, source, rows[:top], newest_first=newest_first, limit=counter_limit
    )
    return calibrated(influx, source, shown), len(rows) > top


def count(influx: InfluxClient, source: Source, conditions: list[Comparison]) -> int:
    """How many observations of the datastream match the conditions."""
    check_conditions(conditions)
    value_field = source.quantity if isinstance(source, AirSource) else "count"
    _, measurement = _select_fields(source)
    q = (
        f"SELECT count({identifier(value_field)}) FROM {measurement} "
        f"WHERE {_where(source, conditions)} LIMIT 1"
    )
    for s in influx.query(q):
        for row in s.get("values") or []:
            return int(row[1] or 0)
    return 0


def one(
    influx: InfluxClient, source: Source, time_ms: int, provenance: str | None = None
) -> ObservationRow | None:
    """The datastream's observation at `time_ms` from `provenance` (a `source` tag's value;
    None: the first at that time, whatever its source), if there is one."""
    fields, measurement = _select_fields(source)
    tag = identifier(SOURCE_TAG)
    by_source = ""
    if provenance == EDGE:  # points stored before there were source tags came from the edge
        by_source = f" AND ({tag} = {string_literal(EDGE)} OR {tag} = '')"
    elif provenance is not None:
        by_source = f" AND {tag} = {string_literal(provenance)}"
    q = (
        f"SELECT {fields} FROM {measurement} WHERE {_where(source, [])}{by_source} "
        f"AND time = {int(time_ms)}ms LIMIT 1"
    )
    rows = with_running_fraction(influx, source, _rows(influx.query(q), source), limit=1)
    rows = calibrated(influx, source, rows)
    return rows[0] if rows else None


def _quality(row: ObservationRow) -> dict[str, Any]:
    """`resultQuality`: the quality flags raised on the value (a list of their names), null
    where it was checked and none was raised; absent where it was never checked (stored before
    there were flags, or with flagging off)."""
    if row.qc is None:
        return {}
    return {"resultQuality": list(row.flags) or None}


def render(row: ObservationRow, source: Source) -> dict[str, Any]:
    """An observation's own properties, as SensorThings writes them."""
    if isinstance(source, CountSource):
        end_ms = row.time_ms + round((row.interval_s or 0.0) * 1000)
        return {
            "phenomenonTime": f"{iso_time(row.time_ms)}/{iso_time(end_ms)}",
            "resultTime": iso_time(end_ms),
            "result": int(row.result),
            **_quality(row),
            "parameters": {"interval_s": row.interval_s}
            | ({"running_fraction": row.running_fraction} if row.running_looked_up else {}),
        }
    out = {
        "phenomenonTime": iso_time(row.time_ms),
        "resultTime": iso_time(row.time_ms),
        "result": row.result,
        **_quality(row),
    }
    if isinstance(source, CalibratedSource) and row.calibration is not None:
        from sensorpipe.calibration.status import uncertainty

        # As /api/v1/air gives it: ± to 0.01 of the unit, its basis the calibration's key.
        error, rmse = uncertainty(source.records.get(row.calibration) or {})
        out["parameters"] = {
            "calibration": row.calibration,
            "uncertainty": None if error is None else round(error, 2),
            "uncertainty_basis": f"calibration:{row.calibration}",
            "uncertainty_rmse": rmse,
            "raw_result": row.raw,
        }
    return out
