"""`sensorpipe crowd`: crowding per area. Here: the group and `now` (each area's observed level);
`backtest` (forecasts scored against what was counted) is in `crowd_backtest`, `train` and
`forecast` (saved models, forecasts from the counts stored now) in `crowd_forecast`, `models`
(the saved models and their scheduled retraining) in `crowd_models`.

Subcommands with a job of their own live in their own modules and are named in SUBCOMMANDS
("name": "module:attribute"), imported only when used: a forecasting command's libraries are
not loaded for `crowd now`. Adding one is one line there.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option

if TYPE_CHECKING:
    from sensorpipe.crowd.levels import Level
    from sensorpipe.protocol.registry import AreaEntry, Registry

# Subcommands in modules of their own: name -> "module:attribute".
SUBCOMMANDS: dict[str, str] = {
    "backtest": "sensorpipe.cli.crowd_backtest:crowd_backtest",
    "alerts": "sensorpipe.cli.crowd_alerts:alerts",
    "train": "sensorpipe.cli.crowd_forecast:crowd_train",
    "forecast": "sensorpipe.cli.crowd_forecast:crowd_forecast",
    "models": "sensorpipe.cli.crowd_models:crowd_models",
}


class _CrowdGroup(click.Group):
    """The `crowd` group: its own commands, and those of SUBCOMMANDS imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            module, _, attribute = SUBCOMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), SUBCOMMANDS[cmd_name]
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)


@click.group(cls=_CrowdGroup)
def crowd() -> None:
    """Crowding per area: the level now, alerts, forecasts and their backtest."""


def level_row(area_id: str, area: AreaEntry, lv: Level | None) -> dict[str, Any]:
    """One area's latest interval as a row of `crowd now`."""
    row: dict[str, Any] = {
        "area": area_id,
        "name": area.name,
        "kind": area.kind,
        "capacity": area.capacity,
        "interval": area.interval,
        "thresholds": area.thresholds,
    }
    if lv is None:
        return {**row, "time": None, "level": None, "reason": "no interval has ended yet"}
    return {
        **row,
        "time": datetime.fromtimestamp(lv.start_ms / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "level": None if lv.level is None else round(lv.level, 4),
        "reached": lv.reached,
        "running_fraction": round(lv.running_fraction, 4),
        "flow": None if lv.flow is None else round(lv.flow, 1),
        "occupancy": None if lv.occupancy is None else round(lv.occupancy, 1),
        "reason": lv.reason,
    }


def chosen_areas(directory: Path | None, area_ids: Sequence[str]) -> tuple[Registry, list[str]]:
    """The stack's registry and the areas `--area` names (all, where it names none): a
    one-line error for an unknown area, or a registry without areas."""
    from sensorpipe.protocol.configfile import ConfigError

    stack = local_stack(directory)
    if not stack.registry_path.is_file():
        fail(
            f"no registry at {stack.registry_path}: no area is defined there; give --dir (the "
            "stack's directory, or /etc/sensorpipe on a lasting server)"
        )
    try:
        registry = stack.registry()
    except (OSError, ValueError, ConfigError) as exc:
        fail(f"cannot read the device register: {exc}")
    unknown = [a for a in area_ids if a not in registry.areas]
    if unknown:
        known = ", ".join(sorted(registry.areas)) or "none"
        fail(f"--area {unknown[0]}: no such area in {stack.registry_path} (areas: {known})")
    chosen = list(area_ids) or sorted(registry.areas)
    if not chosen:
        fail(f"no areas in {stack.registry_path}: add one with `sensorpipe areas add`")
    return registry, chosen


def local_moment(option: str, text: str, example: str = "-7d") -> datetime:
    """A time option of the crowd commands: `now` or `-7d` (an instant), or a date or ISO 8601
    time, naive where it has no offset: local to each area (`in_zone`), as `crowd train` and
    `crowd backtest` read theirs."""
    from sensorpipe.query.influxql import QueryInputError, parse_time

    text = text.strip()
    if text == "now" or text.startswith("-"):
        try:
            return parse_time(text, relative_example=example)
        except QueryInputError as exc:
            fail(f"{option}: {exc}")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"{option}: time {text!r}: use 'now', a relative time like {example}, a date like "
            "2024-06-14 or an ISO 8601 time like 2024-06-14T08:00 (both in each area's local "
            "time), or one with an offset like 2024-06-14T06:00Z"
        )


def stack_registry(directory: Path | None) -> Registry | None:
    """The stack's registry where there is one to read, else None (for what only helps)."""
    from sensorpipe.protocol.configfile import ConfigError

    try:
        stack = local_stack(directory)
        return stack.registry() if stack.registry_path.exists() else None
    except (OSError, ValueError, ConfigError):
        return None


EARLIEST_ZONE_MS = 14 * 3600 * 1000  # UTC+14: where a local time comes first


def earliest_ms(t: datetime) -> int:
    """The first instant `t` (`local_moment`) can be: a naive time is earliest at UTC+14."""
    return in_zone(t, "UTC") - (0 if t.tzinfo is not None else EARLIEST_ZONE_MS)


def in_zone(t: datetime, zone: str, option: str = "") -> int:
    """`t` (`local_moment`) in ms since 1970: a naive time is local to `zone`. A local time
    the clocks skipped, or one that happens twice, is refused (`option`: what gave it)."""
    if t.tzinfo is not None:
        return int(t.timestamp() * 1000)
    tz = ZoneInfo(zone)
    first, second = t.replace(tzinfo=tz, fold=0), t.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        text = f"{option} {t.isoformat(timespec='minutes')}".strip()
        if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != t:
            fail(
                f"{text}: no such time in {zone} (the clocks skipped it): give a time after "
                "the change, or one with an offset"
            )
        fail(
            f"{text}: happens twice in {zone} (the clocks went back): add which, "
            f"{first.isoformat(timespec='minutes')} or {second.isoformat(timespec='minutes')}"
        )
    return int(first.timestamp() * 1000)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@crowd.command("now")
@click.option("--area", "area_ids", multiple=True, help="Only this area (repeatable).")
@click.option(
    "--at",
    default="now",
    show_default=True,
    help="The level at this time instead, to look back: a date or ISO 8601 time, in each "
    "area's local time without an offset (2024-06-14T18:00; 2024-06-14T16:00Z as given), or -1d.",
)
@DIR_OPTION
@INFLUX_OPTIONS
@json_option("Print the levels as JSON.")
def crowd_now(
    area_ids: tuple[str, ...],
    at: str,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    as_json: bool,
) -> None:
    """Each area's level in its last whole interval: observed flow (street) or occupancy
    (enclosed) ÷ capacity, the thresholds it reached and the counters' running fraction."""
    from sensorpipe.cli.query import _influx_url
    from sensorpipe.crowd.observed import area_crowding
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.influxql import QueryInputError

    moment = local_moment("--at", at, "-1d")
    now_ms = datetime.now(UTC).timestamp() * 1000
    if earliest_ms(moment) > now_ms:
        fail(f"--at {at}: in the future; give now or a time before it")
    registry, chosen = chosen_areas(directory, area_ids)
    when: dict[str, datetime] = {}
    for area_id in chosen:
        ms = in_zone(moment, registry.areas[area_id].timezone, "--at")
        if ms > now_ms:
            fail(
                f"--at {at}: in the future in area {area_id}'s time zone "
                f"({registry.areas[area_id].timezone}); give now or a time before it"
            )
        when[area_id] = datetime.fromtimestamp(ms / 1000, UTC)
    client = InfluxClient(_influx_url(directory, influx_url), database)
    rows = []
    try:
        for area_id in chosen:
            area = registry.areas[area_id]
            crowding = area_crowding(
                client, registry, area, f"-{_lookback(area.interval)}", "now", now=when[area_id]
            )
            rows.append(level_row(area_id, area, crowding.levels[-1] if crowding.levels else None))
    except (QueryError, StorageUnavailable, QueryInputError) as exc:
        fail(str(exc))
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(
        f"{'area':<16} {'level':>6} {'reached':>8} {'running':>8}  "
        f"{'interval from (local)':<23} note"
    )
    for r in rows:
        thresholds = "/".join(f"{t:.0%}" for t in r["thresholds"])
        note = r.get("reason") or f"thresholds {thresholds}"
        start = _local(r["time"], registry.areas[r["area"]].timezone) if r["time"] else "-"
        click.echo(
            f"{r['area']:<16} {_pct(r['level']):>6} {_pct(r.get('reached')):>8} "
            f"{_pct(r.get('running_fraction')):>8}  {start:<23} {note}"
        )


def _local(iso_time: str, zone: str) -> str:
    """`2019-03-20 07:00 NZDT`: a row's UTC time as its area reads it (--json keeps UTC)."""
    local = datetime.fromisoformat(iso_time).astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _lookback(interval: str) -> str:
    """Two intervals back: the last whole one is in it."""
    return f"{2 * int(interval[:-1])}{interval[-1]}"
