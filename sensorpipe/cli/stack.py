"""`sensorpipe stack`: run Mosquitto, InfluxDB and the ingest on this machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, json_option

if TYPE_CHECKING:
    from sensorpipe.stack.local import LocalStack, StackInfo

# `stack status` when a component does not run, as `systemctl status` for a stopped unit.
NOT_RUNNING = 3


@click.group()
def stack() -> None:
    """Run Mosquitto, InfluxDB and the ingest locally, in the background."""


@stack.command("up")
@DIR_OPTION
@json_option("Print the endpoints as JSON.")
def stack_up(directory: Path | None, as_json: bool) -> None:
    """Start the stack on free loopback ports and print its endpoints.

    All or nothing: if it is interrupted (Ctrl-C, SIGTERM, a closed terminal or output pipe)
    or a component does not start, it stops what it had started and exits non-zero."""
    from sensorpipe.gateway.mosquitto import PasswordToolError
    from sensorpipe.process import ProcessStartError
    from sensorpipe.stack.local import StackError

    s = local_stack(directory)
    try:
        with _signals_interrupt():
            info = s.up(detach=True, progress=None if as_json else click.echo)
            try:
                _echo_endpoints(s, info, as_json)
            except BaseException:
                s.down()  # endpoints nobody was told of: not up
                raise
    except (StackError, ProcessStartError, PasswordToolError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        _ended_early(s, "interrupted")
    except BrokenPipeError:
        # What is still buffered for the closed pipe would fail again at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _ended_early(s, "output closed")


def _ended_early(s: LocalStack, why: str) -> NoReturn:
    """Say whether stopping what `up` had started worked (a second Ctrl-C can cut it short)."""
    from sensorpipe.stack.local import describe_pids

    left = {name: pids for name, pids in s.running().items() if pids}
    if left:
        fail(
            f"{why}; still running: {describe_pids(left)}: "
            f"`sensorpipe stack down --dir {s.directory}` stops them"
        )
    fail(f"{why}: stopped what had started; nothing runs from {s.directory}")


def _echo_endpoints(s: LocalStack, info: StackInfo, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info.as_dict()))
        return
    click.echo(f"stack up in {info.directory}")
    click.echo(f"  MQTT broker : mqtt://127.0.0.1:{info.broker_port}")
    click.echo(f"  InfluxDB    : {info.influx_url} (database {info.database})")
    click.echo(f"  registry    : {s.registry_path}")
    if info.api_url:
        click.echo(
            f"  dashboard   : {info.api_url}  (API {info.api_url}api/v1, docs {info.api_url}docs)"
        )
    if info.kits_url:
        click.echo(
            f"  kit gateway : {info.kits_url}  (airrohr kits post to "
            f"{info.kits_url}airrohr/v1/push: `sensorpipe devices add-kit airrohr`)"
        )
    click.echo("next: `sensorpipe devices add ID` or `sensorpipe sim fleet --devices 3`")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (its terminal closed) end `stack up` as Ctrl-C does, so that it
    stops what it had started instead of dying with the components left running."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {
        sig: signal.signal(sig, interrupt)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN  # as under `nohup`: stays ignored
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@stack.command("status")
@DIR_OPTION
@json_option()
def stack_status(directory: Path | None, as_json: bool) -> None:
    """Show whether each component runs, the ingest's counters, the quarantined devices, the
    devices with a sensor that is not ok and those registered with no data yet.

    Exit status: 0 when every component runs, 3 when one does not (the status is printed
    all the same), 1 when there is no stack in the directory."""
    from sensorpipe.stack.local import StackError

    try:
        s = local_stack(directory)
        status = s.status()
        status.update(s.sensor_health())
    except StackError as exc:
        fail(str(exc))
    status["forecast_models"] = _models(s.models_path)
    _echo_status(status, as_json)
    if not all(c["running"] for c in status["components"].values()):
        sys.exit(NOT_RUNNING)


def _echo_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    n = status["devices"]
    click.echo(f"stack in {status['directory']}, {n} device{'' if n == 1 else 's'} registered")
    for name, c in status["components"].items():
        state = "running" if c["running"] else "NOT RUNNING"
        pid = "-" if c["pid"] is None else str(c["pid"])
        click.echo(f"  {name:10s} pid {pid:<8s} {state}")
    stats = status["components"]["ingest"].get("stats")
    if stats:
        click.echo(
            f"  ingest: received {stats['received']}, stored {stats['stored_messages']}, "
            f"rejected {stats['rejected']}, write retries {stats['write_retries']}"
        )
        _echo_periodic(stats)
    _echo_models(status.get("forecast_models"))
    deadletter = status["components"]["ingest"].get("deadletter")
    if deadletter:
        _echo_deadletter(deadletter)
    _echo_quarantined(status.get("quarantined") or [])
    _echo_pending_lifts(status.get("pending_lifts") or [])
    _echo_sensor_health(status)
    if status.get("metrics"):
        click.echo(f"  ingest metrics (Prometheus): {status['metrics']}")
    if status.get("api"):
        click.echo(f"  dashboard and API: {status['api']}")
    gateway = status["components"].get("gateway")
    if gateway and gateway.get("url"):
        posts = ((gateway.get("health") or {}).get("kits") or {}).get("airrohr", {}).get("posts")
        counts = ", ".join(f"{n} x {code}" for code, n in sorted((posts or {}).items()))
        click.echo(
            f"  kit gateway: {gateway['url']}" + (f" (airrohr posts: {counts})" if counts else "")
        )


def _models(folder: Path) -> dict[str, Any] | None:
    """The saved forecast models and their last retraining (retrain.json, which outlasts the
    ingest's counters): None without a models folder."""
    from sensorpipe.cli.crowd_models import models_listing

    if not folder.is_dir():
        return None
    rows = models_listing(folder)
    failed = [
        {"model": r["model"], "error": (r.get("retrained") or {}).get("error") or r.get("error")}
        for r in rows
        if "error" in r or (r.get("retrained") or {}).get("result") == "failed"
    ]
    return {"folder": str(folder), "saved": len(rows), "failed": failed}


def _echo_models(models: dict[str, Any] | None) -> None:
    if not models or not models["saved"]:
        return
    line = f"  forecast models: {models['saved']} saved in {models['folder']}"
    for f in models["failed"]:
        line += f"; {f['model']}'s last retraining FAILED: {f['error']}"
    click.echo(line + ("; `sensorpipe crowd models`" if models["failed"] else ""))


def _echo_periodic(stats: dict[str, Any]) -> None:
    """The ingest's periodic jobs: the group calibrations kept up to date, the forecast models
    retrained, and failed runs."""
    runs = stats.get("calibration_update_runs", 0)
    if runs:
        click.echo(
            f"  group calibrations: {runs} update runs, {stats.get('calibration_updates', 0)} "
            f"calibrations updated, {stats.get('calibration_hours_written', 0)} hours written"
        )
    retrained, failed = stats.get("forecast_retrains", 0), stats.get("forecast_retrain_failures", 0)
    if retrained or failed:
        line = f"  forecast models: {retrained} retrained, {failed} retrainings failed"
        last = stats.get("forecast_retrain_last_error")
        click.echo(line + (f" (last: {last}; `sensorpipe crowd models`)" if failed else ""))
    errors = stats.get("periodic_errors") or {}
    if errors:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(errors.items()))
        click.echo(
            f"  PERIODIC RUNS FAILED: {counts}; last: {stats.get('periodic_last_error')} "
            "(the ingest's log has each)"
        )


def _echo_sensor_health(status: dict[str, Any]) -> None:
    """Devices with a sensor that is not ok, and registered devices with no data yet."""
    not_ok = status.get("sensors_not_ok")
    if not_ok is None:
        click.echo("  sensors: health not known (InfluxDB does not answer)")
    elif not not_ok:
        click.echo("  sensors: all ok")
    else:
        devices = sorted({s["device_id"] for s in not_ok})
        click.echo(
            f"  SENSORS NOT OK on {len(devices)} device{'' if len(devices) == 1 else 's'} "
            f"(`sensorpipe devices list --json` has each sensor's health)"
        )
        for s in not_ok:
            click.echo(f"    {s['device_id']:20s} {s['note']}")
    no_data = status.get("no_data_yet")
    if no_data:
        click.echo(f"  registered, no data yet: {', '.join(no_data)}")


def _echo_quarantined(quarantined: list[dict[str, Any]]) -> None:
    """Devices taken off the network, and how to let each back."""
    if not quarantined:
        click.echo("  quarantined devices: none")
        return
    click.echo(f"  QUARANTINED devices: {len(quarantined)} (`sensorpipe devices lift ID` ends it)")
    for q in quarantined:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(q["since"]))
        detail = f": {q['detail']}" if q["detail"] else ""
        click.echo(f"    {q['device_id']:20s} since {since}, {q['reason']}{detail} (by {q['by']})")


def _echo_pending_lifts(pending: list[dict[str, Any]]) -> None:
    """Lifts the broker has not confirmed: those devices' accounts may still be disabled."""
    if not pending:
        return
    click.echo(
        f"  LIFT PENDING for {len(pending)} device{'' if len(pending) == 1 else 's'}: lifted in "
        f"the quarantine book, broker account still disabled (retried by the ingest; "
        f"`sensorpipe devices lift ID` tries again now)"
    )
    for p in pending:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["lifted_at"]))
        error = f"; last error: {p['last_error']}" if p["last_error"] else ""
        click.echo(
            f"    {p['device_id']:20s} lifted {at} by {p['by']}, {p['attempts']} failed "
            f"tr{'y' if p['attempts'] == 1 else 'ies'}{error}"
        )


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
    """Stop the stack (the data stays in the directory): every process that runs one of its
    components, whether stack.json lists it or not; a process id in stack.json that belongs
    to another program by now is left alone."""
    stopped = local_stack(directory).down()
    click.echo(
        "stopped: "
        + (", ".join(f"{n} (pid {p})" for n, p in stopped) if stopped else "nothing was running")
    )
