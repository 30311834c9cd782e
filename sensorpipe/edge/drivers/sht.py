"""Sensirion SHT3x (SHT30/31/35) and SHT4x (SHT40/41/45) temperature and humidity over I2C.

Our own driver, not Sensirion's `sensirion-i2c-sht` 0.4.0 (which works against a simulator, see
docs): the protocol is one command and one 6-byte read (T, CRC, RH, CRC), under a hundred lines
here over the I2C layer the BME280 already uses (smbus2, no new dependency), and doing it
ourselves lets the driver keep what a vendor library hides: the raw ticks (a humidity that maps
above 100 %, which `sensirion-i2c-sht` and Adafruit's SHT4x library crop silently), the CRC
errors counted as bad frames, and the heater state. The newer `sensirion-i2c-sht3x/sht4x` 1.x
packages cannot be installed beside `sensirion-i2c-sps30` (their support-types pins conflict).

- SHT3x: single shot without clock stretching (`24 00/0B/16`, high/medium/low repeatability;
  the Pi's I2C mishandles the stretching `2C xx` commands), then a read after the measurement
  time (15.5/6.5/4.5 ms max). T = -45 + 175 * S_T / 65535, RH = 100 * S_RH / 65535. At open:
  soft reset (`30 A2`), heater off (`30 66`: cheap boards have been seen starting with it on),
  then the status register (`F3 2D`) must say the heater is off; `close` sends heater off again.
- SHT4x: one-byte commands `FD/F6/E0` (high/medium/low precision, 8.3/4.5/1.6 ms max), no clock
  stretching, RH = -6 + 125 * S_RH / 65535 cropped to 0..100 as the data sheet says. The heater
  runs only with its own measure-with-heater commands, which this driver never sends, so it is
  never left on. At open: soft reset (`94`) and the serial number (`89`), which also tells an
  SHT4x from an SHT3x at the same address (an SHT3x NACKs a one-byte command).

Faults raise the agent's kinds (edge.errors): a bad CRC `SensorChecksumError` (`CrcError`), no
acknowledge `SensorTimeout`, another bus error `SensorIOError`, and a value outside the sensor's
range (temperature beyond -40..125 °C, humidity more than 5 % past 0..100 before cropping)
`SensorOutOfRange`: a saturated or broken sensor, not weather. A sensor that cannot be opened
raises `SensorConfigError` whose `kind` says why: "timeout" (nothing answers), "wrong_address"
(an SHT answers at another address), "wrong_model" (the device there refuses this model's
commands), "checksum" (its first answer failed its CRC), "config" (a heater that stays on).
Humidity at 99.9 % or more for `stuck_after` readings in a row is what condensed or contaminated
SHT sensors do (and fog for a while): from then on the reading leaves humidity out (the
temperature is still good), `note` says why, and it comes back once humidity moves below.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Literal

from sensorpipe.edge.drivers.i2c_raw import RawI2CBus, close_bus, read_bytes, write_bytes
from sensorpipe.edge.drivers.sensirion_crc import CrcError, unpack_words
from sensorpipe.edge.errors import (
    NO_ANSWER_ERRNOS,
    SensorConfigError,
    SensorOutOfRange,
    i2c_error,
)

log = logging.getLogger(__name__)

Precision = Literal["high", "medium", "low"]

SHT3X_MEASURE = {"high": b"\x24\x00", "medium": b"\x24\x0b", "low": b"\x24\x16"}
SHT3X_WAIT_S = {"high": 0.016, "medium": 0.007, "low": 0.005}
SHT3X_SOFT_RESET, SHT3X_HEATER_OFF = b"\x30\xa2", b"\x30\x66"
SHT3X_READ_STATUS, SHT3X_CLEAR_STATUS = b"\xf3\x2d", b"\x30\x41"
SHT3X_STATUS_HEATER = 1 << 13

SHT4X_MEASURE = {"high": b"\xfd", "medium": b"\xf6", "low": b"\xe0"}
SHT4X_WAIT_S = {"high": 0.009, "medium": 0.005, "low": 0.002}
SHT4X_SOFT_RESET, SHT4X_SERIAL = b"\x94", b"\x89"

SHT_ADDRESSES = {"sht3x": (0x44, 0x45), "sht4x": (0x44, 0x45, 0x46)}
STUCK_RH = 99.85  # 99.9 %, less what the 16-bit ticks round away
T_RANGE = (-40.0, 125.0)  # the data sheets' operating range
RH_SLACK = 5.0  # how far past 0..100 a reading may map before it is out of range, not cropped


class _Sht:
    model = ""

    def __init__(
        self,
        bus: RawI2CBus,
        address: int,
        *,
        precision: Precision = "high",
        stuck_after: int = 360,
        owns_bus: bool = False,
    ) -> None:
        self._bus = bus
        self._address = address
        self._precision: Precision = precision
        self._owns_bus = owns_bus
        self.stuck_after = stuck_after
        self.frames_bad = 0  # a bad CRC fails its read (SensorChecksumError): nothing skipped
        self.stuck_run = 0  # readings in a row at >= 99.9 %RH
        self.note: str | None = None
        try:
            self._start()
        except CrcError as exc:
            self.close()  # the agent opens it again later: no descriptor left behind
            raise SensorConfigError(str(exc), kind="checksum") from exc
        except OSError as exc:
            why, kind = self._absent(exc)
            self.close()
            raise SensorConfigError(why, kind=kind) from exc
        except SensorConfigError:
            self.close()
            raise

    def _absent(self, exc: OSError) -> tuple[str, str]:
        """Why open failed on a NACK, naming another address where an SHT answers, and its
        kind (SensorConfigError)."""
        text = f"{self.model}: no answer at I2C address 0x{self._address:02x} ({exc})"
        if exc.errno not in NO_ANSWER_ERRNOS:
            return f"{self.model}: I2C error at 0x{self._address:02x} ({exc})", "io"
        try:
            self._bus.write_quick(self._address)
        except OSError:
            pass
        else:  # something answers its address but refuses this model's commands
            twin = "sht4x" if self.model == "sht3x" else "sht3x"
            return (
                f"{self.model}: the device at 0x{self._address:02x} refuses {self.model.upper()} "
                f'commands ({exc}): is it an {twin.upper()}? Then use driver = "{twin}"'
            ), "wrong_model"
        for address in SHT_ADDRESSES[self.model]:
            if address == self._address:
                continue
            try:
                self._bus.write_quick(address)  # address only, as `i2cdetect` probes
            except OSError:
                continue
            return (
                f"{text}; a device answers at 0x{address:02x}: set address = 0x{address:02x}"
            ), "wrong_address"
        return text, "timeout"

    def _start(self) -> None:
        raise NotImplementedError

    def _measure(self) -> tuple[int, int]:
        raise NotImplementedError

    def _humidity(self, raw: int) -> float:
        raise NotImplementedError

    def _transfer(self, command: bytes, wait_s: float, length: int) -> list[int]:
        write_bytes(self._bus, self._address, command)
        time.sleep(wait_s)
        return unpack_words(read_bytes(self._bus, self._address, length), self.model)

    def read(self) -> dict[str, float]:
        try:
            raw_t, raw_rh = self._measure()
        except OSError as exc:
            what = "no answer" if exc.errno in NO_ANSWER_ERRNOS else "I2C error"
            raise i2c_error(
                exc,
                f"{self.model}: {what} at 0x{self._address:02x} ({exc}): check the wiring "
                "and the sensor's power",
            ) from exc
        temperature = -45.0 + 175.0 * raw_t / 65535.0
        humidity = self._humidity(raw_rh)
        if not T_RANGE[0] <= temperature <= T_RANGE[1]:
            raise SensorOutOfRange(
                f"{self.model}: temperature {temperature:.1f} °C (raw {raw_t}) is outside the "
                "sensor's range -40..125 °C: a broken sensor or bus"
            )
        if not -RH_SLACK <= humidity <= 100.0 + RH_SLACK:
            raise SensorOutOfRange(
                f"{self.model}: relative humidity {humidity:.1f} % (raw {raw_rh}) is outside "
                "0..100 %: a broken sensor"
            )
        humidity = min(100.0, max(0.0, humidity))
        values = {"temperature": temperature}
        left_out = self.stuck_run >= self.stuck_after
        self.stuck_run = self.stuck_run + 1 if humidity >= STUCK_RH else 0
        if self.stuck_run >= self.stuck_after:
            if not left_out:
                log.warning("%s: relative humidity stuck at 100 %%; left out", self.model)
            self.note = (
                f"relative humidity stuck at >= 99.9 % for {self.stuck_run} readings "
                "(condensed or contaminated sensor): left out until it moves"
            )
            return values
        if left_out:
            log.info("%s: relative humidity moves again (%.1f %%)", self.model, humidity)
        self.note = (
            "relative humidity at saturation: fog or dew, or, if it stays there for hours, a "
            "condensed sensor"
            if self.stuck_run
            else None
        )
        values["relative_humidity"] = humidity
        return values

    def close(self) -> None:
        if self._owns_bus:
            close_bus(self._bus)


class Sht3x(_Sht):
    model = "sht3x"

    def _start(self) -> None:
        write_bytes(self._bus, self._address, SHT3X_SOFT_RESET)
        time.sleep(0.002)
        write_bytes(self._bus, self._address, SHT3X_HEATER_OFF)
        time.sleep(0.001)
        status = self.status()
        if status & SHT3X_STATUS_HEATER:
            raise SensorConfigError(
                f"sht3x: the heater at 0x{self._address:02x} stays on after `heater off` "
                f"(status 0x{status:04x}): readings would be several °C too warm"
            )
        write_bytes(self._bus, self._address, SHT3X_CLEAR_STATUS)

    def status(self) -> int:
        return self._transfer(SHT3X_READ_STATUS, 0.001, 3)[0]

    def _measure(self) -> tuple[int, int]:
        words = self._transfer(SHT3X_MEASURE[self._precision], SHT3X_WAIT_S[self._precision], 6)
        return words[0], words[1]

    def _humidity(self, raw: int) -> float:
        return 100.0 * raw / 65535.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            write_bytes(self._bus, self._address, SHT3X_HEATER_OFF)  # never leave it on
        super().close()


class Sht4x(_Sht):
    model = "sht4x"
    serial_number = 0

    def _start(self) -> None:
        write_bytes(self._bus, self._address, SHT4X_SOFT_RESET)
        time.sleep(0.001)
        try:
            words = self._transfer(SHT4X_SERIAL, 0.001, 6)
        except OSError as exc:
            raise SensorConfigError(
                f"sht4x: the device at 0x{self._address:02x} does not take the SHT4x serial "
                f'number command ({exc}): is it an SHT3x? Then use driver = "sht3x"',
                kind="wrong_model",
            ) from exc
        self.serial_number = (words[0] << 16) | words[1]

    def _measure(self) -> tuple[int, int]:
        words = self._transfer(SHT4X_MEASURE[self._precision], SHT4X_WAIT_S[self._precision], 6)
        return words[0], words[1]

    def _humidity(self, raw: int) -> float:
        return -6.0 + 125.0 * raw / 65535.0
