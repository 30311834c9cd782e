"""Nova Fitness SDS011 PM sensor, simulated at the byte level (laser dust sensor protocol V1.3).

UART 9600 8N1. Data frame, 10 bytes: AA C0 PM25L PM25H PM10L PM10H ID1 ID2 CS AB, values in
0.1 µg/m³, CS = low byte of the sum of bytes 2..7. Commands are 19 bytes: AA B4 CMD, 12 data
bytes, the 2-byte device id (FF FF = any), CS over bytes 2..16, AB. Replies to settings are
10-byte AA C5 frames. `Sds011Device` is the protocol logic without I/O; `Sds011Simulator`
serves it on a pseudo-terminal that a real serial driver opens like /dev/ttyUSB0.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from typing import Protocol

HEAD, TAIL = 0xAA, 0xAB
CMD_ID, DATA_ID, REPLY_ID = 0xB4, 0xC0, 0xC5
SET_REPORTING_MODE, QUERY_DATA, SET_DEVICE_ID, SET_SLEEP, FIRMWARE, WORKING_PERIOD = (
    2,
    4,
    5,
    6,
    7,
    8,
)


def _checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


class Sds011Device:
    """The sensor's firmware: takes command bytes, produces reply and data frames."""

    def __init__(
        self,
        *,
        device_id: int = 0xA160,
        read_pm: Callable[[], tuple[float, float]] = lambda: (12.3, 20.1),
        bad_frame_rate: float = 0.0,
        seed: int = 0,
        firmware: tuple[int, int, int] = (18, 11, 16),
    ) -> None:
        self.device_id = device_id
        self.read_pm = read_pm
        self.bad_frame_rate = bad_frame_rate
        self.query_mode = False  # factory default: active reporting
        self.sleeping = False
        self.working_period_min = 0  # 0 = continuous (one frame a second)
        self.firmware = firmware
        self.frames_sent = 0
        self.bad_frames_sent = 0
        self._rng = random.Random(seed)
        self._buffer = bytearray()

    # --- frames the sensor sends -------------------------------------------------------------
    def data_frame(self) -> bytes:
        pm25, pm10 = self.read_pm()
        a = max(0, min(0xFFFF, round(pm25 * 10)))
        b = max(0, min(0xFFFF, round(pm10 * 10)))
        body = bytes(
            [a & 0xFF, a >> 8, b & 0xFF, b >> 8, self.device_id >> 8, self.device_id & 0xFF]
        )
        frame = bytes([HEAD, DATA_ID]) + body + bytes([_checksum(body), TAIL])
        self.frames_sent += 1
        if self.bad_frame_rate and self._rng.random() < self.bad_frame_rate:
            self.bad_frames_sent += 1
            if self._rng.random() < 0.5:
                return frame[:2] + bytes([frame[2] ^ 0x5A]) + frame[3:]  # checksum no longer holds
            return frame[: self._rng.randint(2, 8)]  # truncated: line noise, unplugged cable
        return frame

    def _reply(self, cmd: int, d1: int, d2: int, d3: int = 0) -> bytes:
        body = bytes([cmd, d1, d2, d3, self.device_id >> 8, self.device_id & 0xFF])
        return bytes([HEAD, REPLY_ID]) + body + bytes([_checksum(body), TAIL])

    # --- commands the host sends -------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; returns the bytes the sensor answers with."""
        self._buffer.extend(data)
        out = bytearray()
        while True:
            start = self._buffer.find(bytes([HEAD, CMD_ID]))
            if start < 0:
                self._buffer.clear()
                return bytes(out)
            del self._buffer[:start]
            if len(self._buffer) < 19:
                return bytes(out)
            frame = bytes(self._buffer[:19])
            del self._buffer[:19]
            if frame[18] != TAIL or _checksum(frame[2:17]) != frame[17]:
                continue  # the real sensor ignores corrupt commands
            target = (frame[15] << 8) | frame[16]
            if target not in (0xFFFF, self.device_id):
                continue
            out.extend(self._execute(frame))

    def _execute(self, frame: bytes) -> bytes:
        cmd, d1, d2 = frame[2], frame[3], frame[4]
        if cmd == SET_SLEEP:
            if d1 == 1:
                self.sleeping = d2 == 0
            return self._reply(SET_SLEEP, d1, 0 if self.sleeping else 1)
        if self.sleeping:
            return b""  # asleep: only the work command is answered
        if cmd == SET_REPORTING_MODE:
            if d1 == 1:
                self.query_mode = d2 == 1
            return self._reply(SET_REPORTING_MODE, d1, 1 if self.query_mode else 0)
        if cmd == QUERY_DATA:
            return self.data_frame()
        if cmd == SET_DEVICE_ID:
            self.device_id = (frame[13] << 8) | frame[14]
            return self._reply(SET_DEVICE_ID, 0, 0)
        if cmd == FIRMWARE:
            return self._reply(FIRMWARE, *self.firmware)
        if cmd == WORKING_PERIOD:
            if d1 == 1:
                self.working_period_min = min(d2, 30)
            return self._reply(WORKING_PERIOD, d1, self.working_period_min)
        return b""

    def active_period_s(self) -> float | None:
        """Seconds between unsolicited frames, or None when the sensor sends none."""
        if self.query_mode or self.sleeping:
            return None
        return 60.0 * self.working_period_min if self.working_period_min else 1.0


class UartDevice(Protocol):
    """What a simulated UART sensor's firmware offers the pty server."""

    def receive(self, data: bytes) -> bytes: ...

    def data_frame(self) -> bytes: ...

    def active_period_s(self) -> float | None: ...


class Sds011Simulator:
    """Serves an `Sds011Device` (or another `UartDevice`) on a pty; `port` is the path a serial
    driver opens."""

    def __init__(self, device: UartDevice, *, time_scale: float = 1.0) -> None:
        self.device = device
        self.time_scale = time_scale
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # A real UART drops bytes nobody reads (overrun) instead of stalling the sensor.
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"uart-sim {self.port}", daemon=True
        )

    def __enter__(self) -> Sds011Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve(self) -> None:
        next_frame = time.monotonic()
        while not self._stop.is_set():
            period = self.device.active_period_s()
            timeout = 0.05
            if period is not None:
                timeout = max(0.0, min(timeout, next_frame - time.monotonic()))
            try:
                ready, _, _ = select.select([self._master], [], [], timeout)
                if ready:
                    reply = self.device.receive(os.read(self._master, 256))
                    if reply:
                        os.write(self._master, reply)
                period = self.device.active_period_s()
                if period is None:
                    next_frame = time.monotonic()
                elif time.monotonic() >= next_frame:
                    frame = self.device.data_frame()
                    if frame:
                        os.write(self._master, frame)
                    next_frame = time.monotonic() + period / self.time_scale
            except BlockingIOError:
                continue
            except OSError:
                return  # the pty was closed under us: the simulator is stopping
