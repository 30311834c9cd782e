"""TI ADS1115 16-bit ADC over I2C, and a capacitive soil-moisture probe on one of its inputs.

Our own driver, not Adafruit's `adafruit-circuitpython-ads1x15`: that one pulls in Blinka and
about twenty packages, and in single-shot mode it waits for the conversion with no time limit
(`while not self._conversion_complete(): pass`), so an ADC that never finishes hangs the agent.
Here a conversion is one config write, a bounded poll of the OS bit and one conversion read, all
SMBus block transfers (pointer byte, then two bytes MSB first) that `smbus2` does as they are.

Config register (TI SBAS444): OS (bit 15, write 1 = start, read 1 = idle), MUX (14:12,
100..111 = AIN0..AIN3 against GND), PGA (11:9), MODE (8, 1 = single shot), DR (7:5), comparator
off (COMP_QUE 11). V = raw * FSR / 32768. AIN0, ±4.096 V, 128 SPS single shot writes
`01 C3 83`.

The soil probe: a capacitive probe's output falls as the soil gets wetter. Each probe is
calibrated with its own dry and wet voltages (`v_dry`, `v_wet` in the config):
soil_moisture = (v_dry - V) / (v_dry - v_wet) * 100, cropped to 0..100. Calibrated in air and
water that is a relative index (% of the probe's dry-to-wet span), not volumetric water content;
it approaches volumetric % only when v_dry/v_wet are taken in dry and saturated soil of that bed.
The raw voltage is stored beside it (`soil_probe_voltage`), so readings can be recomputed when a
probe is calibrated again. A voltage near the ADC's rail or near 0 V is a disconnected,
unpowered or shorted probe (`SensorError` of kind "disconnected"); one well past its calibration
is cropped and `note` says the probe has drifted. A conversion that never finishes and a NACK
raise `SensorTimeout`, another bus error `SensorIOError`; an ADS1115 that does not answer at open
`SensorConfigError` of kind "timeout".
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from sensorpipe.edge.errors import (
    NO_ANSWER_ERRNOS,
    SensorConfigError,
    SensorError,
    SensorTimeout,
    i2c_error,
)

REG_CONVERSION, REG_CONFIG = 0x00, 0x01
FSR_V = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100, 0.256: 0b101}
DATA_RATES = {8: 0b000, 16: 0b001, 32: 0b010, 64: 0b011, 128: 0b100, 250: 0b101, 475: 0b110,
              860: 0b111}  # fmt: skip
ADS1115_ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)
OS_START, MODE_SINGLE, COMP_OFF = 1 << 15, 1 << 8, 0b11
DRIFT_V = 0.05  # how far past v_dry/v_wet a reading goes before the note says "recalibrate"
NEAR_ZERO_V = 0.05
POLLS_BEFORE_GIVING_UP = 3


class SMBusBlock(Protocol):
    """The part of `smbus2.SMBus` this driver uses."""

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None: ...


def config_word(channel: int, fsr_v: float, data_rate: int) -> int:
    """The config register value that starts one single-ended conversion of `channel`."""
    return (
        OS_START
        | ((0b100 + channel) << 12)
        | (FSR_V[fsr_v] << 9)
        | MODE_SINGLE
        | (DATA_RATES[data_rate] << 5)
        | COMP_OFF
    )


# One conversion at a time per chip. The agent reads each sensor in a thread of its own, and two
# probes on one ADS1115 (AIN0 and AIN1: `soil_probe` and `soil_probe.bed2`) would otherwise
# restart each other's conversion and read each other's input. Keyed by (bus number, address):
# each probe opens the bus itself.
_CHIP_LOCKS: dict[tuple[int, int], threading.Lock] = {}
_CHIP_LOCKS_GUARD = threading.Lock()


def chip_lock(bus_number: int, address: int) -> threading.Lock:
    """The lock every driver of the ADS1115 at `address` on bus `bus_number` converts under."""
    with _CHIP_LOCKS_GUARD:
        return _CHIP_LOCKS.setdefault((bus_number, address), threading.Lock())


class Ads1115:
    def __init__(
        self,
        bus: SMBusBlock,
        address: int = 0x48,
        *,
        fsr_v: float = 4.096,
        data_rate: int = 128,
        lock: threading.Lock | None = None,
    ) -> None:
        self._bus = bus
        self._lock = lock if lock is not None else threading.Lock()
        self.address = address
        self.fsr_v = fsr_v
        self.data_rate = data_rate
        # A conversion takes 1/DR; allow twice that plus the bus's own latency.
        self.timeout_s = 2.0 / data_rate + 0.02

    def read_voltage(self, channel: int) -> float:
        """One single-shot conversion of AINx against GND, in volts; OSError on a bus fault.
        Under the chip's lock: another input's conversion is never started meanwhile."""
        with self._lock:
            return self._convert(channel)

    def _convert(self, channel: int) -> float:
        word = config_word(channel, self.fsr_v, self.data_rate)
        self._bus.write_i2c_block_data(self.address, REG_CONFIG, [word >> 8, word & 0xFF])
        deadline = time.monotonic() + self.timeout_s
        time.sleep(1.0 / self.data_rate)
        polls = 0
        while True:
            msb, lsb = self._bus.read_i2c_block_data(self.address, REG_CONFIG, 2)
            polls += 1
            if msb & 0x80:  # OS reads 1: no conversion in progress
                break
            # Past the deadline and asked a few times: a process descheduled for longer than
            # the conversion takes must not count as a stuck ADC.
            if polls >= POLLS_BEFORE_GIVING_UP and time.monotonic() > deadline:
                raise SensorTimeout(
                    f"ads1115: conversion did not finish within {self.timeout_s * 1000:.0f} ms "
                    f"(config reads {msb:02x}{lsb:02x})"
                )
            time.sleep(0.001)
        msb, lsb = self._bus.read_i2c_block_data(self.address, REG_CONVERSION, 2)
        raw = (msb << 8) | lsb
        if raw & 0x8000:
            raw -= 1 << 16
        return raw * self.fsr_v / 32768.0


class SoilProbe:
    """A capacitive soil-moisture probe on one ADS1115 input."""

    def __init__(
        self,
        adc: Ads1115,
        channel: int,
        *,
        v_dry: float,
        v_wet: float,
        model: str = "soil_probe",
        owns_bus: bool = False,
    ) -> None:
        if not v_dry > v_wet:
            raise SensorConfigError(
                f"{model}: v_dry ({v_dry} V) must be above v_wet ({v_wet} V): a capacitive "
                "probe reads lower the wetter the soil"
            )
        self._adc, self.channel, self.model, self._owns_bus = adc, channel, model, owns_bus
        self.v_dry, self.v_wet = v_dry, v_wet  # this probe's calibration
        self.frames_bad = 0  # no frames: a bus fault raises
        self.note: str | None = None
        # The rail: a probe that is unplugged leaves the input where its pull or the ADC's
        # full scale puts it, above any probe's dry reading.
        self.rail_v = min(adc.fsr_v, 3.3) * 0.97
        try:
            adc._bus.read_i2c_block_data(adc.address, REG_CONFIG, 2)
        except OSError as exc:
            self.close()  # the agent opens it again later: no descriptor left behind
            nack = exc.errno in NO_ANSWER_ERRNOS
            raise SensorConfigError(
                f"{model}: no ADS1115 answers at I2C address 0x{adc.address:02x} ({exc})"
                if nack
                else f"{model}: I2C error at 0x{adc.address:02x} ({exc})",
                kind="timeout" if nack else "io",
            ) from exc

    def read(self) -> dict[str, float]:
        try:
            volts = self._adc.read_voltage(self.channel)
        except OSError as exc:
            what = "no answer from" if exc.errno in NO_ANSWER_ERRNOS else "I2C error at"
            raise i2c_error(
                exc,
                f"{self.model}: {what} the ADS1115 at 0x{self._adc.address:02x} ({exc}): "
                "check the wiring and its power",
            ) from exc
        where = f"AIN{self.channel} reads {volts:.3f} V"
        if volts >= self.rail_v:
            raise SensorError(
                f"{self.model}: {where}, at the rail: the probe is disconnected (check its "
                "plug and its signal wire)",
                kind="disconnected",
            )
        if volts <= NEAR_ZERO_V:
            raise SensorError(
                f"{self.model}: {where}: the probe has no power or its output is shorted",
                kind="disconnected",
            )
        span = self.v_dry - self.v_wet
        percent = (self.v_dry - volts) / span * 100.0
        if volts > self.v_dry + DRIFT_V or volts < self.v_wet - DRIFT_V:
            edge = "drier than v_dry" if volts > self.v_dry else "wetter than v_wet"
            self.note = f"{where}, {edge}: the probe has drifted, calibrate it again"
        else:
            self.note = None
        return {
            "soil_moisture": min(100.0, max(0.0, percent)),
            "soil_probe_voltage": volts,
        }

    def close(self) -> None:
        if self._owns_bus:
            close = getattr(self._adc._bus, "close", None)
            if close is not None:
                close()
