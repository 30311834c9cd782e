"""`sensorpipe crowd`: crowding of devices and areas. Each subcommand lives in a module of
its own, added to the group here: `backtest` in `crowd_backtest`."""

from __future__ import annotations

import click

from sensorpipe.cli.crowd_backtest import crowd_backtest


@click.group()
def crowd() -> None:
    """Crowding: forecasts of counts per device or area, and their backtest."""


for _command in (crowd_backtest,):
    crowd.add_command(_command)
