"""Crowding alerts end to end on a running stack (Mosquitto, ingest, InfluxDB): a counter
publishes three hours over MQTT (a street of capacity 100: levels 50 %, 75 %, 95 %), the
ingest stores them, the alert job (crowd.alertjob) runs at the end of each hour and raises 70 %
then 90 %, each once. They are published on sensorpipe/alerts/v1/plaza with a reader's account
(the rights of the ingest that runs the job) and received by a subscriber with an account of its
own that may read nothing else; POSTed to a webhook on loopback that fails its first request;
dead-lettered for one that refuses connections; and listed by `crowd alerts`, `crowd alerts
check` and /api/v1/alerts."""

from __future__ import annotations

import json
import queue
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.api.app import create_app
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.crowd.alertjob import AlertJob
from sensorpipe.crowd.alerts import AlertsConfig
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.crowd.delivery import Delivery, Webhooks
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import free_ports
from sensorpipe.protocol.messages import ClassCount
from sensorpipe.stack.local import LocalStack
from tests.helpers import (
    a_running_hour_with,
    hourly_count_message,
    influx_rows,
    require_binaries,
    stack_serve_config,
    wait_for,
)
from tests.integration.mqtt_helpers import TestDevice, registered_device
from tests.test_crowd_alert_delivery import Hook, hook  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration
FLOWS = [50, 75, 95]  # passers-by per hour, capacity 100
SETTLE_S = 120.0


class Account:
    """An MQTT client of one broker account: PUBACK and SUBACK reason codes, messages in."""

    def __init__(self, username: str, password: str, port: int) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_publish = self._acked
        self.client.on_subscribe = self._subscribed
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _acked(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()

    def _subscribed(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._acked(client, userdata, mid, codes, props)

    def _wait(self, mid: int) -> Any:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, timeout=10), "no answer"
            return self._acks.pop(mid)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish QoS 1; AssertionError unless the broker took it."""
        reason = self._wait(self.client.publish(topic, payload, qos=1).mid)
        assert not reason.is_failure, f"{topic}: {reason}"

    def subscribe(self, topic: str) -> Any:
        mid = self.client.subscribe(topic, qos=1)[1]
        assert mid is not None
        return self._wait(mid)[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _count_hours(stack: LocalStack, gate: TestDevice, hour: datetime, flows: list[int]) -> None:
    """The gate sends its passers-by of the hours before `hour`, one each, and the ingest
    stores them."""
    for seq, flow in enumerate(flows):
        counts = [ClassCount(count_class="pedestrian", direction="left_to_right", count=flow)]
        start = hour - timedelta(hours=len(flows) - seq)
        message = hourly_count_message("gate-p", seq + 1, start, counts)
        assert not gate.send(message.model_copy(update={"sent_at": hour})).is_failure
    url, database = stack.require_influx()[:2]
    with closing(InfluxClient(url, database)) as client:
        wait_for(
            lambda: len(influx_rows(client, 'SELECT * FROM "counter"')) == len(flows),
            what="the hours stored",
        )


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, ["crowd", "alerts", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_alerts_through_the_stack(stack: LocalStack, hook: Hook) -> None:  # noqa: F811
    hook.fail_first = 1
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    port = stack.require_info().broker_port
    d = str(stack.directory)
    gate = registered_device(stack, "gate-p", site="plaza")
    result = CliRunner().invoke(
        main,
        ["areas", "add", "plaza", "--dir", d, "--name", "Plaza", "--kind", "street",
         "--capacity", "100", "--line", "gate-p", "--timezone", "UTC"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    subscriber = Account("control-room", stack.add_alert_subscriber("control-room"), port)
    publisher = Account("alerts-worker", stack.add_reader("alerts-worker"), port)
    try:
        # The subscriber reads the alerts and nothing else; a device cannot publish them.
        assert not subscriber.subscribe("sensorpipe/alerts/v1/#").is_failure
        assert subscriber.subscribe("sensorpipe/v1/#").is_failure
        assert gate.publish("sensorpipe/alerts/v1/plaza", b"{}").is_failure
        with pytest.raises(AssertionError, match="Not authorized"):
            subscriber.publish("sensorpipe/alerts/v1/plaza", b"{}")
        _count_hours(stack, gate, hour, FLOWS)
        url, database = stack.require_influx()[:2]
        with closing(InfluxClient(url, database)) as client:
            (refused,) = free_ports(1)  # nothing listens there: a dead letter
            store = AlertStore(stack.directory / "ingest" / "alerts.sqlite")
            hooks = Webhooks(
                [f"http://127.0.0.1:{hook.server_address[1]}/a", f"http://127.0.0.1:{refused}/"],
                timeout_s=5.0,
                attempts=2,
                backoff_s=0.05,
            )
            clock = [0.0]
            job = AlertJob(
                AlertsConfig(settle_s=SETTLE_S),
                stack.registry_path,
                lambda: client,
                Delivery(store, publish=publisher.publish, webhooks=hooks, clock=lambda: clock[0]),
                clock=lambda: clock[0],
            )
            raised = []
            for back in (2, 1, 0, 0):  # at the end of each hour, the last one twice
                clock[0] = (hour - timedelta(hours=back)).timestamp() + SETTLE_S + 1
                raised.append(job.run_once().stored)
            store.close()
        assert raised == [0, 1, 1, 0]
        got = [json.loads(subscriber.messages.get(timeout=10).payload) for _ in range(2)]
        assert subscriber.messages.empty()
    finally:
        for account in (subscriber, publisher):
            account.close()
        gate.close()
    t70, t90 = (hour - timedelta(hours=2)).isoformat(), (hour - timedelta(hours=1)).isoformat()
    t70, t90 = t70.replace("+00:00", "Z"), t90.replace("+00:00", "Z")
    assert [(m["area"], m["kind"], m["threshold"], m["time"]) for m in got] == [
        ("plaza", "observed", 0.7, t70),
        ("plaza", "observed", 0.9, t90),
    ]
    assert got[0]["level"] == 0.75
    # The webhook failed the first POST: retried, then it took both.
    assert [r["id"] for r in hook.received] == [got[0]["id"], got[0]["id"], got[1]["id"]]
    dead = _cli("--dir", d, "--dead-letters", "--json")
    assert [(x["alert_id"], x["attempts"]) for x in dead] == [(got[0]["id"], 2), (got[1]["id"], 2)]
    assert all(x["reason"].startswith("ConnectError") for x in dead)
    # Listed: all, one area from a time; the same from the API.
    listed = _cli("--dir", d, "--json")
    assert [a["id"] for a in listed] == [m["id"] for m in got]
    assert [
        a["threshold"] for a in _cli("--dir", d, "--area", "plaza", "--from", t90, "--json")
    ] == [0.9]
    unknown = CliRunner().invoke(main, ["crowd", "alerts", "--dir", d, "--area", "elsewhere"])
    assert unknown.exit_code == 1 and "--area elsewhere: no such area in" in unknown.output
    api = TestClient(
        create_app(
            ApiContext(
                stack_serve_config(
                    stack, alerts_path=str(stack.directory / "ingest" / "alerts.sqlite")
                )
            )
        )
    )
    answer = api.get("/api/v1/alerts", params={"area": "plaza", "from": t90})
    assert answer.status_code == 200, answer.text
    assert [(a["threshold"], a["message"]) for a in answer.json()] == [
        (0.9, f"plaza: passed 90% at {t90[:10]} {t90[11:16]} UTC (level 95%)")
    ]
    both = api.get("/api/v1/alerts").json()
    assert [a["threshold"] for a in both] == [0.7, 0.9]  # oldest first
    # Over the limit, the newest: a control room polling with a limit sees the latest.
    assert [a["threshold"] for a in api.get("/api/v1/alerts", params={"limit": 1}).json()] == [0.9]
    nowhere = api.get("/api/v1/alerts", params={"area": "nowhere"})
    assert nowhere.status_code == 404 and "no area 'nowhere'" in nowhere.json()["detail"]
    assert api.get("/api/v1/alerts", params={"from": "soon"}).status_code == 400
    elsewhere = TestClient(create_app(ApiContext(stack_serve_config(stack))))
    assert elsewhere.get("/api/v1/alerts").status_code == 404  # no alerts_path
    # `check` over the past window, from a fresh state: the same two, nothing stored twice.
    checked = _cli("check", "--dir", d, "--from", (hour - timedelta(hours=3)).isoformat(),
                   "--to", hour.isoformat(), "--json")  # fmt: skip
    assert [a["id"] for a in checked] == [m["id"] for m in got]
    assert len(_cli("--dir", d, "--json")) == 2


@pytest.mark.timeout(240)  # up to 90 s of it waiting for the next hour
def test_the_running_ingest_raises_and_publishes_alerts(tmp_path: Path) -> None:
    """The stack's own ingest, with an operator's [alerts] kept across `stack up` (every 5 s,
    no settling time), raises the plaza's alerts on its schedule and publishes them with its
    own broker account to a subscriber."""
    require_binaries("mosquitto", "mosquitto_passwd", "influxd")
    stack = LocalStack(tmp_path / "stack")
    (stack.directory / "ingest").mkdir(parents=True)
    (stack.directory / "ingest" / "ingest.toml").write_text(
        "[alerts]\nevery_s = 5.0\nsettle_s = 0.0\n"
    )
    stack.up(detach=False, serve=False)
    try:
        # The job's first look at the area is at the hour that has ended last (by the
        # ingest's clock): the counts' hour, unless the next hour ends before that look
        # (setting up to the look takes seconds; 90 leaves room on a loaded machine).
        hour = a_running_hour_with(seconds_left=90)
        port = stack.require_info().broker_port
        gate = registered_device(stack, "gate-p", site="plaza")
        subscriber = Account("control-room", stack.add_alert_subscriber("control-room"), port)
        try:
            assert not subscriber.subscribe("sensorpipe/alerts/v1/#").is_failure
            _count_hours(stack, gate, hour, [95])
            # The area after its counts: the job's first look at it sees the stored hour.
            result = CliRunner().invoke(
                main,
                ["areas", "add", "plaza", "--dir", str(stack.directory), "--name", "Plaza",
                 "--kind", "street", "--capacity", "100", "--line", "gate-p", "--timezone", "UTC"],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            got = [json.loads(subscriber.messages.get(timeout=30).payload) for _ in range(2)]
        finally:
            subscriber.close()
            gate.close()
    finally:
        stack.down()
    assert [(m["area"], m["threshold"], m["level"]) for m in got] == [
        ("plaza", 0.7, 0.95),
        ("plaza", 0.9, 0.95),
    ]
    listed = _cli("--dir", str(stack.directory), "--json")
    assert [a["id"] for a in listed] == [m["id"] for m in got]
