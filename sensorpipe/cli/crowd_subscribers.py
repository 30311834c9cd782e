"""`sensorpipe crowd alerts subscriber add|list|remove`: broker accounts that may only read the
crowding alerts (sensorpipe/alerts/v1/#), one per subscriber (a control room, a bridge to a
pager), kept in the registry's `alert_subscribers` as the devices' and readers' accounts are:
the registry keeps the password's hash, the password is shown once (or written to a 0600 file),
and a running stack's broker takes the change at once (password file, SIGHUP, its dynamic
security plugin brought in line). A `server setup` directory's broker takes it when `server
setup` runs again and the broker restarts, as for `devices add`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli import provisioning
from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, json_option
from sensorpipe.protocol.topics import ALERT_TOPIC_PREFIX

if TYPE_CHECKING:
    from sensorpipe.protocol.registry import Registry
    from sensorpipe.stack.local import LocalStack

TOPIC = f"{ALERT_TOPIC_PREFIX}/#"
ROTATE = "sensorpipe crowd alerts subscriber add"
# A broker whose address is not known here (no stack up, no `server setup`).
SOME_BROKER = "BROKER"
# A `server setup` directory's broker reads the registry's accounts when it starts.
SERVER_NOTE = (
    "the broker {does} when you run `sensorpipe server setup` again and "
    "`systemctl restart mosquitto`"
)


@click.group("subscriber")
def subscriber() -> None:
    """Broker accounts that may only read the alerts (sensorpipe/alerts/v1/#)."""


def _registry(s: LocalStack) -> Registry:
    if not s.registry_path.is_file():
        fail(
            f"no registry at {s.registry_path}: give --dir (the stack's directory, or "
            "/etc/sensorpipe on a lasting server)"
        )
    return provisioning.provision(s.registry)


def _on_server(s: LocalStack) -> bool:
    """Whether `s` is a `server setup` directory (its broker reads its files at a restart)."""
    from sensorpipe.stack.local import join_broker

    return join_broker(s.directory) is not None


def _broker(s: LocalStack) -> dict[str, Any] | None:
    """Where a subscriber connects: a `server setup` directory's TLS listener, or a running
    local stack's loopback port; None where neither is known."""
    from sensorpipe.stack.local import join_broker

    server = join_broker(s.directory)
    if server is not None:
        return {
            "host": str(server.get("host")),
            "port": int(server.get("port", 8883)),
            "tls": bool(server.get("tls", True)),
            "ca_file": str(server.get("ca_file") or "") or None,
        }
    info = s.info()
    if info is None:
        return None
    return {"host": "127.0.0.1", "port": info.broker_port, "tls": False, "ca_file": None}


def mosquitto_sub(
    username: str, broker: dict[str, Any] | None, *, password: str | None, file: Path | None
) -> str:
    """The mosquitto_sub line that receives the alerts as `username`: QoS 1 with a persistent
    session (-c, its client id the user name), so alerts raised while it is away wait for it;
    the password given, or read from `file`."""
    args = ["mosquitto_sub", "-h", SOME_BROKER if broker is None else broker["host"]]
    if broker is not None:
        args += ["-p", str(broker["port"])]
        if broker["tls"]:  # the server's own CA, or a public one's certificate
            ca = broker["ca_file"]
            args += ["--cafile", ca] if ca else ["--capath", "/etc/ssl/certs"]
    args += ["-u", username]
    secret = f'"$(cat {shlex.quote(str(file))})"' if file else shlex.quote(password or "")
    rest = shlex.join(["-i", username, "-c", "-q", "1", "-v", "-t", TOPIC])
    return f"{shlex.join(args)} -P {secret} {rest}"


@subscriber.command("add")
@click.argument("name")
@DIR_OPTION
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the password to this file (mode 600) instead of printing it.",
)
@click.option("--rotate", is_flag=True, help="Give an existing subscriber a new password.")
@json_option("Print the account, the topic and the mosquitto_sub line as JSON.")
def subscriber_add(
    name: str, directory: Path | None, password_file: Path | None, rotate: bool, as_json: bool
) -> None:
    """Give NAME a broker account that may read the crowding alerts and nothing else: its
    password (shown only now, or written to --password-file), the topic it may read and a
    mosquitto_sub line that receives them."""
    s = local_stack(directory)
    broker = _broker(s)
    if password_file is not None and password_file.exists() and not rotate:
        fail(
            f"--password-file {password_file}: exists (another account's password?); give "
            "a new file, or --rotate to put a new password for this subscriber in it"
        )
    if password_file is not None:  # a file that cannot be written: nothing registered
        probe = password_file.with_name(f".{password_file.name}.probe")
        _write_password(probe, "", shown=password_file)
        probe.unlink()
    password = provisioning.provision(lambda: s.add_alert_subscriber(name, rotate=rotate))
    if password_file is not None:
        _write_password(password_file, password + "\n", name)
    line = mosquitto_sub(name, broker, password=password, file=password_file)
    if as_json:
        out = {
            "username": name,
            "password": None if password_file is not None else password,
            "password_file": None if password_file is None else str(password_file),
            "topic": TOPIC,
            "broker": broker,
            "mosquitto_sub": line,
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"alert subscriber {name} registered in {s.registry_path}")
    click.echo(f"  username : {name}")
    if password_file is not None:
        click.echo(f"  password : in {password_file} (mode 600)")
    else:
        click.echo(f"  password : {password}   (shown only now)")
    click.echo(f"  may read : {TOPIC} (one alert per message, on {ALERT_TOPIC_PREFIX}/<area>)")
    if _on_server(s):
        click.echo(SERVER_NOTE.format(does="learns the password"))
    if broker is None:
        click.echo(
            f"note: no broker address is known here (no `stack up` in {s.directory}, no "
            f"`server setup`): put the broker's host for {SOME_BROKER}",
            err=True,
        )
    click.echo("receive the alerts with (mosquitto_sub: Debian's mosquitto-clients package):")
    click.echo(f"  {line}")


def _write_password(
    path: Path, text: str, name: str | None = None, *, shown: Path | None = None
) -> None:
    """Write `path` (mode 600); one that cannot be written is a one-line error about `shown`
    (default `path`), which names how to get a new password where `name` was registered."""
    from sensorpipe.protocol.files import write_private

    try:
        write_private(path, text)
    except OSError as exc:
        again = "" if name is None else f"; `{ROTATE} {name} --rotate` makes a new password"
        fail(f"--password-file {shown or path}: cannot write it ({exc.strerror or exc}){again}")


@subscriber.command("list")
@DIR_OPTION
@json_option("Print the subscribers as JSON.")
def subscriber_list(directory: Path | None, as_json: bool) -> None:
    """The alert subscribers' accounts and the topic each may read."""
    s = local_stack(directory)
    names = [a.username for a in _registry(s).alert_subscribers]
    if as_json:
        click.echo(json.dumps([{"username": n, "topic": TOPIC} for n in names], indent=2))
        return
    for n in names:
        click.echo(f"{n}  reads {TOPIC}")
    if not names:
        click.echo(
            f"no alert subscribers in {s.registry_path}: add one with "
            "`sensorpipe crowd alerts subscriber add NAME`"
        )


@subscriber.command("remove")
@click.argument("name")
@DIR_OPTION
def subscriber_remove(name: str, directory: Path | None) -> None:
    """Remove NAME's account: a running stack's broker disconnects it and lets it in no more."""
    s = local_stack(directory)
    known = [a.username for a in _registry(s).alert_subscribers]
    if name not in known:
        fail(
            f"{name}: no such alert subscriber in {s.registry_path} "
            f"(subscribers: {', '.join(known) or 'none'})"
        )
    provisioning.provision(lambda: s.remove_alert_subscriber(name))
    click.echo(f"{name}: removed from {s.registry_path}")
    if _on_server(s):
        click.echo(SERVER_NOTE.format(does="forgets the account"))
