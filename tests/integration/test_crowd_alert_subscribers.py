"""`sensorpipe crowd alerts subscriber add|list|remove` on a running stack's real Mosquitto: the
account the command makes (its password in a 0600 file) receives an alert the ingest's kind of
account publishes, may neither publish nor read the devices' topics, is listed, and once removed
is let in no more. And the stack's own ingest process posts its webhooks on its worker: a
delivery pending at `stack down` is made after `stack up`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.alerts import Alert
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.crowd.delivery import Delivery
from sensorpipe.protocol.registry import AreaEntry, AreaLine, save_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import a_running_hour_with, require_binaries, wait_for
from tests.integration.mqtt_helpers import registered_device
from tests.integration.test_broker_tls import _connects
from tests.integration.test_crowd_alerts import Account, _count_hours
from tests.test_crowd_alert_delivery import Hook, hook  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration
ALERT = Alert("plaza", "observed", 0.7, 0.75, 1_767_229_200_000)


def _subscriber(*args: str) -> str:
    result = CliRunner().invoke(main, ["crowd", "alerts", "subscriber", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _alerts(*args: str, d: str) -> Any:
    """`crowd alerts --json` of the stack in `d`, with `args`."""
    result = CliRunner().invoke(main, ["crowd", "alerts", "--dir", d, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_subscriber_reads_the_alerts_and_nothing_else(stack: LocalStack, tmp_path: Path) -> None:
    d, port = str(stack.directory), stack.require_info().broker_port
    secret = tmp_path / "control-room.password"
    made = json.loads(
        _subscriber("add", "control-room", "--dir", d, "--password-file", str(secret), "--json")
    )
    assert secret.stat().st_mode & 0o777 == 0o600
    password = secret.read_text().strip()
    assert made["password"] is None and made["topic"] == "sensorpipe/alerts/v1/#"
    assert made["broker"] == {"host": "127.0.0.1", "port": port, "tls": False, "ca_file": None}
    line = shlex.split(made["mosquitto_sub"])
    assert line[:5] == ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)]
    assert line[line.index("-t") + 1] == "sensorpipe/alerts/v1/#"
    assert line[line.index("-u") + 1] == "control-room"
    gate = registered_device(stack, "gate-p", site="plaza")
    subscriber = Account("control-room", password, port)
    publisher = Account("alerts-worker", stack.add_reader("alerts-worker"), port)
    try:
        assert not subscriber.subscribe("sensorpipe/alerts/v1/#").is_failure
        for other in ("sensorpipe/v1/#", "sensorpipe/v1/gate-p/counter", "#"):
            assert subscriber.subscribe(other).is_failure, other
        for topic in ("sensorpipe/alerts/v1/plaza", "sensorpipe/v1/gate-p/counter"):
            with pytest.raises(AssertionError, match="Not authorized"):
                subscriber.publish(topic, b"{}")
        # A device's message, then an alert: the first (and only) message it gets is the alert.
        assert not gate.publish("sensorpipe/v1/gate-p/counter", b"{}").is_failure
        store = AlertStore(tmp_path / "alerts.sqlite")
        assert Delivery(store, publish=publisher.publish).deliver([ALERT]).published == 1
        store.close()
        got = json.loads(subscriber.messages.get(timeout=10).payload)
        assert (got["id"], got["area"], got["level"]) == (ALERT.id, "plaza", 0.75)
        assert subscriber.messages.empty()
    finally:
        for account in (subscriber, publisher):
            account.close()
        gate.close()
    listed = json.loads(_subscriber("list", "--dir", d, "--json"))
    assert listed == [{"username": "control-room", "topic": "sensorpipe/alerts/v1/#"}]
    assert _connects(port, "control-room", password, None)
    said = _subscriber("remove", "control-room", "--dir", d)
    assert said.startswith("control-room: removed from")
    assert not _connects(port, "control-room", password, None)
    assert "no alert subscribers" in _subscriber("list", "--dir", d)


@pytest.mark.timeout(240)  # up to 90 s of it waiting for the next hour
def test_a_delivery_pending_at_stack_down_is_made_after_stack_up(
    tmp_path: Path,
    hook: Hook,  # noqa: F811
) -> None:
    """The stack's own ingest raises the plaza's two alerts; the webhook refuses the first POST
    and the worker waits in its back-off (600 s) when `stack down` stops the ingest: both
    deliveries stay pending in the store (the first with its one try). After `stack up` the
    ingest's worker takes them up and the webhook, which now answers, takes both."""
    require_binaries("mosquitto", "mosquitto_passwd", "influxd")
    stack = LocalStack(tmp_path / "stack")
    d = str(stack.directory)
    (stack.directory / "ingest").mkdir(parents=True)
    (stack.directory / "ingest" / "ingest.toml").write_text(
        "[alerts]\nevery_s = 5.0\nsettle_s = 0.0\npublish = false\n"
        f'webhooks = ["http://127.0.0.1:{hook.server_address[1]}/a"]\n'
        "webhook_attempts = 3\nwebhook_backoff_s = 600.0\n"
    )
    hook.fail_first = 1000
    stack.up(detach=False, serve=False)
    try:
        # The job's first look at the area is at the hour that has ended last: the counts'
        # hour, with room for setting up to that look before the next hour ends.
        hour = a_running_hour_with(seconds_left=90)
        gate = registered_device(stack, "gate-p", site="plaza")
        try:
            _count_hours(stack, gate, hour, [95])
        finally:
            gate.close()
        # The area after its counts: the job's first look at it sees the stored hour.
        registry = stack.registry()
        registry.areas["plaza"] = AreaEntry(
            name="Plaza", kind="street", capacity=100, lines=[AreaLine(device="gate-p")]
        )
        save_registry(registry, stack.registry_path)
        wait_for(
            lambda: [p["tries"] for p in _alerts("--pending", d=d)] == [1, 0],
            what="the first delivery's failed try",
        )
    finally:
        stack.down()
    pending = _alerts("--pending", d=d)
    assert [(p["tries"], p["reason"]) for p in pending] == [
        (1, "HTTP 503 Service Unavailable"),
        (0, ""),
    ]
    assert len(hook.received) == 1
    hook.fail_first = 1  # from now on the webhook takes them
    stack.up(detach=False, serve=False)
    try:
        wait_for(lambda: not _alerts("--pending", d=d), what="both deliveries made")
    finally:
        stack.down()
    ids = [a["id"] for a in _alerts(d=d)]
    assert len(ids) == 2
    assert [r["id"] for r in hook.received] == [ids[0], ids[0], ids[1]]
    assert _alerts("--dead-letters", d=d) == []
