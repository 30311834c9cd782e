"""Sensirion SPS30 on its UART (SEL left open), simulated at the byte level of SHDLC.

115200 8N1. Host frame (MOSI): 7E ADR CMD LEN DATA... CHK 7E; reply (MISO): 7E ADR CMD STATE LEN
DATA... CHK 7E. ADR is 0 for the SPS30; CHK is the inverted low byte of the sum of the bytes
between the 7Es (before stuffing); then 7E, 7D, 11 and 13 between the 7Es are sent as 7D and
the byte XOR 0x20 (`stuff`). The state byte: bit 7 the device's error flag, bits 0-6 an error
code: 0x43 "command not allowed in current state" (start while measuring, read or fan
cleaning while idle, wake-up while awake), 0x02 unknown command, 0x01 wrong data length, 0x04
a parameter out of range. A read with no new measurement since the last (one a second) is
answered with an empty frame: "no new data". Sleep (0x10, firmware 2.0 on, idle only) turns
the UART off: any byte is then a low pulse that wakes the interface (the data sheet's single
0xFF), and a wake-up command (0x11) within 100 ms wakes the sensor; without it the interface
sleeps again. Fan cleaning (0x56) runs while measuring.

The firmware (state, values, faults) is the I2C simulator's `Sps30Device`, so the faults are the
same fields: `crc_burst(n)` (the next n replies carry a wrong checksum), `go_silent(s)`
(nothing answered for s seconds, then back idle as after a power cut), `stuck` (the same
values), `out_of_range` (values beyond the data sheet), plus `warmup_s`: for the data sheet's
start-up time (8 s) after a start, values are unstable (a random factor 0.2-3, seeded).
`Sps30ShdlcDevice` is the firmware without I/O; `Sps30UartSimulator` serves it on a pty like
the SDS011's, and `frames_received` keeps every host frame as it came over the wire.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any

from sensorpipe.firmware_sim.sds011 import Sds011Simulator
from sensorpipe.firmware_sim.sensirion import SensirionDevice, Sps30Device

FLAG, ESCAPE = 0x7E, 0x7D
STUFFED = frozenset({0x7E, 0x7D, 0x11, 0x13})
OK, DATA_SIZE, UNKNOWN_COMMAND, PARAMETER, NOT_ALLOWED = 0x00, 0x01, 0x02, 0x04, 0x43
START, STOP, READ, SLEEP, WAKE_UP, FAN_CLEANING = 0x00, 0x01, 0x03, 0x10, 0x11, 0x56
AUTO_CLEANING, DEVICE_INFO, VERSION, STATUS, RESET = 0x80, 0xD0, 0xD1, 0xD2, 0xD3
FLOAT, UINT16 = b"\x01\x03", b"\x01\x05"
STARTUP_S = 8.0  # data sheet: start-up time < 8 s
INTERFACE_AWAKE_S = 0.1  # after the low pulse, the wake-up command must follow within 100 ms


def checksum(body: bytes) -> int:
    """The SHDLC checksum: the low byte of the sum, inverted."""
    return ~sum(body) & 0xFF


def stuff(body: bytes) -> bytes:
    out = bytearray()
    for byte in body:
        out += bytes([ESCAPE, byte ^ 0x20]) if byte in STUFFED else bytes([byte])
    return bytes(out)


def unstuff(raw: bytes) -> bytes:
    """The bytes between two 7Es without their stuffing; ValueError for a bad escape."""
    out = bytearray()
    escaped = False
    for byte in raw:
        if escaped:
            if byte ^ 0x20 not in STUFFED:
                raise ValueError(f"7D {byte:02X} is no escape")
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    if escaped:
        raise ValueError("the frame ends in an escape")
    return bytes(out)


def mosi_frame(command: int, data: bytes = b"", address: int = 0) -> bytes:
    """A host frame as on the wire."""
    body = bytes([address, command, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


def miso_frame(command: int, state: int, data: bytes = b"", address: int = 0) -> bytes:
    """A reply frame as on the wire."""
    body = bytes([address, command, state, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


class Sps30ShdlcDevice(Sps30Device):
    """The SPS30's firmware behind its UART: takes host bytes, returns reply bytes."""

    warmup_s = STARTUP_S

    def __init__(
        self,
        read: Callable[[], Any] | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        super().__init__(read, now=now)
        self.frames_received: list[bytes] = []  # every host frame, stuffed, with its 7Es
        self.replies: list[bytes] = []  # every reply, as on the wire
        self.frames_ignored = 0  # bad checksum, bad escape or length: not answered
        self._rng = random.Random(seed)
        self._rx = bytearray()
        self._in_frame = False
        self._interface_at: float | None = None

    # --- the UART ------------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if not SensirionDevice._answers(self):  # silent, or powering up: hears nothing
                self._in_frame = False
                continue
            if self.sleeping and not self._interface_awake():
                self._interface_at = self.now()  # the low pulse: the interface wakes
                self._rx.clear()
                self._in_frame = False
                continue
            if byte != FLAG:
                if self._in_frame:
                    self._rx.append(byte)
                continue
            if self._in_frame and self._rx:  # each 7E ends a frame and starts the next
                out += self._frame(bytes(self._rx))
            self._in_frame = True
            self._rx.clear()
        return bytes(out)

    def data_frame(self) -> bytes:
        return b""  # the SPS30 sends only when asked

    def active_period_s(self) -> float | None:
        return None

    def _interface_awake(self) -> bool:
        at = self._interface_at
        return at is not None and self.now() - at <= INTERFACE_AWAKE_S

    def _frame(self, raw: bytes) -> bytes:
        self.frames_received.append(bytes([FLAG]) + raw + bytes([FLAG]))
        try:
            body = unstuff(raw)
        except ValueError:
            body = b""
        if len(body) < 4 or body[2] != len(body) - 4 or checksum(body[:-1]) != body[-1]:
            self.frames_ignored += 1
            return b""
        address, command, data = body[0], body[1], body[3:-1]
        if self.sleeping:
            if command != WAKE_UP:
                return b""  # asleep: only the wake-up command is heard
            self.sleeping, self._interface_at = False, None
            return self._reply(address, command, OK)
        state, answer = self.execute(command, data)
        reply = self._reply(address, command, state, answer)
        if command == SLEEP and state == OK:
            self.sleeping, self._interface_at = True, None
        if command == RESET:
            self._reset_state()
        return reply

    def _reply(self, address: int, command: int, state: int, data: bytes = b"") -> bytes:
        body = bytes([address, command, state, len(data)]) + data
        check = checksum(body)
        if self.crc_errors_left:
            self.crc_errors_left -= 1
            check ^= 0x01  # one flipped bit: the checksum no longer holds
        reply = bytes([FLAG]) + stuff(body + bytes([check])) + bytes([FLAG])
        self.replies.append(reply)
        return reply

    # --- the commands ----------------------------------------------------------------------
    def execute(self, command: int, data: bytes) -> tuple[int, bytes]:
        """The state byte and the data of the reply to one command."""
        now = self.now()
        if command == START:
            if len(data) != 2:
                return DATA_SIZE, b""
            if data not in (FLOAT, UINT16):
                return PARAMETER, b""
            if self.measuring:
                return NOT_ALLOWED, b""
            self.measuring, self.output_format, self._started_at = True, data[1], now
            self._last_read_at = 0.0
            return OK, b""
        if command == READ:
            if not self.measuring:
                return NOT_ALLOWED, b""
            if not self._ready():
                return OK, b""  # no new data
            self._last_read_at = now
            values = self.values()
            if self.output_format == FLOAT[1]:
                return OK, struct.pack(">10f", *values)
            ints = [min(0xFFFF, round(v)) for v in values[:9]]
            return OK, struct.pack(">10H", *ints, min(0xFFFF, round(values[9] * 1000)))
        if command in (STOP, FAN_CLEANING):
            if not self.measuring:
                return NOT_ALLOWED, b""
            if command == STOP:
                self.measuring = False
            else:
                self.fan_cleanings += 1
            return OK, b""
        if command == SLEEP:
            if self.firmware < (2, 0):
                return UNKNOWN_COMMAND, b""
            return (NOT_ALLOWED if self.measuring else OK), b""
        if command == WAKE_UP:
            return NOT_ALLOWED, b""  # awake already (a sleeping one is woken in _frame)
        if command == AUTO_CLEANING:
            if data == b"\x00":
                return OK, struct.pack(">I", self.auto_cleaning_interval_s)
            if len(data) != 5 or data[0] != 0:
                return DATA_SIZE, b""
            self.auto_cleaning_interval_s = struct.unpack(">I", data[1:])[0]
            return OK, b""
        if command == DEVICE_INFO:
            texts = {b"\x00": self.PRODUCT_TYPE, b"\x03": b"SIM0123456789ABCD"}
            text = texts.get(data)
            return (OK, text + b"\x00") if text is not None else (PARAMETER, b"")
        if command == VERSION:
            return OK, bytes([*self.firmware, 0, 7, 0, 2, 0])  # hardware 7, SHDLC 2.0
        if command == STATUS:
            if self.firmware < (2, 2):
                return UNKNOWN_COMMAND, b""
            status = self.status_register
            if data[:1] == b"\x01":
                self.status_register = 0
            return OK, struct.pack(">IB", status, 0)
        if command == RESET:
            self.status_register = 0
            return OK, b""
        return UNKNOWN_COMMAND, b""

    def _fresh(self) -> list[float]:
        values = super()._fresh()
        if self.now() - self._started_at < self.warmup_s:  # the fan and laser settling
            factor = self._rng.uniform(0.2, 3.0)
            values = [v * factor for v in values[:9]] + values[9:]
        return values


class Sps30UartSimulator(Sds011Simulator):
    """Serves an `Sps30ShdlcDevice` on a pty; `port` is the path the driver opens."""

    def __init__(self, device: Sps30ShdlcDevice) -> None:
        super().__init__(device)
        self.device: Sps30ShdlcDevice = device

    def __enter__(self) -> Sps30UartSimulator:
        self.start()
        return self
