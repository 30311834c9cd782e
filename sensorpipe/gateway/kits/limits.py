"""Per-kit rate limits: a token bucket per key, so one kit's flood cannot starve the others.

A bucket holds up to `burst` tokens and gains one every `refill_s` seconds; each request takes
one. An airrohr kit posts every 145 s (every 30 s at the shortest interval its config page
allows), so the default (a burst of 5, then one every 10 s) never stops a working kit, while a
kit stuck in a loop, or someone with its password, is answered 429 with a Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        *,
        burst: int,
        refill_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if burst < 1 or refill_s <= 0:
            raise ValueError("burst must be at least 1 and refill_s above 0")
        self.burst = burst
        self.refill_s = refill_s
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str, *, take: bool = True) -> float:
        """0 when `key` may go now (and, with `take`, a token is taken); else the seconds
        until it may."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) / self.refill_s)
            if tokens >= 1.0:
                if take:
                    tokens -= 1.0
                self._remember(key, tokens, now)
                return 0.0
            self._remember(key, tokens, now)
            return (1.0 - tokens) * self.refill_s

    def _remember(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            # A bucket that has filled up again holds nothing a new one would not: forget those.
            self._buckets = {
                k: v
                for k, v in self._buckets.items()
                if v[0] + (now - v[1]) / self.refill_s < self.burst
            }
        self._buckets[key] = (tokens, now)


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
