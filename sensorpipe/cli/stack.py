"""`sensorpipe stack`: run Mosquitto, InfluxDB and the ingest on this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.common import DIR_OPTION, fail, local_stack


@click.group()
def stack() -> None:
    """Run Mosquitto, InfluxDB and the ingest locally, in the background."""


@stack.command("up")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def stack_up(directory: Path | None, as_json: bool) -> None:
    """Start the stack on free loopback ports and print its endpoints."""
    from sensorpipe.stack.local import StackError
    from sensorpipe.stack.process import ProcessStartError

    s = local_stack(directory)
    try:
        info = s.up(detach=True, progress=None if as_json else click.echo)
    except (StackError, ProcessStartError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(info.as_dict()))
        return
    click.echo(f"stack up in {info.directory}")
    click.echo(f"  MQTT broker : mqtt://127.0.0.1:{info.broker_port}")
    click.echo(f"  InfluxDB    : {info.influx_url} (database {info.database})")
    click.echo(f"  registry    : {s.registry_path}")
    click.echo("next: `sensorpipe devices add ID` or `sensorpipe sim fleet --devices 3`")


@stack.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
def stack_status(directory: Path | None, as_json: bool) -> None:
    """Show whether each component runs, and the ingest's counters."""
    from sensorpipe.stack.local import StackError

    try:
        status = local_stack(directory).status()
    except StackError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"stack in {status['directory']}, {status['devices']} devices registered")
    for name, c in status["components"].items():
        state = "running" if c["running"] else "NOT RUNNING"
        click.echo(f"  {name:10s} pid {c['pid']:<8d} {state}")
    stats = status["components"]["ingest"].get("stats")
    if stats:
        click.echo(
            f"  ingest: received {stats['received']}, stored {stats['stored_messages']}, "
            f"rejected {stats['rejected']}, write retries {stats['write_retries']}"
        )
    deadletter = status["components"]["ingest"].get("deadletter")
    if deadletter:
        _echo_deadletter(deadletter)
    if status.get("metrics"):
        click.echo(f"  ingest metrics (Prometheus): {status['metrics']}")


def _echo_deadletter(d: dict[str, Any]) -> None:
    """The dead-letter store, loudly when it cannot write: rejected messages are then held
    back, not confirmed to their devices."""
    room = "" if d["free_bytes"] is None else f", {d['free_bytes'] / 2**20:.1f} MiB free"
    if d["available"] is False:
        since = d["unavailable_since"]
        when = "" if since is None else time.strftime(" since %H:%M:%S", time.localtime(since))
        click.echo(f"  dead-letter store UNAVAILABLE{when}: {d['error']} ({d['path']}{room})")
        click.echo(
            f"    {d['held_back']} rejected messages held back, not confirmed to their devices: "
            f"{d['held_back_waiting']} waiting in the ingest, {d['left_to_sender']} left to "
            f"their senders to send again"
        )
        return
    click.echo(f"  dead-letter store: {d['path']}{room}")
    if d["held_back"]:
        click.echo(f"    {d['held_back']} rejected messages held back while it was unavailable")


@stack.command("down")
@DIR_OPTION
def stack_down(directory: Path | None) -> None:
    """Stop the stack (the data stays in the directory)."""
    stopped = local_stack(directory).down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
