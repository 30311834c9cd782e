"""The `sensorpipe` command: one group of subcommands per module of this package.

The groups are imported when they are used, not when `sensorpipe` starts: importing all of
them (the stack, the API's FastAPI, the importers, counting's numpy and ONNX Runtime) costs
about 40 MB, which the edge agent on a Raspberry Pi would carry for nothing. `COMMANDS` names
where each group lives and its short help, which `sensorpipe --help` shows without importing
any group (a test checks that each one matches its command's docstring).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from sensorpipe import __version__
from sensorpipe.cli.entry import configure_logging
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.stack.errors import StackError

# Name -> ("module:attribute", short help as `sensorpipe --help` shows it). In this order.
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": (
        "sensorpipe.cli.stack:stack",
        "Run Mosquitto, InfluxDB and the ingest locally, in the background.",
    ),
    "devices": (
        "sensorpipe.cli.devices:devices",
        "Register devices and publish what each one measures and why.",
    ),
    "edge": ("sensorpipe.cli.edge:edge", "The agent that runs on the Raspberry Pi."),
    "ingest": ("sensorpipe.cli.ingest:ingest", "Validate and store what devices send."),
    "import": (
        "sensorpipe.cli.importing:import_",
        "Import history files through the same checks as live data.",
    ),
    "quality": (
        "sensorpipe.cli.quality:quality",
        "Quality checks over stored data: the neighbour outlier (`quality neighbours`).",
    ),
    "calibrate": (
        "sensorpipe.cli.calibrate:calibrate",
        "Calibrate low-cost sensors against a reference station: fit, apply, list, show.",
    ),
    "gateway": (
        "sensorpipe.cli.gateway:gateway",
        "Mosquitto configuration from the device registry, and the kit gateway (airrohr kits, "
        "The Things Stack) that publishes kits' readings to it.",
    ),
    "sim": (
        "sensorpipe.cli.sim:sim",
        "Simulated devices with byte-accurate sensors, against the stack.",
    ),
    "query": (
        "sensorpipe.cli.query:query",
        "Air measurements (`query air`) and counts of passers-by (`query counts`) from InfluxDB.",
    ),
    "areas": (
        "sensorpipe.cli.areas:areas",
        "Areas whose crowding is measured: add, list, show, remove.",
    ),
    "crowd": (
        "sensorpipe.cli.crowd:crowd",
        "Crowding per area: the level now, alerts, forecasts and their backtest.",
    ),
    "count-eval": (
        "sensorpipe.cli.counting:count_eval",
        "Count a held-out synthetic street (or, with --video, a real clip) against the truth.",
    ),
    "count-video": (
        "sensorpipe.cli.counting:count_video_cmd",
        "Count the crossings of a line in a video file, per class and direction.",
    ),
    "demo": (
        "sensorpipe.cli.demo:demo",
        "The whole pipeline on real parts, then a summary counted from InfluxDB.",
    ),
    "serve": (
        "sensorpipe.cli.serve:serve",
        "Serve the register, readings and counts over HTTP: the API under /api/v1 (docs at "
        "/docs), SensorThings under /sta/v1.1 and the dashboard at /.",
    ),
    "server": (
        "sensorpipe.cli.server:server",
        "A lasting server on Debian 12 / Raspberry Pi OS: configuration, TLS and systemd units.",
    ),
    "config": (
        "sensorpipe.cli.config:config",
        "Example configuration files, to start your own from.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import the command `name` of COMMANDS."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command), COMMANDS[name][0]
    return command


class _Commands(click.Group):
    """The top-level group: its commands are imported on first use (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click.Group's, from the short help in COMMANDS: `--help` imports no group.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        # click's own shortening, on a stand-in with the help text, not the real command.
        rows = [(n, click.Command(n, help=COMMANDS[n][1]).get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
    configure_logging(verbose)
