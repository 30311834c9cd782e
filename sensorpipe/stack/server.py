"""`sensorpipe server setup`: a lasting installation on Debian 12 / Raspberry Pi OS.

Debian's own `mosquitto` and `influxdb` services, configured by sensorpipe, and three systemd
units (the ingest, the kit gateway, the API and dashboard) that run as the `sensorpipe` system
user. Everything is written under a root prefix (default /), and every path inside the written
files names the file under that prefix, so that a test (or a staging directory) can run the
units' ExecStart lines as they are:

- PREFIX/etc/sensorpipe/: registry.toml, ingest.toml, gateway.toml, serve.toml (0640, group
  sensorpipe), the kit gateway's key and broker password (0600, owner sensorpipe), and tls/
  with the CA the setup makes (its key 0600, root's) and the server certificate;
- PREFIX/etc/mosquitto/conf.d/sensorpipe.conf, included by Debian's mosquitto.conf: a plain
  listener on loopback for the server's own services and a TLS listener for the network; the
  password file, the dynamic security plugin's JSON, the broker's admin account and a copy of
  the server certificate and key in PREFIX/etc/mosquitto/sensorpipe/ (owner mosquitto, 0600:
  the plugin saves its JSON there);
- PREFIX/etc/systemd/system/sensorpipe-{ingest,gateway,serve}.service;
- PREFIX/var/lib/sensorpipe/: the dead letters, the quarantine book, the kits' sequence
  numbers and the ingest's counters.

Run again (after `devices add`), it writes the files anew and keeps the CA, the server
certificate, the kit gateway's key and what an operator set in serve.toml and gateway.toml.
It never starts a service and creates nothing outside the prefix (not even the system user:
it prints the command).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from sensorpipe.gateway.brokeradmin import admin_credentials
from sensorpipe.gateway.devices import set_ingest_account
from sensorpipe.gateway.kits.provision import add_gateway
from sensorpipe.gateway.mosquitto import (
    DYNSEC_FILE,
    Tls,
    broker_config,
    broker_files,
    write_security_files,
)
from sensorpipe.places import Installation
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import load_registry, save_registry
from sensorpipe.stack.configs import SERVE_KEPT as STACK_SERVE_KEPT
from sensorpipe.stack.kitgateway import GATEWAY_KEPT
from sensorpipe.stack.local import SERVER_FILE

SERVICE_USER = "sensorpipe"
BROKER_USER = "mosquitto"
GATEWAY_ID = "server-kits"
DATABASE = "sensorpipe"
UNITS = ("ingest", "gateway", "serve")
# What an operator may set in serve.toml and gateway.toml that a new setup keeps: as for the
# local stack, but the public URL, which follows --public-host.
SERVE_KEPT = tuple(k for k in STACK_SERVE_KEPT if k != "public_url")


class SetupError(RuntimeError):
    """What keeps the setup from being written; the message says what to do."""


@dataclass
class Ports:
    broker: int = 1883  # plain text, loopback only: the server's own services
    broker_tls: int = 8883  # TLS, for the network: edge devices
    kits: int = 8090  # the kit gateway (HTTPS)
    api: int = 8443  # the API and dashboard (HTTPS)
    metrics: int = 9108  # the ingest's Prometheus endpoint (loopback)


@dataclass
class Setup(Installation):
    """A server's installation below `root` (sensorpipe's places, Mosquitto's and the units)
    and what `server setup` writes into it."""

    public_host: str
    ports: Ports = field(default_factory=Ports)
    influx_url: str = "http://127.0.0.1:8086"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Set the owners (root runs it for /): the service users must exist.
    chown: bool = False
    # The user Mosquitto drops to when started as root: Debian's `mosquitto`; under another
    # root prefix, whoever runs the setup (who starts that broker by hand).
    broker_user: str = BROKER_USER

    @property
    def tls_dir(self) -> Path:
        return self.etc / "tls"

    @property
    def broker_dir(self) -> Path:
        return self.root / "etc" / "mosquitto" / "sensorpipe"

    @property
    def mosquitto_conf(self) -> Path:
        return self.root / "etc" / "mosquitto" / "conf.d" / "sensorpipe.conf"

    def unit_path(self, name: str) -> Path:
        return self.units_dir / f"sensorpipe-{name}.service"

    @property
    def ca_cert(self) -> Path:
        return self.tls_dir / "ca.pem"


def default_public_host() -> str:
    return socket.getfqdn() or socket.gethostname()


def run_setup(setup: Setup) -> list[Path]:
    """Write every file of the installation; the files written, in order."""
    for path in (setup.root, setup.tls_cert, setup.tls_key):
        if path is not None and any(c.isspace() for c in str(path)):
            raise SetupError(f"{path}: paths with spaces cannot be named in mosquitto.conf")
    ids = _owners(setup.chown)
    written: list[Path] = []
    for directory, mode in (
        (setup.etc, 0o750),
        (setup.tls_dir, 0o755),
        (setup.state, 0o750),
        (setup.broker_dir, 0o700),
        (setup.mosquitto_conf.parent, 0o755),
        (setup.units_dir, 0o755),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)
    _own(setup.etc, ids, group=SERVICE_USER)
    _own(setup.state, ids, user=SERVICE_USER, group=SERVICE_USER)
    _own(setup.broker_dir, ids, user=BROKER_USER, group=BROKER_USER)

    cert, key = _certificate(setup, written)
    _own(key, ids, group=SERVICE_USER, mode=0o640)

    registry_path = setup.etc / "registry.toml"
    registry = load_registry(registry_path)
    ingest_password = _kept_ingest_password(setup, registry) or set_ingest_account(registry)
    key_path = setup.etc / f"{GATEWAY_ID}.key"
    password_path = setup.etc / f"{GATEWAY_ID}.password"
    if not (GATEWAY_ID in registry.gateways and key_path.is_file() and password_path.is_file()):
        credentials = add_gateway(registry, GATEWAY_ID, rotate=True)
        write_private(key_path, credentials.private_key + "\n")
        write_private(password_path, credentials.password + "\n")
    save_registry(registry, registry_path)
    _own(registry_path, ids, group=SERVICE_USER, mode=0o640)
    for path in (key_path, password_path):
        _own(path, ids, user=SERVICE_USER, group=SERVICE_USER, mode=0o600)
    written += [registry_path, key_path, password_path]

    # The broker: its files, and a copy of the certificate its user can read.
    files = broker_files(setup.broker_dir)
    dynsec = files.acl.name == DYNSEC_FILE
    admin = admin_credentials(setup.broker_dir) if dynsec else None
    broker_cert = setup.broker_dir / "server.pem"
    broker_key = setup.broker_dir / "server.key"
    shutil.copyfile(cert, broker_cert)
    write_private(broker_key, key.read_text())
    write_security_files(files, registry, admin=admin)
    conf = broker_config(
        files,
        port=setup.ports.broker,
        bind="127.0.0.1",
        user=setup.broker_user,
        tls_listener=("0.0.0.0", setup.ports.broker_tls, Tls(broker_cert, broker_key)),
        persistence_location=False,
    )
    setup.mosquitto_conf.write_text(conf)
    setup.mosquitto_conf.chmod(0o644)
    for path in setup.broker_dir.iterdir():
        _own(path, ids, user=BROKER_USER, group=BROKER_USER, mode=0o600)
    written += [setup.mosquitto_conf, files.passwords, files.acl, broker_cert, broker_key]

    for name, config in (
        ("ingest", _ingest_config(setup, ingest_password, admin)),
        ("gateway", _gateway_config(setup, key_path, password_path, cert, key)),
        ("serve", _serve_config(setup, cert, key)),
    ):
        path = setup.etc / f"{name}.toml"
        write_private(path, tomli_w.dumps(config))  # passwords: private from the first byte
        _own(path, ids, group=SERVICE_USER, mode=0o640)
        written.append(path)

    # What `devices add --dir <etc>` puts in a device's join code, and where the services
    # keep their state (the quarantine book, the enrolled keys) for the CLI to read.
    server_file = setup.etc / SERVER_FILE
    server_file.write_text(
        "# written by `sensorpipe server setup`: how devices reach this server\n"
        + tomli_w.dumps(
            {
                "broker": {
                    "host": setup.public_host,
                    "port": setup.ports.broker_tls,
                    "tls": True,
                    "ca_file": str(setup.ca_cert) if setup.tls_cert is None else "",
                },
                "state": {"directory": str(setup.state)},
                "influx": {"url": setup.influx_url, "database": DATABASE},
            }
        )
    )
    server_file.chmod(0o644)
    written.append(server_file)

    for name in UNITS:
        path = setup.unit_path(name)
        path.write_text(unit(setup, name))
        path.chmod(0o644)
        written.append(path)
    return written


def _kept_ingest_password(setup: Setup, registry: Any) -> str | None:
    """The ingest's broker password of an earlier setup, where the registry still has its
    account: a second run (after `devices add`) leaves the running ingest's login valid."""
    if registry.ingest is None:
        return None
    try:
        old = tomllib.loads((setup.etc / "ingest.toml").read_text())
        password = old["broker"]["password"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return None
    return password if isinstance(password, str) and password else None


def _owners(chown: bool) -> dict[str, tuple[int, int]]:
    """The service users' (uid, gid), when the owners are to be set."""
    if not chown:
        return {}
    ids: dict[str, tuple[int, int]] = {}
    for name, how in (
        (
            SERVICE_USER,
            f"sudo adduser --system --group --home /var/lib/{SERVICE_USER} {SERVICE_USER}",
        ),
        (BROKER_USER, "sudo apt-get install mosquitto (it makes the user)"),
    ):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise SetupError(f"no system user {name!r}: make it first ({how})") from None
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            gid = entry.pw_gid
        ids[name] = (entry.pw_uid, gid)
    return ids


def _own(
    path: Path,
    ids: dict[str, tuple[int, int]],
    *,
    user: str | None = None,
    group: str | None = None,
    mode: int | None = None,
) -> None:
    if ids:
        uid = ids[user][0] if user else 0
        gid = ids[group][1] if group else 0
        os.chown(path, uid, gid)
    if mode is not None:
        path.chmod(mode)


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SetupError("openssl not found: sudo apt-get install openssl") from None
    except subprocess.CalledProcessError as exc:
        raise SetupError(f"openssl {args[0]} failed: {exc.stderr.strip()}") from None


def _certificate(setup: Setup, written: list[Path]) -> tuple[Path, Path]:
    """The server's certificate and key: the operator's (copied in), or made by a CA this
    setup makes once (kept on a second run, so devices keep trusting it)."""
    cert, key = setup.tls_dir / "server.pem", setup.tls_dir / "server.key"
    if setup.tls_cert is not None and setup.tls_key is not None:
        for option, path, marker in (
            ("--tls-cert", setup.tls_cert, "CERTIFICATE"),
            ("--tls-key", setup.tls_key, "PRIVATE KEY"),
        ):
            try:
                text = path.read_text(errors="replace")
            except OSError as exc:
                raise SetupError(f"{option} {path}: cannot be read ({exc.strerror})") from None
            if f"-----BEGIN {marker}" not in text and not (
                marker == "PRIVATE KEY" and "PRIVATE KEY-----" in text
            ):
                raise SetupError(f"{option} {path}: not a PEM file with a {marker.lower()}")
        shutil.copyfile(setup.tls_cert, cert)
        write_private(key, setup.tls_key.read_text())
        cert.chmod(0o644)
        written += [cert, key]
        return cert, key
    ca_key = setup.tls_dir / "ca.key"
    if not (setup.ca_cert.is_file() and ca_key.is_file()):
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "3650", "-subj", "/CN=sensorpipe CA", "-keyout", str(ca_key),
            "-out", str(setup.ca_cert),
        )  # fmt: skip
        ca_key.chmod(0o600)
        setup.ca_cert.chmod(0o644)
        cert.unlink(missing_ok=True)  # a new CA: a new certificate
    if not (cert.is_file() and key.is_file() and _names(cert, setup.public_host)):
        csr = setup.tls_dir / "server.csr"
        san = f"subjectAltName=DNS:{setup.public_host},DNS:localhost,IP:127.0.0.1"
        if _is_ip(setup.public_host):
            san = f"subjectAltName=IP:{setup.public_host},DNS:localhost,IP:127.0.0.1"
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={setup.public_host}", "-addext", san,
            "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(setup.ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "825", "-copy_extensions", "copy", "-out", str(cert),
        )  # fmt: skip
        csr.unlink()
        key.chmod(0o600)
        cert.chmod(0o644)
    written += [setup.ca_cert, ca_key, cert, key]
    return cert, key


def _names(cert: Path, host: str) -> bool:
    """Whether the certificate names `host` (a new --public-host needs a new one)."""
    try:
        out = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return f"DNS:{host}" in out or f"IP Address:{host}" in out


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _kept(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        old = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: old[k] for k in keys if k in old}


def _ingest_config(setup: Setup, password: str, admin: Any) -> dict[str, Any]:
    return {
        "registry_path": str(setup.etc / "registry.toml"),
        "deadletter_path": str(setup.state / "deadletter.sqlite"),
        "stats_path": str(setup.state / "ingest-stats.json"),
        # The `gateway` tag of what this ingest stores: the host's first label.
        "gateway_id": _tag(setup.public_host),
        "metrics_port": setup.ports.metrics,
        "metrics_bind": "127.0.0.1",
        "quarantine_path": str(setup.state / "quarantine.sqlite"),
        "keys_path": str(setup.state / "keys.sqlite"),
        # The calibration book `calibrate` writes (serve.toml's calibration_path): the ingest
        # keeps its group calibrations' hourly factors up to date; the operator's other
        # [calibration] settings are kept.
        "calibration": {
            **_kept(setup.etc / "ingest.toml", ("calibration",)).get("calibration", {}),
            "book": str(setup.state / "calibrations.sqlite"),
        },
        # Crowding alerts kept in the state directory (serve.toml's alerts_path); the
        # operator's other [alerts] settings (webhooks, margin) are kept.
        "alerts": {
            **_kept(setup.etc / "ingest.toml", ("alerts",)).get("alerts", {}),
            "store": str(setup.state / "alerts.sqlite"),
            # the forecast models `crowd train` saves (serve.toml's models_path)
            "models": str(setup.state / "forecast"),
        },
        # The operator's [forecast] settings (how often those models are retrained) are kept.
        **_kept(setup.etc / "ingest.toml", ("forecast",)),
        "broker": {
            "host": "127.0.0.1",
            "port": setup.ports.broker,
            "username": "ingest",
            "password": password,
        },
        "influx": {"url": setup.influx_url, "database": DATABASE},
        **(
            {"broker_admin": {"username": admin.username, "password": admin.password}}
            if admin is not None
            else {}
        ),
    }


def _tag(host: str) -> str:
    """A host name's first label as a gateway tag ("server" for an IP address)."""
    label = host.split(".")[0]
    return "server" if _is_ip(host) or not label.isascii() or not label[:1].isalnum() else label


def _gateway_config(
    setup: Setup, key_path: Path, password_path: Path, cert: Path, key: Path
) -> dict[str, Any]:
    return {
        "gateway_id": GATEWAY_ID,
        "private_key_file": str(key_path),
        "registry_path": str(setup.etc / "registry.toml"),
        "deadletter_path": str(setup.state / "deadletter.sqlite"),
        "seq_path": str(setup.state / "kit-seq.sqlite"),
        "quarantine_path": str(setup.state / "quarantine.sqlite"),
        **_kept(setup.etc / "gateway.toml", GATEWAY_KEPT),
        "broker": {
            "host": "127.0.0.1",
            "port": setup.ports.broker,
            "password_file": str(password_path),
        },
        "http": {
            "bind": "0.0.0.0",
            "port": setup.ports.kits,
            "tls_cert": str(cert),
            "tls_key": str(key),
        },
    }


def _serve_config(setup: Setup, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "host": "0.0.0.0",
        "port": setup.ports.api,
        "tls_cert": str(cert),
        "tls_key": str(key),
        "registry_path": str(setup.etc / "registry.toml"),
        "ingest_stats_path": str(setup.state / "ingest-stats.json"),
        "calibration_path": str(setup.state / "calibrations.sqlite"),
        "alerts_path": str(setup.state / "alerts.sqlite"),
        "models_path": str(setup.state / "forecast"),
        "public_url": f"https://{setup.public_host}:{setup.ports.api}/",
        **_kept(setup.etc / "serve.toml", SERVE_KEPT),
        "influx": {"url": setup.influx_url, "database": DATABASE},
        "broker": {"host": "127.0.0.1", "port": setup.ports.broker},
    }


DESCRIPTIONS = {
    "ingest": "sensorpipe ingest: the broker's messages, checked, into InfluxDB",
    "gateway": "sensorpipe kit gateway: airrohr kits and The Things Stack to the broker",
    "serve": "sensorpipe API and dashboard",
}


def exec_start(setup: Setup, name: str) -> list[str]:
    """The command line of unit `name`: this Python, the module, its configuration."""
    command = {"ingest": ["ingest", "run"], "gateway": ["gateway", "run"], "serve": ["serve"]}
    config = setup.etc / f"{name}.toml"
    return [sys.executable, "-m", "sensorpipe", *command[name], "--config", str(config)]


def unit(setup: Setup, name: str) -> str:
    """A systemd unit for one service: the sensorpipe user, restarted on failure, the system
    read-only but for its state directory."""
    return "\n".join(
        [
            "# written by `sensorpipe server setup`; run it again rather than editing this",
            "[Unit]",
            f"Description={DESCRIPTIONS[name]}",
            "After=network-online.target mosquitto.service influxdb.service",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"User={SERVICE_USER}",
            f"Group={SERVICE_USER}",
            f"ExecStart={shlex.join(exec_start(setup, name))}",
            "Restart=on-failure",
            "RestartSec=5",
            f"StateDirectory={SERVICE_USER}",
            f"ReadWritePaths={setup.state}",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "UMask=0027",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


TSI1_COMMAND = (
    'sudo sed -i \'s/^ *# *index-version = "inmem"/  index-version = "tsi1"/\' '
    "/etc/influxdb/influxdb.conf"
)


def next_commands(setup: Setup) -> list[str]:
    """What the operator runs next (the setup starts nothing)."""
    units = " ".join(f"sensorpipe-{name}" for name in UNITS)
    return [
        "sudo systemctl daemon-reload",
        # The on-disk series index: with the default in-memory one, InfluxDB 1.x deletes other
        # series' points at a DELETE (`sensorpipe import remove`), see importer/removal.py.
        TSI1_COMMAND,
        "sudo systemctl enable --now influxdb",
        create_database_command(setup),
        "sudo systemctl restart mosquitto",
        f"sudo systemctl enable --now {units}",
    ]


def create_database_command(setup: Setup) -> str:
    """The InfluxDB database the ingest writes to (it does not create it), made through
    InfluxDB's own HTTP API (curl: Debian's `influxdb` package brings no `influx` shell)."""
    url = shlex.quote(setup.influx_url + "/query")
    query = shlex.quote(f'q=CREATE DATABASE "{DATABASE}"')
    return f"curl -sS -XPOST {url} --data-urlencode {query}"
