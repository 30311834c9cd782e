"""`sensorpipe server setup`: a lasting installation (Debian's Mosquitto and InfluxDB, systemd
units for the ingest, the kit gateway and the API)."""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path

import click

from sensorpipe.cli.common import fail


@click.group()
def server() -> None:
    """A lasting server on Debian 12 / Raspberry Pi OS: configuration, TLS and systemd units."""


@server.command("setup")
@click.option(
    "--root",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write everything under this directory instead of / (no root needed).",
)
@click.option(
    "--public-host",
    default=None,
    help="The name (or address) devices and kits reach this server by; in the certificate. "
    "Default: this machine's name.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--influx-url", default="http://127.0.0.1:8086", show_default=True)
@click.option("--broker-port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option("--broker-tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True)
@click.option("--kits-port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option("--api-port", type=click.IntRange(1, 65535), default=8443, show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=9108, show_default=True)
def server_setup(
    root: Path | None,
    public_host: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    influx_url: str,
    broker_port: int,
    broker_tls_port: int,
    kits_port: int,
    api_port: int,
    metrics_port: int,
) -> None:
    """Write the server's configuration: /etc/sensorpipe (the registry, ingest.toml,
    gateway.toml, serve.toml, a CA and the server certificate in tls/), Mosquitto's
    /etc/mosquitto/conf.d/sensorpipe.conf (TLS on --broker-tls-port for devices) and the
    systemd units sensorpipe-{ingest,gateway,serve}.service. Starts nothing: it prints the
    commands that do. Run it again after `devices add` (keeps the CA and keys)."""
    from sensorpipe.gateway.mosquitto import ListenerError, PasswordToolError, check_bind
    from sensorpipe.protocol.configfile import ConfigError
    from sensorpipe.stack.server import (
        Ports,
        Setup,
        SetupError,
        default_public_host,
        exec_start,
        next_commands,
        run_setup,
    )

    system = (root or Path("/")).resolve() == Path("/")
    if system and os.geteuid() != 0:
        fail(
            "server setup writes under /etc and /var/lib: run it as root "
            f"(sudo {shlex.join([sys.executable, '-m', 'sensorpipe', *sys.argv[1:]])}), "
            "or give --root DIR to write there instead"
        )
    if (tls_cert is None) != (tls_key is None):
        fail("give both --tls-cert and --tls-key, or neither (a CA is made)")
    host = public_host or default_public_host()
    try:
        check_bind(host)
    except ListenerError:
        fail(f"--public-host {host!r}: not a host name or IP address")
    if not influx_url.startswith(("http://", "https://")) or any(c.isspace() for c in influx_url):
        fail(f"--influx-url {influx_url!r}: give InfluxDB's address, e.g. http://127.0.0.1:8086")
    ports = Ports(broker_port, broker_tls_port, kits_port, api_port, metrics_port)
    values = [broker_port, broker_tls_port, kits_port, api_port, metrics_port]
    if len(set(values)) != len(values):
        fail(f"the ports must differ: {', '.join(map(str, values))}")
    setup = Setup(
        root=(root or Path("/")).resolve(),
        public_host=host,
        ports=ports,
        influx_url=influx_url.rstrip("/"),
        tls_cert=tls_cert,
        tls_key=tls_key,
        chown=system,
        broker_user="mosquitto" if system else getpass.getuser(),
    )
    try:
        written = run_setup(setup)
    except (SetupError, PasswordToolError, ListenerError, ConfigError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {exc.filename or setup.root}: {exc.strerror or exc}")
    click.echo(f"wrote {len(written)} files under {setup.root}:")
    for path in written:
        click.echo(f"  {path}")
    click.echo(
        f"devices connect to {host}:{broker_tls_port} with TLS (ca_file: {setup.ca_cert}); "
        f"kits post to https://{host}:{kits_port}/airrohr/v1/push; "
        f"dashboard https://{host}:{api_port}/"
    )
    click.echo("next (the setup starts nothing):")
    for command in next_commands(setup):
        click.echo(f"  {command}")
    if not system:
        click.echo(f"(under {setup.root}: the units' commands, to run by hand:)")
        for name in ("ingest", "gateway", "serve"):
            click.echo(f"  {shlex.join(exec_start(setup, name))}")
