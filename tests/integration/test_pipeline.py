"""End to end on real parts: Mosquitto, influxd, the ingest process, simulated devices."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.codec import canonical_bytes, encode
from sensorpipe.protocol.signing import Signer
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice, air_message, registered_device, start_fleet

SENSORPIPE = [sys.executable, "-m", "sensorpipe"]


def _link_rows(influx: InfluxClient, device_id: str) -> list[dict[str, Any]]:
    series = influx.query(f"SELECT * FROM link WHERE device_id = '{device_id}'")
    return [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]


def _seqs(influx: InfluxClient, device_id: str) -> list[int | None]:
    """The stored messages' sequence numbers (None for a row read without its seq: a point
    read while InfluxDB was still writing it, so a wait reads again)."""
    return sorted(
        (r["seq"] for r in _link_rows(influx, device_id)), key=lambda n: (n is None, n or 0)
    )


def test_simulated_reading_is_queryable_with_its_metadata(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    creds = stack.add_devices([("balcony-01", {"site": "lombok", "sensors": ["sds011", "bme280"]})])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.5)
    try:
        wait_for(lambda: len(_link_rows(influx, "balcony-01")) >= 3, what="three stored messages")
    finally:
        assert fleet.stop() == 0

    air = influx.query("SELECT * FROM air WHERE device_id = 'balcony-01' GROUP BY sensor")
    by_sensor = {
        s["tags"]["sensor"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in air
    }
    assert set(by_sensor) == {"sds011", "bme280"}
    assert by_sensor["sds011"]["site"] == "lombok"
    assert 0 < by_sensor["sds011"]["pm2_5"] < 100
    assert by_sensor["sds011"]["pm10"] >= by_sensor["sds011"]["pm2_5"]
    assert -20 < by_sensor["bme280"]["temperature"] < 40
    assert 900 < by_sensor["bme280"]["pressure"] < 1100
    # Provenance: from an edge agent, signed on the device; a tag like any other.
    assert {(r["source"], r["vouch"]) for r in by_sensor.values()} == {("edge", "device")}
    counted = [
        influx.query(f"SELECT count(pm2_5) FROM air WHERE device_id = 'balcony-01'{where}")
        for where in ("", " AND source = 'edge' AND vouch = 'device'")
    ]
    assert counted[0][0]["values"][0][1] >= 1
    assert counted[1] == counted[0]

    listed = json.loads(
        subprocess.run(
            [*SENSORPIPE, "devices", "list", "--dir", str(stack.directory), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    entry = next(d for d in listed if d["device_id"] == "balcony-01")
    assert (entry["source"], entry["vouched"], entry["data_sources"]) == (
        "edge",
        "signed on the device",
        ["edge"],
    )

    link = _link_rows(influx, "balcony-01")[0]
    assert (link["source"], link["vouch"]) == ("edge", "device")
    # What the device reported about its link ...
    assert link["firmware"].startswith("sensorpipe-edge/")
    assert link["clock_synced"] is True
    assert link["outbox_depth"] is not None and link["reconnects"] == 0
    # ... and what the pipeline observed.
    assert link["gateway"] == "local"
    assert link["received_at_ms"] >= link["sent_at_ms"] - 1000
    assert link["latency_ms"] is not None and link["redelivered"] is False
    seqs = _seqs(influx, "balcony-01")
    first = seqs[0]
    assert first is not None
    assert seqs == list(range(first, first + len(seqs)))  # no gaps on a healthy link
    gaps = [r.get("seq_gap") for r in _link_rows(influx, "balcony-01")[1:]]
    assert all(g == 0 for g in gaps), gaps


def test_invalid_message_is_dead_lettered_and_the_next_valid_one_stored(
    stack: LocalStack, influx: InfluxClient
) -> None:
    device = registered_device(stack, "kit-07", site="centrum")
    try:
        bad = air_message("kit-07", 1).model_dump(mode="json")
        bad["readings"][0]["value"] = -40.0  # negative PM: no sensor measures that
        bad["sig"] = device.signer.sign(canonical_bytes(bad))
        assert not device.publish("sensorpipe/v1/kit-07/air", json.dumps(bad).encode()).is_failure
        assert not device.send(air_message("kit-07", 2, pm2_5=33.3)).is_failure
    finally:
        device.close()

    wait_for(lambda: _seqs(influx, "kit-07") == [2], what="the valid message stored")
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    letters = wait_for(store.list, what="a dead letter")
    store.close()
    assert len(letters) == 1
    assert letters[0].code == "schema"
    assert "pm2_5" in letters[0].detail and "plausible range" in letters[0].detail
    assert json.loads(letters[0].payload)["seq"] == 1  # kept as received, for inspection
    stored = influx.query("SELECT pm2_5 FROM air WHERE device_id = 'kit-07'")
    assert stored[0]["values"][0][1] == 33.3


def test_device_cannot_publish_under_another_devices_topic(
    stack: LocalStack, influx: InfluxClient
) -> None:
    info = stack.require_info()
    mallory, alice = stack.add_devices([("mallory", {"site": "x"}), ("alice", {"site": "x"})])
    device = TestDevice(mallory, info.broker_port)
    try:
        # Even a message correctly signed by alice's key is refused on alice's topic for mallory.
        forged = air_message("alice", 1)
        reason = device.publish(
            "sensorpipe/v1/alice/air", encode(forged, Signer(alice.private_key).sign)
        )
        assert reason.is_failure and "authori" in str(reason).lower()
        # Its own topic works, so the refusal above is the ACL and not a broken account.
        assert not device.send(air_message("mallory", 1)).is_failure
    finally:
        device.close()
    wait_for(lambda: _seqs(influx, "mallory") == [1], what="mallory's own message")
    assert _link_rows(influx, "alice") == []


def test_broker_restart_mid_run_loses_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    creds = stack.add_devices([(f"restart-{i}", {"site": "r"}) for i in range(2)])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.25)
    wait_for(lambda: fleet.acked() >= 4, what="first messages acknowledged")
    assert stack.broker is not None
    stack.broker.stop()
    queued_at_stop = fleet.queued()
    wait_for(lambda: fleet.queued() >= queued_at_stop + 8, what="readings queued during outage")
    assert fleet.pending() > 0  # they wait in the outboxes on disk
    stack.broker.start()
    time.sleep(1.0)
    left = fleet.stop()
    assert left == 0
    queued = fleet.queued()
    total = lambda: sum(len(_seqs(influx, c.device_id)) for c in creds)  # noqa: E731
    wait_for(lambda: total() == queued, timeout_s=30, what=f"all {queued} messages stored")
    for c in creds:
        seqs = _seqs(influx, c.device_id)
        assert seqs == list(range(1, len(seqs) + 1)), f"{c.device_id} has gaps: {seqs}"
    backlog = influx.query("SELECT count(seq) FROM link WHERE backlog = true")
    assert backlog and backlog[0]["values"][0][1] > 0  # the outage is visible in the metadata


def test_ingest_reports_its_health_to_prometheus_and_influxdb(
    stack: LocalStack, influx: InfluxClient
) -> None:
    info = stack.require_info()
    url = info.metrics_url
    assert url is not None
    (creds,) = stack.add_devices([("healthy", {"site": "h"})])
    device = TestDevice(creds, info.broker_port)
    try:
        device.send(air_message("healthy", 1))
        device.client.publish("sensorpipe/v1/healthy/air", b"{not json", qos=1)
    finally:
        device.close()

    def scraped() -> str:
        text = httpx.get(url).text
        return (
            text if 'sensorpipe_ingest_rejected_total{reason="malformed_json"} 1.0' in text else ""
        )

    text = wait_for(scraped, what="the rejection in the metrics")
    assert "sensorpipe_ingest_stored_messages_total 1.0" in text
    assert "sensorpipe_ingest_batch_latency_seconds_count" in text
    status = wait_for(
        lambda: influx.query("SELECT stored_messages, worker FROM ingest_status"),
        what="an ingest_status point",
    )
    assert status[0]["values"][0][2] == "ingest"


def test_rejects_can_be_listed_and_replayed_after_registering_the_device(
    stack: LocalStack, influx: InfluxClient
) -> None:
    """A device that sends before it is in the registry is rejected; once registered, a
    replay stores what it sent, and only that."""
    from click.testing import CliRunner

    from sensorpipe.cli.main import main
    from sensorpipe.gateway.devices import add_device
    from sensorpipe.protocol.registry import Registry, save_registry

    info = stack.require_info()
    # Credentials made outside the registry: the broker knows the device, the ingest does not.
    scratch = Registry()
    creds = add_device(scratch, "forgotten", site="f")
    registry = stack.registry()
    registry.devices["forgotten"] = scratch.devices["forgotten"]
    # The broker account only: write the broker files, not the registry.
    stack.registrar.reload_broker(registry)
    device = TestDevice(creds, info.broker_port)
    try:
        for seq in (1, 2):
            device.send(air_message("forgotten", seq))
    finally:
        device.close()
    d = str(stack.directory)
    runner = CliRunner()

    def rejects() -> list[Any]:
        out = runner.invoke(
            main, ["ingest", "rejects", "--dir", d, "--reason", "unknown_device", "--json"]
        )
        return list(json.loads(out.output)["letters"])

    wait_for(lambda: len(rejects()) == 2, what="two rejections")
    letters = rejects()
    assert {json.loads(x["payload"])["seq"] for x in letters} == {1, 2}
    recent = runner.invoke(main, ["ingest", "rejects", "--dir", d, "--since", "10m"])
    assert "unknown_device" in recent.output
    # Replaying before the fix changes nothing.
    before = runner.invoke(main, ["ingest", "replay", "--dir", d, "--json"])
    assert json.loads(before.output) == {
        "replayed": 2,
        "stored": 0,
        "still_rejected": {"unknown_device": 2},
        "not_attempted": 0,
    }
    registry = stack.registry()
    registry.devices["forgotten"] = scratch.devices["forgotten"]
    save_registry(registry, stack.registry_path)  # the fix: the device is registered now
    after = runner.invoke(main, ["ingest", "replay", "--dir", d, "--json"])
    assert json.loads(after.output) == {
        "replayed": 2,
        "stored": 2,
        "still_rejected": {},
        "not_attempted": 0,
    }
    assert rejects() == []
    stored = influx.query("SELECT seq FROM link WHERE device_id = 'forgotten'")
    assert sorted(v[1] for v in stored[0]["values"]) == [1, 2]


def test_invented_tag_values_create_no_series(stack: LocalStack, influx: InfluxClient) -> None:
    """Regression: 300 messages with free-form sensor names invented 19,200 series."""
    from sensorpipe.protocol.messages import Reading

    device = registered_device(stack, "inventor", site="i")
    try:
        for seq in range(1, 41):
            m = air_message("inventor", seq).model_copy(
                update={
                    "readings": [
                        Reading(quantity="pm10", value=5.0, unit="ug/m3", sensor=f"s{seq}")
                    ]
                }
            )
            device.send(m)
        device.send(air_message("inventor", 41))
    finally:
        device.close()
    wait_for(lambda: influx.query("SELECT seq FROM link WHERE device_id = 'inventor'"))
    series = influx.query("SHOW SERIES FROM air WHERE device_id = 'inventor'")
    keys = [v[0] for s in series for v in s["values"]]
    assert len(keys) == 1 and "sensor=sds011" in keys[0]
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    # A batch is written before its rejects are: wait for those too.
    wait_for(lambda: store.counts_by_code().get("undeclared_sensor") == 40, what="40 dead letters")
    store.close()
