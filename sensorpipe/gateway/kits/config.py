"""The kit gateway's configuration file (TOML). See config/gateway.example.toml.

The gateway signs kits' readings with its own key and publishes them with its own broker
account: both secrets live in files of their own, readable by the gateway's user only
(`sensorpipe devices add-gateway` writes them), never in this file, so the file can be shown
to whoever helps run the gateway.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sensorpipe.gateway.kits.auth import CLIENT_CHECK_REFILL_S, CLIENT_CHECKS_BURST
from sensorpipe.gateway.kits.ttn_config import TtnApplication
from sensorpipe.gateway.mosquitto import ListenerError, check_bind, is_loopback
from sensorpipe.http_server import MAX_CONNECTIONS_PER_CLIENT, REQUEST_TIMEOUT_S
from sensorpipe.protocol.configfile import ConfigError, key_error, load_model, resolve_tls_files
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    # CA certificate(s) the broker's certificate is checked against; unset: the system's.
    ca_file: str | None = None
    # The gateway's broker password (its user name is gateway_id), alone in a private file.
    password_file: str
    # How long a kit's post waits for the broker's acknowledgement before it is answered 503.
    publish_timeout_s: float = Field(default=5.0, gt=0, le=15)


class HttpSettings(_Strict):
    # Off loopback only with TLS (tls_cert, tls_key) or allow_plaintext, as the broker and
    # `sensorpipe serve`: the kits' passwords would otherwise cross the network readable.
    bind: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_plaintext: bool = False
    # airrohr posts are under 2 KiB; anything far larger is refused (413) unread.
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # A client has this long (seconds) to send a whole request (line, headers and body), from
    # connecting or from its first byte after a kept-alive answer; then the connection is
    # closed (sensorpipe.http_server). A kit sends its post in well under a second.
    request_timeout_s: float = Field(default=REQUEST_TIMEOUT_S, gt=0, le=300)
    # Connections one client address may hold at once; one more is answered 503 and closed.
    # 0: no cap (behind a reverse proxy, where every client has the proxy's address).
    max_connections_per_client: int = Field(default=MAX_CONNECTIONS_PER_CLIENT, ge=0, le=100_000)


class AirrohrSettings(_Strict):
    # Per kit: `burst` posts at once, then one every `refill_s` seconds (429 beyond that).
    burst: int = Field(default=5, ge=1, le=1000)
    refill_s: float = Field(default=10.0, gt=0, le=3600)
    # Per client address: `client_checks_burst` password checks at once, then one every
    # `client_check_refill_s` seconds, out of the gateway's global budget (gateway.kits.auth);
    # beyond it 429 without hashing. Behind a reverse proxy every client has the proxy's
    # address, so this becomes a second global budget: raise it there.
    client_checks_burst: int = Field(default=CLIENT_CHECKS_BURST, ge=1, le=1000)
    client_check_refill_s: float = Field(default=CLIENT_CHECK_REFILL_S, gt=0, le=3600)


# A kit over its rate limit (airrohr posts answered 429, TTN uplinks dropped) in this many
# seconds within 1.5 times as long is quarantined. A working kit is never over its limit at
# all; a flood is over it every second, so it is quarantined about 10 s after it began.
QUARANTINE_AFTER_S = 10.0


class GatewayConfig(_Strict):
    gateway_id: str = Field(pattern=DEVICE_ID_PATTERN)
    # Its Ed25519 private key (base64), alone in a private file.
    private_key_file: str
    # The device registry: which kits there are, their chip ids and password hashes. Re-read
    # when it changes, so kits added while the gateway runs are let in.
    registry_path: str = "registry.toml"
    # Rejected posts go where the ingest keeps its dead letters (`sensorpipe ingest rejects`).
    deadletter_path: str = "deadletter.sqlite"
    # The kits' sequence numbers (gateway.kits.seq).
    seq_path: str = "kit-seq.sqlite"
    # The quarantine book the ingest and the CLI share (protocol.quarantine): a quarantined
    # kit is refused (403) whoever quarantined it, and a kit that keeps exceeding its rate
    # limit is quarantined here. None: no quarantine, only the rate limits.
    quarantine_path: str | None = None
    # Seconds over its rate limit (within 1.5 times as long) that quarantine a kit; 0: never.
    quarantine_after_s: float = Field(default=QUARANTINE_AFTER_S, ge=0, le=3600)
    broker: BrokerSettings
    http: HttpSettings = Field(default_factory=HttpSettings)
    airrohr: AirrohrSettings = Field(default_factory=AirrohrSettings)
    # The Things Stack applications whose uplinks this gateway takes (gateway.kits.ttn).
    ttn: list[TtnApplication] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GatewaySecrets:
    private_key: str
    broker_password: str


def load_gateway_config(path: Path | str, *, allow_plaintext: bool = False) -> GatewayConfig:
    """The config in `path`, its relative paths resolved against the file's folder, its
    files and bind address checked (`allow_plaintext`: as if the file set it); ConfigError
    (one line: file, key, line, what to do) otherwise."""
    path = Path(path)
    config = load_model(path, GatewayConfig)
    if allow_plaintext:
        config.http.allow_plaintext = True
    base = path.resolve().parent
    for key in ("private_key_file", "registry_path", "deadletter_path", "seq_path"):
        setattr(config, key, str(base / getattr(config, key)))
    if config.quarantine_path is not None:
        config.quarantine_path = str(base / config.quarantine_path)
    config.broker.password_file = str(base / config.broker.password_file)
    if not Path(config.registry_path).is_file():
        # Without it every kit would be unknown: each post refused as if its password were wrong.
        raise key_error(path, ["registry_path"], f"{config.registry_path}: no such file")
    if config.broker.ca_file is not None:
        config.broker.ca_file = _existing(path, ["broker", "ca_file"], base, config.broker.ca_file)
    resolve_tls_files(path, config.http, ["http"])
    for i, app in enumerate(config.ttn):
        for key in ("ca_file", "api_key_file"):
            value = getattr(app, key)
            if value is not None:
                setattr(app, key, Path(_existing(path, ["ttn", str(i), key], base, str(value))))
    check_http_bind(config, str(path))
    return config


def _existing(path: Path, loc: list[str], base: Path, value: str) -> str:
    full = base / value
    if not full.is_file():
        raise key_error(path, loc, f"{value!r}: no such file")
    return str(full)


def check_http_bind(config: GatewayConfig, source: str) -> None:
    """The broker's rule: off loopback only with TLS or an explicit allow_plaintext."""
    http = config.http
    try:
        check_bind(http.bind)
    except ListenerError as exc:
        raise ConfigError(source, f"[http] {exc}") from None
    if not is_loopback(http.bind) and http.tls_cert is None and not http.allow_plaintext:
        raise ConfigError(
            source,
            f"[http] bind {http.bind!r} is not loopback: kits' passwords would cross the "
            f"network readable; give tls_cert and tls_key, or set allow_plaintext = true "
            f"(--allow-plaintext) if you accept that (airrohr kits on a home network often must)",
        )


def load_gateway_secrets(config: GatewayConfig, source: str) -> GatewaySecrets:
    """The private key and broker password from their files, which must be private."""
    key = _read_private(config.private_key_file, "private_key_file", source)
    try:
        Signer(key)
    except ValueError as exc:
        raise ConfigError(source, f"private_key_file {config.private_key_file}: {exc}") from None
    password = _read_private(config.broker.password_file, "[broker] password_file", source)
    return GatewaySecrets(private_key=key, broker_password=password)


def _read_private(file: str, key: str, source: str) -> str:
    try:
        mode = Path(file).stat().st_mode
        text = Path(file).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            source,
            f"{key} {file}: no such file (`sensorpipe devices add-gateway` writes the gateway's "
            f"key and broker password)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"{key} {file}: cannot be read ({exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            source, f"{key} {file}: readable by others (mode {mode & 0o777:o}); chmod 600 {file}"
        )
    if not text or "\n" in text:
        raise ConfigError(source, f"{key} {file}: expected one line, the secret alone")
    return text
