"""Sensirion SCD40 / SCD41 photoacoustic CO₂ sensor (with temperature and humidity) over I2C,
through Sensirion's `sensirion-i2c-scd4x`.

Periodic measurement (a value every 5 s); a reading polls the data-ready status, then reads
CO₂ ppm, °C and %RH. At open: stop a measurement left running (500 ms), set automatic
self-calibration and altitude, start. Those settings live in RAM and are set at every start,
never persisted (the EEPROM takes about 2000 writes). Ambient pressure from a BME280 on the same
bus is sent while measuring whenever it moved by 1 hPa or more; without one the altitude
compensates. The sensor needs 1000 ms after power-up before it answers: open waits for it.
"""

from __future__ import annotations

from typing import Any

from sensorpipe.edge.drivers.sensirion import PressureSource, Scd4xConfig, SensirionDriver
from sensorpipe.edge.errors import SensorTimeout


class Scd4x(SensirionDriver):
    """SCD40 and SCD41 alike (periodic measurement; the SCD41's single shot is not used)."""

    vendor_class = ("sensirion_i2c_scd4x.device", "Scd4xDevice")
    model, settings_model = "scd4x", Scd4xConfig
    period_s = 5.0

    def start(self, config: Any) -> None:
        self.self_calibration = config.self_calibration
        self.altitude_m = config.altitude_m
        self.pressure = PressureSource(self._bus, config.bme280_address, self.model)
        self.pressure_hpa: float | None = None
        self.first_contact("stop measurement", self.device.stop_periodic_measurement, 1.0)
        self._configure_and_start()

    def _configure_and_start(self) -> None:
        self.call(
            "set self-calibration",
            self.device.set_automatic_self_calibration_enabled,
            int(self.self_calibration),
        )
        self.call("set altitude", self.device.set_sensor_altitude, self.altitude_m)
        self.call("start measurement", self.device.start_periodic_measurement)
        self.pressure_hpa = None
        self._update_pressure()

    def _update_pressure(self) -> None:
        hpa = self.pressure.hpa()
        if hpa is None or not 700 <= hpa <= 1200:
            return
        if self.pressure_hpa is None or abs(hpa - self.pressure_hpa) >= 1.0:
            self.call("set ambient pressure", self.device.set_ambient_pressure, hpa * 100.0)
            self.pressure_hpa = hpa

    def read(self) -> dict[str, float]:
        self._update_pressure()
        if not self.wait_ready(self.device.get_data_ready_status, self.period_s + 0.5, 0.25):
            # Back from a power cut the sensor is idle: stop (harmless) and start again.
            self.call("stop measurement", self.device.stop_periodic_measurement)
            self._configure_and_start()
            raise SensorTimeout("scd4x: no new measurement for 5.5 s: measurement restarted")
        co2, temperature, humidity = self.call("read measurement", self.device.read_measurement)
        reading = {
            "co2": float(co2.value),
            "temperature": round(float(temperature.value), 2),
            "relative_humidity": round(float(humidity.value), 2),
        }
        self.check_range(reading)
        return reading

    def stop(self) -> None:
        self.call("stop measurement", self.device.stop_periodic_measurement)
