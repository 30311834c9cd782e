"""`sensorpipe crowd alerts`: the crowding alerts raised (sensorpipe.crowd), their webhook dead
letters (`--dead-letters`), and `crowd alerts check`: the alerts a past window raises. The
subscribers' broker accounts (`crowd alerts subscriber add|list|remove`) are in
`crowd_subscribers`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.crowd import earliest_ms, in_zone, local_moment
from sensorpipe.cli.crowd_subscribers import subscriber
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option

STORE_OPTION = click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The alert store (default: the stack's, ingest/alerts.sqlite).",
)


def _store_path(directory: Path | None, store: Path | None) -> Path:
    return store or local_stack(directory).directory / "ingest" / "alerts.sqlite"


def _known_area(directory: Path | None, area: str) -> None:
    """A one-line error for an --area the registry does not hold (where it can be read: an
    area removed since keeps the alerts it raised, listed above)."""
    from sensorpipe.protocol.configfile import ConfigError

    stack = local_stack(directory)
    try:
        registry = stack.registry()
    except (OSError, ValueError, ConfigError):
        return
    if area not in registry.areas:
        known = ", ".join(sorted(registry.areas)) or "none"
        fail(f"--area {area}: no such area in {stack.registry_path} (areas: {known})")


@click.group("alerts", invoke_without_command=True)
@click.option("--area", default=None, help="Only this area's alerts.")
@click.option(
    "--from",
    "start",
    default=None,
    help="Only alerts at or after this: a date or ISO 8601 time, in each area's local time "
    "without an offset (2024-06-14; 2024-06-13T22:00Z as given), or -24h.",
)
@click.option("--dead-letters", is_flag=True, help="The alerts a webhook did not take instead.")
@click.option(
    "--pending",
    is_flag=True,
    help="The webhook deliveries still to be made instead (tries so far, last reason).",
)
@STORE_OPTION
@DIR_OPTION
@json_option("Print the alerts as JSON.")
@click.pass_context
def alerts(
    ctx: click.Context,
    area: str | None,
    start: str | None,
    dead_letters: bool,
    pending: bool,
    store: Path | None,
    directory: Path | None,
    as_json: bool,
) -> None:
    """The crowding alerts raised, oldest first: an area's level (observed or forecast)
    crossing one of its thresholds (`areas add --threshold`) going up."""
    if ctx.invoked_subcommand is not None:
        return
    import sqlite3

    from sensorpipe.crowd.alertstore import AlertStore

    if dead_letters and pending:
        fail("give --dead-letters or --pending, not both")
    path = _store_path(directory, store)
    since = None if start is None else local_moment("--from", start, "-24h")
    # A local time is read in each alert's area's zone: the store is asked from the earliest.
    from_ms = None if since is None else earliest_ms(since)
    if not path.is_file():
        fail(f"--store {path}: no alert store there (the ingest makes it: [alerts] store)")
    try:
        kept = AlertStore(path, read_only=True)
    except sqlite3.Error as exc:
        fail(f"--store {path}: cannot read it: {exc}")
    try:
        rows: list[dict[str, Any]]
        if pending:
            rows = [
                {k: v for k, v in vars(p).items() if k != "n"}
                for p in kept.pending()
                if (area is None or p.payload.get("area") == area)
            ]
        elif dead_letters:
            rows = [
                {**vars(d), "at": _iso(d.at_ms)}
                for d in kept.dead_letters()
                if (area is None or d.payload.get("area") == area)
            ]
        else:
            rows = kept.alerts(area=area, from_ms=from_ms)
            if since is not None and since.tzinfo is None:
                rows = _local_from(rows, since, directory)
    except sqlite3.Error as exc:
        fail(f"--store {path}: not an alert store: {exc}")
    finally:
        kept.close()
    if area is not None and not rows:
        _known_area(directory, area)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif pending:
        for p in rows:
            tried = f"{p['tries']} tries so far: {p['reason']}" if p["tries"] else "not tried yet"
            click.echo(f"{p['alert_id']}  {p['url']}  {tried}")
    elif dead_letters:
        for d in rows:
            click.echo(
                f"{d['at']}  {d['alert_id']}  {d['url']}  {d['attempts']} tries: {d['reason']}"
            )
    else:
        _table(rows)
    if not rows and not as_json:
        click.echo(
            "no webhook deliveries pending"
            if pending
            else "no dead letters"
            if dead_letters
            else "no alerts"
        )


alerts.add_command(subscriber)


def _local_from(
    rows: list[dict[str, Any]], since: datetime, directory: Path | None
) -> list[dict[str, Any]]:
    """The alerts at or after `since` (no offset) in their area's local time (UTC for an area
    the registry no longer holds, or where it cannot be read)."""
    from sensorpipe.cli.crowd import stack_registry

    registry = stack_registry(directory)
    areas = registry.areas if registry is not None else {}
    return [
        r
        for r in rows
        if _ms_of(r["time"])
        >= in_zone(since, areas[r["area"]].timezone if r["area"] in areas else "UTC", "--from")
    ]


def _ms_of(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time).timestamp() * 1000)


def _iso(ms: int) -> str:
    from sensorpipe.crowd.alerts import iso

    return iso(ms)


def _table(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        click.echo(
            f"{r['time']}  {r['area']:<16} {r['kind']:<8} {r['threshold']:>4.0%}  {r['message']}"
        )


@alerts.command("check")
@click.option("--area", "area_ids", multiple=True, help="Only this area (repeatable).")
@click.option(
    "--from", "start", required=True,
    help="From: a date or ISO 8601 time, in each area's local time without an offset "
    "(2024-06-14, 2024-06-14T08:00; 2024-06-14T06:00Z as given), or -7d.",
)  # fmt: skip
@click.option(
    "--to", "end", default="now", show_default=True,
    help="To (not included): as --from, or now.",
)  # fmt: skip
@click.option(
    "--margin", type=click.FloatRange(0, 1, max_open=True), default=None,
    help="Re-armed below threshold minus this (default 0.05).",
)  # fmt: skip
@click.option(
    "--rearm-after", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Also re-armed after this many seconds under the threshold.",
)  # fmt: skip
@DIR_OPTION
@INFLUX_OPTIONS
@json_option("Print the alerts as JSON.")
def alerts_check(
    area_ids: tuple[str, ...],
    start: str,
    end: str,
    margin: float | None,
    rearm_after: float | None,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    as_json: bool,
) -> None:
    """The alerts each area's observed levels from --from to --to raise, from a fresh state
    (every threshold armed). Nothing is stored, published or posted.

    A date, or a time without an offset, is in each area's own time zone (the registry's
    `timezone`), as for `crowd train` and `crowd backtest`: --from 2024-06-14 is that day's
    midnight where each area is. The window each area used is printed in its local time."""
    from sensorpipe.cli.crowd import chosen_areas
    from sensorpipe.cli.query import _influx_url
    from sensorpipe.crowd.alertjob import check_window
    from sensorpipe.crowd.alerts import AlertsConfig
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.influxql import QueryInputError

    first, last = local_moment("--from", start), local_moment("--to", end)
    if first.tzinfo is not None and last.tzinfo is not None and first >= last:
        fail(f"--from {start} is not before --to {end}: give an earlier --from")
    registry, chosen = chosen_areas(directory, area_ids)
    windows = {}
    for area_id in chosen:
        zone = registry.areas[area_id].timezone
        t0, t1 = in_zone(first, zone, "--from"), in_zone(last, zone, "--to")
        if t0 >= t1:
            fail(
                f"--from {start} is not before --to {end} in area {area_id}'s time zone "
                f"({zone}): give an earlier --from"
            )
        windows[area_id] = (t0, t1)
    settings: dict[str, Any] = {}
    if margin is not None:
        settings["margin"] = margin
    if rearm_after is not None:
        settings["rearm_after_s"] = rearm_after
    config = AlertsConfig(**settings)
    client = InfluxClient(_influx_url(directory, influx_url), database)
    found = []
    try:
        for area_id, (t0, t1) in windows.items():
            end_at = datetime.fromtimestamp(t1 / 1000, UTC)
            found += check_window(client, registry, area_id, t0, end_at, config)
    except (QueryError, StorageUnavailable, QueryInputError) as exc:
        fail(str(exc))
    finally:
        client.close()
    rows = [a.payload() for a in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for area_id, (t0, t1) in windows.items():
        click.echo(f"{area_id}: {_window(t0, t1, registry.areas[area_id].timezone)}")
    _table(rows)
    click.echo(f"{len(rows)} alert{'s' * (len(rows) != 1)} in the window")


def _window(t0: int, t1: int, zone: str) -> str:
    """`2024-06-14 00:00 to 2024-06-15 00:00 Europe/Amsterdam (2024-06-13 22:00 to ... UTC)`."""

    def at(ms: int, tz: tzinfo) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M")

    local = f"{at(t0, ZoneInfo(zone))} to {at(t1, ZoneInfo(zone))} {zone}"
    if zone == "UTC":
        return local
    return f"{local} ({at(t0, UTC)} to {at(t1, UTC)} UTC)"
