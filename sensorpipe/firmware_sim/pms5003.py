"""Plantower PMS5003 / PMS7003, simulated at the byte level, with the faults peers report.

UART 9600 8N1. Data frame, 32 bytes: 42 4D 00 1C, 13 big-endian words (PM1/PM2.5/PM10 at CF=1,
the same atmospheric, six particle counts per 0.1 L, a reserved word: 97 00 on a PMS7003),
checksum = 16-bit sum of the 30 bytes before it. Host commands, 7 bytes: 42 4D CMD DATAH DATAL
CHKH CHKL. Mode (E1) and sleep (E4 00) are acknowledged with 42 4D 00 04 CMD DATAL CHKH CHKL;
wake (E4 01) is not; a passive read (E2) is answered with a data frame. Power-up: active mode,
awake, a frame every 2.3 s.

Faults (each a field a test or the fleet sets): `checksum_bursts` (every `every` frames a burst
of `length` frames with a wrong checksum, as the Pi's mini-UART garbles them), `garbage_every`
(line noise between frames), `go_silent(s)` (stops answering, comes back), `stuck` (the same
values frame after frame), `warmup_s` (values unstable for that long after a wake: the data
sheet's 30 s), `out_of_range` (PM2.5 beyond the data sheet's maximum range). `Pms5003Device` is
the firmware without I/O; `Pms5003Simulator` serves it on a pty like the SDS011's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sensorpipe.firmware_sim.sds011 import Sds011Simulator

START = b"\x42\x4d"
CHANGE_MODE, PASSIVE_READ, SLEEP_WAKE = 0xE1, 0xE2, 0xE4
STABLE_PERIOD_S = 2.3  # active mode, concentration changing little (data sheet)
OUT_OF_RANGE_PM = 4000  # µg/m³: the data sheet's maximum range is >= 1000
RESERVED = {"pms5003": 0x0000, "pms7003": 0x9700}  # word 13 (PMS7003: version 0x97, error 0)


def _checksum(data: bytes) -> bytes:
    return (sum(data) & 0xFFFF).to_bytes(2, "big")


def frame_for(words: list[int]) -> bytes:
    """A valid 32-byte data frame holding 13 words."""
    body = START + b"\x00\x1c" + b"".join(min(0xFFFF, max(0, w)).to_bytes(2, "big") for w in words)
    return body + _checksum(body)


def reply_for(cmd: int, data: int) -> bytes:
    body = START + bytes([0x00, 0x04, cmd, data])
    return body + _checksum(body)


@dataclass
class ChecksumBursts:
    every: int = 0  # frames from one burst to the next; 0: never
    length: int = 3  # the last frames of each `every` that are garbled


class Pms5003Device:
    """The sensor's firmware: takes command bytes, produces acknowledgements and data frames."""

    def __init__(
        self,
        *,
        read_pm: Callable[[], tuple[float, float]] = lambda: (12.0, 20.0),
        variant: str = "pms5003",
        warmup_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        self.read_pm = read_pm  # (PM2.5, PM10) atmospheric; PM1 and the counts follow from them
        self.reserved = RESERVED[variant]
        self.warmup_s = warmup_s
        self.clock = clock
        self.passive = False  # power-up default: active mode
        self.sleeping = False
        self.woke_at = clock()
        self.checksum_bursts = ChecksumBursts()
        self.garbage_every = 0
        self.stuck = False
        self.out_of_range = False
        self.silent_until = 0.0
        self.frames_sent = 0
        self.bad_frames_sent = 0
        self.commands_ignored = 0
        self._last_words: list[int] | None = None
        self._rng = random.Random(seed)
        self._buffer = bytearray()

    # --- faults ------------------------------------------------------------------------------
    def go_silent(self, seconds: float) -> None:
        """Stop answering and sending for `seconds` (a brown-out, a loose connector)."""
        self.silent_until = self.clock() + seconds

    @property
    def silent(self) -> bool:
        return self.clock() < self.silent_until

    def warming_up(self) -> bool:
        return self.clock() - self.woke_at < self.warmup_s

    # --- frames the sensor sends -------------------------------------------------------------
    def words(self) -> list[int]:
        if self.stuck and self._last_words is not None:
            return list(self._last_words)
        pm25, pm10 = self.read_pm()
        if self.warming_up():  # fan not up to speed: the data sheet's unstable first 30 s
            factor = self._rng.uniform(0.2, 3.0)
            pm25, pm10 = pm25 * factor, pm10 * factor
        pm1 = pm25 * 0.7
        if self.out_of_range:
            pm25 = pm10 = OUT_OF_RANGE_PM
        atm = [round(pm1), round(pm25), round(pm10)]
        cf1 = [v if v < 30 else round(v * 1.5 - 15) for v in atm]  # CF=1 reads higher above 30
        counts = [
            round(150 * pm25 + 100),
            round(45 * pm25 + 30),
            round(8 * pm25 + 5),
            round(0.8 * pm25),
            round(0.1 * pm10),
            round(0.02 * pm10),
        ]
        words = cf1 + atm + counts + [self.reserved]
        self._last_words = words
        return words

    def data_frame(self) -> bytes:
        if self.silent or self.sleeping:
            return b""
        frame = frame_for(self.words())
        n = self.frames_sent
        self.frames_sent += 1
        bursts = self.checksum_bursts
        out = frame
        if bursts.every and n % bursts.every >= bursts.every - bursts.length:
            self.bad_frames_sent += 1
            out = frame[:-1] + bytes([frame[-1] ^ 0x5A])  # the checksum no longer holds
        if self.garbage_every and n % self.garbage_every == 0:
            noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 12)))
            out = noise.replace(START, b"\x42\x00") + out
        return out

    # --- commands the host sends -------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; returns the bytes the sensor answers with."""
        self._buffer.extend(data)
        out = bytearray()
        while True:
            start = self._buffer.find(START)
            if start < 0:
                del self._buffer[: max(0, len(self._buffer) - 1)]
                return bytes(out)
            del self._buffer[:start]
            if len(self._buffer) < 7:
                return bytes(out)
            frame = bytes(self._buffer[:7])
            del self._buffer[:7]
            if self.silent or _checksum(frame[:5]) != frame[5:]:
                self.commands_ignored += 1
                continue  # corrupt commands are ignored; a silent sensor hears nothing
            out.extend(self._execute(frame[2], frame[4]))

    def _execute(self, cmd: int, data: int) -> bytes:
        if cmd == SLEEP_WAKE:
            if data == 1:
                if self.sleeping:
                    self.sleeping = False
                    self.woke_at = self.clock()
                return b""  # wake is not acknowledged
            self.sleeping = True
            return reply_for(SLEEP_WAKE, 0)
        if self.sleeping:
            return b""  # asleep: only wake is heard
        if cmd == CHANGE_MODE:
            self.passive = data == 0
            return reply_for(CHANGE_MODE, 0 if self.passive else 1)
        if cmd == PASSIVE_READ and self.passive:
            return self.data_frame()
        return b""

    def active_period_s(self) -> float | None:
        """Seconds between unsolicited frames, or None when the sensor sends none."""
        if self.passive or self.sleeping or self.silent:
            return None
        return STABLE_PERIOD_S


class Pms5003Simulator(Sds011Simulator):
    """Serves a `Pms5003Device` on a pty; `port` is the path a serial driver opens."""

    def __init__(self, device: Pms5003Device, *, time_scale: float = 1.0) -> None:
        super().__init__(device, time_scale=time_scale)
        self.device: Pms5003Device = device
