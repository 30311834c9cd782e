"""Sensirion SPS30 particulate matter sensor over I2C, through Sensirion's `sensirion-i2c-sps30`.

Float output (start measurement with 0x0300: the answer is 10 floats, 60 bytes with CRCs, read
in one plain I2C transfer: an SMBus block read stops at 32 bytes). A reading is PM1, PM2.5, PM4
and PM10 (µg/m³) and, unless the section says `number_concentrations = false`, the number
concentrations NC0.5, NC1.0, NC2.5, NC4.0 and NC10 (#/cm³: particles from 0.3 µm up to that
size, so each holds the ones before it) and the typical particle size (µm), as the quantities
`number_pm0_5` ... `number_pm10` and `particle_size_typical` (`reading_of`). A mass outside the
data sheet's 0-1000 µg/m³ refuses the reading as a sensor fault; a number concentration beyond
its 0-3000 #/cm³ is left out alone by the agent (sensirion.DATA_SHEET_RANGES says why). Fan
cleaning: the automatic interval from the configuration, and `clean_fan()` on demand. On close
the sensor stops measuring and, from firmware 2.0, sleeps; opening wakes it. The UART (SHDLC)
variant, SEL left open, is `sps30_uart.Sps30Uart` (a section with `port`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sensorpipe.edge.drivers.sensirion import (
    SPS30_MASS,
    SPS30_NUMBERS,
    SPS30_SIZE,
    SensirionDriver,
    Sps30Config,
)
from sensorpipe.edge.errors import SensorError, SensorTimeout

FLOAT_FORMAT = 0x0300
QUANTITIES = (*SPS30_MASS, *SPS30_NUMBERS, SPS30_SIZE)  # the float answer's order
# The device status register's errors (firmware 2.2 on), as Sensirion's embedded driver names them.
STATUS_ERRORS = {
    1 << 4: "fan error: the fan is switched on but not running",
    1 << 5: "laser error: the laser current is out of range",
}


def reading_of(values: Sequence[float], numbers: bool) -> dict[str, float]:
    """The float answer's ten values as a reading: PM to 0.01 µg/m³, number concentrations to
    0.01 #/cm³, the size to 0.001 µm; the last six only when `numbers`."""
    kept = QUANTITIES if numbers else SPS30_MASS
    reading = {q: round(float(v), 2) for q, v in zip(kept, values, strict=False)}
    if numbers:
        reading[SPS30_SIZE] = round(float(values[9]), 3)
    return reading


def set_cleaning_interval(call: Callable[..., Any], device: Any, wanted: int | None) -> None:
    """Write the automatic fan-cleaning interval where the configuration sets one that the
    sensor does not have (the same commands on I2C and UART; `call` maps their errors)."""
    if wanted is None:
        return
    current = call("auto-cleaning interval", device.read_auto_cleaning_interval)
    if int(current) != wanted:
        call("set auto-cleaning interval", device.write_auto_cleaning_interval, wanted)


def status_errors(status: int) -> list[str]:
    """The faults the device status register reports."""
    return [text for bit, text in STATUS_ERRORS.items() if status & bit]


class Sps30(SensirionDriver):
    model = "sps30"
    settings_model = Sps30Config
    # The bus object is given; its number only satisfies the section's bus-or-port rule.
    link_settings = (("bus", 1),)

    vendor_class = ("sensirion_i2c_sps30.device", "Sps30Device")

    def start(self, config: Any) -> None:
        self.numbers = bool(config.number_concentrations)
        # A sleeping SPS30 (firmware 2.0 on) answers nothing until woken: wake it first.
        self.call("wake-up", self._wake)
        major, minor = self.first_contact(
            "firmware version", self.device.read_firmware_version, 0.1
        )
        self.firmware = (int(major), int(minor))
        self.call("stop measurement", self.device.stop_measurement)  # left running by a crash
        set_cleaning_interval(self.call, self.device, config.fan_cleaning_interval_s)
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
            errors = status_errors(status)
            if errors:
                raise SensorError(
                    f"sps30: {'; '.join(errors)} (the sensor reports it)", kind="sensor_fault"
                )
        values = self.call("read measured values", self.device.read_measurement_values_float)
        if len(values) != len(QUANTITIES):
            raise SensorError(f"sps30: {len(values)} values in the answer, not {len(QUANTITIES)}")
        reading = reading_of(values, self.numbers)
        self.check_range(reading)
        return reading

    def clean_fan(self) -> None:
        """Run the fan at full speed for 10 s (only while measuring; readings pause)."""
        self.call("fan cleaning", self.device.start_fan_cleaning)

    def stop(self) -> None:
        self.call("stop measurement", self.device.stop_measurement)
        if self.firmware >= (2, 0):
            self.call("sleep", self.device.sleep)
