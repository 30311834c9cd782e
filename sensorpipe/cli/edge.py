"""`sensorpipe edge`: the agent that runs on the Raspberry Pi."""

from __future__ import annotations

from pathlib import Path

import click

from sensorpipe.cli.common import fail
from sensorpipe.cli.options import CONFIG_FILE_OPTION, json_option
from sensorpipe.protocol.configfile import ConfigError


@click.group()
def edge() -> None:
    """The agent that runs on the Raspberry Pi."""


@edge.command("run")
@CONFIG_FILE_OPTION
def edge_run(config_path: Path) -> None:
    """Read the configured sensors and publish until stopped (SIGTERM or Ctrl-C).

    A counting agent whose video file ends stops by itself (status 0); one whose camera stops
    delivering frames stops with status 1, for the service manager to start it again.
    """
    from sensorpipe.edge.run import RunError, run_agent

    try:
        run_agent(config_path)
    except RunError as exc:
        fail(str(exc))


@edge.command("check")
@CONFIG_FILE_OPTION
@json_option("The same checks as JSON.")
@click.pass_context
def edge_check(ctx: click.Context, config_path: Path, as_json: bool) -> None:
    """Check this host once: each sensor read, the camera, the clock, the broker login, one
    message confirmed by the ingest, and the outbox's free space. One line per check; exit
    status 0 only when all pass. Stop `edge run` first: the check logs in as the device."""
    from sensorpipe.edge import check
    from sensorpipe.edge.config import load_edge_config

    try:
        config = load_edge_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    probes = ctx.find_object(check.Probes) or check.Probes()
    checks = check.run_checks(config, probes, config_dir=config_path.resolve().parent)
    click.echo(check.as_json(checks) if as_json else check.render(checks))
    if any(c.status != check.OK for c in checks):
        ctx.exit(1)


@edge.command("join")
@click.option(
    "--code-file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Read the join code from this file ('-': standard input). Default: asked for.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write everything under this directory instead of / (no root needed; no user is "
    "made and systemd is not told).",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    metavar="SENSOR=PORT",
    help="A declared sensor is wired to this serial port instead of its usual one "
    "(sds011=/dev/ttyUSB1, pms5003=/dev/ttyUSB0); an SPS30 named here is set up on its UART "
    "(SEL left open), e.g. sps30=/dev/serial0. Repeatable.",
)
def edge_join(code_file: Path | None, root: Path | None, ports: tuple[str, ...]) -> None:
    """Join the server with the code `sensorpipe devices add` printed for this device.

    Makes the device's signing key here (it never leaves this Pi), writes
    /etc/sensorpipe/edge.toml (0640 root:sensorpipe) and the server's CA certificate, enrols
    the key with the server over the broker, creates the `sensorpipe` user (groups dialout,
    i2c, video) and writes the systemd unit sensorpipe-edge.service. Starts nothing: it prints
    the two commands that check and start the agent."""
    import shlex
    import sys

    from sensorpipe.edge.join import JoinError, Layout, join
    from sensorpipe.protocol.enrollment import BadJoinCode, decode_join_code

    if code_file is None:
        text = _read_code() if sys.stdin.isatty() else sys.stdin.read(1_000_000)
    else:
        try:
            text = sys.stdin.read() if str(code_file) == "-" else code_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--code-file {code_file}: cannot read it ({exc})")
    try:
        code = decode_join_code(text)
    except BadJoinCode as exc:
        fail(str(exc))
    wiring: dict[str, str] = {}
    for given in ports:
        tag, _, port = given.partition("=")
        if not tag or not port:
            fail(f"--port {given}: give SENSOR=PORT, e.g. --port sps30=/dev/serial0")
        if tag in wiring:
            fail(f"--port {given}: {tag} is given a port twice ({wiring[tag]}, {port})")
        wiring[tag] = port
    layout = Layout((root or Path("/")).resolve())
    try:
        joined = join(code, layout, ports=wiring)
    except JoinError as exc:
        fail(f"{code.device_id}: {exc}")
    except OSError as exc:
        fail(f"cannot write {exc.filename or layout.root}: {exc.strerror or exc}")
    for note in joined.notes:
        click.echo(note)
    for path in joined.written:
        click.echo(f"wrote {path}")
    made = "made on this device" if joined.new_key else "kept from the earlier join"
    click.echo(f"{code.device_id}: key {joined.fingerprint} ({made}) enrolled with the server")
    config = shlex.quote(str(layout.config))
    as_user = "sudo -u sensorpipe " if layout.system else ""
    script = Path(sys.executable).parent / "sensorpipe"
    command = shlex.quote(str(script)) if script.is_file() else "sensorpipe"
    if layout.system:
        click.echo("next: check the sensors, the clock and one message end to end, then start it:")
        click.echo(f"  {as_user}{command} edge check --config {config}")
        click.echo("  sudo systemctl enable --now sensorpipe-edge")
    else:  # under --root: no unit is installed; the agent runs from the command line
        click.echo("next: check the sensors, the clock and one message end to end, then run it:")
        click.echo(f"  {command} edge check --config {config}")
        click.echo(f"  {command} edge run --config {config}")


def _read_code() -> str:
    """The join code typed or pasted at the terminal, not echoed (it holds a password): line
    by line until it reads whole, so a code the terminal wrapped over several lines is taken
    as it is pasted; an empty line ends it. Echo is switched off once for the whole code
    (getpass per line would discard the lines of a paste that arrived before it asked)."""
    import sys
    import termios

    from sensorpipe.protocol.enrollment import BadJoinCode, decode_join_code

    fd = sys.stdin.fileno()
    before = termios.tcgetattr(fd)
    quiet = list(before)
    quiet[3] &= ~termios.ECHO
    # echo off before asking: a paste that comes the moment the question shows is not echoed
    termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    click.echo("paste the join code (`devices add` printed it), then Enter:", err=True)
    text = ""
    try:
        for _ in range(100):
            line = sys.stdin.readline()
            if not line.strip():
                break
            text += line.strip()
            try:
                decode_join_code(text)
            except BadJoinCode:
                continue
            break
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)
        click.echo("", err=True)
    return text
