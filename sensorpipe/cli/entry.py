"""The `sensorpipe` command's start: `edge run` without click, everything else with it.

The agent runs for months on a small Pi; click and the CLI modules would stay in its memory
for nothing after the command line is read (bench.edge: 40.4 -> 39.2 MB). The command
line a service runs, `sensorpipe [-v...] edge run --config FILE`, is recognised here and run
directly; any other (`--help`, a typo, another command) goes to click, which runs the same
`edge run` the same way, with click's own help and errors.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: int) -> None:
    """`-v` INFO, `-vv` DEBUG, otherwise WARNING."""
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), format=LOG_FORMAT)


def agent_command(args: list[str]) -> tuple[Path, int] | None:
    """(config file, verbosity) when `args` is plainly `[-v...] edge run --config FILE`."""
    verbose = 0
    while args and (re.fullmatch(r"-v+", args[0]) or args[0] == "--verbose"):
        verbose += 1 if args[0] == "--verbose" else len(args[0]) - 1
        args = args[1:]
    if args[:2] != ["edge", "run"]:
        return None
    rest = args[2:]
    if len(rest) == 2 and rest[0] == "--config":
        path = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--config="):
        path = rest[0].removeprefix("--config=")
    else:
        return None
    return (Path(path), verbose) if path else None


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    agent = agent_command(argv)
    if agent is None:
        from sensorpipe.cli.main import main as cli

        cli(argv, prog_name="sensorpipe")
        return
    from sensorpipe.edge.run import RunError, run_agent

    config_path, verbose = agent
    configure_logging(verbose)
    try:
        run_agent(config_path)
    except RunError as exc:  # as click's errors read
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(0)
