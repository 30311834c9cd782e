"""`sensorpipe sim`: simulated devices against a running stack."""

from __future__ import annotations

import time
from pathlib import Path

import click

from sensorpipe.cli.common import DIR_OPTION, fail, local_stack


@click.group()
def sim() -> None:
    """Simulated devices (byte-accurate SDS011 and BME280) against the stack."""


@sim.command("fleet")
@DIR_OPTION
@click.option("--devices", "count", type=click.IntRange(1, 500), default=5, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between readings per device.",
)
def sim_fleet(directory: Path | None, count: int, duration: float, interval: float) -> None:
    """Run COUNT simulated devices against a running stack for DURATION seconds.

    Refuses, registering nothing, when the stack's broker does not run or answer. Exits
    non-zero when messages are left in the simulated devices' outboxes at the end: those
    devices are gone, so nothing will ever send them."""
    from sensorpipe.firmware_sim.fleet import Fleet
    from sensorpipe.stack.local import StackError
    from sensorpipe.stack.process import port_open

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
                "sensors": ["sds011", "bme280"],
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
