"""`sensorpipe query`: air measurements from InfluxDB as a table, CSV or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.common import DIR_OPTION, fail, local_stack


@click.command()
@DIR_OPTION
@click.option("--influx-url", default=None, help="InfluxDB URL (default: the stack's).")
@click.option("--database", default="sensorpipe", show_default=True)
@click.option("--device", "devices_", multiple=True, help="Device id (repeatable).")
@click.option("--site", "sites", multiple=True, help="Site (repeatable).")
@click.option("--quantity", "quantities", multiple=True, help="e.g. pm2_5 (repeatable).")
@click.option(
    "--from",
    "start",
    default="-1h",
    show_default=True,
    help="Start: -1h, -30m, a date (midnight UTC) or ISO 8601 with offset.",
)
@click.option("--to", "end", default="now", show_default=True)
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
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def query(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    sites: tuple[str, ...],
    quantities: tuple[str, ...],
    start: str,
    end: str,
    every: str | None,
    aggregate: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """Select air measurements by device, site, quantity and time; print table, CSV or JSON."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.influxql import GROUP_TAGS, AirQuery, QueryInputError
    from sensorpipe.query.output import drop_empty_columns, render, rows_from_series
    from sensorpipe.stack.local import StackError

    if aggregate is not None and every is None:
        fail(
            f"--agg {aggregate} needs --every (the window to aggregate over); without it, "
            f"raw values are printed"
        )
    try:
        q = AirQuery(
            devices=devices_,
            sites=sites,
            quantities=quantities,
            start=start,
            end=end,
            every=every,
            aggregate=aggregate or "mean",
            limit=limit,
        )
    except QueryInputError as exc:
        fail(str(exc))
    if influx_url is None:
        try:
            influx_url = local_stack(directory).require_info().influx_url
        except StackError as exc:
            fail(f"{exc} (or pass --influx-url)")
    try:
        influxql = q.to_influxql()
    except QueryInputError as exc:
        fail(str(exc))
    client = InfluxClient(influx_url, database)
    try:
        rows = rows_from_series(client.query(influxql), GROUP_TAGS)
        if not rows:
            _explain_empty(client, database, {"device_id": devices_, "site": sites})
    except (QueryError, StorageUnavailable) as exc:
        fail(str(exc))
    finally:
        client.close()
    columns = drop_empty_columns(rows, ["time", *GROUP_TAGS])
    if rows or fmt != "table":  # an empty JSON list or CSV header is still valid output
        click.echo(render(rows, columns, fmt).rstrip("\n"))
    if not rows:
        click.echo(f"no air readings match these filters from {start} to {end}", err=True)


def _explain_empty(client: Any, database: str, asked: dict[str, tuple[str, ...]]) -> None:
    """An empty answer because a device or site is unknown is an error that says so."""
    from sensorpipe.query.influxql import tag_values

    for tag, values in asked.items():
        if not values:
            continue
        known: set[str] = set()
        for series in client.query(tag_values(tag)):
            known.update(str(value) for _, value in series.get("values") or [])
        unknown = [v for v in values if v not in known]
        if unknown:
            name = "device" if tag == "device_id" else tag
            listed = ", ".join(sorted(known)[:10]) or "none"
            more = f" and {len(known) - 10} more" if len(known) > 10 else ""
            fail(
                f"unknown {name} {', '.join(map(repr, unknown))}: database {database!r} holds "
                f"no air readings from it (those with readings: {listed}{more})"
            )
