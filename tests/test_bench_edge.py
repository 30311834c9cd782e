"""bench.edge's measurements, run for a few seconds so the benchmark does not rot: the real
agent subprocess (`bench.edge_agent`: `edge run` with a simulated BME280 bus, an SDS011 on a
pty) against a bare Mosquitto with `confirm = false`, and the outbox replay with its paho
baseline. The figures are not judged (timing); that each was measured, and is plausible, is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.edge import Account, bare_broker, pms_driver_cpu, readings_in, replay, steady_state
from sensorpipe.process import ManagedProcess, free_port, port_open
from sensorpipe.protocol.signing import generate_keypair


def test_readings_in_reads_the_agent_summary() -> None:
    summary = "stopping; 640 readings, 127 messages confirmed by the ingest, outbox depth 3"
    assert readings_in(summary) == (640, 127, 3)


# SDS011 2 + BME280 3 readings a sample; with the I2C sensors SHT4x 2 + soil probe 2 more.
@pytest.mark.parametrize(("i2c_sensors", "per_sample"), [(False, 5), (True, 9)])
def test_steady_state_measures_the_agent_process(
    tmp_path: Path, i2c_sensors: bool, per_sample: int
) -> None:
    port = free_port()
    broker: ManagedProcess = bare_broker(tmp_path, port)
    broker.start(lambda: port_open(port))
    try:
        key, _ = generate_keypair()
        account = Account("smoke-01", key, port, "smoke-01", "x", confirm=False)
        result = steady_state(
            account, tmp_path, seconds=4.0, interval_s=0.5, i2c_sensors=i2c_sensors
        )
    finally:
        broker.stop()
    assert result["readings"] >= per_sample  # every sensor was read
    assert result["readings"] % per_sample == 0, "a sensor failed: a sample lacked readings"
    assert 5 < result["rss_mb"] <= result["hwm_mb"]
    assert result["write_bytes_per_reading"] == pytest.approx(
        result["write_bytes"] / result["readings"], rel=0.01
    )


def test_replay_drains_the_outbox_and_measures_the_baseline(tmp_path: Path) -> None:
    result = replay(tmp_path, 300, timeout_s=60)
    assert result["messages"] == 300
    assert result["replay_msg_s"] > 0 and result["paho_qos1_msg_s"] > 0
    assert result["payload_bytes"] > 300  # a signed air message with five readings


def test_driver_cpu_times_pms5003_readings() -> None:
    result = pms_driver_cpu(20)
    assert result["reads"] == 20 and result["values_per_read"] == 9
    assert result["cpu_us_per_read"] > 0 and result["frames_bad"] == 0
