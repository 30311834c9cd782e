"""`sensorpipe calibrate`: fit a calibration of low-cost sensors against a reference station
(`fit`), assign it to devices of the same sensor model (`apply`), and read the calibration
book (`list`, `show`). The book is calibrations.sqlite in the stack's state directory (a
server's state directory where `server setup` made one), beside the quarantine book."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option

if TYPE_CHECKING:
    from sensorpipe.calibration.store import CalibrationBook

BOOK = "calibrations.sqlite"
METHOD_CHOICES = ("linear", "linear_rh", "kohler")


def book_path(directory: Path | None) -> Path:
    """Where the stack in `directory` keeps its calibration book (its state directory)."""
    return local_stack(directory).quarantine_path.parent / BOOK


def _open(directory: Path | None, *, create: bool) -> CalibrationBook | None:
    import sqlite3

    from sensorpipe.calibration.store import open_book

    path = book_path(directory)
    try:
        return open_book(path, create=create)
    except (OSError, sqlite3.Error) as exc:
        fail(f"{path}: cannot open the calibration book ({exc})")


@contextmanager
def calibration_book(directory: Path | None, *, create: bool) -> Iterator[CalibrationBook | None]:
    """The stack's calibration book, closed after the block; None where there is none and
    `create` is false."""
    book = _open(directory, create=create)
    try:
        yield book
    finally:
        if book is not None:
            book.close()


def _time(option: str, value: str | None) -> datetime | None:
    from sensorpipe.query.influxql import QueryInputError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value, relative_example="-30d or -7d")
    except QueryInputError as exc:
        fail(f"{option}: {exc}")


def _period(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    t0, t1 = _time("--from", start), _time("--to", end)
    if t0 is not None and t1 is not None and t0 >= t1:
        fail(f"--from {start} is not before --to {end}: give a later --to")
    return t0, t1


@click.group()
def calibrate() -> None:
    """Calibrate low-cost sensors against a reference station: fit, apply, list, show."""


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
    t0, t1 = _period(start, end)
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
    _store(directory, record, as_json, " to devices of the same sensor model")


def _store(
    directory: Path | None,
    record: dict[str, Any],
    as_json: bool,
    then: str,
    factors: list[Any] | None = None,
) -> None:
    """Add the calibration (and a group calibration's hourly factors) to the book and print
    it, as JSON or described, with what to do next."""
    with calibration_book(directory, create=True) as book:
        assert book is not None
        stored = book.add(record)
        if factors is not None:
            book.add_factors(stored["id"], factors)
            stored["hours"] = _hours_summary(book, stored["id"])
    if as_json:
        click.echo(json.dumps(stored, indent=2))
        return
    click.echo(_describe(stored))
    click.echo(
        f"stored as {stored['id']}: `sensorpipe calibrate apply {stored['id']} --device ...` "
        f"assigns it{then}"
    )


def _num(value: Any, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _stats_table(
    stats: dict[str, Any], rows: list[tuple[str, dict[str, Any]]] | None = None
) -> list[str]:
    """The statistics of a record (or the `rows` given) as table lines."""
    header = (
        f"{'':<28}{'n':>6}{'slope':>8}{'icept':>8}{'R²':>7}{'RMSE':>7}{'NRMSE':>8}  EPA targets"
    )
    lines = [header]
    if rows is None:
        rows = [("raw", stats["raw"]), ("calibrated (in-sample)", stats["calibrated"])]
        rows += [(f"cv {m} (out-of-fold)", s) for m, s in stats["cv"].items() if "n" in s]
    for name, s in rows:
        targets = s.get("targets") or {}
        met = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in targets.items()) or "-"
        nrmse = "-" if s.get("nrmse") is None else f"{s['nrmse']:.1f} %"
        lines.append(
            f"{name:<28}{s['n']:>6}{_num(s.get('slope')):>8}{_num(s.get('intercept')):>8}"
            f"{_num(s.get('r2')):>7}{_num(s.get('rmse')):>7}{nrmse:>8}  {met}"
        )
    return lines


def _describe(record: dict[str, Any]) -> str:
    if record["method"] == "group":
        return _describe_group(record)
    stats = record["statistics"]
    lines = [
        f"calibration {record['id']} ({record['created']}): {record['quantity']} of sensor "
        f"model {record['sensor_model']}, devices {', '.join(record['devices'])} against "
        f"{record['reference']}, {record['period']['from']} .. {record['period']['to']}",
        f"method {record['method']} (chosen by {record['chosen_by']}): {record['formula']}",
        f"cross-validation over {record['folds']} blocks of contiguous days, out-of-fold RMSE "
        f"({record['unit']}):",
    ]
    for name, s in stats["cv"].items():
        mark = "  <- " + record["method"] if name == record["method"] else ""
        value = (
            f"{s['rmse']:.2f}" if s.get("rmse") is not None else f"not tried: {s.get('skipped')}"
        )
        lines.append(f"  {name:<10} {value}{mark}")
    lines += _stats_table(stats)
    return "\n".join(lines)


def _describe_group(record: dict[str, Any]) -> str:
    """A group calibration: its group, rules, hours and leave-one-device-out statistics."""
    stats, group = record["statistics"], record["group"]
    lines = [
        f"calibration {record['id']} ({record['created']}): {record['quantity']} of sensor "
        f"model {record['sensor_model']}, group (Samen Meten style) against "
        f"{record['reference']}, {record['period']['from']} .. {record['period']['to']}",
        f"group ({group['chosen_by']}): {', '.join(record['devices'])}",
        f"each hour: {record['formula']}; no factor (values stay raw) with fewer than "
        f"{group['min_members']} members, or in fog (RH >= {group['fog_rh']:g} % at the station "
        "or in the group's mean)",
    ]
    hours = record.get("hours")
    if hours:
        counts = ", ".join(f"{k} {v}" for k, v in hours["counts"].items())
        lines.append(f"hours stored {hours['first']} .. {hours['last']}: {counts}")
    lines.append("statistics: each member calibrated with the factors of the others "
                 "(leave one device out)")  # fmt: skip
    rows = [("raw", stats["raw"]), ("calibrated (leave-one-out)", stats["calibrated"])]
    for device, s in stats.get("per_device", {}).items():
        rows += [(f"{device} raw"[:27], s["raw"]), (f"{device} left out"[:27], s["calibrated"])]
    lines += _stats_table(stats, rows)
    return "\n".join(lines)


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

    t0, t1 = _period(start, end)
    record = _record(directory, calibration_id)
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


def _record(directory: Path | None, calibration_id: str) -> dict[str, Any]:
    """The calibration with its assignments; a one-line error where there is none."""
    with calibration_book(directory, create=False) as book:
        if book is None:
            fail(
                f"calibration {calibration_id!r}: the stack has none yet "
                "(`calibrate fit` makes one)"
            )
        record = book.get(calibration_id)
        ids = book.ids()
        if record is not None:
            record["assigned"] = [
                a.as_dict() for a in book.assignments(calibration_id=calibration_id)
            ]
            if record["method"] == "group":
                record["hours"] = _hours_summary(book, calibration_id)
    if record is None:
        listed = ", ".join(ids[-10:]) or "none"
        fail(f"calibration {calibration_id!r}: no such calibration (the stack has: {listed})")
    return record


@calibrate.command("list")
@DIR_OPTION
@json_option("Print the calibrations (with their assignments) as JSON.")
def calibrate_list(directory: Path | None, as_json: bool) -> None:
    """The calibrations in the book, oldest first, with the devices each applies to."""
    records: list[dict[str, Any]] = []
    with calibration_book(directory, create=False) as book:
        if book is not None:
            records = book.all()
            for r in records:
                r["assigned"] = [a.as_dict() for a in book.assignments(calibration_id=r["id"])]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no calibrations yet (`sensorpipe calibrate fit` makes one)", err=True)
        return
    for r in records:
        s = r["statistics"]
        cal = s["calibrated"]
        assigned = sorted({a["device_id"] for a in r["assigned"]}) or ["nothing"]
        click.echo(
            f"{r['id']}  {r['created']}  {r['quantity']} {r['sensor_model']}  {r['method']}  "
            f"n={s['n_pairs']} RMSE raw {_num(s['raw'].get('rmse'))} -> "
            f"{_num(cal.get('rmse'))} {r['unit']}  trained on {', '.join(r['devices'])} vs "
            f"{r['reference']}; applies to {', '.join(assigned)}"
        )


@calibrate.command("show")
@click.argument("calibration_id")
@DIR_OPTION
@json_option("Print the calibration record (with its assignments) as JSON.")
def calibrate_show(calibration_id: str, directory: Path | None, as_json: bool) -> None:
    """One calibration: how it was made, its statistics and where it applies."""
    record = _record(directory, calibration_id)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(_describe(record))
    for a in record["assigned"]:
        click.echo(
            f"applies to {a['device_id']}: {a['from'] or 'the start'} .. {a['to'] or 'open'}"
        )
    if not record["assigned"]:
        click.echo(f"applies to no device yet (`sensorpipe calibrate apply {calibration_id} ...`)")


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


@calibrate.command("group")
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
    t0, t1 = _period(start, end)
    registry = local_stack(directory).registry()
    if reference not in registry.devices:
        fail(f"--reference {reference}: not in the register; `sensorpipe devices list` lists them")
    radius = WITHIN_KM if within_km is None else within_km
    members = _group_members(registry, reference, devices_, radius, sensor)
    least = MIN_MEMBERS if min_members is None else min_members
    with _influx(directory, influx_url, database) as client:
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
    _store(directory, record, as_json, "; `calibrate update` adds the hours since", factors)


@contextmanager
def _influx(directory: Path | None, influx_url: str | None, database: str) -> Iterator[Any]:
    """A client of the stack's InfluxDB (or --influx-url); its errors as one line."""
    from sensorpipe.cli.query import _influx_url
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient

    client = InfluxClient(_influx_url(directory, influx_url), database)
    try:
        yield client
    except (QueryError, StorageUnavailable) as exc:
        fail(str(exc))
    finally:
        client.close()


def _group_compute(
    client: Any,
    members: list[str],
    reference: str,
    quantity: str,
    window: Any,
    least: int,
    *,
    update: bool = False,
) -> tuple[Any, list[Any], dict[str, Any]]:
    """The group's inputs, hourly factors and leave-one-device-out statistics."""
    from sensorpipe.calibration.data import group_inputs
    from sensorpipe.calibration.group import group_statistics, hourly_factors, leave_one_out
    from sensorpipe.calibration.methods import CalibrationError

    try:
        inputs = group_inputs(client, members, reference, quantity, window, require_all=not update)
    except CalibrationError as exc:
        fail(str(exc))
    factors = hourly_factors(inputs, least)
    stats = group_statistics(leave_one_out(inputs, least), quantity)
    return inputs, factors, stats


def _hours_summary(book: CalibrationBook, calibration_id: str) -> dict[str, Any]:
    """The stored hours of a group calibration: their span and how many got a factor or not
    and why."""
    from sensorpipe.calibration.group import reasons
    from sensorpipe.calibration.store import _iso

    stored = book.factors(calibration_id)
    return {
        "first": _iso(stored[0].hour_ms) if stored else None,
        "last": _iso(stored[-1].hour_ms) if stored else None,
        "counts": reasons(stored),
    }


@calibrate.command("update")
@click.argument("calibration_id")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--from", "start", default=None, help="Recompute from (default: 48 hours before "
              "the last stored hour).")  # fmt: skip
@click.option("--to", "end", default=None, help="Until (default: now).")
def calibrate_update(
    calibration_id: str,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    start: str | None,
    end: str | None,
) -> None:
    """Extend a group calibration's hourly factors to the hours since (run it periodically,
    e.g. hourly from cron or a systemd timer). Hours that have a factor keep it; hours stored
    without one (no reference value yet, too few members) are computed again."""
    import time

    from sensorpipe.calibration.data import Window

    t0, t1 = _period(start, end)
    record = _record(directory, calibration_id)
    if record["method"] != "group":
        fail(
            f"{calibration_id}: a {record['method']} calibration has fixed coefficients, "
            "nothing to update; `calibrate update` is for group calibrations"
        )
    with calibration_book(directory, create=False) as book:
        assert book is not None
        stored = book.factors(calibration_id)
    hour = 3_600_000
    if t0 is not None:
        start_ms = int(t0.timestamp() * 1000)
    elif stored:
        start_ms = stored[-1].hour_ms - 48 * hour
    else:
        start_ms = _ms(record["period"]["from"])
    end_ms = int((t1.timestamp() if t1 is not None else time.time()) * 1000)
    end_ms -= end_ms % hour  # the unfinished hour waits
    if end_ms <= start_ms:
        click.echo(f"{calibration_id}: no finished hour to add yet")
        return
    window = Window(start_ms, end_ms)
    with _influx(directory, influx_url, database) as client:
        least = record["group"]["min_members"]
        _, factors, _ = _group_compute(
            client,
            record["devices"],
            record["reference"],
            record["quantity"],
            window,
            least,
            update=True,
        )
    with calibration_book(directory, create=False) as book:
        assert book is not None
        written = book.add_factors(calibration_id, factors)
        summary = _hours_summary(book, calibration_id)
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    click.echo(
        f"{calibration_id}: {written} hours written; stored {summary['first']} .. "
        f"{summary['last']} ({counts})"
    )


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


REPORT_OUT = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The HTML file to write (self-contained: inline SVG, no scripts).",
)  # fmt: skip


@calibrate.command("report")
@click.argument("calibration_id")
@REPORT_OUT
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--from", "start", default=None, help="Start (default: the calibration's period).")
@click.option("--to", "end", default=None, help="End (default: the calibration's period).")
def calibrate_report(
    calibration_id: str,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    out: Path,
    start: str | None,
    end: str | None,
) -> None:
    """Write one HTML page about calibration CALIBRATION_ID: the raw and the calibrated hourly
    means against the reference (scatter, with the 1:1 line, the EPA targets and the fitted
    line), the statistics, the time series, the method and its register entry, fog hours
    marked; read from InfluxDB as the fit read them."""
    from sensorpipe.calibration.methods import CalibrationError
    from sensorpipe.calibration.report import check_pairs, render, report_pairs
    from sensorpipe.calibration.store import _iso

    if out.suffix.lower() not in (".html", ".htm"):
        fail(
            f"--out {out}: only an HTML report is written (.html); a PNG needs a drawing "
            "library sensorpipe does not carry: open the HTML and print or screenshot it"
        )
    t0, t1 = _period(start, end)
    record = _record(directory, calibration_id)
    start_ms = int(t0.timestamp() * 1000) if t0 else _ms(record["period"]["from"])
    end_ms = int(t1.timestamp() * 1000) if t1 else _ms(record["period"]["to"])
    if end_ms <= start_ms:
        fail(f"--from/--to: the period {_iso(start_ms)} .. {_iso(end_ms)} is empty")
    factors = None
    if record["method"] == "group":
        with calibration_book(directory, create=False) as book:
            assert book is not None
            factors = {f.hour_ms: f.factor for f in book.factors(calibration_id, start_ms, end_ms)}
    period = (str(_iso(start_ms)), str(_iso(end_ms)))
    with _influx(directory, influx_url, database) as client:
        try:
            pairs = report_pairs(client, record, start_ms, end_ms, factors)
            check_pairs(pairs, period)
        except CalibrationError as exc:
            fail(f"{calibration_id}: {exc}")
    page = render(record, pairs, period, record["assigned"])
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"--out {out}: cannot write it ({exc.strerror or exc}); choose a writable path")
    click.echo(
        f"{out}: report of {calibration_id}, {len(pairs)} hourly pairs, {period[0]} .. {period[1]}"
    )
