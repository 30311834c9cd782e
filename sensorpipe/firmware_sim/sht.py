"""Sensirion SHT3x and SHT4x simulated at the bytes on the wire, with the faults peers report.

Each device answers the commands of its data sheet (SHT3x: two-byte commands, single shot
without clock stretching, status register, heater on/off, soft reset; SHT4x: one-byte commands,
serial number, soft reset, the heater commands) with 6-byte answers (T, CRC, RH, CRC; CRC-8 from
`edge.drivers.sensirion_crc`). A command it does not know, or a read with nothing to answer, is a
NACK (OSError 121), as on the real part. `wire` records every transfer, for byte-level tests.

Faults, each switched on by an attribute or method:
- `crc_burst(n)`: the next n answers carry a wrong CRC (a disturbed bus comes in bursts);
  `burst_rate` with `seed` starts bursts of `burst_length` at random.
- `silent = True`: nothing answers (a sensor that lost power); False brings it back.
- `stuck_humidity = True`: humidity reads 99.9 % whatever the air (condensed sensor).
- `out_of_range = True`: the temperature ticks read 0xFFFF (130 °C), past the data sheet range.
- SHT3x `heater_at_power_up = True`: the cheap-board fault (heater on, ~4.5 °C too warm) until
  a heater-off command.
A wrong I2C address is the test's choice of where to `attach` the device.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from typing import Any

from sensorpipe.edge.drivers.sensirion_crc import pack_words

Conditions = Callable[[], tuple[float, float]]  # (degC, %RH)

SHT3X_MEASURE = {b"\x24\x00", b"\x24\x0b", b"\x24\x16", b"\x2c\x06", b"\x2c\x0d", b"\x2c\x10"}
SHT4X_MEASURE = {b"\xfd", b"\xf6", b"\xe0"}
SHT4X_HEATER = {b"\x39", b"\x32", b"\x2f", b"\x24", b"\x1e", b"\x15"}
HEATER_WARMING_C = 4.5


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


def temperature_ticks(degc: float) -> int:
    return max(0, min(65535, round((degc + 45.0) * 65535.0 / 175.0)))


class _ShtDevice:
    def __init__(
        self,
        read_conditions: Conditions = lambda: (21.5, 55.0),
        *,
        burst_rate: float = 0.0,
        burst_length: int = 3,
        seed: int = 0,
    ) -> None:
        self.read_conditions = read_conditions
        self.burst_rate = burst_rate
        self.burst_length = burst_length
        self._random = random.Random(seed)
        self.silent = False
        self.stuck_humidity = False
        self.out_of_range = False
        self.heater = False
        self.heater_used = 0  # heater commands received (SHT4x) or heater-on (SHT3x)
        self.measurements = 0
        self._bad_crcs = 0
        self._pending: bytes | None = None
        self.wire: list[tuple[str, bytes]] = []

    def crc_burst(self, n: int) -> None:
        self._bad_crcs += n

    def _humidity_ticks(self, rh: float) -> int:
        raise NotImplementedError

    def _answer(self, words: tuple[int, ...]) -> None:
        data = bytearray(pack_words(*words))
        if not self._bad_crcs and self.burst_rate and self._random.random() < self.burst_rate:
            self._bad_crcs = self.burst_length
        if self._bad_crcs:
            self._bad_crcs -= 1
            data[2] ^= 0x5A  # the temperature word's CRC
        self._pending = bytes(data)

    def _measure(self) -> None:
        self.measurements += 1
        degc, rh = self.read_conditions()
        if self.heater:
            degc, rh = degc + HEATER_WARMING_C, rh * 0.75
        if self.stuck_humidity:
            rh = 99.9
        t_ticks = 0xFFFF if self.out_of_range else temperature_ticks(degc)
        self._answer((t_ticks, self._humidity_ticks(rh)))

    def _command(self, data: bytes) -> None:
        raise NotImplementedError

    def i2c_write(self, data: bytes) -> None:
        self.wire.append(("w", data))
        if self.silent:
            raise _nack()
        self._pending = None
        self._command(data)

    def i2c_read(self, length: int) -> bytes:
        if self.silent or self._pending is None:
            self.wire.append(("r", b""))
            raise _nack()
        data, self._pending = self._pending[:length], None
        self.wire.append(("r", data))
        return data


class Sht3xDevice(_ShtDevice):
    """SHT30/31/35: status bit 13 heater on, bit 4 reset detected."""

    def __init__(
        self,
        read_conditions: Conditions = lambda: (21.5, 55.0),
        *,
        heater_at_power_up: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(read_conditions, **kwargs)
        self.heater = heater_at_power_up
        self.status = 1 << 4

    def _humidity_ticks(self, rh: float) -> int:
        return max(0, min(65535, round(rh * 65535.0 / 100.0)))

    def _command(self, data: bytes) -> None:
        if len(data) != 2:
            raise _nack()  # an SHT3x command is two bytes; a one-byte (SHT4x) one is refused
        if data in SHT3X_MEASURE:
            self._measure()
        elif data == b"\xf3\x2d":
            status = self.status | (1 << 13 if self.heater else 0)
            self._answer((status,))
        elif data == b"\x30\x66":
            self.heater = False
        elif data == b"\x30\x6d":
            self.heater = True
            self.heater_used += 1
        elif data == b"\x30\x41":
            self.status = 0
        elif data == b"\x30\xa2":
            self.status = 1 << 4  # "after a reset the heater is disabled" (DS 4.10)
            self.heater = False
        else:
            raise _nack()


class Sht4xDevice(_ShtDevice):
    """SHT40/41/45; `serial` is what command 0x89 answers."""

    def __init__(
        self,
        read_conditions: Conditions = lambda: (21.5, 55.0),
        *,
        serial: int = 0x1234ABCD,
        **kwargs: Any,
    ) -> None:
        super().__init__(read_conditions, **kwargs)
        self.serial = serial

    def _humidity_ticks(self, rh: float) -> int:
        return max(0, min(65535, round((rh + 6.0) * 65535.0 / 125.0)))

    def _command(self, data: bytes) -> None:
        if len(data) != 1:
            raise _nack()  # an SHT4x command is one byte; a two-byte (SHT3x) one is refused
        if data in SHT4X_MEASURE:
            self._measure()
        elif data in SHT4X_HEATER:
            self.heater_used += 1
            self.heater = True
            self._measure()  # measured while hot, then the heater goes off by itself
            self.heater = False
        elif data == b"\x89":
            self._answer((self.serial >> 16, self.serial & 0xFFFF))
        elif data == b"\x94":
            pass
        else:
            raise _nack()
