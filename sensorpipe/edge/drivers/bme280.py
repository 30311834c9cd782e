"""Bosch BME280 temperature / humidity / pressure sensor over I2C.

Forced mode, oversampling x1 everywhere, filter off: the weather-monitoring settings the
datasheet recommends (section 3.5.1) for one reading a minute. Compensation uses the
datasheet's integer formulas (section 4.2.3).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Protocol

from sensorpipe.edge.errors import SensorConfigError, SensorError, SensorIOError, SensorTimeout

CHIP_ID_BME280, CHIP_ID_BMP280 = 0x60, 0x58
REG_CHIP_ID, REG_RESET, REG_CTRL_HUM, REG_STATUS = 0xD0, 0xE0, 0xF2, 0xF3
REG_CTRL_MEAS, REG_CONFIG, REG_DATA = 0xF4, 0xF5, 0xF7
FORCED_X1 = (1 << 5) | (1 << 2) | 0x01  # osrs_t x1, osrs_p x1, forced mode


class I2CBus(Protocol):
    """The part of `smbus2.SMBus` the driver uses."""

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class Calibration:
    t1: int
    t2: int
    t3: int
    p: tuple[int, ...]  # dig_P1..dig_P9
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    @classmethod
    def from_registers(cls, low: bytes, high: bytes) -> Calibration:
        """`low` is 0x88..0xA1 (26 bytes), `high` is 0xE1..0xE7 (7 bytes)."""
        t1, t2, t3, *p = struct.unpack_from("<HhhHhhhhhhhh", low, 0)
        h1 = low[25]
        h2, h3 = struct.unpack_from("<hB", high, 0)
        e4, e5, e6 = struct.unpack_from("<bBb", high, 3)
        h4 = (e4 << 4) | (e5 & 0x0F)
        h5 = (e6 << 4) | (e5 >> 4)
        h6 = struct.unpack_from("<b", high, 6)[0]
        return cls(t1, t2, t3, tuple(p), h1, h2, h3, h4, h5, h6)


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero), as the datasheet code assumes."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def compensate(adc_t: int, adc_p: int, adc_h: int, c: Calibration) -> tuple[float, float, float]:
    """(degC, hPa, %RH) from raw ADC values, datasheet section 4.2.3."""
    var1 = (((adc_t >> 3) - (c.t1 << 1)) * c.t2) >> 11
    var2 = (((((adc_t >> 4) - c.t1) * ((adc_t >> 4) - c.t1)) >> 12) * c.t3) >> 14
    t_fine = var1 + var2
    temperature = ((t_fine * 5 + 128) >> 8) / 100.0

    p1, p2, p3, p4, p5, p6, p7, p8, p9 = c.p
    v1 = t_fine - 128000
    v2 = v1 * v1 * p6
    v2 = v2 + ((v1 * p5) << 17)
    v2 = v2 + (p4 << 35)
    v1 = ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)
    v1 = (((1 << 47) + v1) * p1) >> 33
    if v1 == 0:
        raise SensorError("bme280: pressure compensation divided by zero (bad calibration)")
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - v2) * 3125, v1)
    v1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    v2 = (p8 * p) >> 19
    pressure = (((p + v1 + v2) >> 8) + (p7 << 4)) / 256.0 / 100.0

    v = t_fine - 76800
    scale = (
        (((((v * c.h6) >> 10) * (((v * c.h3) >> 11) + 32768)) >> 10) + 2097152) * c.h2 + 8192
    ) >> 14
    h = ((((adc_h << 14) - (c.h4 << 20) - (c.h5 * v)) + 16384) >> 15) * scale
    h = h - (((((h >> 15) * (h >> 15)) >> 7) * c.h1) >> 4)
    h = max(0, min(h, 419430400))
    humidity = (h >> 12) / 1024.0
    return temperature, pressure, humidity


class Bme280:
    model = "bme280"
    frames_bad = 0  # I2C has no framing to get wrong; bus errors raise instead

    def __init__(self, bus: I2CBus, address: int = 0x76, *, owns_bus: bool = False) -> None:
        self._bus = bus
        self._address = address
        self._owns_bus = owns_bus
        try:
            chip_id = bus.read_byte_data(address, REG_CHIP_ID)
        except OSError as exc:
            raise SensorConfigError(
                f"bme280: no device answers at I2C address 0x{address:02x} ({exc})",
                kind="timeout",
            ) from exc
        if chip_id != CHIP_ID_BME280:
            hint = (
                " (that is a BMP280, which has no humidity sensor)"
                if chip_id == CHIP_ID_BMP280
                else ""
            )
            raise SensorConfigError(
                f"bme280: chip id 0x{chip_id:02x} at 0x{address:02x}, expected 0x60{hint}",
                kind="wrong_model",
            )
        bus.write_byte_data(address, REG_RESET, 0xB6)
        time.sleep(0.002)  # start-up time after reset: 2 ms
        low = bytes(bus.read_i2c_block_data(address, 0x88, 26))
        high = bytes(bus.read_i2c_block_data(address, 0xE1, 7))
        self.calibration = Calibration.from_registers(low, high)
        bus.write_byte_data(address, REG_CTRL_HUM, 0x01)  # takes effect with the next ctrl_meas
        bus.write_byte_data(address, REG_CONFIG, 0x00)

    @classmethod
    def open(cls, bus_number: int, address: int = 0x76) -> Bme280:
        from smbus2 import SMBus

        try:
            bus = SMBus(bus_number)
        except OSError as exc:
            raise SensorConfigError(f"bme280: cannot open /dev/i2c-{bus_number}: {exc}") from exc
        return cls(bus, address, owns_bus=True)

    def read(self) -> dict[str, float]:
        try:
            self._bus.write_byte_data(self._address, REG_CTRL_MEAS, FORCED_X1)
            deadline = time.monotonic() + 0.1  # max conversion time at x1 is under 10 ms
            while self._bus.read_byte_data(self._address, REG_STATUS) & 0x08:
                if time.monotonic() > deadline:
                    raise SensorTimeout("bme280: measurement did not finish within 100 ms")
                time.sleep(0.002)
            raw = self._bus.read_i2c_block_data(self._address, REG_DATA, 8)
        except OSError as exc:
            raise SensorIOError(f"bme280: I2C error: {exc}") from exc
        adc_p = (raw[0] << 12) | (raw[1] << 4) | (raw[2] >> 4)
        adc_t = (raw[3] << 12) | (raw[4] << 4) | (raw[5] >> 4)
        adc_h = (raw[6] << 8) | raw[7]
        if adc_t == 0x80000 or adc_p == 0x80000 or adc_h == 0x8000:
            raise SensorError("bme280: measurement skipped (sensor reset or not configured)")
        temperature, pressure, humidity = compensate(adc_t, adc_p, adc_h, self.calibration)
        return {"temperature": temperature, "relative_humidity": humidity, "pressure": pressure}

    def close(self) -> None:
        if self._owns_bus:
            close = getattr(self._bus, "close", None)
            if close is not None:
                close()
