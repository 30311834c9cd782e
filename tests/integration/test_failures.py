"""No silent loss and no double counting when parts of the pipeline die."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import Reading
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import (
    BASE_TIME,
    TestDevice,
    air_message,
    registered_device,
    start_fleet,
)


def _count(influx: InfluxClient, where: str = "") -> int:
    series = influx.query(f"SELECT count(seq) FROM link {where}")
    return int(series[0]["values"][0][1]) if series else 0


def _stored_seqs(influx: InfluxClient, device_id: str) -> list[int]:
    series = influx.query(f"SELECT seq FROM link WHERE device_id = '{device_id}'")
    return sorted(int(v[1]) for s in series for v in s["values"])


def _assert_all_stored(influx: InfluxClient, fleet: Fleet) -> None:
    """Every message each device numbered is stored, once (waits for the ingest a while)."""
    sent = {h.credentials.device_id: h.agent.stats.messages_queued for h in fleet.hosts}

    def missing() -> dict[str, int]:
        stored = {d: _stored_seqs(influx, d) for d in sent}
        return {
            d: n - len(stored[d]) for d, n in sent.items() if stored[d] != list(range(1, n + 1))
        }

    with contextlib.suppress(AssertionError):  # the assertion below says what is missing
        wait_for(lambda: not missing(), timeout_s=20, what="every message stored")
    assert missing() == {}


def test_ingest_killed_mid_run_loses_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    """SIGKILL the ingest: the broker keeps its persistent session and redelivers."""
    creds = stack.add_devices([("kill-ingest", {"site": "k"})])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.2)
    wait_for(lambda: _count(influx) >= 3, what="first messages stored")
    assert stack.ingest is not None
    stack.ingest.kill()
    acked_at_kill = fleet.acked()
    wait_for(lambda: fleet.acked() >= acked_at_kill + 10, what="messages queued in the broker")
    stack.start_ingest()
    assert fleet.stop() == 0
    queued = fleet.queued()
    wait_for(lambda: _count(influx) == queued, timeout_s=30, what=f"{queued} messages stored")
    seqs = _stored_seqs(influx, "kill-ingest")
    assert seqs == list(range(1, queued + 1))


def test_influxdb_down_holds_messages_until_it_returns(
    stack: LocalStack, influx: InfluxClient
) -> None:
    """While InfluxDB is away the ingest acknowledges nothing; afterwards all is stored."""
    device = registered_device(stack, "db-outage", site="d")
    assert stack.influxd is not None
    try:
        device.send(air_message("db-outage", 1))
        wait_for(lambda: _stored_seqs(influx, "db-outage") == [1], what="first message")
        stack.influxd.stop()
        for seq in range(2, 12):
            assert not device.send(air_message("db-outage", seq)).is_failure
        wait_for(
            lambda: stack.status()["components"]["ingest"]["stats"]["write_retries"] > 0,
            what="the ingest retrying its write against a stopped InfluxDB",
        )
        stack.influxd.process.start(influx.ping, timeout_s=60)
        wait_for(
            lambda: _stored_seqs(influx, "db-outage") == list(range(1, 12)),
            timeout_s=30,
            what="all eleven messages stored after InfluxDB returned",
        )
    finally:
        device.close()
    stats = stack.status()["components"]["ingest"]["stats"]
    assert stats["write_retries"] > 0


def test_redelivery_and_replay_do_not_double_count(stack: LocalStack, influx: InfluxClient) -> None:
    device = registered_device(stack, "replayer", site="r")
    try:
        first = air_message("replayer", 5, pm2_5=10.0)
        device.send(first)
        device.send(air_message("replayer", 6, pm2_5=11.0))
        wait_for(lambda: _stored_seqs(influx, "replayer") == [5, 6], what="two messages")
        meta = "SELECT received_at_ms, latency_ms, redelivered FROM link WHERE seq = 5"
        before = influx.query(meta)[0]["values"][0]
        time.sleep(0.05)  # a replay arrives later: a new receive time would show
        for _ in range(3):
            device.send(first)  # the same signed message again: a redelivery or a replay
        device.send(air_message("replayer", 7, pm2_5=12.0))
        wait_for(lambda: _stored_seqs(influx, "replayer") == [5, 6, 7], what="third message")
    finally:
        device.close()
    # The replays kept the first delivery's metadata; they only mark it as delivered again.
    after = influx.query(meta)[0]["values"][0]
    assert after[1:3] == before[1:3] and before[3] is False and after[3] is True
    pm = influx.query("SELECT count(pm2_5), sum(pm2_5) FROM air WHERE device_id = 'replayer'")
    assert pm[0]["values"][0][1:] == [3, 33.0]


def test_write_refused_by_influxdb_is_dead_lettered_and_the_rest_stored(
    stack: LocalStack, influx: InfluxClient
) -> None:
    """A field type conflict makes InfluxDB refuse (HTTP 400): retrying would never succeed."""
    info = stack.require_info()
    (creds,) = stack.add_devices([("conflict", {"site": "c"})])
    when_ms = int(BASE_TIME.timestamp() * 1000)
    # Someone wrote pm2_5 as text into the same shard: every float pm2_5 now conflicts.
    influx.write([f'air,device_id=other,sensor=x pm2_5="oops" {when_ms}'])
    device = TestDevice(creds, info.broker_port)
    climate_only = air_message("conflict", 2).model_copy(
        update={
            "readings": [Reading(quantity="temperature", value=4.5, unit="degC", sensor="bme280")]
        }
    )
    try:
        device.send(air_message("conflict", 1))
        device.send(climate_only)
    finally:
        device.close()
    wait_for(lambda: _stored_seqs(influx, "conflict") == [2], what="the climate-only message")
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    (letter,) = wait_for(store.list, what="the refused message as a dead letter")
    store.close()
    assert letter.code == "storage_rejected" and "conflict" in letter.detail
    assert json.loads(letter.payload)["seq"] == 1


def test_a_message_from_before_influxdbs_time_range_never_blocks_the_stream(
    stack: LocalStack, influx: InfluxClient
) -> None:
    """Regression: a signed message dated 1600 made every write fail and blocked all storage."""
    device = registered_device(stack, "time-traveller", site="t")
    ancient = datetime(1600, 1, 1, tzinfo=UTC)
    try:
        device.send(air_message("time-traveller", 1, observed_at=ancient))
        device.send(air_message("time-traveller", 2))
        device.send(air_message("time-traveller", 3))
    finally:
        device.close()
    wait_for(lambda: _stored_seqs(influx, "time-traveller") == [2, 3], what="the later messages")
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    (letter,) = wait_for(store.list, what="the dated message as a dead letter")
    store.close()
    assert letter.code == "too_old" and "1600-01-01" in letter.detail


def test_backpressure_the_ingest_holds_two_batches_while_influxdb_is_down(
    stack: LocalStack, influx: InfluxClient
) -> None:
    """With InfluxDB unreachable the ingest takes in at most two batches (MQTT 5 Receive
    Maximum: the one it writes and the next); the broker holds the rest, and nothing is lost
    once storage is back."""
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.ingest.service import IngestService

    info = stack.require_info()
    (creds,) = stack.add_devices([("pressure", {"site": "p"})])
    assert stack.ingest is not None
    stack.ingest.stop()
    config = load_ingest_config(stack.directory / "ingest" / "ingest.toml")
    dead_influx = config.influx.model_copy(update={"url": "http://127.0.0.1:9", "timeout_s": 0.5})
    config = config.model_copy(
        update={"batch_max": 10, "influx": dead_influx, "stats_path": None, "metrics_port": None}
    )
    service = IngestService(config)
    service.start()
    device = TestDevice(creds, info.broker_port)
    try:
        wait_for(lambda: service.stats.connected, what="the in-process ingest to connect")
        for seq in range(1, 201):
            device.send(air_message("pressure", seq))
        time.sleep(2.0)  # time enough to take in everything, were it not held back
        held = service.stats.received + len(service._queue)
        assert 0 < held <= 20, held
        assert service.stats.write_retries > 0 and service.stats.stored_messages == 0
    finally:
        device.close()
        service.stop()
    stack.start_ingest()  # the real ingest, with InfluxDB, gets all 200 from the broker
    wait_for(
        lambda: _stored_seqs(influx, "pressure") == list(range(1, 201)),
        timeout_s=60,
        what="all 200 stored",
    )


def test_broker_killed_during_an_influxdb_outage_loses_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    """The broker acknowledges messages before it saves them (every 5 s); SIGKILLed in between,
    it forgets them. Devices keep each entry until the ingest confirms it stored it, and send
    again what was not confirmed after reconnecting: nothing is lost, nothing doubled."""
    creds = stack.add_devices([(f"crash-{i}", {"site": "c"}) for i in range(5)])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.1)
    wait_for(lambda: _count(influx) >= 10, what="first messages stored")
    assert stack.influxd is not None and stack.broker is not None
    stack.influxd.stop()
    acked = fleet.acked()
    # The broker saves every 5 s: what it acknowledged since its last save exists only in its
    # memory (and, for those it passed on, in the ingest's, which cannot store them yet).
    wait_for(lambda: fleet.acked() >= acked + 200, what="messages the broker acknowledged")
    stack.broker.process.kill()
    stack.broker.start()
    stack.influxd.process.start(influx.ping, timeout_s=60)
    assert fleet.stop() == 0  # every outbox emptied by confirmations
    _assert_all_stored(influx, fleet)
    assert sum(h.agent.publisher.resent for h in fleet.hosts) > 0


def test_a_full_broker_queue_loses_nothing(tmp_path: Path) -> None:
    """The broker holds a bounded queue for the ingest; past it, it drops messages for the
    ingest although it acknowledged them to the device. The devices keep them until the ingest
    confirms them and send them again: all are stored once the ingest is back."""
    stack = LocalStack(tmp_path / "stack", broker_queue=20)
    stack.up(detach=False, serve=False)
    try:
        influx = InfluxClient(stack.require_info().influx_url, stack.require_info().database)
        creds = stack.add_devices([(f"flood-{i}", {"site": "f"}) for i in range(2)])
        assert stack.ingest is not None and stack.broker is not None
        stack.ingest.stop()  # away: its persistent session queues at most 20 messages
        fleet = start_fleet(stack, creds, tmp_path / "fleet", interval_s=0.1, confirm_timeout_s=3)
        wait_for(lambda: fleet.acked() >= 100, what="100 messages acknowledged by the broker")
        stack.start_ingest()
        assert fleet.stop() == 0
        _assert_all_stored(influx, fleet)
        influx.close()
    finally:
        stack.down()
    # The limit did bite (the broker's log is complete once it has stopped).
    log = (stack.directory / "broker" / "mosquitto.log").read_text()
    assert "Outgoing messages are being dropped for client ingest" in log
