"""`sensorpipe gateway config` for a system broker: the files it writes start a Mosquitto that
authenticates devices and refuses their subscriptions beyond their own confirmations."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.gateway.brokeradmin import BrokerAdmin, admin_credentials
from sensorpipe.gateway.devices import add_device
from sensorpipe.gateway.mosquitto import find_dynsec_plugin
from sensorpipe.process import free_ports, port_open
from sensorpipe.protocol.quarantine import QuarantineBook
from sensorpipe.protocol.registry import Registry, save_registry
from tests.helpers import wait_for


def test_the_written_files_run_a_broker_that_refuses_foreign_subscriptions(
    tmp_path: Path,
) -> None:
    registry = Registry()
    creds = add_device(registry, "balcony-1", site="s")
    save_registry(registry, tmp_path / "registry.toml")
    (port,) = free_ports(1)
    out = tmp_path / "broker"
    argv = ["gateway", "config", "--registry", str(tmp_path / "registry.toml")]
    argv += ["--out", str(out), "--port", str(port), "--user", getpass.getuser()]
    result = subprocess.run(
        [sys.executable, "-m", "sensorpipe", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    plugin = find_dynsec_plugin() is not None
    assert ("dynamic-security.json" in result.stdout) == plugin
    assert "restart the broker" in result.stdout if plugin else "SIGHUP" in result.stdout
    broker = subprocess.Popen(
        [mosquitto_binary(), "-c", str(out / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), timeout_s=15, what="the broker to listen")
        granted: list[list[str]] = []
        done = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="balcony-1", protocol=mqtt.MQTTv5
        )
        client.username_pw_set(creds.username, creds.password)

        def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
            c.subscribe([("sensorpipe/ack/v1/balcony-1", 1), ("#", 1)])

        def on_subscribe(_c: object, _u: object, _m: int, reasons: list, _p: object) -> None:
            granted.append([str(r) for r in reasons])
            done.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert done.wait(15), "no SUBACK"
        client.loop_stop()
        client.disconnect()
        own, everything = granted[0]
        assert own == "Granted QoS 1"
        assert everything == ("Not authorized" if plugin else "Granted QoS 1")
        if plugin:
            # The admin account it made (and named) reaches this broker: what the ingest's
            # [broker_admin] uses to disable a quarantined device's account.
            assert "[broker_admin]" in result.stdout
            with BrokerAdmin("127.0.0.1", port, admin_credentials(out, create=False)) as admin:
                assert admin.disable("balcony-1")
                assert not admin.disable("no-such-device")
    finally:
        broker.terminate()
        broker.wait(10)


def test_written_again_it_keeps_quarantined_accounts_disabled(tmp_path: Path) -> None:
    registry = Registry()
    add_device(registry, "balcony-1", site="s")
    add_device(registry, "balcony-2", site="s")
    save_registry(registry, tmp_path / "registry.toml")
    book = QuarantineBook(tmp_path / "quarantine.sqlite")
    book.quarantine("balcony-2", reason="manual", by="test")
    book.close()
    out = tmp_path / "broker"
    argv = ["gateway", "config", "--registry", str(tmp_path / "registry.toml"), "--out", str(out)]
    argv += ["--quarantine", str(tmp_path / "quarantine.sqlite"), "--user", getpass.getuser()]
    result = subprocess.run(
        [sys.executable, "-m", "sensorpipe", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    if find_dynsec_plugin() is not None:
        clients = json.loads((out / "dynamic-security.json").read_text())["clients"]
        disabled = {c["username"]: bool(c.get("disabled")) for c in clients}
        assert disabled["balcony-2"] and not disabled["balcony-1"]
    else:  # the acl_file fallback leaves a quarantined account out of the password file
        users = {line.split(":")[0] for line in (out / "passwd").read_text().splitlines()}
        assert "balcony-1" in users and "balcony-2" not in users
