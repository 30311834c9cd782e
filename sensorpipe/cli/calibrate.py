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
    with calibration_book(directory, create=True) as book:
        assert book is not None
        stored = book.add(record)
    if as_json:
        click.echo(json.dumps(stored, indent=2))
        return
    click.echo(_describe(stored))
    click.echo(
        f"stored as {stored['id']}: `sensorpipe calibrate apply {stored['id']} --device ...` "
        "assigns it to devices of the same sensor model"
    )


def _num(value: Any, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _stats_table(stats: dict[str, Any]) -> list[str]:
    """The statistics of a record as table lines."""
    header = (
        f"{'':<28}{'n':>6}{'slope':>8}{'icept':>8}{'R²':>7}{'RMSE':>7}{'NRMSE':>8}  EPA targets"
    )
    lines = [header]
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
