"""A full disk under the dead-letter store does not stop the good data (real Mosquitto, influxd
and ingest; the store on a small tmpfs, so this test needs root).

Found by a tester: with the store's disk full and one device sending bad messages, every batch
holding a reject failed three times and was split, each bad message cost seconds and stayed
unacknowledged, the broker's in-flight window filled and delivery stopped for every device;
after the disk was freed, storage stayed stalled until the ingest was restarted.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.protocol.topics import topic_for
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice, start_fleet
from tests.small_disk import fill, small_disk

BATCH_MAX = 50  # the ingest's in-flight window is 100 messages: the bad ones fill it 3 times
BAD_MESSAGES = 300
JUNK_MESSAGES = 10


def _stored(influx: InfluxClient, device_ids: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {d: [] for d in device_ids}
    for s in influx.query("SELECT seq FROM link GROUP BY device_id"):
        device = s["tags"]["device_id"]
        if device in out:
            out[device] = sorted(int(v[1]) for v in s["values"])
    return out


def _metrics(url: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(httpx.get(url).text)
        for sample in family.samples
    }


def _cli_status(stack: LocalStack, *args: str) -> str:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sensorpipe",
            "stack",
            "status",
            "--dir",
            str(stack.directory),
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _move_deadletters(stack: LocalStack, path: Path) -> None:
    """Restart the stack's ingest with its dead-letter store at `path`."""
    assert stack.ingest is not None
    stack.ingest.stop()
    config_path = stack.directory / "ingest" / "ingest.toml"
    config = tomllib.loads(config_path.read_text())
    config.update(deadletter_path=str(path), batch_max=BATCH_MAX)
    write_private(config_path, tomli_w.dumps(config))
    stack.start_ingest()


@pytest.mark.timeout(300)
def test_a_full_deadletter_disk_holds_back_only_the_rejected_messages(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", size_kib=1024) as disk:
        _move_deadletters(stack, disk / "deadletter.sqlite")
        assert stack.ingest is not None
        ingest_pid = stack.ingest.pid
        good_creds = stack.add_devices([(f"good-{i}", {"site": "g"}) for i in range(3)])
        # About the full disk, not quotas (integration/test_isolation): the bad device is
        # allowed its rate of rejected messages, and is not quarantined for them.
        bad_creds, junk_creds = stack.add_devices(
            [("bad", {"site": "b", "max_messages_per_s": 1000.0}), ("junk", {"site": "j"})]
        )
        good_ids = [c.device_id for c in good_creds]
        filler = fill(disk)

        # Good devices, real edge agents; a real edge agent whose key is not the registered
        # one (every message `bad_signature`); a plain MQTT client that sends broken JSON and
        # waits for no confirmation.
        good = start_fleet(stack, good_creds, tmp_path / "good", interval_s=0.2)
        wrong_key, _public = generate_keypair()
        bad = Fleet(
            [dataclasses.replace(bad_creds, private_key=wrong_key)],
            broker_host="127.0.0.1",
            broker_port=stack.require_info().broker_port,
            workdir=tmp_path / "bad",
            interval_s=0.05,
            status_interval_s=2.0,
            bad_frame_rate=0.0,
            confirm_timeout_s=10.0,
            sds011=False,
        )
        bad.start()
        junk = TestDevice(junk_creds, stack.require_info().broker_port)
        try:
            for _ in range(JUNK_MESSAGES):
                assert not junk.publish(topic_for("junk", "air"), b"{not json").is_failure
        finally:
            junk.close()
        full_since = time.monotonic()
        stored_before = sum(len(s) for s in _stored(influx, good_ids).values())

        def held_back() -> int:
            stats = stack.status()["components"]["ingest"]["stats"]
            return int(stats["held_back"]) if stats else 0

        wait_for(
            lambda: held_back() >= BAD_MESSAGES + JUNK_MESSAGES,
            timeout_s=120,
            what=f"{BAD_MESSAGES} bad messages held back by the ingest",
        )

        # (a) The good devices' data keeps being stored: all they had queued by now arrives
        # while the disk is still full (the old ingest fell to 0.3 messages/s, then to none).
        queued = {h.credentials.device_id: h.agent.stats.messages_queued for h in good.hosts}
        wait_for(
            lambda: all(
                _stored(influx, good_ids)[d][: queued[d]] == list(range(1, queued[d] + 1))
                for d in good_ids
            ),
            timeout_s=30,
            what="every good message queued so far stored while the disk is full",
        )
        full_for = time.monotonic() - full_since
        stored_while_full = sum(len(s) for s in _stored(influx, good_ids).values()) - stored_before
        print(
            f"\nwhile full: {stored_while_full} good messages stored in {full_for:.1f} s "
            f"({stored_while_full / full_for:.1f}/s, the devices produce "
            f"{sum(queued.values()) / full_for:.1f}/s), {held_back()} bad ones held back"
        )

        # (b) The hole is visible, and the bad messages are not confirmed to their device.
        status = stack.status()["components"]["ingest"]
        stats, deadletter = status["stats"], status["deadletter"]
        assert deadletter["available"] is False and "full" in deadletter["error"]
        assert deadletter["path"] == str(disk / "deadletter.sqlite")
        assert deadletter["held_back"] >= BAD_MESSAGES + JUNK_MESSAGES
        # The junk nobody would send again is held unacknowledged, within the bound.
        assert JUNK_MESSAGES <= deadletter["held_back_waiting"] <= BATCH_MAX // 2
        assert deadletter["left_to_sender"] > 0
        assert stats["internal_errors"] == 0  # no batch failed, retried or split
        assert stats["rejected"] == 0  # nothing pretended kept
        (bad_host,) = bad.hosts
        assert bad_host.agent.publisher.confirmed == 0 and bad_host.agent.outbox.depth() > 0
        metrics_url = stack.require_info().metrics_url
        assert metrics_url is not None
        metrics = _metrics(metrics_url)
        assert metrics["sensorpipe_ingest_deadletter_available"] == 0
        assert metrics["sensorpipe_ingest_held_back_total"] >= BAD_MESSAGES
        text = _cli_status(stack)
        assert "dead-letter store UNAVAILABLE" in text and "database or disk is full" in text
        assert "rejected messages held back, not confirmed" in text
        as_json = json.loads(_cli_status(stack, "--json"))
        assert as_json["components"]["ingest"]["deadletter"]["available"] is False

        # (c) Space returns: the store recovers without a restart; what was held is
        # dead-lettered, what the bad device sends again too, and its outbox empties.
        filler.unlink()
        wait_for(
            lambda: (
                stack.status()["components"]["ingest"]["deadletter"]["available"]
                and stack.status()["components"]["ingest"]["stats"]["held_back_waiting"] == 0
            ),
            timeout_s=30,
            what="the dead-letter store to write again and keep the held messages",
        )
        assert stack.ingest.pid == ingest_pid
        assert bad.stop() == 0, "the bad device still holds unconfirmed messages"
        assert good.stop() == 0
        assert "UNAVAILABLE" not in _cli_status(stack)

        # Nothing lost: every good message stored, every bad and broken one a dead letter.
        sent = {h.credentials.device_id: h.agent.stats.messages_queued for h in good.hosts}
        stored = _stored(influx, good_ids)
        assert {d: stored[d] for d in good_ids} == {
            d: list(range(1, sent[d] + 1)) for d in good_ids
        }
        store = DeadLetterStore(disk / "deadletter.sqlite")
        letters = store.list(limit=1_000_000)
        store.close()
        bad_seqs = {json.loads(x.payload)["seq"] for x in letters if x.code == "bad_signature"}
        assert bad_seqs == set(range(1, bad_host.agent.stats.messages_queued + 1))
        # The junk was ten times the same bytes: one letter, its repeats counting all ten.
        assert sum(x.repeats for x in letters if x.code == "malformed_json") == JUNK_MESSAGES
        assert _stored(influx, ["bad"])["bad"] == []
        final = stack.status()["components"]["ingest"]["stats"]
        assert final["internal_errors"] == 0
