"""`sensorpipe serve`: the read-only HTTP API, SensorThings and the dashboard."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION


@click.group(invoke_without_command=True)
@DIR_OPTION
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Service config (TOML, see `sensorpipe config example serve`); without it, the "
    "local stack's InfluxDB, registry and broker.",
)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Default 8080.")
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Listen off loopback without TLS (only behind a proxy that does TLS).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    directory: Path | None,
    config_path: str | None,
    host: str | None,
    port: int | None,
    allow_plaintext: bool,
) -> None:
    """Serve the register, readings and counts over HTTP: the API under /api/v1 (docs at
    /docs), SensorThings under /sta/v1.1 and the dashboard at /."""
    if ctx.invoked_subcommand is not None:
        return
    config = serve_config(directory, config_path, host, port, allow_plaintext)
    run_server(config)


def serve_config(
    directory: Path | None,
    config_path: str | None,
    host: str | None,
    port: int | None,
    allow_plaintext: bool,
) -> Any:
    from sensorpipe.api.config import (
        BrokerSettings,
        InfluxSettings,
        ServeConfig,
        load_serve_config,
    )

    if config_path is not None:
        config = load_serve_config(config_path)
        source = config_path
    else:
        s = local_stack(directory)
        info = s.require_info()
        stack_config = s.directory / "serve" / "serve.toml"
        if stack_config.exists():  # what `stack up` wrote, with the operator's tokens and tiles
            config = load_serve_config(stack_config)
            config.port = 8080
            if config.calibration_path is None:  # written before it was named there
                config.calibration_path = str(s.calibration_path)
            if config.models_path is None:
                config.models_path = str(s.models_path)
            return _override(config, str(stack_config), host, port, allow_plaintext)
        config = ServeConfig(
            registry_path=str(s.registry_path),
            ingest_stats_path=str(s.directory / "ingest" / "stats.json"),
            calibration_path=str(s.calibration_path),
            models_path=str(s.models_path),
            influx=InfluxSettings(url=info.influx_url, database=info.database),
            broker=BrokerSettings(host="127.0.0.1", port=info.broker_port),
        )
        source = "--host"
    return _override(config, source, host, port, allow_plaintext)


def _override(
    config: Any, source: str, host: str | None, port: int | None, allow_plaintext: bool
) -> Any:
    from sensorpipe.api.config import check_public_bind
    from sensorpipe.protocol.configfile import ConfigError

    if host is not None:
        config.host = host
    if port is not None:
        config.port = port
    if allow_plaintext:
        config.allow_plaintext = True
    check_public_bind(config, "--host" if host is not None else source)
    if not Path(config.registry_path).is_file():
        # Without it every device would be unknown: an empty register, served as if true.
        raise ConfigError(
            source,
            f"registry_path: {config.registry_path} does not exist; give the device registry "
            f"the ingest reads (`sensorpipe config example registry` shows one)",
        )
    return config


def run_server(config: Any) -> None:
    import uvicorn

    from sensorpipe.api.app import create_app
    from sensorpipe.api.context import ApiContext
    from sensorpipe.api.server import uvicorn_config

    sock = _listen(config.host, config.port)
    scheme = "https" if config.tls_cert else "http"
    shown = f"[{config.host}]" if ":" in config.host else config.host
    if config.host in ("0.0.0.0", "::"):  # every address: name one a browser can open
        shown = socket.gethostname()
    url = f"{scheme}://{shown}:{sock.getsockname()[1]}/"
    if config.public_url:  # the name its certificate and its users know it by
        url = config.public_url if config.public_url.endswith("/") else config.public_url + "/"
    click.echo(f"dashboard {url}  API {url}api/v1  docs {url}docs  SensorThings {url}sta/v1.1")
    app = create_app(ApiContext(config))
    server = uvicorn.Server(uvicorn_config(app, config))  # with a deadline per request
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, made here so a port in use is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: Python sets TCP_NODELAY only on connections accepted from a socket
    # made so, and without it every small answer waits ~40 ms for the client's ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is in use: pick another with --port (or port = ...)")
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@serve.command("token")
def serve_token() -> None:
    """Make a bearer token for exact locations and link metadata: the token goes to whoever
    may see them, its hash into the service config's token_hashes."""
    from sensorpipe.api.config import new_token

    token, digest = new_token()
    click.echo(f"token (give it to the user, shown only now): {token}")
    click.echo(f'for the service config:  token_hashes = ["{digest}"]')
