"""`sensorpipe edge`: the agent that runs on the Raspberry Pi."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from sensorpipe.cli.common import fail
from sensorpipe.protocol.configfile import ConfigError


@click.group()
def edge() -> None:
    """The agent that runs on the Raspberry Pi."""


@edge.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
def edge_run(config_path: Path) -> None:
    """Read the configured sensors and publish until stopped (SIGTERM or Ctrl-C)."""
    from sensorpipe.edge.agent import Agent
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.edge.counting.config import build_pipeline, open_source
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.loop import CountingLoop
    from sensorpipe.edge.drivers import open_driver
    from sensorpipe.edge.errors import SensorConfigError
    from sensorpipe.edge.outbox import SqliteOutbox

    try:
        config = load_edge_config(config_path)
        drivers = [(open_driver(s), s.interval_s) for s in config.sensors]
        counter = None
        if config.counting is not None:
            pipeline = build_pipeline(config.counting, config_path.resolve().parent)
            counter = CountingLoop(pipeline, open_source(config.counting.source))
    except (ConfigError, SensorConfigError, ModelError, SourceUnavailable) as exc:
        fail(str(exc))
    agent = Agent(
        config,
        drivers=drivers,
        outbox=SqliteOutbox(config.outbox_path, max_entries=config.outbox_max_entries),
        counter=counter,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"{config.device_id}: publishing to {config.mqtt.host}:{config.mqtt.port}")
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        stop.set()
