"""Plantower PMS5003 / PMS7003 (and PMSA003: the same "PMSx003" protocol) laser PM sensor over UART.

Our own driver, not a vendor's: Pimoroni's `pms5003` needs GPIO pins in its constructor and
calls `sys.exit` on a host without a gpiochip (a simulator, a USB-serial adapter), and has no
passive mode or sleep/wake commands; Adafruit's `adafruit-circuitpython-pm25` never writes to
the UART (active mode only, so no sleep, no duty cycling) and pulls in Blinka. Both are only
references for the framing. This one runs over the same serial abstraction as the SDS011
driver (pyserial, or any object with `read`/`write`), which is how the tests point it at the
byte-level simulator (sensorpipe.firmware_sim.pms5003).

UART 9600 8N1. Data frame, 32 bytes: `42 4D`, frame length `00 1C` (28), 13 big-endian words,
a 16-bit checksum = sum of the 30 bytes before it. Words 1-3 are PM1/PM2.5/PM10 at CF=1,
words 4-6 the same at "atmospheric environment", 7-12 the counts of particles larger than
0.3/0.5/1/2.5/5/10 µm per 0.1 L of air, 13 reserved (a PMS7003 puts its version and error
code there). Host commands, 7 bytes: `42 4D CMD DATAH DATAL CHKH CHKL`; the mode (E1) and
sleep (E4 00) commands are acknowledged with 8 bytes `42 4D 00 04 CMD DATAL CHKH CHKL`; wake
(E4 01) is not acknowledged; a passive read (E2) is answered with a data frame.

The readings are the atmospheric values: the data sheet says CF=1 "should be used in the
factory environment", and these sensors measure ambient air. Counts are reported per cm³
(the frame's per-0.1 L value / 100), the unit the Sensirion SPS30 reports number
concentrations in.

Passive mode (the default) asks for each frame, so a reading is always fresh; active mode
takes the next frame the sensor sends by itself (every 2.3 s, or 0.2-0.8 s when the
concentration changes fast). A frame that does not hold together (bad checksum, wrong length,
garbage between frames, as the Pi's mini-UART produces in bursts) is counted in `frames_bad`
and skipped: the reader resynchronises on the next `42 4D`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sensorpipe.edge.drivers.sds011 import (
    PORT_ERRORS,
    SerialPort,
    UartDriver,
    open_on_port,
    reopen_port,
)
from sensorpipe.edge.errors import SensorError, SensorIOError, SensorTimeout

START = b"\x42\x4d"
DATA_LENGTH = 28  # the length word of a PMS5003/7003 data frame: 13 words and the checksum
REPLY_LENGTH = 4
FRAME_LEN = 4 + DATA_LENGTH  # 32
REPLY_LEN = 4 + REPLY_LENGTH  # 8
CHANGE_MODE, PASSIVE_READ, SLEEP_WAKE = 0xE1, 0xE2, 0xE4
PASSIVE, ACTIVE = 0, 1  # CHANGE_MODE's argument
SLEEP, WAKE = 0, 1  # SLEEP_WAKE's argument
# Counts, per 0.1 L in the frame: particles larger than these sizes (µm), words 7-12.
COUNT_QUANTITIES = (
    "particles_0_3",
    "particles_0_5",
    "particles_1_0",
    "particles_2_5",
    "particles_5_0",
    "particles_10",
)


def checksum(data: bytes) -> int:
    """Plantower's check code: the 16-bit sum of the bytes."""
    return sum(data) & 0xFFFF


def command(cmd: int, data: int = 0) -> bytes:
    """A 7-byte host command: 42 4D CMD DATAH DATAL CHKH CHKL."""
    body = START + bytes([cmd, data >> 8, data & 0xFF])
    return body + checksum(body).to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class DataFrame:
    words: tuple[int, ...]  # the 13 data words

    def values(self) -> dict[str, float]:
        """PM1/PM2.5/PM10 (atmospheric, µg/m³) and the counts (per cm³)."""
        w = self.words
        values: dict[str, float] = {"pm1": float(w[3]), "pm2_5": float(w[4]), "pm10": float(w[5])}
        for name, count in zip(COUNT_QUANTITIES, w[6:12], strict=True):
            values[name] = count / 100.0
        return values

    @property
    def reserved(self) -> int:
        """Word 13: on a PMS7003 its version (high byte) and error code (low byte)."""
        return self.words[12]


@dataclass(frozen=True, slots=True)
class Reply:
    cmd: int  # the command acknowledged
    data: int  # its DATAL: the mode or state the sensor entered


class FrameReader:
    """Finds data frames and command replies in a byte stream; counts and skips bad ones."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames_bad = 0

    def feed(self, data: bytes) -> list[DataFrame | Reply]:
        self._buffer.extend(data)
        found: list[DataFrame | Reply] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                # Keep a trailing 0x42: it may be the first byte of the next frame.
                del self._buffer[: len(self._buffer) - int(self._buffer[-1:] == b"\x42")]
                return found
            del self._buffer[:start]  # garbage between frames
            if len(self._buffer) < 4:
                return found
            length = int.from_bytes(self._buffer[2:4], "big")
            if length not in (DATA_LENGTH, REPLY_LENGTH):
                self._skip()  # a PMS3003/5003ST frame, or a 42 4D inside garbage
                continue
            if len(self._buffer) < 4 + length:
                return found
            frame = bytes(self._buffer[: 4 + length])
            if checksum(frame[:-2]) != int.from_bytes(frame[-2:], "big"):
                self._skip()
                continue
            del self._buffer[: 4 + length]
            if length == REPLY_LENGTH:
                found.append(Reply(frame[4], frame[5]))
            else:
                words = tuple(int.from_bytes(frame[i : i + 2], "big") for i in range(4, 30, 2))
                found.append(DataFrame(words))

    def _skip(self) -> None:
        """A frame start that did not hold together: count it, look for the next one."""
        self.frames_bad += 1
        del self._buffer[:2]


class Pms5003(UartDriver):
    model = "pms5003"
    _reader: FrameReader

    def __init__(
        self,
        port: SerialPort,
        *,
        mode: Literal["passive", "active"] = "passive",
        timeout_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        model: str = "pms5003",
    ) -> None:
        self.model = model  # the sensor tag: pms5003, or pms7003 / pmsa003 (the same protocol)
        self._port: SerialPort | None = port
        self._path: str | None = None  # set by `open`: where to find the sensor again
        self._mode = mode
        self._timeout_s = timeout_s
        self._clock = clock
        self._reader = FrameReader()
        self.reserved = 0  # word 13 of the last frame (PMS7003: version and error code)
        self._setup()

    @classmethod
    def open(
        cls,
        path: str,
        *,
        mode: Literal["passive", "active"] = "passive",
        timeout_s: float = 3.0,
        model: str = "pms5003",
    ) -> Pms5003:
        driver = open_on_port(
            path, model, lambda p: cls(p, mode=mode, timeout_s=timeout_s, model=model)
        )
        driver._path = path
        return driver

    def read(self) -> dict[str, float]:
        if self._mode == "passive":
            frame = self._exchange(command(PASSIVE_READ), DataFrame)
        else:
            frame = self._exchange(b"", DataFrame)  # the next frame it sends by itself
        assert isinstance(frame, DataFrame)
        self.reserved = frame.reserved
        return frame.values()

    def wake(self) -> None:
        """Start the fan and laser. Not acknowledged; stable readings come ~30 s later."""
        port = self._connected()
        self._write(port, command(SLEEP_WAKE, WAKE))

    def sleep(self) -> None:
        self._expect_reply(SLEEP_WAKE, SLEEP)

    def _setup(self) -> None:
        """Wake the sensor (it may have been left asleep) and set the mode."""
        self.wake()
        self._expect_reply(CHANGE_MODE, PASSIVE if self._mode == "passive" else ACTIVE)

    def _connected(self) -> SerialPort:
        """The open port; after an unplug, the port opened again when it is back."""
        if self._port is not None:
            return self._port
        port = self._port = reopen_port(self._path, self.model)
        self._setup()  # a sensor that lost power comes back active and awake
        return port

    def _expect_reply(self, cmd: int, data: int) -> Reply:
        reply = self._exchange(command(cmd, data), Reply, cmd)
        assert isinstance(reply, Reply)
        if reply.data != data:
            raise SensorError(
                f"{self.model}: command 0x{cmd:02x} {data} answered with {reply.data}"
            )
        return reply

    def _write(self, port: SerialPort, data: bytes) -> None:
        try:
            port.write(data)
        except PORT_ERRORS as exc:
            self._lost(port, exc)

    def _lost(self, port: SerialPort, exc: BaseException) -> None:
        self._port = None
        with contextlib.suppress(OSError):
            port.close()
        raise SensorIOError(
            f"{self.model}: serial port lost ({exc}); will try to reopen it"
        ) from exc

    def _exchange(
        self, cmd: bytes, kind: type[DataFrame] | type[Reply], reply_to: int | None = None
    ) -> DataFrame | Reply:
        port = self._connected()
        bad_before = self._reader.frames_bad
        try:
            # Frames the sensor sent before (active mode, late answers) are stale now.
            port.reset_input_buffer()
            if cmd:
                port.write(cmd)
            deadline = self._clock() + self._timeout_s
            while self._clock() < deadline:
                for found in self._reader.feed(port.read(FRAME_LEN)):
                    if isinstance(found, kind) and (
                        reply_to is None or (isinstance(found, Reply) and found.cmd == reply_to)
                    ):
                        return found
        except PORT_ERRORS as exc:  # the adapter was unplugged
            self._lost(port, exc)
        what = f"command 0x{cmd[2]:02x}" if cmd else "a data frame (active mode)"
        bad = self._reader.frames_bad - bad_before
        if bad:  # it answered, garbled: a checksum storm, not silence
            # A timeout by kind: the malformed frames are counted already (`frames_bad`, the
            # agent's "checksum" errors), and drivers.base counts each fault once.
            raise SensorTimeout(
                f"{self.model}: {bad} malformed frame{'' if bad == 1 else 's'} (bad checksum or "
                f"length) and no good one in answer to {what} within {self._timeout_s} s"
            )
        raise SensorTimeout(f"{self.model}: no answer to {what} within {self._timeout_s} s")
