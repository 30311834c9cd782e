"""`sensorpipe sim`: simulated devices against a running stack."""

from __future__ import annotations

import time
from pathlib import Path

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, device_count_option, duration_option


@click.group()
def sim() -> None:
    """Simulated devices with byte-accurate sensors, against the stack."""


@sim.command("fleet")
@DIR_OPTION
@device_count_option(500)
@duration_option("Seconds to run.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between readings per device.",
)
@click.option(
    "--sensirion",
    is_flag=True,
    help="Give each device an SPS30 and an SCD41 too (needs the `sensirion` extra).",
)
@click.option(
    "--sps30-uart",
    is_flag=True,
    help="Give each device an SPS30 on a serial port (its UART, on a pty) too, or, with "
    "--sensirion, in place of the one on I2C (needs the `sensirion` extra).",
)
def sim_fleet(
    directory: Path | None,
    count: int,
    duration: float,
    interval: float,
    sensirion: bool,
    sps30_uart: bool,
) -> None:
    """Run COUNT simulated devices against a running stack for DURATION seconds.

    Refuses, registering nothing, when the stack's broker does not run or answer. Exits
    non-zero when messages are left in the simulated devices' outboxes at the end: those
    devices are gone, so nothing will ever send them."""
    from sensorpipe.firmware_sim.fleet import Fleet, sensirion_installed
    from sensorpipe.process import port_open
    from sensorpipe.stack.local import StackError

    if (sensirion or sps30_uart) and not sensirion_installed():
        option = "--sensirion" if sensirion else "--sps30-uart"
        fail(
            f"{option} needs Sensirion's drivers, which are not installed: "
            "pip install 'sensorpipe[sensirion]' (no devices registered)"
        )
    s = local_stack(directory)
    try:
        info = s.require_info()
    except StackError as exc:
        fail(str(exc))
    registry = s.registry()
    if not s.running()["mosquitto"] or not port_open(info.broker_port):
        fail(
            f"the stack's broker (127.0.0.1:{info.broker_port}) does not run or answer; "
            f"no devices registered: `sensorpipe stack status --dir {s.directory}`"
        )
    stamp = time.strftime("%H%M%S")
    specs = [
        (
            f"sim-{stamp}-{i + 1:03d}",
            {
                "site": f"sim-site-{i % 3 + 1}",
                "owner": "simulator",
                "sensors": ["sds011", "bme280"]
                + (["sps30"] if sensirion or sps30_uart else [])
                + (["scd4x"] if sensirion else []),
            },
        )
        for i in range(count)
    ]
    specs = [(d, f) for d, f in specs if d not in registry.devices]
    creds = s.add_devices(specs)
    workdir = s.directory / "sim"
    workdir.mkdir(exist_ok=True)
    fleet = Fleet(
        creds,
        broker_host="127.0.0.1",
        broker_port=info.broker_port,
        workdir=workdir,
        interval_s=interval,
        sensirion=sensirion,
        sps30_uart=sps30_uart,
    )
    fleet.start()
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration:
            click.echo(f"[{elapsed:5.1f}s] queued {fleet.queued()}  acked {fleet.acked()}")
            time.sleep(min(2.0, duration - elapsed))
    except KeyboardInterrupt:
        click.echo("interrupted")
    left = fleet.stop()
    acked = fleet.acked()
    click.echo(
        f"done: {acked} message{'' if acked == 1 else 's'} acknowledged by the broker, "
        f"{left} still in outboxes"
    )
    if left:
        fail(
            f"{left} message{' was' if left == 1 else 's were'} never sent: still in the "
            f"simulated devices' outboxes in {workdir}, which nothing will send"
        )


@sim.command("history")
@DIR_OPTION
@click.option(
    "--devices",
    "air",
    type=click.IntRange(0, 500),
    default=5,
    show_default=True,
    help="Simulated air-quality devices (hist-air-000, ...).",
)
@click.option(
    "--counting",
    type=click.IntRange(0, 100),
    default=2,
    show_default=True,
    help="Simulated counting cameras (hist-count-000, ...).",
)
@click.option("--days", type=click.IntRange(1, 31), default=7, show_default=True)
def sim_history(directory: Path | None, air: int, counting: int, days: int) -> None:
    """Register simulated devices and write DAYS of their 1-minute history, ending now,
    straight into the stack's InfluxDB: something to look at in the dashboard and the API.

    The devices are registered (owner "sensorpipe history simulation") and placed around
    Utrecht; their points are what the ingest would have stored, with an outage each."""
    from sensorpipe.firmware_sim.history import (
        history_devices,
        register_history_devices,
        write_history,
    )
    from sensorpipe.ingest.errors import StorageRejected, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.protocol.registry import save_registry

    if air + counting == 0:
        fail("--devices 0 and --counting 0: nothing to simulate")
    s = local_stack(directory)
    info = s.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    if not influx.ping(timeout_s=5):
        influx.close()
        fail(
            f"the stack's InfluxDB ({info.influx_url}) does not answer: is the stack up? "
            f"(`sensorpipe stack status`)"
        )
    devices = history_devices(air, counting)
    registry = s.registry()
    clash = [d.device_id for d in devices if d.device_id in registry.devices]
    if clash:
        influx.close()
        fail(
            f"{clash[0]} is already registered: its history was written before; "
            f"`sensorpipe stack down` and a new --dir start afresh"
        )
    register_history_devices(registry, devices)
    save_registry(registry, s.registry_path)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - days * 86_400_000
    per_day = 1440 * (air * 3 + counting * 12)
    total = per_day * days
    last = [0.0]

    def progress(written: int) -> None:
        if time.monotonic() - last[0] >= 2:
            last[0] = time.monotonic()
            click.echo(f"  {written:,} of about {total:,} points ({100 * written // total} %)")

    click.echo(f"writing {days} days of {air} air devices and {counting} counting cameras")
    try:
        written = write_history(influx, devices, start_ms, end_ms, progress=progress)
    except (StorageUnavailable, StorageRejected) as exc:
        fail(f"InfluxDB did not take the history: {exc}")
    finally:
        influx.close()
    click.echo(f"wrote {written:,} points; registered {len(devices)} simulated devices")
    if info.api_url:
        click.echo(f"look at them: {info.api_url}")
