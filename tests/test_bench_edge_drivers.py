"""bench.edge_drivers measures each I2C driver's CPU per reading against its simulator: every
driver was read, every read gave its quantities, and the figures are plausible (not judged);
bench.edge's steady state with `--i2c-sensors` reads the SHT4x and the soil probe too."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.edge import Account, bare_broker, steady_state
from bench.edge_drivers import CASES, driver_cpu, report
from sensorpipe.process import ManagedProcess, free_port, port_open
from sensorpipe.protocol.signing import generate_keypair


def test_each_driver_is_measured_with_the_bme280_as_baseline() -> None:
    result = driver_cpu(reads=5)
    assert set(result) == set(CASES) >= {"bme280", "sht3x", "sht4x", "soil_ads1115"}
    for figures in result.values():
        assert figures["reads"] == 5
        assert figures["cpu_us_per_read"] >= figures["cpu_us_per_reading"] > 0
    # An SHT read yields two readings, the soil probe two (moisture and voltage), BME280 three.
    sht = result["sht4x"]
    assert sht["cpu_us_per_read"] / sht["cpu_us_per_reading"] == pytest.approx(2, rel=0.05)
    lines = report(result)
    assert len(lines) == 1 + len(CASES) and "(baseline)" in lines[1]


def test_steady_state_with_the_i2c_sensors_reads_them_all(tmp_path: Path) -> None:
    port = free_port()
    broker: ManagedProcess = bare_broker(tmp_path, port)
    broker.start(lambda: port_open(port))
    try:
        key, _ = generate_keypair()
        account = Account("smoke-02", key, port, "smoke-02", "x", confirm=False)
        result = steady_state(account, tmp_path, seconds=4.0, interval_s=0.5, i2c_sensors=True)
    finally:
        broker.stop()
    # SDS011 2 + BME280 3 + SHT4x 2 + soil probe 2 readings a sample
    assert result["readings"] >= 9 and result["readings"] % 9 == 0, result
    assert 5 < result["rss_mb"] <= result["hwm_mb"]
