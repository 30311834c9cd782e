"""Several ingest workers share one stream ($share/ingest/...): killing one loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import start_fleet


@pytest.mark.timeout(240)
def test_killing_one_of_two_workers_loses_nothing_and_doubles_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    assert stack.ingest is not None
    stack.ingest.stop()  # the stack's own (unshared) ingest steps aside
    workers = {name: stack.add_worker(name) for name in ("worker-1", "worker-2")}
    for w in workers.values():
        w.start()
    creds = stack.add_devices([(f"shared-{i}", {"site": "s"}) for i in range(5)])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.1)
    stopped = False
    try:
        wait_for(lambda: _count(influx) >= 50, what="both workers storing")
        workers["worker-1"].kill()  # SIGKILL mid-stream, with messages in flight to it
        acked = fleet.acked()
        wait_for(lambda: fleet.acked() >= acked + 100, what="the stream going on")
        workers["worker-1"].start()
        left, stopped = fleet.stop(), True
        assert left == 0
        sent = fleet.queued()
        wait_for(lambda: _count(influx) == sent, timeout_s=60, what=f"{sent} messages stored")
    finally:
        if not stopped:
            fleet.stop()
        for w in workers.values():
            w.stop()
    for c in creds:
        seqs = influx.query(f"SELECT seq FROM link WHERE device_id = '{c.device_id}'")
        values = sorted(int(v[1]) for s in seqs for v in s["values"])
        assert values == list(range(1, len(values) + 1)), c.device_id  # no gap, no double
    # Both workers did part of the work.
    for w in workers.values():
        assert '"stored_messages": 0' not in w.stats_path.read_text()


def _count(influx: InfluxClient) -> int:
    series = influx.query("SELECT count(seq) FROM link WHERE device_id =~ /^shared-/")
    return int(series[0]["values"][0][1]) if series else 0
