"""bench.edge's measurements, run for a few seconds so the benchmark does not rot: the real
agent subprocess (`bench.edge_agent`: `edge run` with a simulated BME280 bus, an SDS011 on a
pty) against a bare Mosquitto with `confirm = false`, and the outbox replay with its paho
baseline. The figures are not judged (timing); that each was measured, and is plausible, is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.edge import Account, bare_broker, pms_driver_cpu, readings_in, replay, steady_state
from sensorpipe.process import ManagedProcess, free_port, port_open
from sensorpipe.protocol.signing import generate_keypair


def test_readings_in_reads_the_agent_summary() -> None:
    summary = "stopping; 640 readings, 127 messages confirmed by the ingest, outbox depth 3"
    assert readings_in(summary) == (640, 127, 3)


def _steady(tmp_path: Path, seconds: float, interval_s: float, **options: Any) -> dict[str, Any]:
    """bench.edge's steady state against a bare broker, without the ingest's confirmation."""
    port = free_port()
    broker: ManagedProcess = bare_broker(tmp_path, port)
    broker.start(lambda: port_open(port))
    try:
        key, _ = generate_keypair()
        account = Account("smoke-01", key, port, "smoke-01", "x", confirm=False)
        return steady_state(account, tmp_path, seconds, interval_s, **options)
    finally:
        broker.stop()


# SDS011 2 + BME280 3 readings a sample; with the I2C sensors SHT4x 2 + SHT3x 2 + soil probe 2
# more, and the DS18B20's soil temperature.
@pytest.mark.parametrize(("i2c_sensors", "per_sample"), [(False, 5), (True, 12)])
def test_steady_state_measures_the_agent_process(
    tmp_path: Path, i2c_sensors: bool, per_sample: int
) -> None:
    result = _steady(tmp_path, seconds=4.0, interval_s=0.5, i2c_sensors=i2c_sensors)
    assert result["readings"] >= per_sample
    # Every sensor was read: the agent's log names each in its first reading. (A count that is
    # a multiple of the sensors is no proof: each sensor is read on a thread of its own, and
    # the agent may stop between two sensors' readings of a round.)
    first = next(
        line
        for line in (tmp_path / "steady.log").read_text().splitlines()
        if "first reading" in line
    )
    expected = ["sds011 (pm2_5 ", "bme280 (temperature "]
    if i2c_sensors:
        expected += [
            "sht4x (temperature ",
            "sht3x (temperature ",
            "soil_probe (soil_moisture ",
            "ds18b20 (soil_",
        ]
    assert all(name in first for name in expected), first
    assert 5 < result["rss_mb"] <= result["hwm_mb"]
    assert result["write_bytes_per_reading"] == pytest.approx(
        result["write_bytes"] / result["readings"], rel=0.01
    )


def test_replay_drains_the_outbox_and_measures_the_baseline(tmp_path: Path) -> None:
    result = replay(tmp_path, 300, timeout_s=60)
    assert result["messages"] == 300
    assert result["replay_msg_s"] > 0 and result["paho_qos1_msg_s"] > 0
    assert result["payload_bytes"] > 300  # a signed air message with five readings


def test_steady_state_with_every_driver_and_the_sensirion_cpu_per_reading(
    tmp_path: Path,
) -> None:
    """`--all-sensors`: every driver of a Pi without a camera, at once."""
    from bench.edge_sensirion import cpu_per_reading

    result = _steady(
        tmp_path, seconds=6.0, interval_s=1.0, i2c_sensors=True, sensirion=True, pms5003=True
    )
    assert 5 < result["rss_mb"] <= result["hwm_mb"]
    log = (tmp_path / "steady.log").read_text()  # the agent's log names its first reading
    for reading in (
        "sds011 (pm2_5 ",
        "pms5003 (pm1 ",
        "bme280 (temperature ",
        "sht4x (temperature ",
        "sht3x (temperature ",
        "soil_probe (soil_moisture ",
        "ds18b20 (soil_temperature ",
        "sps30 (pm1 ",
        "scd30 (co2 ",
        "scd4x (co2 ",
    ):
        assert reading in log, reading
    cpu = cpu_per_reading(n=20)
    assert set(cpu) == {"sps30", "scd30", "scd4x"} and all(v > 0 for v in cpu.values())


def test_the_agent_process_carries_no_simulator(tmp_path: Path) -> None:
    """The I2C devices are simulated in the benchmark's process, so the agent's RSS is that of
    an agent on a Pi: the remote bus answers as a real one, a NACK as errno 121."""
    from bench.edge import simulated_bus
    from bench.remote_i2c import I2CServer, RemoteI2CBus
    from sensorpipe.edge.drivers.sht import Sht4x

    server = I2CServer(simulated_bus(), tmp_path / "i2c")
    try:
        with RemoteI2CBus(str(server.path)) as bus:
            assert bus.read_byte_data(0x76, 0xD0) == 0x60  # the BME280's chip id
            reading = Sht4x(bus, 0x44).read()  # a write and a 6-byte read, CRCs checked
            assert reading["temperature"] == pytest.approx(21.5, abs=0.1)
            with pytest.raises(OSError) as nack:
                bus.write_quick(0x10)
            assert nack.value.errno == 121
    finally:
        server.close()


def test_driver_cpu_times_uart_sps30_readings() -> None:
    from bench.edge_sensirion import sps30_uart_cpu

    result = sps30_uart_cpu(20)
    assert result["reads"] == 20 and result["values_per_read"] == 10
    assert result["cpu_us_per_read"] > 0


def test_driver_cpu_times_pms5003_readings() -> None:
    result = pms_driver_cpu(20)
    assert result["reads"] == 20 and result["values_per_read"] == 9
    assert result["cpu_us_per_read"] > 0 and result["frames_bad"] == 0
