"""`sensorpipe calibrate`: fit a calibration of low-cost sensors against a reference station
(`fit`), assign it to devices of the same sensor model (`apply`), and read the calibration
book (`list`, `show`). The book is calibrations.sqlite in the stack's state directory (a
server's state directory where `server setup` made one), beside the quarantine book
(`calibrate_book`, with what the commands share). `group` and `update` live in
`calibrate_group`, `report` in `calibrate_report`; this group adds them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.calibrate_book import (
    book_path,
    calibration_book,
    describe,
    load_record,
    num,
    parse_period,
    store_record,
)
from sensorpipe.cli.calibrate_group import calibrate_group, calibrate_update
from sensorpipe.cli.calibrate_report import calibrate_report
from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option

__all__ = ["METHOD_CHOICES", "book_path", "calibrate", "calibration_book"]
METHOD_CHOICES = ("linear", "linear_rh", "kohler")


@click.group()
def calibrate() -> None:
    """Calibrate low-cost sensors against a reference station: fit, apply, list, show."""


# The group's commands that live in their own modules.
for _command in (calibrate_group, calibrate_update, calibrate_report):
    calibrate.add_command(_command)


@calibrate.command("fit")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--device", "devices_", multiple=True, required=True, help="Device to train on "
              "(repeatable; all of one sensor model).")  # fmt: skip
@click.option("--reference", required=True, help="The reference station's device id.")
@click.option("--quantity", default="pm2_5", show_default=True, help="The quantity to calibrate.")
@click.option("--from", "start", default=None, help="Start (default: the reference's first hour).")
@click.option("--to", "end", default=None, help="End (default: after the reference's last hour).")
@click.option(
    "--method",
    type=click.Choice(METHOD_CHOICES),
    default=None,
    help="The method (default: the best by cross-validation over blocks of days).",
)
@json_option("Print the stored calibration record as JSON.")
def calibrate_fit(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    reference: str,
    quantity: str,
    start: str | None,
    end: str | None,
    method: str | None,
    as_json: bool,
) -> None:
    """Fit the devices' hourly means (>= 75 % complete) against the reference's hours; print
    n, slope, intercept, R², RMSE, NRMSE and the EPA targets for raw and calibrated values and
    each method's cross-validated RMSE; store the calibration and print its id."""
    from sensorpipe.calibration.data import training_pairs
    from sensorpipe.calibration.fitting import fit_pairs
    from sensorpipe.calibration.methods import RH_CAP, CalibrationError, formula
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.protocol.quantities import QUANTITIES

    if quantity not in QUANTITIES:
        fail(f"--quantity {quantity!r}: unknown (known: {', '.join(QUANTITIES)})")
    if reference in devices_:
        fail(f"--reference {reference}: also given as --device; a device is not its own reference")
    t0, t1 = parse_period(start, end)
    from sensorpipe.cli.query import _influx_url

    url = _influx_url(directory, influx_url)
    registry = local_stack(directory).registry()
    for option, device in [*(("--device", d) for d in devices_), ("--reference", reference)]:
        if device not in registry.devices:
            fail(f"{option} {device}: not in the register; `sensorpipe devices list` lists them")
    client = InfluxClient(url, database)
    try:
        training = training_pairs(
            client, list(dict.fromkeys(devices_)), reference, quantity, t0, t1
        )
        fitted = fit_pairs(training.pairs, quantity, method)
    except CalibrationError as exc:
        fail(str(exc))
    except (QueryError, StorageUnavailable) as exc:
        fail(str(exc))
    finally:
        client.close()
    from sensorpipe.calibration.store import _iso

    record: dict[str, Any] = {
        "method": fitted.method,
        "coefficients": fitted.coefficients,
        "formula": formula(fitted.method, fitted.coefficients),
        "quantity": quantity,
        "unit": QUANTITIES[quantity].unit,
        "sensor_model": training.sensor_model,
        "devices": list(dict.fromkeys(devices_)),
        "reference": reference,
        "period": {"from": _iso(training.window.start_ms), "to": _iso(training.window.end_ms)},
        "hours_needed": training.needed,
        "rh_cap": RH_CAP,
        "humidity_from": training.pairs.humidity_sources(),
        "chosen_by": fitted.chosen_by,
        "folds": fitted.folds,
        "statistics": {
            "n_pairs": fitted.n_pairs,
            "raw": fitted.raw,
            "calibrated": fitted.calibrated,
            "cv": fitted.cv,
        },
    }
    store_record(directory, record, as_json, " to devices of the same sensor model")


@calibrate.command("apply")
@click.argument("calibration_id")
@DIR_OPTION
@click.option("--device", "devices_", multiple=True, required=True, help="Device (repeatable).")
@click.option("--from", "start", default=None, help="Valid from (default: all the past).")
@click.option("--to", "end", default=None, help="Valid until (default: open).")
@json_option("Print the assignments made as JSON.")
def calibrate_apply(
    calibration_id: str,
    directory: Path | None,
    devices_: tuple[str, ...],
    start: str | None,
    end: str | None,
    as_json: bool,
) -> None:
    """Assign calibration CALIBRATION_ID to devices of the sensor model it was fitted on: their
    values are calibrated when read (`query air`), for --from .. --to or all time."""
    import getpass

    t0, t1 = parse_period(start, end)
    record = load_record(directory, calibration_id)
    registry = local_stack(directory).registry()
    model = record["sensor_model"]
    for device in devices_:
        entry = registry.devices.get(device)
        if entry is None:
            fail(f"--device {device}: not in the register; `sensorpipe devices list` lists them")
        if model not in entry.sensors:
            have = ", ".join(entry.sensors) or "none declared"
            fail(
                f"--device {device}: sensor model {have}; {calibration_id} was fitted on "
                f"{model} and applies only to that model"
            )
    if record["method"] == "group":
        for device in devices_:
            _warn_if_far(registry, record, device)
    try:
        by = getpass.getuser()
    except (KeyError, OSError):
        by = "operator"
    with calibration_book(directory, create=True) as book:
        assert book is not None
        made = [
            book.assign(
                calibration_id,
                device,
                None if t0 is None else int(t0.timestamp() * 1000),
                None if t1 is None else int(t1.timestamp() * 1000),
                by,
            )
            for device in dict.fromkeys(devices_)
        ]
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in made], indent=2))
        return
    for a in made:
        period = f"{a.as_dict()['from'] or 'the start'} .. {a.as_dict()['to'] or 'open'}"
        click.echo(f"{calibration_id} applies to {a.device_id} ({period})")


def _warn_if_far(registry: Any, record: dict[str, Any], device: str) -> None:
    """A warning (the assignment is still made) where a group calibration is assigned to a
    device outside the radius its group was chosen in, or without a location to tell."""
    from sensorpipe.calibration.group import distance_km

    radius = record.get("group", {}).get("within_km")
    station = registry.devices.get(record["reference"])
    if radius is None or station is None or station.location is None:
        return
    where = registry.devices[device].location
    if where is None:
        click.echo(
            f"warning: --device {device} has no registered location: {record['id']}'s hourly "
            f"factors are of sensors within {radius:g} km of {record['reference']}",
            err=True,
        )
        return
    km = distance_km(station.location.lat, station.location.lon, where.lat, where.lon)
    if km > radius:
        click.echo(
            f"warning: --device {device} is {km:.1f} km from {record['reference']}, outside "
            f"the {radius:g} km {record['id']}'s group was chosen in: its factors may not hold "
            "there",
            err=True,
        )


@calibrate.command("list")
@DIR_OPTION
@json_option("Print the calibrations (with their assignments) as JSON.")
def calibrate_list(directory: Path | None, as_json: bool) -> None:
    """The calibrations in the book, oldest first, with the devices each applies to."""
    import time

    from sensorpipe.calibration.status import calibration_status

    records: list[dict[str, Any]] = []
    with calibration_book(directory, create=False) as book:
        if book is not None:
            records = book.all()
            for r in records:
                r["assigned"] = [a.as_dict() for a in book.assignments(calibration_id=r["id"])]
            devices = sorted({a["device_id"] for r in records for a in r["assigned"]})
            now = calibration_status(book, devices, int(time.time() * 1000))
            for r in records:  # where it is the one that applies now (a later one may not be)
                r["applies_now"] = sorted(
                    d
                    for d, per in now.items()
                    if (applied := per.get(r["quantity"])) is not None
                    and applied.assignment.calibration_id == r["id"]
                )
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no calibrations yet (`sensorpipe calibrate fit` makes one)", err=True)
        return
    for r in records:
        s = r["statistics"]
        cal = s["calibrated"]
        now = r["applies_now"]
        before = sorted({a["device_id"] for a in r["assigned"]} - set(now))
        where = f"applies now to {', '.join(now) or 'no device'}"
        if before:
            where += (
                f"; assigned to {', '.join(before)} for other times, or replaced by a later one"
            )
        click.echo(
            f"{r['id']}  {r['created']}  {r['quantity']} {r['sensor_model']}  {r['method']}  "
            f"n={s['n_pairs']} RMSE raw {num(s['raw'].get('rmse'))} -> "
            f"{num(cal.get('rmse'))} {r['unit']}  trained on {', '.join(r['devices'])} vs "
            f"{r['reference']}; {where}"
        )


@calibrate.command("show")
@click.argument("calibration_id")
@DIR_OPTION
@json_option("Print the calibration record (with its assignments) as JSON.")
def calibrate_show(calibration_id: str, directory: Path | None, as_json: bool) -> None:
    """One calibration: how it was made, its statistics and where it applies."""
    record = load_record(directory, calibration_id)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(describe(record))
    for a in record["assigned"]:
        click.echo(
            f"applies to {a['device_id']}: {a['from'] or 'the start'} .. {a['to'] or 'open'}"
        )
    if not record["assigned"]:
        click.echo(f"applies to no device yet (`sensorpipe calibrate apply {calibration_id} ...`)")
