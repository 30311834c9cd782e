"""BME280: the real driver against the register-level simulator on an smbus2-shaped bus."""

from __future__ import annotations

import pytest

from sensorpipe.edge.drivers.bme280 import Bme280
from sensorpipe.edge.errors import SensorConfigError, SensorError
from sensorpipe.firmware_sim.bme280 import Bme280Device, Trimming
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus


def _bus(device: Bme280Device, address: int = 0x76) -> SimulatedI2CBus:
    bus = SimulatedI2CBus()
    bus.attach(address, device)
    return bus


@pytest.mark.parametrize(
    ("t", "rh", "p"),
    [(21.5, 55.0, 1013.25), (-15.0, 95.0, 960.0), (38.0, 12.0, 1045.0), (0.0, 100.0, 1000.0)],
)
@pytest.mark.parametrize(
    "trimming", [Trimming(), Trimming(t1=27504, t2=26435, t3=-1000, h2=370, h4=300)]
)
def test_driver_reads_back_simulated_conditions(
    t: float, rh: float, p: float, trimming: Trimming
) -> None:
    device = Bme280Device(lambda: (t, rh, p), trimming=trimming)
    values = Bme280(_bus(device)).read()
    assert values["temperature"] == pytest.approx(t, abs=0.02)
    assert values["relative_humidity"] == pytest.approx(rh, abs=0.05)
    assert values["pressure"] == pytest.approx(p, abs=0.05)
    assert device.measurements == 1  # one forced-mode conversion per read


def test_each_read_is_a_fresh_measurement() -> None:
    temps = iter([10.0, 11.0, 12.0])
    driver = Bme280(_bus(Bme280Device(lambda: (next(temps), 50.0, 1000.0))))
    assert [round(driver.read()["temperature"], 1) for _ in range(3)] == [10.0, 11.0, 12.0]


def test_wrong_chip_names_what_it_found() -> None:
    device = Bme280Device(chip_id=0x58)
    with pytest.raises(SensorConfigError, match="BMP280"):
        Bme280(_bus(device))


def test_no_device_at_address() -> None:
    with pytest.raises(SensorConfigError, match="0x77"):
        Bme280(_bus(Bme280Device(), address=0x76), address=0x77)


def test_bus_error_during_read_is_retryable() -> None:
    device = Bme280Device()
    bus = _bus(device)
    driver = Bme280(bus)
    bus.close()  # the sensor falls off the bus (loose wire)
    with pytest.raises(SensorError, match="I2C error"):
        driver.read()


def test_skipped_measurement_is_an_error_not_a_value() -> None:
    bus = _bus(Bme280Device())
    driver = Bme280(bus)
    # The sensor resets behind the driver's back (brown-out): humidity oversampling is
    # "skipped" again and the channel reports 0x8000, which must not become a value.
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    with pytest.raises(SensorError, match="skipped"):
        driver.read()
