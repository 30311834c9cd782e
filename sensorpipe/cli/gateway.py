"""`sensorpipe gateway`: mosquitto configuration for a system broker, and the kit gateway."""

from __future__ import annotations

import logging
import pwd
import re
import socket
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sensorpipe.cli.common import fail
from sensorpipe.protocol.configfile import ConfigError

if TYPE_CHECKING:
    from sensorpipe.ingest.deadletter import DeadLetterStore


@click.group()
def gateway() -> None:
    """Mosquitto configuration from the device registry, and the kit gateway (airrohr kits,
    The Things Stack) that publishes kits' readings to it."""


@gateway.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="Gateway config (TOML, see `sensorpipe config example gateway`).",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Listen off loopback without TLS (kits' passwords cross the network readable).",
)
def gateway_run(config_path: str, allow_plaintext: bool) -> None:
    """Run the kit gateway: the HTTP endpoint airrohr kits post to ("Send data to custom
    API") and The Things Stack bridges, publishing each reading to the broker signed as this
    gateway. A kit is answered 200 only once the broker has the reading, 503 when it does not."""
    from sensorpipe.cli.serve import _listen
    from sensorpipe.gateway.kits.app import AIRROHR_PATH
    from sensorpipe.gateway.kits.config import load_gateway_config, load_gateway_secrets
    from sensorpipe.gateway.kits.service import KitGateway, check_registered, check_ttn, serve
    from sensorpipe.ingest.deadletter import DeadLetterStore

    config = load_gateway_config(config_path, allow_plaintext=allow_plaintext)
    secrets = load_gateway_secrets(config, config_path)
    check_registered(config, secrets, config_path)
    check_ttn(config, config_path)
    try:
        # Each kit keeps at most as many letters as a device does at the ingest (its default
        # [quota]): one kit's rejected posts never fill the store for the others.
        store = DeadLetterStore(
            config.deadletter_path,
            per_device_letters=KIT_LETTERS,
            per_device_bytes=KIT_LETTER_BYTES,
        )
    except (OSError, sqlite3.Error) as exc:
        fail(f"{config_path}: deadletter_path {config.deadletter_path}: cannot be opened ({exc})")
    http = config.http
    sock = _listen(http.bind, http.port)
    scheme = "https" if http.tls_cert else "http"
    host = http.bind
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    url = f"{scheme}://{host}:{sock.getsockname()[1]}"
    click.echo(
        f"kit gateway {config.gateway_id}: airrohr kits post to {url}{AIRROHR_PATH}  "
        f"health {url}/health  metrics {url}/metrics"
    )
    try:
        serve(KitGateway(config, secrets, _DeadLetters(store)), sock)
    finally:
        store.close()


KIT_LETTERS = 10_000
KIT_LETTER_BYTES = 64 * 1024 * 1024


def _quarantined(path: Path | None) -> set[str]:
    """The devices the quarantine book at `path` holds: their accounts are written disabled,
    so that writing the files again (after a registry change) lifts no quarantine."""
    if path is None:
        return set()
    from sensorpipe.protocol.quarantine import QuarantineBook

    if not path.is_file():
        fail(f"--quarantine {path}: no such file; give the ingest's quarantine_path")
    try:
        book = QuarantineBook(path)
        try:
            return set(book.active())
        finally:
            book.close()
    except (sqlite3.Error, OSError) as exc:
        fail(f"--quarantine {path}: not a quarantine book ({exc})")


class _DeadLetters:
    """The ingest's dead-letter store, as the kit gateway keeps its rejected input there."""

    def __init__(self, store: DeadLetterStore) -> None:
        self._store = store
        self._said: dict[str, float] = {}  # kit -> when its full quota may be said again

    def keep(
        self, topic: str, payload: bytes, code: str, detail: str, *, device_id: str = ""
    ) -> None:
        from sensorpipe.gateway.kits.context import LetterNotKept
        from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStoreUnavailable

        letter = DeadLetter(time.time(), topic, payload, code, detail, device_id=device_id)
        try:
            result = self._store.add_many([letter])
        except DeadLetterStoreUnavailable as exc:
            raise LetterNotKept(str(exc)) from None
        for kit in result.near_full:
            logging.getLogger(__name__).warning(
                "%s keeps over 80 %% of its dead-letter quota (%d letters, %d bytes)",
                kit,
                KIT_LETTERS,
                KIT_LETTER_BYTES,
            )
        if result.refused and time.monotonic() >= self._said.get(letter.device, 0.0):
            # Not retried: the kit's rate limit bounds how many come, and sending them again
            # would not make room. Said once a minute per kit.
            self._said[letter.device] = time.monotonic() + 60.0
            logging.getLogger(__name__).error(
                "%s: its dead-letter quota is full (%d letters or %d bytes); its further "
                "rejected input is not kept. Look at it (`sensorpipe ingest rejects`), then "
                "purge it (`sensorpipe ingest purge --device %s`)",
                letter.device,
                KIT_LETTERS,
                KIT_LETTER_BYTES,
                letter.device,
            )


@gateway.command("config")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option(
    "--tls-ca",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CA file for client certificates (optional).",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow a listener off loopback without TLS (passwords cross the network readable).",
)
@click.option(
    "--user",
    "run_as",
    default="mosquitto",
    show_default=True,
    help="User the broker drops to when started as root.",
)
@click.option(
    "--quarantine",
    "quarantine_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The quarantine book (the ingest's quarantine_path): its devices' accounts are "
    "written disabled.",
)
def gateway_config(
    registry_path: Path,
    out_dir: Path,
    port: int,
    bind: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    allow_plaintext: bool,
    run_as: str,
    quarantine_path: Path | None,
) -> None:
    """Write mosquitto.conf, passwd and the access rules (the dynamic security plugin's
    dynamic-security.json, or acl without the plugin) for a system broker.

    A listener off loopback needs TLS: --tls-cert and --tls-key (PEM files the broker user can
    read), or --allow-plaintext to accept the risk.
    """
    from sensorpipe.gateway.brokeradmin import ADMIN_FILE, BrokerAdminError, admin_credentials
    from sensorpipe.gateway.mosquitto import (
        DYNSEC_FILE,
        ListenerError,
        Tls,
        broker_config,
        broker_files,
        is_loopback,
        write_security_files,
    )
    from sensorpipe.protocol.registry import load_registry

    if (tls_cert is None) != (tls_key is None):
        fail("give both --tls-cert and --tls-key, or neither")
    tls = None
    if tls_cert is not None and tls_key is not None:
        for option, path, marker in (
            ("--tls-cert", tls_cert, "CERTIFICATE"),
            ("--tls-key", tls_key, "PRIVATE KEY"),
            *([("--tls-ca", tls_ca, "CERTIFICATE")] if tls_ca else []),
        ):
            _check_pem(option, path, marker)
        tls = Tls(tls_cert.resolve(), tls_key.resolve(), tls_ca.resolve() if tls_ca else None)
    if registry_path.is_dir():
        fail(f"--registry {registry_path}: is a directory; give the registry file")
    if not registry_path.is_file():
        # An empty registry would mean an empty password file: every device locked out.
        fail(
            f"--registry {registry_path}: no such file; give the registry that "
            f"`sensorpipe devices add` writes (e.g. .sensorpipe/registry.toml)"
        )
    try:
        registry = load_registry(registry_path)
    except ConfigError as exc:
        fail(str(exc))
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir}: is a file; give a directory for the broker's files")
    # The access rules: the dynamic security plugin's JSON where this Mosquitto has the plugin
    # (SUBSCRIBE refused beyond a device's own confirmations), else an acl_file.
    files = broker_files(out_dir)
    try:
        config = broker_config(
            files, port=port, bind=bind, tls=tls, allow_plaintext=allow_plaintext, user=run_as
        )
    except ListenerError as exc:
        fail(str(exc))
    dynsec = files.acl.name == DYNSEC_FILE
    disabled = _quarantined(quarantine_path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files.data_dir.mkdir(exist_ok=True)
        # With the plugin: the broker's admin account, made once and kept in --out (0600),
        # through which the ingest disables a quarantined device's account and
        # `devices quarantine|lift` reach this broker.
        admin = admin_credentials(out_dir) if dynsec else None
        write_security_files(files, registry, admin=admin, disabled=disabled)
        files.config.write_text(config)
    except BrokerAdminError as exc:
        fail(f"--out {out_dir}: {exc}")
    except OSError as exc:
        where = exc.filename or out_dir
        fail(f"--out {out_dir}: cannot write {where}: {exc.strerror or exc}")
    click.echo(f"wrote {files.config}, {files.passwords}, {files.acl}")
    if admin is not None:
        click.echo(
            f"the broker's admin account is in {out_dir / ADMIN_FILE}; give it to the ingest "
            f"(ingest.toml: [broker_admin] username = {admin.username!r}, password from that "
            f"file) so that it disables the broker account of a device it quarantines"
        )
        click.echo(
            "after a registry change, run this again and restart the broker: its dynamic "
            "security plugin does not read its file again on SIGHUP"
        )
    else:
        click.echo("after a registry change, run this again and send the broker SIGHUP")
    if run_as != "mosquitto" and not _system_user(run_as):
        click.echo(f"warning: --user {run_as}: no such user on this machine", err=True)
    if not registry.devices:
        click.echo(
            f"warning: {registry_path} has no devices yet: the broker will let no device in",
            err=True,
        )
    if tls is None and not is_loopback(bind):
        click.echo("warning: plain-text listener off loopback (--allow-plaintext)", err=True)


def _check_pem(option: str, path: Path, marker: str) -> None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        fail(f"{option} {path}: no such file")
    except OSError as exc:
        fail(f"{option} {path}: cannot be read ({exc.strerror})")
    if f"-----BEGIN {marker}" not in text and not (
        marker == "PRIVATE KEY" and re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text)
    ):
        fail(f"{option} {path}: not a PEM file with a {marker.lower()} (-----BEGIN {marker}-----)")


def _system_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
