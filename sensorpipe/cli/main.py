"""The `sensorpipe` command: one group of subcommands per module of this package."""

from __future__ import annotations

import logging
from typing import Any

import click

from sensorpipe import __version__
from sensorpipe.cli.config import config
from sensorpipe.cli.counting import count_eval, count_video_cmd
from sensorpipe.cli.demo import demo
from sensorpipe.cli.devices import devices
from sensorpipe.cli.edge import edge
from sensorpipe.cli.gateway import gateway
from sensorpipe.cli.importing import import_
from sensorpipe.cli.ingest import ingest
from sensorpipe.cli.query import query
from sensorpipe.cli.serve import serve
from sensorpipe.cli.server import server
from sensorpipe.cli.sim import sim
from sensorpipe.cli.stack import stack
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.stack.local import StackError


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        # A configuration, registry or stack state file that cannot be used ends any command
        # with its one-line reason (file, key, line), wherever the command happened to read it.
        try:
            return super().invoke(ctx)
        except (ConfigError, StackError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
@click.version_option(__version__, "-V", "--version", prog_name="sensorpipe")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """sensorpipe: local environmental measurement from Raspberry Pi to InfluxDB."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for command in (
    stack,
    devices,
    edge,
    ingest,
    import_,
    gateway,
    sim,
    query,
    count_eval,
    count_video_cmd,
    demo,
    serve,
    server,
    config,
):
    main.add_command(command)
