"""TI ADS1115 ADC simulated at the bytes on the wire, with capacitive soil-moisture probes.

Pointer register (0 conversion, 1 config, 2/3 thresholds), 16-bit registers MSB first, config
reset value 0x8583. Writing OS = 1 starts one conversion of the selected input (MUX 100..111 =
AINx against GND) at the selected full-scale range; the config register reads OS = 0 for
`busy_reads` reads, then 1, and the conversion register holds the result (two's complement,
clipped at full scale). `wire` records each transfer.

Each input is a callable giving volts. `SoilProbe` is one: a capacitive probe whose output runs
from `v_dry` (0 % moisture) down to `v_wet` (100 %), with its faults:
- `drift_v_per_read`: dry and wet voltages creep (probe coating, temperature), so a fixed
  calibration goes stale;
- `disconnected = True`: the input floats to the rail (`rail_v`, the supply).
ADC faults: `silent = True` (no answer), `never_finishes = True` (OS never returns to 1).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

RESET_CONFIG = 0x8583
FSR_BY_CODE = {0: 6.144, 1: 4.096, 2: 2.048, 3: 1.024, 4: 0.512, 5: 0.256, 6: 0.256, 7: 0.256}


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


@dataclass
class SoilProbe:
    """Volts on an ADS1115 input for a soil moisture (0..100 % of the probe's span)."""

    moisture: Callable[[], float] = lambda: 40.0
    v_dry: float = 2.6
    v_wet: float = 1.2
    drift_v_per_read: float = 0.0
    rail_v: float = 3.3
    disconnected: bool = False

    def __call__(self) -> float:
        if self.disconnected:
            return self.rail_v
        self.v_dry += self.drift_v_per_read
        self.v_wet += self.drift_v_per_read
        return self.v_dry - (self.v_dry - self.v_wet) * self.moisture() / 100.0


class Ads1115Device:
    def __init__(
        self, inputs: dict[int, Callable[[], float]] | None = None, *, busy_reads: int = 1
    ) -> None:
        self.inputs = inputs or {}
        self.busy_reads = busy_reads
        self.silent = False
        self.never_finishes = False
        self.registers = {0: 0, 1: RESET_CONFIG, 2: 0x8000, 3: 0x7FFF}
        self.pointer = 0
        self.conversions = 0
        self._busy = 0
        self.wire: list[tuple[str, bytes]] = []

    def i2c_write(self, data: bytes) -> None:
        self.wire.append(("w", data))
        if self.silent or not data:
            raise _nack()
        self.pointer = data[0] & 0x03
        if len(data) == 3:
            value = (data[1] << 8) | data[2]
            if self.pointer == 1:
                self._configure(value)
            elif self.pointer in (2, 3):
                self.registers[self.pointer] = value

    def _configure(self, value: int) -> None:
        start = value & 0x8000
        self.registers[1] = value & 0x7FFF  # OS reads 0 while converting
        if not start:
            self.registers[1] |= 0x8000
            return
        mux = (value >> 12) & 0x07
        fsr = FSR_BY_CODE[(value >> 9) & 0x07]
        volts = self.inputs.get(mux - 4, lambda: 0.0)() if mux >= 4 else 0.0
        raw = round(volts / fsr * 32768)
        raw = max(-32768, min(32767, raw))
        self.registers[0] = raw & 0xFFFF
        self.conversions += 1
        self._busy = self.busy_reads

    def i2c_read(self, length: int) -> bytes:
        if self.silent:
            self.wire.append(("r", b""))
            raise _nack()
        value = self.registers[self.pointer]
        if self.pointer == 1 and not value & 0x8000:
            if self._busy:
                self._busy -= 1
            elif not self.never_finishes:
                self.registers[1] |= 0x8000
                value = self.registers[1]
        data = bytes([value >> 8, value & 0xFF])[:length]
        self.wire.append(("r", data))
        return data
