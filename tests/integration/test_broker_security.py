"""What a device, a gateway and a reader can do at a real Mosquitto with the generated security
(the dynamic security plugin, no acl_file): SUBSCRIBE refused beyond each account's own job,
100,000 refused subscriptions leave the broker's memory where it was, a disabled account is
disconnected and refused until it is enabled (also across SIGHUP), and registry changes reach
the running broker without a restart."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorpipe.gateway.broker import Broker, reload_pid
from sensorpipe.gateway.devices import DeviceCredentials, add_device, add_reader, set_ingest_account
from sensorpipe.gateway.kits.provision import GatewayCredentials, add_airrohr_kit, add_gateway
from sensorpipe.ingest.config import new_shared_group
from sensorpipe.process import free_ports
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.topics import subscription
from tests.helpers import wait_for
from tests.integration.test_broker_rules import Client

pytestmark = pytest.mark.integration

GROUP = new_shared_group()  # the ingest workers' real group name


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.registry = Registry()
        self.devices: dict[str, DeviceCredentials] = {
            d: add_device(self.registry, d, site="centrum") for d in ("dev-a", "dev-b")
        }
        self.ingest_password = set_ingest_account(self.registry)
        self.reader_password = add_reader(self.registry, "auditor")
        self.gateway: GatewayCredentials = add_gateway(self.registry, "gw1")
        self.kit = add_airrohr_kit(
            self.registry, chip_id="1234567", gateway="gw1", site="centrum"
        ).device_id
        (self.port,) = free_ports(1)
        self.directory = tmp_path / "broker"
        self.broker = Broker(self.directory, self.registry, port=self.port)

    def client(self, username: str, password: str) -> Client:
        c = Client(self.port, username, password, username)
        assert c.connected.wait(30), (username, c.refused)
        return c

    def device(self, name: str) -> Client:
        return self.client(name, self.devices[name].password)

    def reload(self, disabled: set[str] | None = None) -> Any:
        assert self.broker.process.pid is not None
        return reload_pid(
            self.broker.process.pid,
            self.directory,
            self.registry,
            disabled or set(),
            port=self.port,
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    s.broker.start()
    try:
        yield s
    finally:
        s.broker.stop()


def _granted(c: Client, topic: str) -> bool:
    (reason,) = c.subscribe(topic)
    return not reason.is_failure


SHARED = subscription(GROUP)
EVERYWHERE = ("#", "+/#", "$SYS/#", "$CONTROL/#", "$CONTROL/dynamic-security/v1/response")


def test_a_device_may_subscribe_only_to_its_own_confirmations(setup: Setup) -> None:
    dev = setup.device("dev-a")
    assert _granted(dev, "sensorpipe/ack/v1/dev-a")
    for topic in (
        *EVERYWHERE,
        SHARED,  # the workers' group, with its real name
        "$share/x/sensorpipe/ack/v1/dev-a",
        "sensorpipe/v1/+/+",
        "sensorpipe/v1/#",
        "sensorpipe/v1/dev-b/air",
        "sensorpipe/v1/dev-a/air",  # not even its own readings
        "sensorpipe/ack/v1/+",
        "sensorpipe/ack/v1/dev-b",
    ):
        assert not _granted(dev, topic), topic
    dev.close()


def test_a_gateway_and_a_reader_subscribe_only_as_their_job_needs(setup: Setup) -> None:
    gateway = setup.client("gw1", setup.gateway.password)
    for topic in (*EVERYWHERE, SHARED, f"sensorpipe/v1/{setup.kit}/+", "sensorpipe/ack/v1/+"):
        assert not _granted(gateway, topic), topic
    reader = setup.client("auditor", setup.reader_password)
    for topic in (SHARED, "sensorpipe/v1/+/+", "sensorpipe/v1/#", "sensorpipe/v1/dev-a/air"):
        assert _granted(reader, topic), topic
    for topic in (*EVERYWHERE, "sensorpipe/ack/v1/+", "sensorpipe/#", "$share/g/sensorpipe/#"):
        assert not _granted(reader, topic), topic
    # The gateway publishes for its kit and for no one else.
    assert not gateway.client.publish(f"sensorpipe/v1/{setup.kit}/air", b"k", qos=1).rc
    gateway.client.publish("sensorpipe/v1/dev-a/air", b"forged", qos=1)
    wait_for(lambda: reader.messages, timeout_s=5)
    time.sleep(0.3)
    # One copy for each of the reader's overlapping subscriptions; none forged.
    assert {m.payload for m in reader.messages} == {b"k"}
    gateway.close()
    reader.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(180)
def test_a_hundred_thousand_subscriptions_are_refused_and_cost_no_memory(setup: Setup) -> None:
    """500 SUBSCRIBE packets of 200 filters each, from a device that asks for a session that
    never expires and then leaves: before, the broker granted all 100,000 and grew by 133 MB
    for good."""
    pid = setup.broker.process.pid
    assert pid is not None
    before = _rss_kib(pid)
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-b", protocol=mqtt.MQTTv5)
    attacker.username_pw_set("dev-b", setup.devices["dev-b"].password)
    codes: list[Any] = []
    attacker.on_subscribe = lambda _c, _u, _m, reasons, _p: codes.extend(reasons)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0xFFFFFFFF  # "never"
    attacker.connect("127.0.0.1", setup.port, clean_start=False, properties=props)
    attacker.loop_start()
    wait_for(attacker.is_connected, timeout_s=5, what="the attacker connected")
    for packet in range(500):
        filters = [(f"sensorpipe/v1/dev-a/f{packet}-{i}", 1) for i in range(200)]
        attacker.subscribe(filters)
    wait_for(lambda: len(codes) >= 100_000, timeout_s=120, what="100,000 SUBACK codes")
    peak = _rss_kib(pid)
    attacker.disconnect()
    attacker.loop_stop()
    time.sleep(1.0)
    after = _rss_kib(pid)
    assert all(c.is_failure for c in codes)
    # The figures are printed for docs/guarantees.md; the bound is far below the 133 MB granted
    # subscriptions cost, and above what a few packets in flight may take.
    print(f"broker RSS: before {before} KiB, peak {peak} KiB, after {after} KiB")
    assert peak - before < 16 * 1024 and after - before < 16 * 1024
    # The ingest still reads normally.
    ingest = setup.client("ingest", setup.ingest_password)
    assert _granted(ingest, "sensorpipe/v1/+/+")
    ingest.close()


def test_a_disabled_device_is_disconnected_and_refused_until_it_is_enabled(
    setup: Setup,
) -> None:
    reader = setup.client("auditor", setup.reader_password)
    assert _granted(reader, "sensorpipe/v1/+/+")
    dev = setup.device("dev-a")
    with setup.broker.admin_client() as admin:
        assert admin.disable("dev-a") is True
        wait_for(lambda: dev.disconnects, timeout_s=5, what="dev-a disconnected")
        assert dev.disconnects[0] == "Administrative action"
        dev.close()
        # A SIGHUP (the password file re-read) changes nothing: the plugin keeps its state.
        setup.reload(disabled={"dev-a"})
        again = Client(setup.port, "dev-a", setup.devices["dev-a"].password, "dev-a")
        wait_for(lambda: again.refused, timeout_s=5, what="dev-a refused")
        assert again.refused == ["Not authorized"] and not again.connected.is_set()
        again.close()
        # Its neighbour is untouched.
        other = setup.device("dev-b")
        assert not other.client.publish("sensorpipe/v1/dev-b/air", b"b", qos=1).rc
        wait_for(lambda: reader.messages, timeout_s=5)
        other.close()
        # A kit has no broker account: nothing to disable, and no error.
        assert admin.disable(setup.kit) is False
        assert admin.enable("dev-a") is True
    back = setup.device("dev-a")
    assert _granted(back, "sensorpipe/ack/v1/dev-a")
    back.close()
    reader.close()


def test_registry_changes_reach_the_running_broker_without_a_restart(setup: Setup) -> None:
    pid = setup.broker.process.pid
    assert pid is not None
    reader = setup.client("auditor", setup.reader_password)
    assert _granted(reader, "sensorpipe/v1/+/+")
    new = add_device(setup.registry, "dev-new", site="centrum")
    kit2 = add_airrohr_kit(setup.registry, chip_id="7654321", gateway="gw1", site="x").device_id
    del setup.registry.devices["dev-b"]
    dev_b = setup.device("dev-b")
    result = setup.reload(disabled={"dev-a"})
    assert result.created == ["dev-new"] and result.deleted == ["dev-b"]
    assert result.rules_changed == ["gw1"] and result.disabled == ["dev-a"]
    assert setup.broker.process.pid == pid and setup.broker.process.running  # the same broker
    wait_for(lambda: dev_b.disconnects, timeout_s=5, what="the removed device disconnected")
    device = setup.client("dev-new", new.password)
    assert _granted(device, "sensorpipe/ack/v1/dev-new")
    assert not _granted(device, "#")
    gateway = setup.client("gw1", setup.gateway.password)
    gateway.client.publish(f"sensorpipe/v1/{kit2}/air", b"new kit", qos=1)
    device.client.publish("sensorpipe/v1/dev-new/air", b"new device", qos=1)
    wait_for(lambda: len(reader.messages) >= 2, timeout_s=5, what="both messages")
    assert sorted(m.payload for m in reader.messages) == [b"new device", b"new kit"]
    # Nothing more to change the second time.
    assert not setup.reload(disabled={"dev-a"}).changed
    os.kill(pid, signal.SIGHUP)  # and a bare SIGHUP undoes none of it
    time.sleep(0.3)
    refused = Client(setup.port, "dev-a", setup.devices["dev-a"].password, "dev-a")
    wait_for(lambda: refused.refused, timeout_s=5, what="dev-a refused")
    for c in (device, gateway, reader, refused, dev_b):
        c.close()


@pytest.mark.timeout(300)
def test_quarantine_and_lift_through_the_stack_and_across_a_restart(tmp_path: Path) -> None:
    """`devices add` while the stack runs, `devices quarantine` (kicked, refused), `stack down`
    and `up` (still refused: the generated security has it disabled), `devices lift` (back)."""
    from click.testing import CliRunner

    from sensorpipe.cli.main import main
    from sensorpipe.gateway.mosquitto import ADMIN_USERNAME
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.stack.local import LocalStack
    from tests.integration.mqtt_helpers import TestDevice, air_message

    stack = LocalStack(tmp_path / "stack")
    stack.up(detach=False, serve=False)
    cli = CliRunner()
    where = ["--dir", str(stack.directory)]
    try:
        # The ingest quarantines into the stack's book and disables with the admin account.
        config = load_ingest_config(stack.directory / "ingest" / "ingest.toml")
        assert config.quarantine_path == str(stack.quarantine_path)
        assert config.broker_admin is not None
        assert config.broker_admin.username == ADMIN_USERNAME
        port = stack.require_info().broker_port
        broker = stack.running()["mosquitto"]
        (creds,) = stack.add_devices([("dev-q", {"site": "s"})])
        assert stack.running()["mosquitto"] == broker  # no restart
        device = TestDevice(creds, port)
        assert not device.send(air_message("dev-q", 1)).is_failure
        device.close()
        watcher = Client(port, "dev-q", creds.password, "dev-q")
        assert watcher.connected.wait(30)
        assert _granted(watcher, "sensorpipe/ack/v1/dev-q") and not _granted(watcher, "#")
        out = cli.invoke(main, ["devices", "quarantine", "dev-q", *where, "--reason-text", "test"])
        assert out.exit_code == 0, out.output
        assert "quarantined dev-q (its broker account is disabled)" in out.output
        wait_for(lambda: watcher.disconnects, timeout_s=5, what="dev-q disconnected")
        watcher.close()
        (entry,) = stack.status()["quarantined"]
        assert (entry["device_id"], entry["reason"], entry["detail"]) == ("dev-q", "manual", "test")
        status = cli.invoke(main, ["stack", "status", *where])
        assert "QUARANTINED devices: 1 (`sensorpipe devices lift ID` ends it)" in status.output
        assert "dev-q" in status.output and "manual: test (by operator" in status.output
        text = cli.invoke(main, ["devices", "list", *where]).output
        assert "QUARANTINED(manual since" in text
        listed = cli.invoke(main, ["devices", "list", *where, "--json"])
        (row,) = [d for d in json.loads(listed.stdout) if d["device_id"] == "dev-q"]
        assert row["quarantine"]["reason"] == "manual"
        stack.down()
        stack.up(detach=False, serve=False)
        port = stack.require_info().broker_port
        refused = Client(port, "dev-q", creds.password, "dev-q")
        wait_for(lambda: refused.refused, timeout_s=5, what="dev-q refused after a restart")
        assert refused.refused == ["Not authorized"]
        refused.close()
        out = cli.invoke(main, ["devices", "lift", "dev-q", *where])
        assert out.exit_code == 0, out.output
        assert "lifted the quarantine of dev-q (manual since" in out.output
        assert "its broker account is enabled" in out.output
        back = TestDevice(creds, port)
        assert not back.send(air_message("dev-q", 2)).is_failure
        back.close()
        assert stack.status()["quarantined"] == []
    finally:
        stack.down()


def test_two_admin_connections_at_once_never_take_the_id_from_each_other_for_good(
    setup: Setup,
) -> None:
    """The ingest disabling a device while an operator lifts another: the broker lets one
    admin connection per user name, so one call may fail (and says so); neither reconnects
    behind its caller's back, and the next calls work."""
    import threading

    from sensorpipe.gateway.brokeradmin import ATTEMPTS, BrokerAdminError

    outcomes: list[str] = []

    def toggle(device: str) -> None:
        admin = setup.broker.admin_client(timeout_s=5)
        for _ in range(20):
            try:
                admin.disable(device)
                admin.enable(device)
                outcomes.append("done")
            except BrokerAdminError as exc:
                outcomes.append(str(exc))

    threads = [threading.Thread(target=toggle, args=(d,)) for d in ("dev-a", "dev-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 40
    # Each call is tried again after a take-over; one that still failed says so.
    failed = [o for o in outcomes if o != "done"]
    assert all("admin connection was lost" in o for o in failed), failed
    print(f"{len(failed)} of 40 disable+enable pairs failed after {ATTEMPTS} attempts")
    with setup.broker.admin_client() as admin:
        admin.sync(setup.registry)  # enables one whose enable call failed
        assert not admin.sync(setup.registry).changed  # nothing astray
    for name in ("dev-a", "dev-b"):
        setup.device(name).close()


def test_a_lift_the_broker_did_not_confirm_stays_pending_shown_and_retried(
    tmp_path: Path,
) -> None:
    """`devices lift` while the broker cannot answer (stopped with SIGSTOP): the book is lifted
    but the account is still disabled, so the lift stays pending: the command fails saying so,
    `stack status` and `devices list` show it, a second `devices lift` tries again instead of
    finding nothing to lift, and once the broker answers the ingest enables the account and
    ends the lift; the device is let in."""
    from click.testing import CliRunner

    from sensorpipe.cli.main import main
    from sensorpipe.protocol.quarantine import QuarantineBook
    from sensorpipe.stack.local import LocalStack
    from tests.integration.mqtt_helpers import TestDevice, air_message

    stack = LocalStack(tmp_path / "stack")
    stack.up(detach=False, serve=False)
    cli = CliRunner()
    where = ["--dir", str(stack.directory)]
    (broker_pid,) = stack.running()["mosquitto"]
    stopped = False
    try:
        port = stack.require_info().broker_port
        (creds,) = stack.add_devices([("dev-p", {"site": "s"})])
        out = cli.invoke(main, ["devices", "quarantine", "dev-p", *where])
        assert "its broker account is disabled" in out.output, out.output
        os.kill(broker_pid, signal.SIGSTOP)
        stopped = True
        out = cli.invoke(main, ["devices", "lift", "dev-p", *where])
        assert out.exit_code == 1, out.output
        assert "lifted in the book, but its broker account is still disabled" in out.output
        assert "the lift stays pending" in out.output and "Traceback" not in out.output
        status = stack.status()
        assert status["quarantined"] == []
        (pending,) = status["pending_lifts"]
        assert pending["device_id"] == "dev-p" and pending["attempts"] >= 1
        shown = cli.invoke(main, ["stack", "status", *where]).output
        assert "LIFT PENDING for 1 device" in shown and "dev-p" in shown
        assert "LIFT-PENDING(since" in cli.invoke(main, ["devices", "list", *where]).output
        again = cli.invoke(main, ["devices", "lift", "dev-p", *where])
        assert again.exit_code == 1, again.output
        assert "nothing to lift" not in again.output
        assert "still disabled" in again.output
        os.kill(broker_pid, signal.SIGCONT)
        stopped = False
        # Nobody lifts again: the ingest's retry enables the account and ends the lift.
        wait_for(lambda: not stack.pending_lifts(), timeout_s=60, what="the ingest's retry")
        book = QuarantineBook(stack.quarantine_path)
        (enabled, *_rest) = book.events(device_id="dev-p")
        book.close()
        assert enabled.event == "enabled" and enabled.by.startswith("ingest")
        back = TestDevice(creds, port)
        assert not back.send(air_message("dev-p", 1)).is_failure
        back.close()
        assert "LIFT PENDING" not in cli.invoke(main, ["stack", "status", *where]).output
    finally:
        if stopped:
            os.kill(broker_pid, signal.SIGCONT)
        stack.down()
