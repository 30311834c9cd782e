"""`sensorpipe query`: air measurements and counts of passers-by from InfluxDB as a table, CSV
or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, options
from sensorpipe.quality.flags import COUNT_FLAGS
from sensorpipe.query.uncertainty import CALIBRATED_AGGREGATES

if TYPE_CHECKING:
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.calibrated import Calibrations
    from sensorpipe.query.flagged import FlagFilter
    from sensorpipe.query.influxql import AirQuery


class _AirByDefault(click.Group):
    """`sensorpipe query --device ...` (options first, as before there were subcommands) runs
    `sensorpipe query air --device ...`; so does a bare `sensorpipe query`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in self.get_help_option_names(ctx)):
            args = ["air", *args]
        return super().parse_args(ctx, args)


# How both queries print what they found.
FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)


def flag_options(help: str, example: str, known: Sequence[str] | None = None) -> Any:
    """--flags include|exclude|only (`flag_mode`) and --flag NAME (`flag_names`): both
    queries' quality flags, `help` saying what --flags does for the query."""
    from sensorpipe.quality.flags import ALL_FLAGS

    known = ALL_FLAGS if known is None else known
    return options(
        click.option(
            "--flags",
            "flag_mode",
            type=click.Choice(["include", "exclude", "only"]),
            default="include",
            show_default=True,
            help=help,
        ),
        click.option(
            "--flag",
            "flag_names",
            multiple=True,
            help=f"Only this flag counts as flagged, e.g. {example} (repeatable; one of "
            f"{', '.join(known)}).",
        ),
    )


# The end of both queries' time range (their start has each its own default).
TO_OPTION = click.option("--to", "end", default="now", show_default=True)


# Which InfluxDB both queries ask (the stack's unless given), and which devices and sites.
SELECT_OPTIONS = options(
    DIR_OPTION,
    INFLUX_OPTIONS,
    click.option("--device", "devices_", multiple=True, help="Device id (repeatable)."),
    click.option("--site", "sites", multiple=True, help="Site (repeatable)."),
)


@click.group(cls=_AirByDefault)
def query() -> None:
    """Air measurements (`query air`) and counts of passers-by (`query counts`) from InfluxDB.

    `sensorpipe query --device ...`, with an option first, is `sensorpipe query air --device
    ...`, as it was before `query counts` existed.
    """


@query.command("air")
@SELECT_OPTIONS
@click.option("--quantity", "quantities", multiple=True, help="e.g. pm2_5 (repeatable).")
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Only data from this source: edge, airrohr, ttn, import:<format>, reference:<format> "
    "(repeatable).",
)
@click.option(
    "--bbox",
    default=None,
    help="Only readings in minlon,minlat,maxlon,maxlat: by their own position (mobile "
    "sensors, imported rides) or their device's registered location.",
)
@click.option(
    "--from",
    "start",
    default="-1h",
    show_default=True,
    help="Start: -1h, -30m, a date (midnight UTC) or ISO 8601 with offset.",
)
@TO_OPTION
@click.option("--every", default=None, help="Aggregation window, e.g. 5m; raw values if unset.")
@click.option(
    "--agg",
    "aggregate",
    default=None,
    help="Aggregate per --every window: mean (default), median, min, max, count, first, last, "
    "stddev.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many rows per series."
)
@click.option(
    "--values",
    "values_",
    type=click.Choice(["calibrated", "raw"]),
    default="calibrated",
    show_default=True,
    help="calibrated: where a calibration is assigned to the device (`sensorpipe calibrate "
    "apply`), its values, computed now from the raw ones; raw elsewhere. raw: as stored. The "
    "column `calibration` names the calibration of each row, or raw; <quantity>_uncertainty_<unit> "
    "is each value's ± (the calibration's RMSE, else RIVM's PM defaults or a data sheet) and "
    "<quantity>_indicative whether no calibration corrected a low-cost value.",
)
@flag_options(
    "Quality flags: every reading, with <quantity>_flags (and, per --every window, "
    "<quantity>_flagged: how many); exclude leaves flagged readings out; only shows them alone.",
    "fog",
)
@FORMAT_OPTION
def query_air(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    sites: tuple[str, ...],
    quantities: tuple[str, ...],
    sources: tuple[str, ...],
    bbox: str | None,
    start: str,
    end: str,
    every: str | None,
    aggregate: str | None,
    limit: int | None,
    values_: str,
    flag_mode: str,
    flag_names: tuple[str, ...],
    fmt: str,
) -> None:
    """Select air measurements by device, site, quantity, place and time; print table, CSV or
    JSON, calibrated where a calibration applies (see --values), with each reading's quality
    flags."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.bbox import BBoxError, devices_inside, parse_bbox
    from sensorpipe.query.influxql import GROUP_TAGS, AirQuery, QueryInputError, duration_ns
    from sensorpipe.query.output import drop_empty_columns, rows_from_series

    if aggregate is not None and every is None:
        fail(
            f"--agg {aggregate} needs --every (the window to aggregate over); without it, "
            f"raw values are printed"
        )
    flt = _flag_filter(flag_mode, flag_names)
    box = None
    if bbox is not None:
        try:
            box = parse_bbox(bbox)
        except BBoxError as exc:
            fail(f"--bbox: {exc}")
    calibrating = values_ == "calibrated" and (aggregate or "mean") in CALIBRATED_AGGREGATES
    calibration = _calibrations(directory, devices_) if calibrating else None
    asked = quantities
    if calibration is not None and quantities:
        # A method with humidity needs the rows' relative humidity: read, used, not printed.
        quantities = (*quantities, *sorted(calibration.needs(quantities) - set(quantities)))
    try:
        q = AirQuery(
            devices=devices_,
            sites=sites,
            quantities=quantities,
            sources=sources,
            start=start,
            end=end,
            every=every,
            aggregate=aggregate or "mean",
            limit=limit,
            bbox=box,
        )
    except QueryInputError as exc:
        fail(str(exc))
    if box is not None:
        # Stationary devices carry no position with their readings: their registered one.
        q.bbox_devices = devices_inside(local_stack(directory).registry(), box)
    influx_url = _influx_url(directory, influx_url)
    try:
        influxql = q.to_influxql()
    except QueryInputError as exc:
        fail(str(exc))
    client = InfluxClient(influx_url, database)
    note = None
    try:
        rows = rows_from_series(client.query(influxql), GROUP_TAGS)
        readings = bool(rows)
        rows = _with_flags(client, q, rows, flt)
        if not readings:
            note = _explain_empty(
                client,
                database,
                {"device_id": devices_, "site": sites},
                directory=directory,
            )
        elif not rows:
            left = "without a flag" if flt.mode == "exclude" else "flagged"
            note = f"no air readings {left} match these filters from {start} to {end}"
        if calibration is not None and rows:
            calibration.read_reference_humidity(client, rows)
    except (QueryError, StorageUnavailable, QueryInputError) as exc:
        fail(str(exc))
    finally:
        client.close()
    window_ms = None if every is None else duration_ns(every) // 1_000_000
    rows = _label(rows, calibration, asked, quantities, window_ms)
    rows = _with_uncertainty(rows, calibration, directory, aggregate, fmt)
    columns = drop_empty_columns(rows, ["time", *GROUP_TAGS, "calibration"])
    _print_rows(
        rows,
        columns,
        fmt,
        note or f"no air readings match these filters from {start} to {end}",
        units=aggregate != "count",  # a count of readings has no unit
    )


@query.command("counts")
@SELECT_OPTIONS
@click.option(
    "--class",
    "classes",
    multiple=True,
    help="Class of passers-by: pedestrian, cyclist, car, motorcycle, heavy_vehicle (repeatable).",
)
@click.option("--direction", "directions", multiple=True, help="e.g. left_to_right (repeatable).")
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Only counts from this source: edge, import:telraam, ... (repeatable).",
)
@click.option(
    "--from",
    "start",
    default="-24h",
    show_default=True,
    help="Start: -24h, -7d, a date (midnight UTC) or ISO 8601 with offset.",
)
@TO_OPTION
@click.option(
    "--every", default="1h", show_default=True, help="Sum over intervals of 1m to 1d, e.g. 15m."
)
@click.option(
    "--max-points",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Refuse an answer with more values than this.",
)
@flag_options(
    "Quality flags of the counts (a counter stuck at 0, ...): every count, with "
    "count_flagged (how many of the interval's counts were flagged) and count_flags; exclude "
    "leaves flagged counts out of the sums; only sums them alone.",
    "stuck",
    COUNT_FLAGS,
)
@FORMAT_OPTION
def query_counts(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    sites: tuple[str, ...],
    classes: tuple[str, ...],
    directions: tuple[str, ...],
    sources: tuple[str, ...],
    start: str,
    end: str,
    every: str,
    max_points: int,
    flag_mode: str,
    flag_names: tuple[str, ...],
    fmt: str,
) -> None:
    """Passers-by per class and direction, summed per interval, with the share of each
    interval the counter ran (running_fraction), and where counts carry quality flags, how
    many of each interval's were flagged and which (count_flagged, count_flags).

    An interval in which the counter did not report has no count (empty in the table and CSV,
    null in JSON); one in which it ran only part of the time is flagged in the table: fewer
    passers-by there may be an outage, not an empty street.
    """
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.protocol import storage
    from sensorpipe.protocol.provenance import check_source
    from sensorpipe.query.influxql import QueryInputError
    from sensorpipe.query.output import drop_empty_columns
    from sensorpipe.query.series import CountSeriesRequest, as_rows, count_series

    _check_counts_input(classes, directions, start, end, every)
    flt = _flag_filter(flag_mode, flag_names, COUNT_FLAGS)
    for source in sources:
        problem = check_source(source)
        if problem:
            fail(f"--source: {problem}")
    influx_url = _influx_url(directory, influx_url)
    request = CountSeriesRequest(
        devices=devices_,
        sites=sites,
        classes=classes,
        directions=directions,
        sources=sources,
        start=start,
        end=end,
        every=every,
        max_points=max_points,
        flags=flt,
    )
    client = InfluxClient(influx_url, database)
    note = None
    try:
        answer = count_series(client, request)
        if not answer["series"] and flt.mode == "only":
            note = f"no flagged counts match these filters from {start} to {end}"
        elif not answer["series"]:
            asked = {
                "device_id": devices_,
                "site": sites,
                "class": classes,
                "direction": directions,
            }
            note = _explain_empty(
                client,
                database,
                asked,
                storage.TRAFFIC,
                "counts",
                "counts",
                directory=directory,
            )
    except (QueryError, StorageUnavailable) as exc:
        fail(str(exc))
    except QueryInputError as exc:  # TooManyPoints: says how to narrow the request
        fail(f"{exc}, or raise --max-points" if "answer may hold" in str(exc) else str(exc))
    finally:
        client.close()
    header, values = as_rows(answer, "counts")
    rows = [dict(zip(header, v, strict=True)) for v in values]
    columns = list(header)
    if fmt == "table":
        for row in rows:
            row["note"] = _running_note(row["running_fraction"])
        columns = drop_empty_columns(rows, header)
    _print_rows(rows, columns, fmt, note or f"no counts match these filters from {start} to {end}")
    if rows and fmt == "table" and any(r["note"] for r in rows):
        click.echo(
            "note: running_fraction is the share of the interval the counter ran; where it "
            "is below 1, fewer passers-by were seen than passed",
            err=True,
        )


def _calibrations(directory: Path | None, devices: tuple[str, ...]) -> Calibrations | None:
    """What calibrates the rows of `devices` (all: none given); None where nothing is
    assigned (every row is raw)."""
    import sqlite3

    from sensorpipe.cli.calibrate import book_path
    from sensorpipe.query.calibrated import from_book

    path = book_path(directory)
    try:
        return from_book(path, devices)
    except (OSError, sqlite3.Error) as exc:
        fail(f"{path}: cannot open the calibration book ({exc})")


def _label(
    rows: list[dict[str, Any]],
    calibration: Calibrations | None,
    asked: tuple[str, ...],
    read: tuple[str, ...],
    window_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The rows calibrated where an assigned calibration applies, each with its `calibration`
    column; a quantity read only to calibrate with is dropped again."""
    from sensorpipe.calibration.readtime import raw_rows

    if calibration is None:
        return raw_rows(rows)
    out = calibration.calibrate(rows, window_ms)
    extra = set(read) - set(asked)
    if extra:  # with their quality-flag columns (`<quantity>_flags`, `<quantity>_flagged`)
        out = [
            {k: v for k, v in row.items() if k.rsplit("_flag", 1)[0] not in extra} for row in out
        ]
        out = [r for r in out if any(r.get(q) is not None for q in asked)]
    return out


def _with_uncertainty(
    rows: list[dict[str, Any]],
    calibration: Calibrations | None,
    directory: Path | None,
    aggregate: str | None,
    fmt: str,
) -> list[dict[str, Any]]:
    """The rows with each quantity's `<q>_uncertainty_<unit>` and `<q>_indicative`, as
    /api/v1/air gives them (query.calibrated); under a table, a note on standard error names
    the rules."""
    from sensorpipe.protocol.quantities import QUANTITIES
    from sensorpipe.query.calibrated import annotate_rows, basis_sentences, csv_bool

    if not rows:
        return rows
    try:
        references = {
            d
            for d, e in local_stack(directory).registry().devices.items()
            if e.source == "reference"
        }
    except Exception:  # no stack, or a register that cannot be read: none known
        references = set()
    records = calibration.records if calibration is not None else {}
    quantities = [q for q in QUANTITIES if any(q in r for r in rows)]
    out, used = annotate_rows(rows, quantities, records, references, aggregate)
    for row in out:
        if fmt == "csv":
            for q in quantities:
                if f"{q}_indicative" in row:
                    row[f"{q}_indicative"] = csv_bool(row[f"{q}_indicative"])
        row["calibration"] = row.pop("calibration", None)  # the last column, as before
    if fmt == "table":  # CSV and JSON stay data alone (docs/calibration.md says the rules)
        for key, sentence in basis_sentences(used, records).items():
            click.echo(f"uncertainty {key}: {sentence}", err=True)
    return out


def _flag_filter(
    mode: str, names: tuple[str, ...], known: Sequence[str] | None = None
) -> FlagFilter:
    """--flags and --flag, checked before InfluxDB is asked (`known`: the flags the values
    can carry; default every flag)."""
    from sensorpipe.quality.flags import ALL_FLAGS
    from sensorpipe.query.flagged import FlagFilter
    from sensorpipe.query.influxql import QueryInputError

    flt = FlagFilter(mode, names)
    try:
        flt.check(ALL_FLAGS if known is None else known)
    except QueryInputError as exc:
        fail(f"--flag: {exc}")
    return flt


def _with_flags(
    client: InfluxClient, q: AirQuery, rows: list[dict[str, Any]], flt: FlagFilter
) -> list[dict[str, Any]]:
    """The rows with their quality flags (query.flagged.flag_rows), asked of InfluxDB with
    `q`'s filters."""
    import dataclasses

    from sensorpipe.query.flagged import RAW_READINGS_MAX, flag_rows
    from sensorpipe.query.influxql import GROUP_TAGS, duration_ns

    def statement(aggregate: str, fields: Sequence[str], conditions: Sequence[str]) -> str:
        flagged = dataclasses.replace(q, conditions=list(conditions))
        flagged.columns = list(fields)
        flagged.aggregate = aggregate
        if not aggregate and q.every:  # the readings of aggregated intervals
            flagged.every, flagged.limit = None, RAW_READINGS_MAX + 1
        return flagged.to_influxql()

    aggregate = q.aggregate if q.every else None
    every_ms = duration_ns(q.every) // 1_000_000 if q.every else 0
    return flag_rows(client, statement, rows, q.columns, flt, aggregate, GROUP_TAGS, every_ms)


def _print_rows(
    rows: list[dict[str, Any]], columns: list[str], fmt: str, nothing: str, *, units: bool = True
) -> None:
    """The rows as a table, CSV or JSON; where there are none, `nothing` on standard error (an
    empty JSON list or CSV header is still printed: it is valid output)."""
    from sensorpipe.query.output import render

    if rows or fmt != "table":
        click.echo(render(rows, columns, fmt, units=units).rstrip("\n"))
    if not rows:
        click.echo(nothing, err=True)


def _influx_url(directory: Path | None, influx_url: str | None) -> str:
    """The InfluxDB to ask: --influx-url, else the stack's (an error where none runs)."""
    from sensorpipe.stack.local import StackError

    if influx_url is not None:
        return influx_url
    try:
        return local_stack(directory).require_influx()[0]
    except StackError as exc:
        fail(f"{exc} (or pass --influx-url)")


def _running_note(fraction: float | None) -> str | None:
    if fraction is None:
        return "counter did not report"
    if fraction < 1:
        return f"counter ran {fraction:.0%} of the interval"
    return None


def _check_counts_input(
    classes: tuple[str, ...], directions: tuple[str, ...], start: str, end: str, every: str
) -> None:
    """Refuse what no InfluxDB could answer, before looking for one."""
    import re

    from sensorpipe.cli.provisioning import check_count_classes
    from sensorpipe.protocol.counting import DIRECTION_PATTERN
    from sensorpipe.query.influxql import QueryInputError
    from sensorpipe.query.series import parse_every

    check_count_classes("--class", classes)
    for direction in directions:
        if not re.match(DIRECTION_PATTERN, direction):
            fail(
                f"--direction {direction!r}: direction names are lower-case letters, digits "
                f"and '_', like left_to_right"
            )
    try:
        parse_every(every)
    except QueryInputError:
        fail(f"--every {every}: use an interval from 1m to 1d, like 1m, 15m, 1h or 1d")
    time_range(start, end)


def time_range(start: str, end: str) -> tuple[datetime, datetime]:
    """--from and --to as times, refused in one line where no InfluxDB could answer them."""
    from sensorpipe.query.influxql import QueryInputError, parse_time

    now = datetime.now(UTC)
    times = []
    for option, value in (("--from", start), ("--to", end)):
        try:
            times.append(parse_time(value, now, relative_example="-24h or -7d"))
        except QueryInputError as exc:
            fail(f"{option}: {exc}")
    t0, t1 = times
    if t0 == t1:
        fail(f"--from {start} and --to {end} are the same time: give a later --to")
    if t0 > t1:
        fail(f"--from {start} is not before --to {end}: swap them")
    if t0.year < 1677 or t1.year > 2262:
        fail(f"--from {start} --to {end}: times must lie between 1677 and 2262 (InfluxDB's range)")
    return t0, t1


def _registered(directory: Path | None) -> set[str]:
    """The devices in the stack's register (none where there is no stack or it cannot be
    read: an empty answer is then explained by what InfluxDB holds alone)."""
    from sensorpipe.protocol.configfile import ConfigError

    try:
        return set(local_stack(directory).registry().devices)
    except (OSError, ValueError, ConfigError):
        return set()


def _explain_empty(
    client: Any,
    database: str,
    asked: dict[str, tuple[str, ...]],
    measurement: str = "air",
    what: str = "air readings",
    having: str = "readings",
    directory: Path | None = None,
) -> str | None:
    """An empty answer because a device, site, class or direction is unknown is an error that
    says so and lists those with data. A registered device InfluxDB holds nothing of (here)
    is no error: what is returned is the note to print for it, `registered, no air readings
    from it yet`."""
    from sensorpipe.ingest.influx import identifier

    registered = _registered(directory) if asked.get("device_id") else set()
    note = None
    for tag, values in asked.items():
        if not values:
            continue
        known: set[str] = set()
        statement = f"SHOW TAG VALUES FROM {identifier(measurement)} WITH KEY = {identifier(tag)}"
        for series in client.query(statement):
            known.update(str(value) for _, value in series.get("values") or [])
        unknown = [v for v in values if v not in known]
        if tag == "device_id" and registered:
            waiting = [v for v in unknown if v in registered]
            unknown = [v for v in unknown if v not in registered]
            if waiting:
                note = (
                    f"device {', '.join(map(repr, waiting))}: registered, no {what} from it "
                    f"yet (database {database!r} holds none; `sensorpipe devices list` shows "
                    f"its sensors' health)"
                )
        if unknown:
            name = "device" if tag == "device_id" else tag
            listed = ", ".join(sorted(known)[:10]) or "none"
            more = f" and {len(known) - 10} more" if len(known) > 10 else ""
            fail(
                f"unknown {name} {', '.join(map(repr, unknown))}: database {database!r} holds "
                f"no {what} from it (those with {having}: {listed}{more})"
            )
    return note
