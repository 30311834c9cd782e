"""Nova Fitness SDS011 PM2.5/PM10 sensor over UART (laser dust sensor control protocol V1.3).

The driver switches the sensor to query mode so it measures only when asked, which is how the
fan and laser last (the datasheet rates the laser at 8000 hours of continuous use). Every frame
the sensor sends ends its data with the sensor's 2-byte device id (set at the factory, e.g.
A1 60): `serial_number` ("A160"), by which the agent keeps the laser's running hours
(edge.duty).
"""

from __future__ import annotations

import contextlib
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sensorpipe.edge.errors import SensorConfigError, SensorError, SensorIOError, SensorTimeout

HEAD, TAIL, CMD, DATA, REPLY = 0xAA, 0xAB, 0xB4, 0xC0, 0xC5
SET_REPORTING_MODE, QUERY_DATA, SET_SLEEP, FIRMWARE = 2, 4, 6, 7
FRAME_LEN = 10
# What a serial port raises when its USB adapter goes away: pyserial's SerialException (an
# OSError) from reads and writes, termios.error from flushing.
PORT_ERRORS = (OSError, termios.error)


class SerialPort(Protocol):
    """The part of `serial.Serial` the driver uses."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int  # DATA (0xC0) or REPLY (0xC5)
    body: bytes  # the six bytes between the kind and the checksum


def command(cmd: int, d1: int = 0, d2: int = 0, device_id: int = 0xFFFF) -> bytes:
    """A 19-byte command frame; device id FFFF addresses any sensor on the line."""
    data = bytes([cmd, d1, d2]) + bytes(10) + bytes([device_id >> 8, device_id & 0xFF])
    return bytes([HEAD, CMD]) + data + bytes([sum(data) & 0xFF, TAIL])


def pm_from_frame(frame: Frame) -> tuple[float, float]:
    b = frame.body
    return (b[0] | b[1] << 8) / 10.0, (b[2] | b[3] << 8) / 10.0


class FrameReader:
    """Finds valid 10-byte frames in a byte stream; counts and skips malformed ones."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames_bad = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer.extend(data)
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(HEAD)
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < FRAME_LEN:
                return frames
            candidate = bytes(self._buffer[:FRAME_LEN])
            if (
                candidate[1] in (DATA, REPLY)
                and candidate[9] == TAIL
                and sum(candidate[2:8]) & 0xFF == candidate[8]
            ):
                frames.append(Frame(candidate[1], candidate[2:8]))
                del self._buffer[:FRAME_LEN]
            else:
                self.frames_bad += 1
                del self._buffer[:1]  # resynchronise on the next header byte


class _CountsBadFrames(Protocol):
    frames_bad: int


class UartDriver:
    """What the UART drivers share: their bad-frame count, and closing (asleep)."""

    _port: SerialPort | None
    _reader: _CountsBadFrames

    def sleep(self) -> None:
        raise NotImplementedError

    @property
    def frames_bad(self) -> int:
        return self._reader.frames_bad

    def close(self) -> None:
        try:
            self.sleep()
        except SensorError:
            pass  # closing anyway; a sensor that did not hear us keeps running
        finally:
            if self._port is not None:
                self._port.close()
                self._port = None


class Sds011(UartDriver):
    model = "sds011"
    _reader: FrameReader

    def __init__(self, port: SerialPort, *, timeout_s: float = 3.0) -> None:
        self._port: SerialPort | None = port
        self._path: str | None = None  # set by `open`: where to find the sensor again
        self._timeout_s = timeout_s
        self._reader = FrameReader()
        self.serial_number: str | None = None  # its device id, from the frames it sends
        self.wake()
        self._expect_reply(command(SET_REPORTING_MODE, 1, 1), SET_REPORTING_MODE)

    @classmethod
    def open(cls, path: str, *, timeout_s: float = 3.0) -> Sds011:
        driver = open_on_port(path, cls.model, lambda port: cls(port, timeout_s=timeout_s))
        driver._path = path
        return driver

    def read(self) -> dict[str, float]:
        frame = self._exchange(command(QUERY_DATA), lambda f: f.kind == DATA)
        pm2_5, pm10 = pm_from_frame(frame)
        return {"pm2_5": pm2_5, "pm10": pm10}

    def firmware_version(self) -> str:
        reply = self._expect_reply(command(FIRMWARE), FIRMWARE)
        return f"20{reply.body[1]:02d}-{reply.body[2]:02d}-{reply.body[3]:02d}"

    def sleep(self) -> None:
        self._expect_reply(command(SET_SLEEP, 1, 0), SET_SLEEP)

    def wake(self) -> None:
        """Start the fan and laser (the sensor answers the work command when it wakes)."""
        self._expect_reply(command(SET_SLEEP, 1, 1), SET_SLEEP)

    def _connected(self) -> SerialPort:
        """The open port; after an unplug, the port opened again when it is back."""
        if self._port is not None:
            return self._port
        port = self._port = reopen_port(self._path, self.model)
        # A sensor that lost power comes back in its default mode (active, awake): set it again.
        self.wake()
        self._expect_reply(command(SET_REPORTING_MODE, 1, 1), SET_REPORTING_MODE)
        return port

    def _expect_reply(self, cmd: bytes, cmd_id: int) -> Frame:
        return self._exchange(cmd, lambda f: f.kind == REPLY and f.body[0] == cmd_id)

    def _exchange(self, cmd: bytes, match: Callable[[Frame], bool]) -> Frame:
        port = self._connected()
        try:
            # Unsolicited frames (active mode, or answers that came too late) are stale now.
            port.reset_input_buffer()
            port.write(cmd)
            deadline = time.monotonic() + self._timeout_s
            while time.monotonic() < deadline:
                for frame in self._reader.feed(port.read(FRAME_LEN)):
                    if match(frame):
                        self.serial_number = frame.body[4:6].hex().upper()
                        return frame
        except PORT_ERRORS as exc:  # the adapter was unplugged
            self._port = None
            with contextlib.suppress(OSError):
                port.close()
            raise SensorIOError(f"sds011: serial port lost ({exc}); will try to reopen it") from exc
        raise SensorTimeout(
            f"sds011: no answer to command 0x{cmd[2]:02x} within {self._timeout_s} s"
        )


Driver = TypeVar("Driver")


def open_on_port(path: str, model: str, make: Callable[[SerialPort], Driver]) -> Driver:
    """A UART sensor's driver made on the serial port at `path`; the port is closed again when
    the driver cannot be made (no answer)."""
    import serial  # pyserial; imported here so the codecs are usable without it

    try:
        port = _open_port(path)
    except serial.SerialException as exc:
        raise SensorConfigError(f"{model}: cannot open serial port {path}: {exc}") from exc
    try:
        return make(port)
    except Exception:
        port.close()
        raise


def reopen_port(path: str | None, model: str) -> SerialPort:
    """The serial port at `path` again, after its USB adapter was unplugged."""
    if path is None:
        raise SensorIOError(f"{model}: the serial port was lost")
    try:
        return _open_port(path)
    except OSError as exc:
        raise SensorIOError(f"{model}: serial port {path} not back yet: {exc}") from exc


def _open_port(path: str) -> SerialPort:
    import serial

    port: SerialPort = serial.Serial(
        path, baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=0.1
    )
    return port
