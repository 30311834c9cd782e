"""`sensorpipe import list` and `sensorpipe import remove`: the files imported into the stack,
and undoing an import (a wrong time zone, the wrong device) so that it can be done again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option

if TYPE_CHECKING:
    from sensorpipe.importer.ledger import Ledger, LedgerEntry


def _ledger(directory: Path | None) -> tuple[Ledger | None, Path]:
    import sqlite3

    from sensorpipe.importer.ledger import Ledger

    stack = local_stack(directory)
    path = stack.directory / "imports" / "ledger.sqlite"
    if not path.exists():
        return None, path
    try:
        return Ledger(path), path
    except sqlite3.DatabaseError as exc:
        fail(
            f"{path}: not the stack's ledger of imported files ({exc}); move it away to start anew"
        )


def _entry_json(ledger: Ledger, e: LedgerEntry) -> dict[str, Any]:
    from sensorpipe.importer.removal import when

    return {
        "sha256": e.sha256,
        "file": e.file_name,
        "format": e.format,
        "user": e.user,
        "imported": when(e.first_ms),
        "complete": e.completed_ms is not None,
        "rows": e.rows,
        "stored": e.stored,
        "rejected": e.rejected,
        "spans": [
            {
                "measurement": s.measurement,
                "device_id": s.device_id,
                "from": when(s.first_ms),
                "to": when(s.last_ms),
            }
            for s in ledger.spans(e.sha256)
        ],
    }


@click.command("list")
@DIR_OPTION
@json_option("Print JSON.")
def import_list(directory: Path | None, as_json: bool) -> None:
    """The files imported into the stack, oldest first: sha256, format, who, what was stored
    and where (device and time range; `import remove` takes the sha256 or the file)."""
    ledger, path = _ledger(directory)
    if ledger is None:
        entries: list[dict[str, Any]] = []
    else:
        try:
            entries = [_entry_json(ledger, e) for e in ledger.entries()]
        finally:
            ledger.close()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo(f"no file has been imported into this stack ({path} does not list any)")
        return
    for e in entries:
        state = "" if e["complete"] else "; NOT COMPLETE"
        click.echo(
            f"{e['sha256'][:12]}  {e['format']}  {e['file']}: imported {e['imported']} by "
            f"{e['user']}, {e['rows']} row{'' if e['rows'] == 1 else 's'}, {e['stored']} "
            f"stored, {e['rejected']} rejected{state}"
        )
        for s in e["spans"]:
            click.echo(f"    {s['measurement']} {s['device_id']}: {s['from']} to {s['to']}")


@click.command("remove")
@click.argument("files", nargs=-1, required=True)
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
@click.option(
    "--influx-index-tsi1",
    "tsi1_confirmed",
    is_flag=True,
    help="InfluxDB runs on another machine and uses the tsi1 index (needed: with the in-memory "
    "index, InfluxDB 1.x deletes other devices' points too).",
)
@json_option("Print what was removed as JSON.")
def import_remove(
    files: tuple[str, ...],
    directory: Path | None,
    influx_url: str | None,
    database: str,
    yes: bool,
    tsi1_confirmed: bool,
    as_json: bool,
) -> None:
    """Undo imports: delete each file's points, its `imports` records and dead letters, and
    forget it, so that it can be imported again (with corrected options).

    FILES are the imported files, or their sha256 (8 or more hex digits, from `sensorpipe
    import list`). Only the points the file wrote go: found by device, source and time range,
    refused where another file of the same format wrote the same device at the same times
    (remove both, then import the right one again). Devices stay registered."""
    from sensorpipe.importer.removal import (
        RemovalProblem,
        check_index,
        find_entry,
        plan,
        remove,
        when,
    )
    from sensorpipe.ingest.deadletter import DeadLetterStore, is_sqlite_file
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient, quiet_request_log
    from sensorpipe.stack.local import StackError

    ledger, path = _ledger(directory)
    if ledger is None:
        fail(f"no file has been imported into this stack ({path} does not exist): nothing removed")
    stack = local_stack(directory)
    try:
        try:
            entries: list[LedgerEntry] = []
            for name in files:
                entry = find_entry(ledger, name)
                if entry.sha256 not in {e.sha256 for e in entries}:
                    entries.append(entry)
            removals = plan(ledger, entries)
        except RemovalProblem as exc:
            fail(str(exc))
        if influx_url is None:
            try:
                influx_url = stack.require_influx()[0]
            except StackError as exc:
                fail(f"{exc} (or pass --influx-url): nothing removed")
        for r in removals:
            e = r.entry
            click.echo(
                f"{e.file_name} ({e.sha256[:12]}, {e.format}, imported {when(e.first_ms)} by "
                f"{e.user}): {e.stored} row{'' if e.stored == 1 else 's'} stored",
                err=as_json,
            )
            for s in r.spans:
                click.echo(
                    f"    {s.measurement} {s.device_id}: {when(s.first_ms)} to {when(s.last_ms)}",
                    err=as_json,
                )
        quiet_request_log()
        client = InfluxClient(influx_url, database, timeout_s=120.0)
        try:
            try:
                if not client.ping(timeout_s=5.0):
                    fail(f"InfluxDB at {influx_url} does not answer: nothing removed")
                check_index(client, tsi1_confirmed=tsi1_confirmed)
            except RemovalProblem as exc:
                fail(str(exc))
            except (StorageUnavailable, QueryError) as exc:
                fail(f"InfluxDB at {influx_url} could not be asked about its shards ({exc}): "
                     f"nothing removed")  # fmt: skip
            if not yes:
                if not sys.stdin.isatty():
                    fail("deleting needs a yes: add --yes (nothing removed)")
                click.confirm(
                    "Delete these points, records and dead letters?", abort=True, err=True
                )
            deadletters = stack.deadletter_path
            store = (
                DeadLetterStore(deadletters)
                if deadletters.exists() and is_sqlite_file(deadletters)
                else None
            )
            done = []
            try:
                for r in removals:
                    done.append(remove(client, ledger, store, r))
            except RemovalProblem as exc:
                fail(_partial(done, str(exc)))
            except (StorageUnavailable, QueryError) as exc:
                fail(
                    _partial(done, f"InfluxDB failed while deleting: {exc}; run the removal again")
                )
        finally:
            client.close()
    finally:
        ledger.close()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "sha256": d.entry.sha256,
                        "file": d.entry.file_name,
                        "devices": d.devices,
                        "spans": d.spans,
                        "dead_letters": d.letters,
                        "dead_letters_kept": d.letters_kept_because,
                    }
                    for d in done
                ],
                indent=2,
            )
        )
        return
    for d in done:
        kept = (
            f"; its dead letters kept ({d.letters_kept_because})" if d.letters_kept_because else ""
        )
        click.echo(
            f"removed {d.entry.file_name}: the points of {len(d.devices)} device"
            f"{'s' if len(d.devices) != 1 else ''} deleted and read back gone, {d.letters} dead "
            f"letters{kept}; it can be imported again"
        )
    if any(d.devices for d in done):
        names = ", ".join(sorted({x for d in done for x in d.devices}))
        click.echo(f"devices stay registered: {names}")


def _partial(done: list[Any], reason: str) -> str:
    if not done:
        return reason
    names = ", ".join(d.entry.file_name for d in done)
    return f"{reason} (removed before it: {names})"
