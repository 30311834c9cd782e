"""What the `sensorpipe calibrate` commands share: the stack's calibration book
(calibrations.sqlite in the stack's state directory, a server's state directory where `server
setup` made one, beside the quarantine book), the --from/--to period, a calibration's record
with its assignments, the InfluxDB client, and how a calibration is stored and described."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.calibration.updating import hours_summary
from sensorpipe.cli.common import fail, local_stack

if TYPE_CHECKING:
    from sensorpipe.calibration.store import CalibrationBook

BOOK = "calibrations.sqlite"


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


def parse_period(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    t0, t1 = _time("--from", start), _time("--to", end)
    if t0 is not None and t1 is not None and t0 >= t1:
        fail(f"--from {start} is not before --to {end}: give a later --to")
    return t0, t1


def store_record(
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
            stored["hours"] = hours_summary(book, stored["id"])
    if as_json:
        click.echo(json.dumps(stored, indent=2))
        return
    click.echo(describe(stored))
    click.echo(
        f"stored as {stored['id']}: `sensorpipe calibrate apply {stored['id']} --device ...` "
        f"assigns it{then}"
    )


def num(value: Any, fmt: str = ".2f") -> str:
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
            f"{name:<28}{s['n']:>6}{num(s.get('slope')):>8}{num(s.get('intercept')):>8}"
            f"{num(s.get('r2')):>7}{num(s.get('rmse')):>7}{nrmse:>8}  {met}"
        )
    return lines


def describe(record: dict[str, Any]) -> str:
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


def load_record(directory: Path | None, calibration_id: str) -> dict[str, Any]:
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
                record["hours"] = hours_summary(book, calibration_id)
    if record is None:
        listed = ", ".join(ids[-10:]) or "none"
        fail(f"calibration {calibration_id!r}: no such calibration (the stack has: {listed})")
    return record


@contextmanager
def influx_client(directory: Path | None, influx_url: str | None, database: str) -> Iterator[Any]:
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
