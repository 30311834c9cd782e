"""`sensorpipe devices quarantine` and `devices lift`: take a device off the network and back.

The stack keeps the quarantine book and disables or enables the device's broker account
(`stack.local`); these commands say what happened in one line, who did it (`operator <login>`
in the book's log) and, where no broker runs, how to start it. `when` is how a quarantine's
time is shown, here and in `devices list`. `devices` adds both commands to its group.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION
from sensorpipe.protocol.provenance import EDGE, KIT_SOURCES

if TYPE_CHECKING:
    from sensorpipe.stack.local import LocalStack


def when(epoch_s: float) -> str:
    """A quarantine's or a lift's time as `lift` and `devices list` show it (local time)."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


@click.command("quarantine")
@click.argument("device_id")
@DIR_OPTION
@click.option(
    "--reason-text",
    default="",
    help="Why, in words (kept in the quarantine book's log and shown by `devices list`).",
)
def devices_quarantine(directory: Path | None, device_id: str, reason_text: str) -> None:
    """Take DEVICE_ID off the network until `sensorpipe devices lift`: the ingest drops its
    messages, the kit gateway refuses its posts, and where the stack's broker runs its broker
    account is disabled now (it is disconnected and cannot log in again)."""
    from sensorpipe.stack.local import StackError

    if len(reason_text) > 2000:
        fail(f"--reason-text: {len(reason_text)} characters; at most 2000")
    s = local_stack(directory)
    try:
        _entry, disabled = s.quarantine(device_id, detail=reason_text, by=_operator())
    except StackError as exc:
        fail(str(exc))
    entry = s.registry().devices[device_id]
    if disabled:
        where = "its broker account is disabled"
    elif entry.source in KIT_SOURCES:
        where = f"a kit has no broker account: gateway {entry.gateway} refuses it"
    elif entry.source != EDGE:
        where = f"a device of source {entry.source} has no broker account"
    else:
        where = f"no broker runs; {_restart_broker(s)} with the account disabled"
    click.echo(f"quarantined {device_id} ({where}); `sensorpipe devices lift {device_id}` ends it")


@click.command("lift")
@click.argument("device_id")
@DIR_OPTION
def devices_lift(directory: Path | None, device_id: str) -> None:
    """End DEVICE_ID's quarantine: the ingest and the kit gateway take it again within a
    second, and where the stack's broker runs its broker account is enabled."""
    from sensorpipe.stack.local import StackError

    s = local_stack(directory)
    pending = s.pending_lifts().get(device_id)
    try:
        entry, enabled = s.lift(device_id, by=_operator())
    except StackError as exc:
        fail(str(exc))
    if pending is not None:
        click.echo(
            f"the broker account of {device_id} is enabled: the lift made "
            f"{when(pending.lifted_at)} by {pending.by} is done"
        )
        return
    since = when(entry.since)
    if enabled:
        account = "its broker account is enabled"
    elif s.running()["mosquitto"]:
        account = "it has no broker account to enable"
    else:
        account = f"no broker runs; {_restart_broker(s)} with the account enabled"
    click.echo(
        f"lifted the quarantine of {device_id} ({entry.reason} since {since}, by {entry.by}); "
        f"{account}"
    )


def _restart_broker(s: LocalStack) -> str:
    """How to start the stack's broker again: `stack up` refuses while other parts run."""
    if any(s.running().values()):
        return "`sensorpipe stack down` then `sensorpipe stack up` start it"
    return "`sensorpipe stack up` starts it"


def _operator() -> str:
    """Who runs the command, for the quarantine book's log."""
    import getpass

    try:
        return f"operator {getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "operator"
