"""`sensorpipe demo`: the whole pipeline on real parts, with a summary."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sensorpipe.cli.common import fail
from sensorpipe.cli.options import device_count_option, duration_option, json_option


@click.command()
@duration_option("Seconds the devices run (Ctrl-C ends early).")
@device_count_option(200)
@json_option("Print the summary as one JSON object.")
@click.option(
    "--serve",
    is_flag=True,
    help="After the summary, keep the stack and the dashboard running until Ctrl-C.",
)
def demo(duration: float, count: int, as_json: bool, serve: bool) -> None:
    """The whole pipeline on real parts, then a summary counted from InfluxDB."""
    from sensorpipe.process import ProcessStartError
    from sensorpipe.stack.demo import run_demo

    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    printed = False

    def show(summary: Any, info: Any = None) -> None:
        nonlocal printed
        printed = True
        _print_summary(summary, as_json)
        if info is not None:
            _hold(info, say)

    try:
        summary = run_demo(
            devices=count, duration_s=duration, say=say, after=show if serve else None
        )
    except ProcessStartError as exc:
        fail(str(exc))
    if not printed:
        _print_summary(summary, as_json)
    if summary.lost:
        sys.exit(1)


def _hold(info: Any, say: Any) -> None:
    """Keep the stack up for a look at the dashboard, until Ctrl-C."""
    import time

    say("")
    say(f"dashboard: {info.api_url}  (API {info.api_url}api/v1, docs {info.api_url}docs)")
    say("the stack keeps running for a look at what the demo stored; Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("")


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    click.echo("")
    click.echo(f"devices {summary.devices}, ran {summary.duration_s} s")
    click.echo(demo_totals_line(summary))
    click.echo(
        "rejected by reason: "
        + ", ".join(f"{k} {v}" for k, v in summary.rejected_by_reason.items())
    )
    click.echo(
        f"malformed frames and bad CRCs skipped on the devices: {summary.malformed_frames_skipped}"
    )
    click.echo(sensor_faults_line(summary))
    if summary.backed_off:
        click.echo(
            "backed off, as their status messages report it: "
            + ", ".join(f"{k} up to {v:g} s" for k, v in summary.backed_off.items())
        )
    from sensorpipe.query.output import drop_empty_columns, render

    # Each device's sensors as last seen: its latest minute, one row per device and sensor.
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in summary.query:
        latest[(row.get("device_id"), row.get("sensor"))] = row
    rows = sorted(latest.values(), key=lambda r: (str(r.get("device_id")), str(r.get("sensor"))))
    cols = drop_empty_columns(rows, ["time", "device_id", "site", "sensor"])
    click.echo("\neach device's sensors, their latest per-minute means from InfluxDB:")
    click.echo(render(rows, cols, "table"))


def demo_totals_line(summary: Any) -> str:
    """The demo's account of every reading: where each one is now."""
    line = (
        f"published {summary.published}  stored {summary.stored}  "
        f"rejected {summary.rejected}  lost {summary.lost}  "
        f"still in device outboxes {summary.pending_in_outboxes}"
    )
    if summary.pending_in_outboxes:
        line += " (not lost: sent when the devices next reach the broker)"
    return line


def sensor_faults_line(summary: Any) -> str:
    """The faults the devices' sensors showed, counted by kind on the devices."""
    if not summary.sensor_faults:
        return "sensor faults counted on the devices: none"
    return "sensor faults counted on the devices: " + "; ".join(
        f"{sensor} " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        for sensor, kinds in summary.sensor_faults.items()
    )
