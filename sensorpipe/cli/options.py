"""The click options several commands share, each written once where it means the same: the
stack directory (`DIR_OPTION`), JSON output (`json_option`, its help saying what is printed),
the InfluxDB a command asks (`INFLUX_OPTIONS`), the configuration file a component runs from
(`CONFIG_FILE_OPTION`) and how many simulated devices run for how long (`device_count_option`,
`duration_option`: `sim fleet` and `demo`). An option of the same name that means something
else in a command (`serve --config`, with its default; `devices export --database`, the
stack's unless given; `sim history --devices`, which may be 0) stays that command's own.
`options` joins several options into one decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

FC = TypeVar("FC", bound=Callable[..., Any])


def options(*decorators: Callable[[FC], FC]) -> Callable[[FC], FC]:
    """Several click options as one decorator, listed in `--help` in the order given: the
    options that mean the same in several commands, written once."""

    def apply(f: FC) -> FC:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def _not_empty(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("give a directory (`--dir .` for this one)")
    return Path(value)


DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    callback=_not_empty,
    help="Stack directory (default: $SENSORPIPE_DIR or ./.sensorpipe).",
)


def json_option(help: str | None = None) -> Callable[[FC], FC]:
    """`--json` (the parameter `as_json`): print what the command prints as JSON instead;
    `help` says what that is."""
    return click.option("--json", "as_json", is_flag=True, help=help)


# The InfluxDB a command reads or writes: the stack's unless --influx-url is given.
INFLUX_OPTIONS = options(
    click.option("--influx-url", default=None, help="InfluxDB URL (default: the stack's)."),
    click.option("--database", default="sensorpipe", show_default=True),
)

# The thresholds of the quality checks: `sensorpipe import` flags with them, `sensorpipe quality`
# judges with them.
QUALITY_CONFIG_OPTION = click.option(
    "--quality-config",
    type=click.Path(path_type=Path),
    default=None,
    help="A TOML file whose [quality] section sets the quality checks' thresholds (an "
    "ingest.toml; default: the stack's ingest.toml, or the defaults).",
)

# The TOML file a long-running component (`edge run`, `ingest run`) or a check of it reads.
CONFIG_FILE_OPTION = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), required=True
)


def device_count_option(most: int) -> Callable[[FC], FC]:
    """`--devices` (the parameter `count`): how many simulated devices run, 1 to `most`."""
    return click.option(
        "--devices", "count", type=click.IntRange(1, most), default=5, show_default=True
    )


def duration_option(help: str) -> Callable[[FC], FC]:
    """`--duration`: the seconds the simulated devices run; `help` says it for the command."""
    return click.option(
        "--duration", type=click.FloatRange(min=1), default=60, show_default=True, help=help
    )
