"""bench.edge_drivers measures each I2C driver's CPU per reading against its simulator: every
driver was read, every read gave its quantities, and the figures are plausible (not judged)
(bench.edge's steady state with `--i2c-sensors`: tests/test_bench_edge.py)."""

from __future__ import annotations

import pytest

from bench.edge_drivers import CASES, driver_cpu, report


def test_each_driver_is_measured_with_the_bme280_as_baseline() -> None:
    result = driver_cpu(reads=5)
    assert set(result) == {*CASES, "ds18b20"} >= {"bme280", "sht3x", "sht4x", "soil_ads1115"}
    for figures in result.values():
        assert figures["reads"] == 5
        assert figures["cpu_us_per_read"] >= figures["cpu_us_per_reading"] > 0
    # An SHT read yields two readings, the soil probe two (moisture and voltage), BME280 three.
    sht = result["sht4x"]
    assert sht["cpu_us_per_read"] / sht["cpu_us_per_reading"] == pytest.approx(2, rel=0.05)
    lines = report(result)
    assert len(lines) == 2 + len(CASES) and "(baseline)" in lines[1]
    # The DS18B20 (1-Wire): one soil temperature a read, conversion written by its simulator.
    ds = result["ds18b20"]
    assert ds["cpu_us_per_read"] == ds["cpu_us_per_reading"] > 0
    assert lines[-1].startswith("  ds18b20 ")
