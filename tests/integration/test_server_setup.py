"""Issue 25: `sensorpipe server setup` writes a lasting installation (Debian's Mosquitto via
conf.d, systemd units for the ingest, the kit gateway and the API). Into a temporary --root:
every unit passes `systemd-analyze verify`, and the units' ExecStart lines, run as processes
beside a Mosquitto started with the written configuration and a real influxd, store a device's
message sent over the TLS listener."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.devices import add_device
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.registry import load_registry, save_registry
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import air_message
from tests.integration.setup_server import SetupServer

pytestmark = pytest.mark.integration

SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
UNITS = ("ingest", "gateway", "serve")


def test_setup_writes_units_that_verify_and_run_to_a_stored_message(
    tmp_path: Path, influxd: Influxd
) -> None:
    server = SetupServer(tmp_path, [sys.executable, "-m", "sensorpipe"], "localhost", influxd.url)
    root, etc, ports = server.root, server.etc, server.ports
    first = server.setup()
    assert "systemctl daemon-reload" in first.stdout
    # A device registered as docs/server.md says, then the setup again: its account reaches the
    # broker's files, and the CA made the first time is kept.
    ca = (etc / "tls" / "ca.pem").read_text()
    registry = load_registry(etc / "registry.toml")
    creds = add_device(registry, "balcony-01", site="s", sensors=["sds011"])
    save_registry(registry, etc / "registry.toml")
    # The ingest keeps the group calibrations of the book `calibrate` writes (serve.toml's)
    # up to date; the operator's [calibration] settings outlast a setup again.
    ingest = tomllib.loads((etc / "ingest.toml").read_text())
    serve = tomllib.loads((etc / "serve.toml").read_text())
    assert ingest["calibration"] == {"book": serve["calibration_path"]}
    ingest["calibration"]["update_every_s"] = 600.0
    (etc / "ingest.toml").write_text(tomli_w.dumps(ingest))
    server.setup()
    assert tomllib.loads((etc / "ingest.toml").read_text())["calibration"] == {
        "update_every_s": 600.0,
        "book": serve["calibration_path"],
    }
    assert (etc / "tls" / "ca.pem").read_text() == ca
    # ... and the ingest's login (a running ingest stays logged in).
    assert load_registry(etc / "registry.toml").ingest == registry.ingest

    # Secrets: the CA key and the gateway's key for their owner alone, the service configs
    # (passwords) for their group at most; nothing secret readable by others.
    for path, mode in (
        (etc / "tls" / "ca.key", 0o600),
        (etc / "server-kits.key", 0o600),
        (etc / "server-kits.password", 0o600),
        (etc / "ingest.toml", 0o640),
        (etc / "registry.toml", 0o640),
        (etc / "tls" / "server.key", 0o640),
        (root / "etc" / "mosquitto" / "sensorpipe" / "passwd", 0o600),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path

    units = [root / "etc" / "systemd" / "system" / f"sensorpipe-{n}.service" for n in UNITS]
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    for unit in units:
        text = unit.read_text()
        for line in (
            "User=sensorpipe",
            "Restart=on-failure",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "StateDirectory=sensorpipe",
            f"ReadWritePaths={root}/var/lib/sensorpipe",
            "After=network-online.target mosquitto.service influxdb.service",
        ):
            assert line in text.splitlines(), (unit, line)

    conf = root / "etc" / "mosquitto" / "conf.d" / "sensorpipe.conf"
    assert "persistence_location" not in conf.read_text()  # Debian's mosquitto.conf sets it
    # Started as Debian's service starts it (a main mosquitto.conf, as Debian's, that sets
    # persistence and includes conf.d), and the units' ExecStart lines.
    try:
        server.start(gateway=True, serve=True)
        publish_over_tls(creds, ports["broker-tls"], etc / "tls" / "ca.pem")
        influx = influxd.client()
        influx.database = "sensorpipe"

        def stored() -> bool:
            try:
                rows = influx.query("SELECT pm2_5 FROM air WHERE device_id = 'balcony-01'")
            except Exception:
                return False
            return len(rows) == 1

        wait_for(stored, timeout_s=30, what="the device's message in InfluxDB")
        ssl_context = ssl.create_default_context(cafile=str(etc / "tls" / "ca.pem"))
        import urllib.request

        url = f"https://localhost:{ports['api']}/api/v1/health"
        with urllib.request.urlopen(url, context=ssl_context, timeout=10) as answer:
            assert answer.status in (200, 503)
    finally:
        server.stop()


def publish_over_tls(creds: Any, port: int, ca: Path) -> None:
    """One signed message from the device, through the broker's TLS listener, checked
    against the CA the setup made; returns when the broker has it (PUBACK)."""
    acked = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=creds.username, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(creds.username, creds.password)
    client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_publish = lambda *_args: acked.set()
    client.connect("localhost", port)
    client.loop_start()
    try:
        message = air_message("balcony-01", 1)
        client.publish(
            topic_for("balcony-01", message.kind),
            encode(message, Signer(creds.private_key).sign),
            qos=1,
        )
        assert acked.wait(15), "no PUBACK over TLS"
    finally:
        client.disconnect()
        client.loop_stop()


def test_setup_without_root_and_not_root_names_the_sudo_line(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        # As root, the refusal is for the missing --root of a non-root user: run it as one.
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        argv = []
    result = subprocess.run(
        [*argv, sys.executable, "-m", "sensorpipe", "server", "setup"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sudo " in result.stderr and "--root" in result.stderr
    assert "Traceback" not in result.stderr
