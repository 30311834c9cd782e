"""Sensirion SPS30 particulate matter sensor over I2C, through Sensirion's `sensirion-i2c-sps30`.

Float output (start measurement with 0x0300: the answer is 10 floats, 60 bytes with CRCs, read
in one plain I2C transfer: an SMBus block read stops at 32 bytes). A reading is PM1, PM2.5, PM4
and PM10; the number concentrations and typical size are read but not stored. Mass values
outside the data sheet's 0-1000 µg/m³ are refused as a sensor fault. Fan cleaning: the automatic
interval from the configuration, and `clean_fan()` on demand. On close the sensor stops
measuring and, from firmware 2.0, sleeps; opening wakes it. The UART (SHDLC) variant is not
supported: wire SEL to ground for I2C.
"""

from __future__ import annotations

from typing import Any

from sensorpipe.edge.drivers.sensirion import SensirionDriver, Sps30Config
from sensorpipe.edge.errors import SensorError, SensorTimeout

FLOAT_FORMAT = 0x0300
QUANTITIES = ("pm1", "pm2_5", "pm4", "pm10")
# The device status register's errors (firmware 2.2 on), as Sensirion's embedded driver names them.
STATUS_ERRORS = {
    1 << 4: "fan error: the fan is switched on but not running",
    1 << 5: "laser error: the laser current is out of range",
}


class Sps30(SensirionDriver):
    model = "sps30"
    settings_model = Sps30Config

    vendor_class = ("sensirion_i2c_sps30.device", "Sps30Device")

    def start(self, config: Any) -> None:
        # A sleeping SPS30 (firmware 2.0 on) answers nothing until woken: wake it first.
        self.call("wake-up", self._wake)
        major, minor = self.first_contact(
            "firmware version", self.device.read_firmware_version, 0.1
        )
        self.firmware = (int(major), int(minor))
        self.call("stop measurement", self.device.stop_measurement)  # left running by a crash
        wanted = config.fan_cleaning_interval_s
        if wanted is not None:
            current = self.call("auto-cleaning interval", self.device.read_auto_cleaning_interval)
            if int(current) != wanted:
                self.call(
                    "set auto-cleaning interval", self.device.write_auto_cleaning_interval, wanted
                )
        self._start()

    def _wake(self) -> None:
        try:
            self.device.wake_up_sequence()
        except Exception:  # an awake sensor, or one not there yet: first_contact tells
            return

    def _start(self) -> None:
        self.call("start measurement", self.device.start_measurement, FLOAT_FORMAT)

    def read(self) -> dict[str, float]:
        if not self.wait_ready(self.device.read_data_ready_flag, within_s=1.5, step_s=0.1):
            # Measuring sensors have a value every second: this one lost power and is idle.
            self.call("stop measurement", self.device.stop_measurement)
            self._start()
            raise SensorTimeout("sps30: no new measurement for 1.5 s: measurement restarted")
        if self.firmware >= (2, 2):
            status = int(self.call("status register", self.device.read_device_status_register))
            errors = [text for bit, text in STATUS_ERRORS.items() if status & bit]
            if errors:
                raise SensorError(
                    f"sps30: {'; '.join(errors)} (the sensor reports it)", kind="sensor_fault"
                )
        values = self.call("read measured values", self.device.read_measurement_values_float)
        reading = {q: round(float(v), 2) for q, v in zip(QUANTITIES, values[:4], strict=True)}
        self.check_range(reading)
        return reading

    def clean_fan(self) -> None:
        """Run the fan at full speed for 10 s (only while measuring; readings pause)."""
        self.call("fan cleaning", self.device.start_fan_cleaning)

    def stop(self) -> None:
        self.call("stop measurement", self.device.stop_measurement)
        if self.firmware >= (2, 0):
            self.call("sleep", self.device.sleep)
