"""`sensorpipe calibrate group` and `calibrate update`: the Samen-Meten-style group
calibration (calibration.group) and keeping its hourly factors up to date
(calibration.updating). `calibrate` adds both commands to its group."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.calibrate_book import (
    calibration_book,
    influx_client,
    load_record,
    parse_period,
    store_record,
)
from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option


def _group_members(
    registry: Any, reference: str, devices_: tuple[str, ...], within_km: float, sensor: str | None
) -> list[str]:
    """The group: the devices given, or the registered devices (not reference stations) within
    `within_km` of the station, of model `sensor` where given."""
    from sensorpipe.calibration.group import distance_km

    if devices_:
        for device in devices_:
            if device not in registry.devices:
                fail(f"--device {device}: not in the register; `devices list` lists them")
        return list(dict.fromkeys(devices_))
    station = registry.devices[reference]
    if station.location is None:
        fail(
            f"--reference {reference}: the register has no location for it, so no devices "
            "near it can be chosen; give the group's devices with --device"
        )
    members = [
        device
        for device, entry in sorted(registry.devices.items())
        if device != reference
        and entry.source != "reference"
        and entry.location is not None
        and (sensor is None or sensor in entry.sensors)
        and distance_km(
            station.location.lat, station.location.lon, entry.location.lat, entry.location.lon
        )
        <= within_km
    ]
    if not members:
        model = f" of sensor model {sensor}" if sensor else ""
        fail(
            f"--within {within_km:g}: no registered device{model} with a location within "
            f"{within_km:g} km of {reference}; give a larger --within or the devices (--device)"
        )
    return members


@click.command("group")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--reference", required=True, help="The reference station's device id.")
@click.option("--device", "devices_", multiple=True, help="A member of the group (repeatable; "
              "default: the registered devices within --within km of the station).")  # fmt: skip
@click.option(
    "--within",
    "within_km",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Radius (km) around the station to choose the group in, without --device [default: 10].",
)
@click.option("--sensor", default=None, help="Only devices of this sensor model (with --within).")
@click.option(
    "--min-members",
    type=click.IntRange(min=1),
    default=None,
    help="Fewest members with a complete hour for its factor [default: 3].",
)
@click.option("--quantity", default="pm2_5", show_default=True, help="The quantity to calibrate.")
@click.option("--from", "start", default=None, help="Start (default: the reference's first hour).")
@click.option("--to", "end", default=None, help="End (default: after the reference's last hour).")
@json_option("Print the stored calibration record as JSON.")
def calibrate_group(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    reference: str,
    devices_: tuple[str, ...],
    within_km: float | None,
    sensor: str | None,
    min_members: int | None,
    quantity: str,
    start: str | None,
    end: str | None,
    as_json: bool,
) -> None:
    """Group calibration as RIVM's Samen Meten: each hour, reference ÷ the group's mean is
    the factor for that hour's values of the group and of devices it is assigned to. Hours with
    too few members or fog get none (they stay raw). Stores the hourly factors and prints the
    leave-one-device-out statistics; `calibrate update ID` extends the factors."""
    from sensorpipe.calibration.data import reference_window
    from sensorpipe.calibration.group import FOG_RH, MIN_MEMBERS, WITHIN_KM
    from sensorpipe.calibration.methods import CalibrationError
    from sensorpipe.calibration.store import _iso
    from sensorpipe.protocol.quantities import QUANTITIES

    if quantity not in QUANTITIES:
        fail(f"--quantity {quantity!r}: unknown (known: {', '.join(QUANTITIES)})")
    if reference in devices_:
        fail(f"--reference {reference}: also given as --device; a device is not its own reference")
    if devices_ and (within_km is not None or sensor is not None):
        fail("--within and --sensor choose the group near the station; with --device, leave out")
    t0, t1 = parse_period(start, end)
    registry = local_stack(directory).registry()
    if reference not in registry.devices:
        fail(f"--reference {reference}: not in the register; `sensorpipe devices list` lists them")
    radius = WITHIN_KM if within_km is None else within_km
    members = _group_members(registry, reference, devices_, radius, sensor)
    least = MIN_MEMBERS if min_members is None else min_members
    if len(members) < least:
        fail(
            f"{len(members)} device{'s' if len(members) != 1 else ''} in the group "
            f"({', '.join(members) or 'none'}), and an hour needs {least} (--min-members): no "
            f"hour could get a factor; add devices (--device, or a larger --within), or fit a "
            f"co-located sensor with `calibrate fit`"
        )
    with influx_client(directory, influx_url, database) as client:
        try:
            window = reference_window(client, reference, quantity, t0, t1)
        except CalibrationError as exc:
            fail(str(exc))
        inputs, factors, stats = _group_compute(client, members, reference, quantity, window, least)
    record: dict[str, Any] = {
        "method": "group",
        "coefficients": {},
        "formula": "value × (reference ÷ group mean) of its hour",
        "quantity": quantity,
        "unit": QUANTITIES[quantity].unit,
        "sensor_model": inputs.sensor_model,
        "devices": members,
        "group": {
            "chosen_by": "--device" if devices_ else f"within {radius:g} km of {reference}",
            "within_km": None if devices_ else radius,
            "min_members": least,
            "fog_rh": FOG_RH,
        },
        "reference": reference,
        "period": {"from": _iso(window.start_ms), "to": _iso(window.end_ms)},
        "hours_needed": inputs.needed,
        "chosen_by": "group",
        "folds": len(members),
        "statistics": stats,
    }
    store_record(directory, record, as_json, "; `calibrate update` adds the hours since", factors)


def _group_compute(
    client: Any,
    members: list[str],
    reference: str,
    quantity: str,
    window: Any,
    least: int,
) -> tuple[Any, list[Any], dict[str, Any]]:
    """The group's inputs, hourly factors and leave-one-device-out statistics."""
    from sensorpipe.calibration.data import group_inputs
    from sensorpipe.calibration.group import group_statistics, hourly_factors, leave_one_out
    from sensorpipe.calibration.methods import CalibrationError

    try:
        inputs = group_inputs(client, members, reference, quantity, window, require_all=True)
    except CalibrationError as exc:
        fail(str(exc))
    factors = hourly_factors(inputs, least)
    stats = group_statistics(leave_one_out(inputs, least), quantity)
    return inputs, factors, stats


@click.command("update")
@click.argument("calibration_ids", metavar="[CALIBRATION_ID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every group calibration in the book.")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--from", "start", default=None, help="Recompute from (default: 48 hours before "
              "the last stored hour).")  # fmt: skip
@click.option("--to", "end", default=None, help="Until (default: now).")
@json_option("Print each calibration's outcome as JSON.")
def calibrate_update(
    calibration_ids: tuple[str, ...],
    every: bool,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    start: str | None,
    end: str | None,
    as_json: bool,
) -> None:
    """Extend group calibrations' hourly factors to the hours since: those given, or every one
    in the book (--all); one line each, exit status 1 if any failed. The stack's ingest does
    this by itself every hour ([calibration] in ingest.toml). Hours that have a factor keep
    it; hours stored without one (no reference value yet, too few members) are computed
    again."""
    from sensorpipe.calibration.updating import NotGroup, group_ids, update_each

    if every and calibration_ids:
        fail("--all updates every group calibration in the book: give ids or --all, not both")
    if not every and not calibration_ids:
        fail("give the group calibrations to update (CALIBRATION_ID ...) or --all")
    t0, t1 = parse_period(start, end)
    ids = list(dict.fromkeys(calibration_ids))
    for calibration_id in ids:  # each known and a group calibration, before any work
        record = load_record(directory, calibration_id)
        if record["method"] != "group":
            fail(str(NotGroup.of(record)))
    with calibration_book(directory, create=False) as book:
        if every:
            ids = [] if book is None else group_ids(book)
        if not ids:
            if as_json:
                click.echo("[]")
            click.echo("no group calibrations in the book (`calibrate group` makes one)", err=True)
            return
        assert book is not None
        with influx_client(directory, influx_url, database) as client:
            done = update_each(
                book,
                client,
                ids,
                start_ms=None if t0 is None else int(t0.timestamp() * 1000),
                end_ms=None if t1 is None else int(t1.timestamp() * 1000),
            )
    if as_json:
        click.echo(json.dumps([u.as_dict() for u in done], indent=2))
    else:
        for u in done:
            click.echo(u.line())
    failed = [u.calibration_id for u in done if not u.ok]
    if failed:
        click.echo(
            f"Error: {len(failed)} of {len(done)} calibrations not updated: {', '.join(failed)}",
            err=True,
        )
        sys.exit(1)
