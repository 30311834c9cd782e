"""Sensirion SCD30 NDIR CO₂ sensor (with temperature and humidity) over I2C, through
Sensirion's `sensirion-i2c-scd30`.

Continuous measurement at the configured interval (2 s by default); a reading polls the
data-ready flag, then reads the three floats (CO₂ ppm, °C, %RH). The interval, automatic
self-calibration and altitude live in the sensor's non-volatile memory: they are written only
when they differ from the configuration. Ambient pressure from a BME280 on the same bus is
passed with the start command (the data sheet's way to update it), again whenever it moved by
2 hPa or more; without one the altitude compensates. The SCD30 stretches the clock (up to 150 ms
once a day): on a Pi up to 4 run it on the software I2C bus (`dtoverlay=i2c-gpio`).
"""

from __future__ import annotations

from typing import Any

from sensorpipe.edge.drivers.sensirion import PressureSource, Scd30Config, SensirionDriver
from sensorpipe.edge.errors import SensorTimeout

PRESSURE_STEP_HPA = 2.0


class Scd30(SensirionDriver):
    model = "scd30"
    settings_model = Scd30Config

    vendor_class = ("sensirion_i2c_scd30.device", "Scd30Device")

    def start(self, config: Any) -> None:
        self.interval_s = config.measurement_interval_s
        self.first_contact("firmware version", self.device.read_firmware_version, 2.0)
        self._nv(
            "measurement interval",
            self.device.get_measurement_interval,
            self.device.set_measurement_interval,
            config.measurement_interval_s,
        )
        self._nv(
            "self-calibration",
            self.device.get_auto_calibration_status,
            self.device.activate_auto_calibration,
            int(config.self_calibration),
        )
        self._nv(
            "altitude",
            self.device.get_altitude_compensation,
            self.device.set_altitude_compensation,
            config.altitude_m,
        )
        self.pressure = PressureSource(self._bus, config.bme280_address, self.model)
        self.pressure_mbar = 0
        self._start(self._pressure_mbar())

    def _nv(self, what: str, get: Any, put: Any, wanted: int) -> None:
        if int(self.call(what, get)) != wanted:  # spare the sensor's flash memory
            self.call(f"set {what}", put, wanted)

    def _pressure_mbar(self) -> int:
        hpa = self.pressure.hpa()
        return 0 if hpa is None or not 700 <= hpa <= 1400 else round(hpa)

    def _start(self, mbar: int) -> None:
        self.call("start measurement", self.device.start_periodic_measurement, mbar)
        self.pressure_mbar = mbar

    def read(self) -> dict[str, float]:
        mbar = self._pressure_mbar()
        if mbar and abs(mbar - self.pressure_mbar) >= PRESSURE_STEP_HPA:
            self._start(mbar)
        if not self.wait_ready(self.device.get_data_ready, self.interval_s + 1.0, 0.1):
            self._start(self.pressure_mbar)  # back from a power cut: idle, not measuring
            raise SensorTimeout(
                f"scd30: no new measurement for {self.interval_s + 1:g} s: measurement restarted"
            )
        co2, temperature, humidity = self.call(
            "read measurement", self.device.read_measurement_data
        )
        reading = {
            "co2": round(float(co2), 1),  # float32 digits beyond the sensor's resolution
            "temperature": round(float(temperature), 2),
            "relative_humidity": round(float(humidity), 2),
        }
        self.check_range(reading)
        return reading

    def stop(self) -> None:
        self.call("stop measurement", self.device.stop_periodic_measurement)
