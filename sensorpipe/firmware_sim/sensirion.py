"""Sensirion SPS30, SCD30 and SCD4x simulated at the byte level of their I2C interfaces.

Every transfer is a 16-bit command word, then argument words each followed by a Sensirion CRC-8
byte (poly 0x31, init 0xFF: CRC(0xBEEF) = 0x92, the data sheets' example); answers are words
with their CRC too. Command codes, answer layouts and timings follow the data sheets (SPS30
data sheet §6, SCD30 interface description §1.4, SCD4x data sheet §3). The devices hang on
`i2c.SimulatedI2CBus` as message devices (`i2c_write`, `i2c_read`), which the drivers reach
through `smbus2`'s `i2c_rdwr`, as on a Pi.

Faults, each switchable while a driver reads: `crc_burst(n)` (the next n answers carry a wrong
CRC byte), `go_silent(s)` (no acknowledge for s seconds, then back as after a power cut: idle,
not measuring), `stuck` (the same measurement forever), `out_of_range` (a value outside the data
sheet's range), and the power-up time (SCD4x 1000 ms, SCD30 2 s: no acknowledge before). A
wrong I2C address is the device attached at another address. Time is `now()` (injectable), so
tests run on a fake clock.
"""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Callable
from typing import Any

from sensorpipe.edge.drivers.sensirion_crc import crc8, pack_words

SPS30_ADDRESS, SCD30_ADDRESS, SCD4X_ADDRESS = 0x69, 0x61, 0x62
# The interface description's float example: 0x43DB8C2E, about 439.1 ppm.
SCD30_CO2 = struct.unpack(">f", bytes.fromhex("43DB8C2E"))[0]
# The SCD4x data sheet's read example: words 0x01F4, 0x6667, 0x5EB9 = 500 ppm, 25.0 °C, 37.0 %RH.
SCD4X_EXAMPLE = (500.0, -45 + 175 * 0x6667 / 65535, 100 * 0x5EB9 / 65535)


def encode_words(words: list[int]) -> bytes:
    """Words as on the wire: big-endian, each followed by its CRC (`sensirion_crc`, the drivers'
    own framing)."""
    return pack_words(*(word & 0xFFFF for word in words))


def float_words(value: float) -> list[int]:
    """A big-endian IEEE-754 float as two words (SPS30 and SCD30 float answers)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


class ManualClock:
    """Time that passes only when a driver waits: `now` for the simulators, `sleep` for the
    drivers (tests and benchmarks run without waiting for real)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


class SensirionDevice:
    """Command dispatch, CRC, power-up and the fault modes common to the three sensors."""

    power_up_s = 0.0

    def __init__(
        self, read: Callable[[], Any] | None = None, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        """`read` gives what the sensor measures now (each sensor says what: `default_read`)."""
        self.read = read or self.default_read
        self.now = now
        self.powered_at = now()
        self.silent_until = 0.0
        self.power_cycle_on_return = True
        self.crc_errors_left = 0
        self.stuck = False
        self.out_of_range = False
        self.written: list[bytes] = []  # every accepted write, as bytes on the wire
        self.read_back: list[bytes] = []  # every answer, as bytes on the wire
        self._answer: bytes | None = None
        self._frozen: Any = None
        self._started_at = 0.0
        self._last_read_at = 0.0
        self._kept_settings()
        self._reset_state()

    @staticmethod
    def default_read() -> Any:
        raise NotImplementedError

    def _kept_settings(self) -> None:
        """Settings that survive a power cycle (non-volatile memory)."""

    def frozen(self, fresh: Callable[[], Any]) -> Any:
        """`fresh()`, or while `stuck` the values it gave last."""
        if not (self.stuck and self._frozen is not None):
            self._frozen = fresh()
        return self._frozen

    def period(self) -> float:
        return 1.0

    def _ready(self) -> bool:
        """A new measurement each period while measuring (the SPS30's and SCD30's flag)."""
        now, period = self.now(), self.period()
        measuring: bool = getattr(self, "measuring", False)
        return measuring and now - self._started_at >= period and now - self._last_read_at >= period

    # --- faults --------------------------------------------------------------------------
    def crc_burst(self, count: int) -> None:
        self.crc_errors_left = count

    def go_silent(self, seconds: float, *, power_cycle: bool = True) -> None:
        self.silent_until = self.now() + seconds
        self.power_cycle_on_return = power_cycle

    # --- the wire ------------------------------------------------------------------------
    def _answers(self) -> bool:
        now = self.now()
        if self.silent_until:
            if now < self.silent_until:
                return False
            if self.power_cycle_on_return:
                self.powered_at = self.silent_until
                self._reset_state()
            self.silent_until = 0.0
        return now - self.powered_at >= self.power_up_s

    def i2c_write(self, data: bytes) -> None:
        if not self._answers() or len(data) < 2 or (len(data) - 2) % 3:
            raise _nack()
        args = []
        for i in range(2, len(data), 3):
            word = data[i : i + 2]
            if crc8(word) != data[i + 2]:
                raise _nack()  # the data sheets: a write with a wrong CRC is not executed
            args.append(struct.unpack(">H", word)[0])
        command = struct.unpack(">H", data[:2])[0]
        answer = self.command(command, args)  # raises OSError (NACK) where not allowed
        self.written.append(bytes(data))
        self._answer = None if answer is None else encode_words(answer)

    def i2c_read(self, length: int) -> bytes:
        if not self._answers() or self._answer is None:
            raise _nack()
        answer, self._answer = self._answer[:length], None
        if self.crc_errors_left and answer:
            self.crc_errors_left -= 1
            answer = answer[:-1] + bytes([answer[-1] ^ 0x01])  # one flipped bit in the last CRC
        self.read_back.append(answer)
        return answer

    # --- per sensor ----------------------------------------------------------------------
    def _reset_state(self) -> None:
        raise NotImplementedError

    def command(self, command: int, args: list[int]) -> list[int] | None:
        raise NotImplementedError


class Sps30Device(SensirionDevice):
    """SPS30 particulate matter sensor (I2C mode: SEL to ground). `read` gives (PM2.5, PM10)
    in µg/m³; PM1, PM4, the number concentrations and the typical size are derived from them."""

    power_up_s = 0.05  # start-up of the interface; values then stabilise over 8-30 s
    PRODUCT_TYPE = b"00080000"

    # Kept through a power cycle (instance attributes once changed): firmware version, fan
    # cleanings so far, the auto-cleaning interval (a week), and the device status register
    # (bit 4 fan error, bit 5 laser error, bit 21 fan speed warning).
    firmware = (2, 2)
    fan_cleanings = 0
    auto_cleaning_interval_s = 604_800
    status_register = 0

    @staticmethod
    def default_read() -> tuple[float, float]:
        return 12.0, 20.0  # PM2.5, PM10

    def _reset_state(self) -> None:
        self.measuring = False
        self.output_format = 0
        self.sleeping = False
        self._wake_pulse_at: float | None = None

    def _answers(self) -> bool:
        return super()._answers() and not self.sleeping

    def i2c_write(self, data: bytes) -> None:
        if self.sleeping and data[:2] == b"\x11\x03" and super()._answers():
            # The first wake-up is the low pulse that wakes the interface (not acknowledged);
            # a second one within 100 ms wakes the sensor.
            now = self.now()
            if self._wake_pulse_at is not None and now - self._wake_pulse_at <= 0.1:
                self.sleeping = False
                self.written.append(bytes(data))
                return
            self._wake_pulse_at = now
            raise _nack()
        super().i2c_write(data)

    def values(self) -> list[float]:
        """PM1, PM2.5, PM4, PM10 (µg/m³), NC0.5, NC1, NC2.5, NC4, NC10 (#/cm³), size (µm)."""
        values: list[float] = self.frozen(self._fresh)
        return values

    def _fresh(self) -> list[float]:
        pm2_5, pm10 = self.read()
        pm1 = 0.8 * pm2_5
        pm4 = pm2_5 + 0.4 * (pm10 - pm2_5)
        if self.out_of_range:
            pm1 = pm2_5 = pm4 = pm10 = 6553.5  # what a wild register gives: above 1000 µg/m³
        nc0_5 = 6.5 * pm1
        nc1 = 7.6 * pm1
        values = [pm1, pm2_5, pm4, pm10, nc0_5, nc1, nc1 + 0.1 * pm2_5, nc1 + 0.11 * pm4]
        return [*values, nc1 + 0.12 * pm10, 0.55]

    def command(self, command: int, args: list[int]) -> list[int] | None:
        now = self.now()
        if command == 0x0010:  # start measurement
            if self.measuring or len(args) != 1 or args[0] not in (0x0300, 0x0500):
                raise _nack()
            self.measuring, self.output_format, self._started_at = True, args[0], now
            self._last_read_at = 0.0
            return None
        if command == 0x0104:  # stop measurement
            self.measuring = False
            return None
        if command == 0x0202:  # read data-ready flag
            return [1 if self._ready() else 0]
        if command == 0x0300:  # read measured values
            if not self.measuring:
                raise _nack()
            self._last_read_at = now
            values = self.values()
            if self.output_format == 0x0300:
                return [w for v in values for w in float_words(v)]
            ints = [min(0xFFFF, round(v)) for v in values[:9]]
            return [*ints, round(values[9] * 1000)]  # uint16 format: typical size in nm
        if command == 0x1001:  # sleep, from idle only, firmware 2.0 on
            if self.measuring or self.firmware < (2, 0):
                raise _nack()
            self.sleeping, self._wake_pulse_at = True, None
            return None
        if command == 0x1103:  # wake-up while awake: acknowledged, nothing happens
            return None
        if command == 0x5607:  # fan cleaning, in measurement mode only
            if not self.measuring:
                raise _nack()
            self.fan_cleanings += 1
            return None
        if command == 0x8004:  # auto-cleaning interval
            if len(args) == 2:
                self.auto_cleaning_interval_s = (args[0] << 16) | args[1]
                return None
            return [self.auto_cleaning_interval_s >> 16, self.auto_cleaning_interval_s & 0xFFFF]
        if command == 0xD002:  # product type: 8 ASCII characters and a terminating zero
            text = self.PRODUCT_TYPE + b"\x00"
            return [w for (w,) in struct.iter_unpack(">H", text + b"\x00" * (len(text) % 2))]
        if command == 0xD033:  # serial number: 32 bytes, zero padded
            text = b"SIM0123456789ABCD".ljust(32, b"\x00")
            return [w for (w,) in struct.iter_unpack(">H", text)]
        if command == 0xD100:  # firmware version
            return [(self.firmware[0] << 8) | self.firmware[1]]
        if command == 0xD206:  # device status register (firmware 2.2 on)
            if self.firmware < (2, 2):
                raise _nack()
            return [self.status_register >> 16, self.status_register & 0xFFFF]
        if command in (0xD210, 0xD304):  # clear status, reset
            self.status_register = 0
            if command == 0xD304:
                self._reset_state()
            return None
        raise _nack()


class Scd30Device(SensirionDevice):
    """SCD30 NDIR CO₂ sensor. `read` gives (CO₂ ppm, °C, %RH)."""

    power_up_s = 2.0  # boot-up time < 2 s

    @staticmethod
    def default_read() -> tuple[float, float, float]:
        return SCD30_CO2, 22.25, 48.0  # CO₂ ppm, °C, %RH

    def _kept_settings(self) -> None:
        self.interval_s = 2
        self.self_calibration = False
        self.altitude_m = 0
        self.temperature_offset = 0
        self.nv_writes = 0

    def _reset_state(self) -> None:
        self.measuring = False
        self.pressure_mbar = 0

    def period(self) -> float:
        return float(self.interval_s)

    def values(self) -> tuple[float, float, float]:
        values: tuple[float, float, float] = self.frozen(self._fresh)
        return values

    def _fresh(self) -> tuple[float, float, float]:
        co2, temperature, humidity = self.read()
        if self.out_of_range:
            co2 = 65_000.0  # beyond the 0-40 000 ppm range
        return co2, temperature, humidity

    def _setting(
        self, args: list[int], name: str, valid: Callable[[int], bool]
    ) -> list[int] | None:
        if not args:
            return [int(getattr(self, name))]
        if not valid(args[0]):
            raise _nack()
        setattr(self, name, args[0])
        self.nv_writes += 1
        return None

    def command(self, command: int, args: list[int]) -> list[int] | None:
        now = self.now()
        if command == 0x0010:  # (re)start continuous measurement, arg = pressure in mbar or 0
            if len(args) != 1 or not (args[0] == 0 or 700 <= args[0] <= 1400):
                raise _nack()
            if not self.measuring:
                self._started_at, self._last_read_at = now, 0.0
            self.measuring, self.pressure_mbar = True, args[0]
            return None
        if command == 0x0104:
            self.measuring = False
            return None
        if command == 0x4600:
            return self._setting(args, "interval_s", lambda v: 2 <= v <= 1800)
        if command == 0x0202:
            return [1 if self._ready() else 0]
        if command == 0x0300:
            if not self.measuring:
                raise _nack()
            self._last_read_at = now
            return [w for v in self.values() for w in float_words(v)]
        if command == 0x5306:
            return self._setting(args, "self_calibration", lambda v: v in (0, 1))
        if command == 0x5102:
            return self._setting(args, "altitude_m", lambda v: v <= 0xFFFF)
        if command == 0x5403:
            return self._setting(args, "temperature_offset", lambda v: v <= 0xFFFF)
        if command == 0x5204:  # forced recalibration value
            return [400] if not args else None
        if command == 0xD100:
            return [0x0342]  # firmware 3.66
        if command == 0xD304:
            self._reset_state()
            self.powered_at = now
            return None
        raise _nack()


class Scd4xDevice(SensirionDevice):
    """SCD40 / SCD41 photoacoustic CO₂ sensor. `read` gives (CO₂ ppm, °C, %RH)."""

    power_up_s = 1.0  # data sheet §3.1: 1000 ms to enter the idle state
    PERIOD_S = 5.0
    LOW_POWER_PERIOD_S = 30.0
    # Commands the sensor accepts while it measures periodically (data sheet Table 9).
    WHILE_MEASURING = frozenset({0xEC05, 0x3F86, 0xE000, 0xE4B8})

    variant = "scd41"

    @staticmethod
    def default_read() -> tuple[float, float, float]:
        return SCD4X_EXAMPLE

    def _reset_state(self) -> None:
        # Settings live in RAM until persist_settings: a power cycle restores the defaults.
        self.measuring = False
        self.period_s = self.PERIOD_S
        self.self_calibration = True
        self.altitude_m = 0
        self.pressure_pa = 101_300
        self.pressure_set = False
        self.temperature_offset_raw = round(4.0 * 65535 / 175)
        self.busy_until = 0.0
        self._started_at = 0.0
        self._have_data = False
        self._last_sample_at = 0.0

    def values(self) -> list[int]:
        """The three raw words: CO₂ ppm, temperature and humidity ticks."""
        words: list[int] = self.frozen(self._fresh)
        return words

    def _fresh(self) -> list[int]:
        co2, temperature, humidity = self.read()
        raw_t = round((temperature + 45.0) * 65535 / 175)
        raw_rh = round(humidity * 65535 / 100)
        words = [round(co2), max(0, min(0xFFFF, raw_t)), max(0, min(0xFFFF, raw_rh))]
        if self.out_of_range:
            words[0] = 0xFFFF  # 65 535 ppm: beyond the 0-40 000 ppm output range
        return words

    def _sample(self) -> None:
        """A measuring sensor has a new sample each period."""
        now = self.now()
        due = (
            now - self._last_sample_at >= self.period_s and now - self._started_at >= self.period_s
        )
        if self.measuring and due:
            self._have_data = True
            self._last_sample_at = now

    def command(self, command: int, args: list[int]) -> list[int] | None:
        now = self.now()
        if now < self.busy_until:
            raise _nack()  # "commands must not be sent while a previous one is processed"
        self._sample()
        if self.measuring and command not in self.WHILE_MEASURING:
            raise _nack()
        if command in (0x21B1, 0x21AC):  # start (low power) periodic measurement
            self.measuring, self._started_at, self._have_data = True, now, False
            self._last_sample_at = now
            self.period_s = self.PERIOD_S if command == 0x21B1 else self.LOW_POWER_PERIOD_S
            return None
        if command == 0x3F86:  # stop periodic measurement: 500 ms
            self.measuring, self.busy_until = False, now + 0.5
            return None
        if command == 0xE4B8:  # data ready: the low 11 bits are not all zero
            return [0x8006 if self._have_data else 0x8000]
        if command == 0xEC05:  # read measurement; no new data: NACK
            if not self._have_data:
                raise _nack()
            self._have_data = False
            return self.values()
        if command == 0xE000:  # ambient pressure, raw = Pa / 100
            if not args:
                return [self.pressure_pa // 100]
            if not 700 <= args[0] <= 1200:
                raise _nack()
            self.pressure_pa, self.pressure_set = args[0] * 100, True
            return None
        if command == 0x2416:
            self.self_calibration = bool(args and args[0])
            return None
        if command == 0x2313:
            return [int(self.self_calibration)]
        if command == 0x2427:
            if not args or args[0] > 3000:
                raise _nack()
            self.altitude_m = args[0]
            return None
        if command == 0x2322:
            return [self.altitude_m]
        if command == 0x241D:
            self.temperature_offset_raw = args[0] if args else self.temperature_offset_raw
            return None
        if command == 0x2318:
            return [self.temperature_offset_raw]
        if command == 0x362F:  # forced recalibration: correction = word - 0x8000
            if not args:
                raise _nack()
            co2 = self.values()[0]
            return [max(0, min(0xFFFE, 0x8000 + args[0] - co2))]
        if command == 0x3682:  # serial number
            return [0xBEEF, 0x7F07, 0x3B4A]
        if command == 0x202F:  # sensor variant, bits 12-15: 0 = SCD40, 1 = SCD41
            return [0x1000 if self.variant == "scd41" else 0x0000]
        if command == 0x3646:  # reinit
            self.busy_until = now + 0.02
            return None
        raise _nack()
