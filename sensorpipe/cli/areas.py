"""`sensorpipe areas`: the areas whose crowding is measured, kept in the device registry
(protocol.registry's `areas`): add, list, show, remove. `sensorpipe crowd` reads their levels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, json_option

if TYPE_CHECKING:
    from sensorpipe.protocol.registry import AreaEntry, Registry
    from sensorpipe.stack.local import LocalStack

LINE_EXAMPLE = "gate-1:in=left_to_right:out=right_to_left"
POLYGON_EXAMPLE = "4.88,52.37 4.90,52.37 4.90,52.38 4.88,52.38"
# The option that sets each field of an area, for error lines.
OPTIONS = {
    "name": "--name",
    "kind": "--kind",
    "capacity": "--capacity",
    "interval": "--interval",
    "polygon": "--polygon",
    "lines": "--line",
    "inward": "--line",
    "outward": "--line",
    "device": "--line",
    "classes": "--class",
    "country": "--country",
    "subdivision": "--subdivision",
    "timezone": "--timezone",
    "quiet_hour": "--quiet-hour",
    "thresholds": "--threshold",
    "min_running_fraction": "--min-running",
}


@click.group()
def areas() -> None:
    """Areas whose crowding is measured: add, list, show, remove."""


def parse_line(text: str) -> dict[str, Any]:
    """`DEVICE[:in=DIR[+DIR]][:out=DIR[+DIR]]` as an AreaLine's fields."""
    device, *parts = text.split(":")
    line: dict[str, Any] = {"device": device, "inward": [], "outward": []}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("in", "out") or not value:
            fail(
                f"--line {text!r}: give DEVICE, then in=DIRECTION and out=DIRECTION "
                f"(several joined by +), e.g. {LINE_EXAMPLE}"
            )
        line["inward" if key == "in" else "outward"] += value.split("+")
    return line


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """`lon,lat lon,lat ...` (or separated by `;`) as a ring."""
    points = []
    for pair in text.replace(";", " ").split():
        try:
            lon, lat = (float(v) for v in pair.split(","))
        except ValueError:
            fail(f"--polygon {pair!r}: give lon,lat pairs in degrees, e.g. '{POLYGON_EXAMPLE}'")
        points.append((lon, lat))
    return points


def _percent(text: str, option: str, example: str = "70") -> float:
    """A percentage as a fraction. A bare value of 1 or less is refused: `0.7` is far more
    often a fraction meant as 70 % than a level of 0.7 %; `0.7%` says it is meant."""
    marked = text.strip().endswith("%")
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        fail(f"{option} {text!r}: give a percentage, e.g. {option} {example}")
    if not marked and 0 < value <= 1:
        fail(
            f"{option} {text!r}: give a percentage, e.g. {option} {round(value * 100):g} "
            f"for {value * 100:g} % (write {text}% if you mean {text} %)"
        )
    return round(value / 100, 9)  # 0.7 / 100 is 0.006999999999999999


def _refuse(area_id: str, exc: Any) -> NoReturn:
    """A pydantic ValidationError of an area as one line: the option and what to give."""
    lines = []
    for err in exc.errors():
        names = [str(p) for p in err["loc"] if not isinstance(p, int)]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not names:  # the area as a whole
            lines.append(msg)
            continue
        if err["type"] == "string_pattern_mismatch":
            msg = "not a valid value here"
            if names[-1] == "interval":
                msg = "give minutes or hours that divide an hour or a day, e.g. 15m or 1h"
        given = err["input"]
        if names[-1] == "thresholds":  # given in percent, checked as fractions
            given = [f"{100 * t:g}" for t in given]
            msg = "give rising percentages of the capacity, e.g. --threshold 70 --threshold 90"
        elif names[-1] == "min_running_fraction" and isinstance(given, float):
            given = f"{100 * given:g}"
            msg = "give a percentage from 0 to 100, e.g. --min-running 25"
        lines.append(f"{OPTIONS.get(names[-1], names[-1])} {given!r}: {msg}")
    fail(f"area {area_id}: " + "; ".join(lines))


def _check_holidays(area_id: str, country: str, subdivision: str) -> None:
    """A country (and region) whose public holidays the `holidays` package cannot give is
    refused now, not when a model is trained; without the `forecast` extra it is not checked
    (the holidays are only read by the forecasts)."""
    import importlib.util

    if importlib.util.find_spec("holidays") is None:
        return
    from sensorpipe.crowd.features import check_country

    problem = check_country(country, subdivision or None)
    if problem:
        given = f"--country {country}" + (f" --subdivision {subdivision}" if subdivision else "")
        fail(f"area {area_id}: {given}: {problem}")


# The Netherlands, roughly (lat, lon): an area far outside it with the default time zone and
# country was most likely meant to be elsewhere.
NL_BOX = ((50.7, 53.7), (3.2, 7.3))


def _outside_the_default_country(registry: Registry, area_id: str, area: AreaEntry) -> None:
    """A note where an area lies outside the Netherlands (its polygon, or its devices'
    locations) but kept the default Europe/Amsterdam and NL: its quiet hour, holidays and
    the dashboard's times would be Dutch."""
    if (area.timezone, area.country) != ("Europe/Amsterdam", "NL"):
        return
    from sensorpipe.crowd.areas import area_devices

    points = [(lat, lon) for lon, lat in area.polygon]
    for device in area_devices(registry, area):
        where = registry.devices[device].location
        if where is not None:
            points.append((where.lat, where.lon))
    (lat0, lat1), (lon0, lon1) = NL_BOX
    if points and not any(lat0 <= lat <= lat1 and lon0 <= lon <= lon1 for lat, lon in points):
        click.echo(
            f"note: {area_id} lies outside the Netherlands but has its time zone and holidays "
            "(Europe/Amsterdam, NL: the defaults); give --timezone and --country (and "
            "--replace) if it is elsewhere",
            err=True,
        )


def _registry(stack: LocalStack) -> Registry:
    from sensorpipe.protocol.configfile import ConfigError

    try:
        return stack.registry()
    except (OSError, ValueError, ConfigError) as exc:
        fail(f"cannot read the device register: {exc}")


def _area(registry: Registry, area_id: str, stack: LocalStack) -> AreaEntry:
    area = registry.areas.get(area_id)
    if area is None:
        known = ", ".join(sorted(registry.areas)) or "none"
        fail(f"{area_id}: no such area in {stack.registry_path} (areas: {known})")
    return area


@areas.command("add")
@click.argument("area_id")
@DIR_OPTION
@click.option("--name", required=True, help="What the area is called.")
@click.option(
    "--kind",
    type=click.Choice(["enclosed", "street"]),
    required=True,
    help="enclosed: capacity is persons at once (occupancy from ins minus outs); street: "
    "passers-by per interval.",
)
@click.option("--capacity", type=int, required=True, help="Persons at once, or per interval.")
@click.option("--interval", default="1h", show_default=True, help="Interval of its levels.")
@click.option("--polygon", default=None, help=f"Its ring of lon,lat, e.g. '{POLYGON_EXAMPLE}'.")
@click.option(
    "--line",
    "lines",
    multiple=True,
    help=f"A counting device and its directions in and out (repeatable), e.g. {LINE_EXAMPLE}.",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    help="Class that counts as the crowd (repeatable; default pedestrian).",
)
@click.option("--country", default="NL", show_default=True, help="Country of its holidays.")
@click.option("--subdivision", default="", help="Region of its holidays, e.g. AUK in NZ.")
@click.option("--timezone", default="Europe/Amsterdam", show_default=True, help="Its local time.")
@click.option(
    "--quiet-hour",
    type=int,
    default=4,
    show_default=True,
    help="Enclosed: local hour at which the occupancy is reset to zero each day.",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    help="Level in percent of the capacity that alerts (repeatable; default 70 and 90).",
)
@click.option(
    "--min-running",
    default="25",
    show_default=True,
    help="Percent of an interval its counters must run for a level.",
)
@click.option("--replace", is_flag=True, help="Replace an area of this id.")
def areas_add(
    area_id: str,
    directory: Path | None,
    polygon: str | None,
    lines: tuple[str, ...],
    classes: tuple[str, ...],
    thresholds: tuple[str, ...],
    min_running: str,
    replace: bool,
    **fields: Any,
) -> None:
    """Add AREA_ID to the registry: a polygon (its devices are those inside) or counting
    lines (which directions go in and which out), its kind, capacity and thresholds."""
    import re

    from pydantic import ValidationError

    from sensorpipe.protocol.registry import AREA_ID_PATTERN, AreaEntry, save_registry

    if not re.match(AREA_ID_PATTERN, area_id):
        fail(f"area id {area_id!r}: use lower-case letters, digits, '_' and '-' (at most 64)")
    values: dict[str, Any] = dict(fields)
    values["polygon"] = parse_polygon(polygon) if polygon else []
    values["lines"] = [parse_line(text) for text in lines]
    if classes:
        values["classes"] = list(classes)
    if thresholds:
        values["thresholds"] = [_percent(t, "--threshold") for t in thresholds]
    values["min_running_fraction"] = _percent(min_running, "--min-running")
    try:
        area = AreaEntry.model_validate(values)
    except ValidationError as exc:
        _refuse(area_id, exc)
    _check_holidays(area_id, area.country, area.subdivision)
    stack = local_stack(directory)
    registry = _registry(stack)
    if area_id in registry.areas and not replace:
        fail(f"{area_id}: already an area in {stack.registry_path}; give --replace to replace it")
    registry.areas[area_id] = area
    try:
        registry.check_areas()
    except ValueError as exc:
        fail(str(exc))
    save_registry(registry, stack.registry_path)
    click.echo(f"{area_id}: {area.kind} area {area.name!r} saved in {stack.registry_path}")
    from sensorpipe.crowd.areas import area_devices, devices_in_polygon

    swapped = [(lat, lon) for lon, lat in area.polygon]
    if area.polygon and not area_devices(registry, area) and devices_in_polygon(registry, swapped):
        # Its corners given as lat,lon: the devices are inside the polygon mirrored.
        click.echo(
            f"note: no device lies inside {area_id}'s polygon, but "
            f"{', '.join(devices_in_polygon(registry, swapped)[:3])} would with each corner's "
            "two numbers swapped: a polygon is given as lon,lat (GeoJSON's order); add it "
            "again with --replace",
            err=True,
        )
        return
    _outside_the_default_country(registry, area_id, area)
    if not area_devices(registry, area):  # saved (devices may be placed later), but said
        click.echo(
            f"note: no registered device with a location lies inside {area_id}'s polygon, so "
            "it has no level yet; place devices with `sensorpipe devices edit ID --lat .. "
            "--lon ..` (devices imported without `--locations` have none), or give --line "
            "DEVICE",
            err=True,
        )


def _summary(registry: Registry, area_id: str, area: AreaEntry) -> dict[str, Any]:
    from sensorpipe.crowd.areas import area_devices

    return {
        "area": area_id,
        "name": area.name,
        "kind": area.kind,
        "capacity": area.capacity,
        "interval": area.interval,
        "devices": area_devices(registry, area),
        "thresholds": area.thresholds,
    }


@areas.command("list")
@DIR_OPTION
@json_option("Print the areas as JSON.")
def areas_list(directory: Path | None, as_json: bool) -> None:
    """The areas: kind, capacity, interval and devices."""
    stack = local_stack(directory)
    registry = _registry(stack)
    rows = [_summary(registry, i, a) for i, a in sorted(registry.areas.items())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    said = [
        f"{r['area']}  {r['name']}  {r['kind']}  capacity {r['capacity']} "
        f"{'persons' if r['kind'] == 'enclosed' else 'per ' + r['interval']}  "
        f"devices: {', '.join(r['devices']) or 'none'}"
        for r in rows
    ]
    click.echo("\n".join(said or [f"no areas in {stack.registry_path}: add one with `areas add`"]))


@areas.command("show")
@click.argument("area_id")
@DIR_OPTION
@json_option("Print the area as JSON.")
def areas_show(area_id: str, directory: Path | None, as_json: bool) -> None:
    """Everything of one area, with the devices it counts."""
    from sensorpipe.crowd.areas import area_lines

    stack = local_stack(directory)
    registry = _registry(stack)
    area = _area(registry, area_id, stack)
    shown = {"area": area_id, **area.model_dump(mode="json")}
    if area.kind == "street":
        del shown["quiet_hour"]  # only an enclosed area's occupancy is reset
    shown["lines"] = [line.model_dump() for line in area_lines(registry, area)]
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        if key == "lines":
            for line in value:
                ins = "+".join(line["inward"]) or "-"
                outs = "+".join(line["outward"]) or "-"
                click.echo(f"line: {line['device']}  in: {ins}  out: {outs}")
        elif key == "thresholds":  # as `areas add` takes them: percent of the capacity
            click.echo(f"{key}: " + ", ".join(f"{100 * t:g} %" for t in value))
        elif key == "min_running_fraction":
            click.echo(f"min_running: {100 * value:g} % of an interval")
        elif value not in ([], ""):
            click.echo(f"{key}: {value}")


@areas.command("remove")
@click.argument("area_id")
@DIR_OPTION
def areas_remove(area_id: str, directory: Path | None) -> None:
    """Remove an area from the registry (its devices and counts stay)."""
    from sensorpipe.protocol.registry import save_registry

    stack = local_stack(directory)
    registry = _registry(stack)
    _area(registry, area_id, stack)
    del registry.areas[area_id]
    save_registry(registry, stack.registry_path)
    click.echo(f"{area_id}: removed from {stack.registry_path}")
