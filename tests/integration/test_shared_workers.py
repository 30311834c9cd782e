"""Several ingest workers share one stream ($share/ingest/...): killing one loses nothing."""

from __future__ import annotations

import sys
import tomllib
from functools import partial
from pathlib import Path

import pytest
import tomli_w

from ingest.influx import InfluxClient
from protocol.files import write_private
from stack.local import LocalStack
from stack.process import ManagedProcess
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import start_fleet


def _worker(stack: LocalStack, name: str) -> ManagedProcess:
    """An ingest process with an account of its own on the shared subscription."""
    base = tomllib.loads((stack.directory / "ingest" / "ingest.toml").read_text())
    password = stack.add_reader(name)
    directory = stack.directory / name
    directory.mkdir(exist_ok=True)
    config = {
        **base,
        "stats_path": str(directory / "stats.json"),
        "deadletter_path": str(directory / "deadletter.sqlite"),
        "broker": {
            **base["broker"],
            "username": name,
            "password": password,
            "shared_group": "ingest",
        },
    }
    config.pop("metrics_port", None)
    path = directory / "ingest.toml"
    write_private(path, tomli_w.dumps(config))
    return ManagedProcess(
        name,
        [sys.executable, "-m", "cli.main", "ingest", "run", "--config", str(path)],
        directory / "ingest.log",
    )


def _connected(stats: Path) -> bool:
    import json

    try:
        return bool(json.loads(stats.read_text()).get("connected"))
    except (FileNotFoundError, ValueError):
        return False


@pytest.mark.timeout(240)
def test_killing_one_of_two_workers_loses_nothing_and_doubles_nothing(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    assert stack.ingest is not None
    stack.ingest.stop()  # the stack's own (unshared) ingest steps aside
    workers = {name: _worker(stack, name) for name in ("worker-1", "worker-2")}
    for name, w in workers.items():
        w.start(partial(_connected, stack.directory / name / "stats.json"), timeout_s=30)
    creds = stack.add_devices([(f"shared-{i}", {"site": "s"}) for i in range(5)])
    fleet = start_fleet(stack, creds, tmp_path, interval_s=0.1)
    stopped = False
    try:
        wait_for(lambda: _count(influx) >= 50, what="both workers storing")
        workers["worker-1"].kill()  # SIGKILL mid-stream, with messages in flight to it
        acked = fleet.acked()
        wait_for(lambda: fleet.acked() >= acked + 100, what="the stream going on")
        workers["worker-1"].start(
            lambda: _connected(stack.directory / "worker-1" / "stats.json"), timeout_s=30
        )
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
    for name in workers:
        assert '"stored_messages": 0' not in (stack.directory / name / "stats.json").read_text()


def _count(influx: InfluxClient) -> int:
    series = influx.query("SELECT count(seq) FROM link WHERE device_id =~ /^shared-/")
    return int(series[0]["values"][0][1]) if series else 0
