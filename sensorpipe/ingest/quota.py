"""Per-device quotas, measured as messages arrive: what a device may send, and when it has
been over that for long enough to be quarantined.

Each device has three token buckets (config `[quota]`, or the device's own
`max_messages_per_s`/`max_bytes_per_s` in the registry): messages, bytes, and rejected messages
(a device allowed k times the default message rate may send k times the rejected ones too).
A bucket (protocol.ratelimit.TokenBucket) holds up to its burst and refills at its rate.
`admit` is asked in the MQTT network thread before anything else is done with a message: a
message that finds the message or byte bucket empty is refused there ("over_rate",
"over_bytes"), taking nothing from either, at the cost of a few dictionary operations, so a
flood is shed faster than it arrives and never queues in front of the other devices.
`rejected` counts a message that failed validation against the reject bucket.

Every second in which a device was refused, or went over its reject quota, counts against it.
A device with `quarantine_after_s` such seconds within 1.5 times that long is due for
quarantine (`due`); a device that is merely bursty (an outbox draining after an outage, at the
edge agent's own pace) never empties its buckets for that long.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sensorpipe.ingest.config import QuotaConfig
from sensorpipe.protocol.ratelimit import TokenBucket

OVER_RATE = "over_rate"
OVER_BYTES = "over_bytes"
OVER_REJECTS = "over_rejects"


@dataclass(slots=True)
class _Meter:
    messages: TokenBucket
    bytes: TokenBucket
    rejects: TokenBucket
    over_seconds: deque[int] = field(default_factory=deque)
    reason: str = ""
    refused: int = 0  # messages refused over the quota, in all
    refused_bytes: int = 0
    due_reported: bool = False


@dataclass(frozen=True, slots=True)
class Due:
    device: str
    reason: str
    detail: str


class QuotaKeeper:
    def __init__(
        self,
        quota: QuotaConfig,
        *,
        limits_for: Callable[[str], tuple[float | None, int | None]] = lambda _d: (None, None),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`limits_for(device)`: the device's own (messages/s, bytes/s) where the registry
        gives them, None for the defaults."""
        self.quota = quota
        self._limits_for = limits_for
        self._clock = clock
        self._meters: dict[str, _Meter] = {}
        self._lock = threading.Lock()

    def _meter(self, device: str, now: float) -> _Meter:
        m = self._meters.get(device)
        if m is None:
            q = self.quota
            rate, byte_rate = self._limits_for(device)
            rate = rate if rate is not None else q.messages_per_s
            byte_rate = byte_rate if byte_rate is not None else q.bytes_per_s
            # A device allowed more messages than the default may burst, and send rejected
            # messages, as much more.
            scale = max(1.0, rate / q.messages_per_s)
            burst = q.burst_messages * scale
            byte_burst = max(float(q.burst_bytes), byte_rate * q.burst_bytes / q.bytes_per_s)
            reject_burst = q.burst_rejects * scale
            m = self._meters[device] = _Meter(
                TokenBucket(rate=rate, burst=burst, now=now),
                TokenBucket(rate=float(byte_rate), burst=byte_burst, now=now),
                TokenBucket(rate=q.rejects_per_s * scale, burst=reject_burst, now=now),
            )
        return m

    def admit(self, device: str, size: int) -> str | None:
        """None if the message may go on; else why not (OVER_RATE, OVER_BYTES)."""
        now = self._clock()
        with self._lock:
            m = self._meter(device, now)
            if m.messages.level(now) < 1.0:
                verdict = OVER_RATE
            elif not m.bytes.take(float(size), now=now):
                verdict = OVER_BYTES
            else:
                m.messages.take(1.0, now=now)
                return None
            m.refused += 1
            m.refused_bytes += size
            self._over(m, verdict, now)
            return verdict

    def rejected(self, device: str) -> bool:
        """Count one rejected message of `device`; True when that is over its reject quota."""
        now = self._clock()
        with self._lock:
            m = self._meter(device, now)
            if m.rejects.take(1.0, now=now):
                return False
            self._over(m, OVER_REJECTS, now)
            return True

    def _over(self, m: _Meter, reason: str, now: float) -> None:
        second = int(now)
        if not m.over_seconds or m.over_seconds[-1] != second:
            m.over_seconds.append(second)
        m.reason = reason
        window = self._window()
        while m.over_seconds and m.over_seconds[0] <= now - window:
            m.over_seconds.popleft()

    def _window(self) -> float:
        return 1.5 * self.quota.quarantine_after_s

    def due(self) -> list[Due]:
        """Devices over their quota for `quarantine_after_s` seconds within the window, each
        reported once (until `forget`)."""
        after = self.quota.quarantine_after_s
        if after <= 0:
            return []
        now = self._clock()
        window = self._window()
        out = []
        with self._lock:
            for device, m in self._meters.items():
                if m.due_reported:
                    continue
                while m.over_seconds and m.over_seconds[0] <= now - window:
                    m.over_seconds.popleft()
                if len(m.over_seconds) >= after:
                    m.due_reported = True
                    out.append(Due(device, m.reason, self._detail(m, window)))
        return out

    def _detail(self, m: _Meter, window: float) -> str:
        q = self.quota
        if m.reason == OVER_REJECTS:
            return (
                f"over its quota of {q.rejects_per_s:g} rejected messages a second (burst "
                f"{q.burst_rejects}) in {len(m.over_seconds)} of the last {window:g} s"
            )
        return (
            f"over its quota of {m.messages.rate:g} messages and {m.bytes.rate:.0f} bytes a "
            f"second in {len(m.over_seconds)} of the last {window:g} s; {m.refused} messages "
            f"({m.refused_bytes} bytes) refused so far"
        )

    def refresh_limits(self) -> None:
        """The registry changed: each device's buckets take its limits from it now."""
        now = self._clock()
        with self._lock:
            for device in list(self._meters):
                m = self._meters.pop(device)
                new = self._meter(device, now)
                # Unchanged limits: what the device has used stays used. Changed ones (an
                # operator's decision) start full.
                if _same_limits(m.messages, new.messages):
                    new.messages = m.messages
                if _same_limits(m.bytes, new.bytes):
                    new.bytes = m.bytes
                if _same_limits(m.rejects, new.rejects):
                    new.rejects = m.rejects
                new.over_seconds = m.over_seconds
                new.reason = m.reason
                new.refused, new.refused_bytes = m.refused, m.refused_bytes
                new.due_reported = m.due_reported

    def forget(self, device: str) -> None:
        """Start `device` afresh (its quarantine was lifted, its limits changed)."""
        with self._lock:
            self._meters.pop(device, None)

    def forget_all(self) -> None:
        with self._lock:
            self._meters.clear()


def _same_limits(old: TokenBucket, new: TokenBucket) -> bool:
    return old.rate == new.rate and old.burst == new.burst
