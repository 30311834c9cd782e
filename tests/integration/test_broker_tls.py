"""A listener off loopback needs TLS; a TLS listener works with a real Mosquitto."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.cli.main import main
from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.gateway.devices import add_device
from sensorpipe.gateway.mosquitto import BrokerFiles, Tls, broker_config, write_security_files
from sensorpipe.process import ManagedProcess, free_ports, port_open
from sensorpipe.protocol.registry import Registry, save_registry
from tests.helpers import throwaway_ca

pytestmark = pytest.mark.integration


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca = throwaway_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def _connects(port: int, username: str, password: str, ca: Path | None) -> bool:
    """Whether the broker accepts the connection: its CONNACK's answer, or False where it
    closes the connection without one (a TLS listener's answer to plain text). A broker that
    gives neither in 30 s fails the test rather than reading as a refusal."""
    done = threading.Event()
    result: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(*args: object) -> None:
        result.append(not args[3].is_failure)  # type: ignore[attr-defined]
        done.set()

    def on_disconnect(*args: object) -> None:
        result.append(False)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    answered = done.wait(30)
    client.disconnect()
    client.loop_stop()
    assert answered, f"port {port}: the broker neither answered nor closed {username}'s connection"
    return result[0]


@contextmanager
def tls_broker(directory: Path, registry: Registry, cert: Path, key: Path) -> Iterator[int]:
    """Mosquitto with a TLS listener (`cert`, `key`) and `registry`'s accounts, on a free
    port (yielded) while the block runs."""
    files = BrokerFiles(
        directory / "mosquitto.conf", directory / "passwd", directory / "acl", directory / "data"
    )
    files.data_dir.mkdir(parents=True)
    write_security_files(files, registry)
    (port,) = free_ports(1)
    files.config.write_text(broker_config(files, port=port, tls=Tls(cert, key)))
    broker = ManagedProcess(
        "mosquitto", [mosquitto_binary(), "-c", str(files.config)], directory / "log"
    )
    broker.start(lambda: port_open(port), timeout_s=15)
    try:
        yield port
    finally:
        broker.stop()


def test_a_tls_listener_takes_tls_clients_only(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    registry = Registry()
    dev = add_device(registry, "dev-a", site="centrum")
    with tls_broker(tmp_path / "broker", registry, cert, key) as port:
        assert _connects(port, "dev-a", dev.password, ca)
        assert not _connects(port, "dev-a", dev.password, None)  # plain text is refused
        assert not _connects(port, "dev-a", "wrong", ca)


def test_gateway_config_refuses_a_plaintext_listener_off_loopback(tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    save_registry(Registry(), registry)
    out = tmp_path / "out"
    base = ["gateway", "config", "--registry", str(registry), "--out", str(out)]
    refused = CliRunner().invoke(main, [*base, "--bind", "0.0.0.0"])
    assert refused.exit_code == 1 and "plain text" in refused.output
    assert not (out / "mosquitto.conf").exists()
    _ca, cert, key = _certificates(tmp_path)
    ok = CliRunner().invoke(
        main, [*base, "--bind", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key)]
    )
    assert ok.exit_code == 0, ok.output
    config = (out / "mosquitto.conf").read_text()
    assert f"certfile {cert}" in config and "listener 1883 0.0.0.0" in config
    assert "user mosquitto" in config and "user root" not in config
    plain = CliRunner().invoke(main, [*base, "--bind", "0.0.0.0", "--allow-plaintext"])
    assert plain.exit_code == 0 and "warning: plain-text listener" in plain.output
