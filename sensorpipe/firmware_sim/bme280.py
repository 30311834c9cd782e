"""Bosch BME280 (temperature, humidity, pressure) simulated at register level.

Register map as in the datasheet: chip id 0xD0 = 0x60, reset 0xE0 (write 0xB6), ctrl_hum
0xF2, status 0xF3, ctrl_meas 0xF4, config 0xF5, burst data 0xF7..0xFE, trimming parameters
0x88..0xA1 and 0xE1..0xE7. The raw ADC values it reports are found by inverting the
datasheet's floating-point compensation formulas (section 8.1), so a driver using the integer
formulas (section 4.2.3) reads back the simulated conditions within rounding.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

CHIP_ID = 0x60
REG_CHIP_ID, REG_RESET, REG_CTRL_HUM, REG_STATUS = 0xD0, 0xE0, 0xF2, 0xF3
REG_CTRL_MEAS, REG_CONFIG, REG_DATA = 0xF4, 0xF5, 0xF7
RESET_WORD = 0xB6


@dataclass(frozen=True, slots=True)
class Trimming:
    """Factory calibration; defaults are typical values read from real parts."""

    t1: int = 28006
    t2: int = 26575
    t3: int = 50
    p1: int = 36477
    p2: int = -10685
    p3: int = 3024
    p4: int = 2855
    p5: int = 140
    p6: int = -7
    p7: int = 15500
    p8: int = -14600
    p9: int = 6000
    h1: int = 75
    h2: int = 362
    h3: int = 0
    h4: int = 313
    h5: int = 50
    h6: int = 30

    def registers(self) -> dict[int, int]:
        low = struct.pack(
            "<HhhHhhhhhhhhB",
            self.t1,
            self.t2,
            self.t3,
            self.p1,
            self.p2,
            self.p3,
            self.p4,
            self.p5,
            self.p6,
            self.p7,
            self.p8,
            self.p9,
            self.h1,
        )
        # 0x88..0x9F are 24 bytes; 0xA0 is unused; H1 sits at 0xA1.
        regs = {0x88 + i: b for i, b in enumerate(low[:24])}
        regs[0xA0] = 0
        regs[0xA1] = low[24]
        e4 = (self.h4 >> 4) & 0xFF
        e5 = (self.h4 & 0x0F) | ((self.h5 & 0x0F) << 4)
        e6 = (self.h5 >> 4) & 0xFF
        high = (
            struct.pack("<hB", self.h2, self.h3) + bytes([e4, e5, e6]) + struct.pack("<b", self.h6)
        )
        regs.update({0xE1 + i: b for i, b in enumerate(high)})
        return regs


def _t_fine(adc_t: float, c: Trimming) -> float:
    var1 = (adc_t / 16384.0 - c.t1 / 1024.0) * c.t2
    var2 = (adc_t / 131072.0 - c.t1 / 8192.0) ** 2 * c.t3
    return var1 + var2


def _pressure_pa(adc_p: float, t_fine: float, c: Trimming) -> float:
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * c.p6 / 32768.0
    var2 = var2 + var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var1 = (c.p3 * var1 * var1 / 524288.0 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c.p9 * p * p / 2147483648.0
    var2 = p * c.p8 / 32768.0
    return p + (var1 + var2 + c.p7) / 16.0


def _humidity(adc_h: float, t_fine: float, c: Trimming) -> float:
    h = t_fine - 76800.0
    h = (adc_h - (c.h4 * 64.0 + c.h5 / 16384.0 * h)) * (
        c.h2 / 65536.0 * (1.0 + c.h6 / 67108864.0 * h * (1.0 + c.h3 / 67108864.0 * h))
    )
    h = h * (1.0 - c.h1 * h / 524288.0)
    return max(0.0, min(100.0, h))


def _invert(f: Callable[[int], float], target: float, hi: int, increasing: bool) -> int:
    lo_i, hi_i = 0, hi
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        below = f(mid) < target if increasing else f(mid) > target
        if below:
            lo_i = mid + 1
        else:
            hi_i = mid
    return lo_i


class Bme280Device:
    """Register file plus the measurement engine. `read_conditions` gives (degC, %RH, hPa)."""

    def __init__(
        self,
        read_conditions: Callable[[], tuple[float, float, float]] = lambda: (21.5, 55.0, 1013.25),
        trimming: Trimming | None = None,
        chip_id: int = CHIP_ID,
    ) -> None:
        self.chip_id = chip_id
        self.read_conditions = read_conditions
        self.trimming = trimming or Trimming()
        self.measurements = 0
        self._measuring_reads = 0
        self._regs = [0] * 256
        self._power_on()

    def _power_on(self) -> None:
        self._regs = [0] * 256
        for reg, value in self.trimming.registers().items():
            self._regs[reg] = value
        self._regs[REG_CHIP_ID] = self.chip_id
        # Data registers hold the "skipped" values until the first measurement.
        self._regs[0xF7:0xFF] = [0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00]

    def read_register(self, register: int) -> int:
        if register == REG_STATUS:
            if self._measuring_reads:
                self._measuring_reads -= 1
                return 0x08  # measuring
            return 0x00
        if register == REG_RESET:
            return 0x00
        if register == REG_DATA and (self._regs[REG_CTRL_MEAS] & 0x03) == 0x03:
            self._measure()  # normal mode: a fresh result for every burst read
        return self._regs[register]

    def write_register(self, register: int, value: int) -> None:
        if register == REG_RESET:
            if value == RESET_WORD:
                self._power_on()
            return
        if register in (REG_CTRL_HUM, REG_CONFIG):
            self._regs[register] = value
        elif register == REG_CTRL_MEAS:
            self._regs[register] = value
            if value & 0x03 in (0x01, 0x02):  # forced mode: one measurement, then sleep
                self._measure()
                self._measuring_reads = 1
                self._regs[REG_CTRL_MEAS] = value & 0xFC
        # Calibration and id registers are read-only; writes to them are ignored.

    def _measure(self) -> None:
        self.measurements += 1
        temperature, humidity, pressure_hpa = self.read_conditions()
        c = self.trimming
        osrs_t = (self._regs[REG_CTRL_MEAS] >> 5) & 0x07
        osrs_p = (self._regs[REG_CTRL_MEAS] >> 2) & 0x07
        osrs_h = self._regs[REG_CTRL_HUM] & 0x07
        adc_t = _invert(lambda a: _t_fine(a, c) / 5120.0, temperature, (1 << 20) - 1, True)
        t_fine = _t_fine(adc_t, c)
        adc_p = _invert(
            lambda a: _pressure_pa(a, t_fine, c) / 100.0, pressure_hpa, (1 << 20) - 1, False
        )
        adc_h = _invert(lambda a: _humidity(a, t_fine, c), humidity, (1 << 16) - 1, True)
        if not osrs_t:
            adc_t = 0x80000
        if not osrs_p:
            adc_p = 0x80000
        if not osrs_h:
            adc_h = 0x8000
        self._regs[0xF7:0xFF] = [
            (adc_p >> 12) & 0xFF,
            (adc_p >> 4) & 0xFF,
            (adc_p & 0x0F) << 4,
            (adc_t >> 12) & 0xFF,
            (adc_t >> 4) & 0xFF,
            (adc_t & 0x0F) << 4,
            (adc_h >> 8) & 0xFF,
            adc_h & 0xFF,
        ]
