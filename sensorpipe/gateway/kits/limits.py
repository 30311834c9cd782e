"""Per-kit rate limits: a token bucket per key, so one kit's flood cannot starve the others.

A bucket holds up to `burst` tokens and gains one every `refill_s` seconds; each request takes
one. An airrohr kit posts every 145 s (every 30 s at the shortest interval its config page
allows), so the default (a burst of 5, then one every 10 s) never stops a working kit, while a
kit stuck in a loop, or someone with its password, is answered 429 with a Retry-After.

The Things Stack's nodes are limited by SentRateLimiter: the same bucket, on the clock of the
Network Server that received each uplink, so uplinks delivered late and together pass as they
were sent. A kit that stays over its limit is quarantined (gateway.kits.quarantine).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class _Buckets:
    """A token bucket per key: up to `burst` tokens, one more every `refill_s` seconds."""

    def __init__(
        self,
        *,
        burst: int,
        refill_s: float,
        clock: Callable[[], float],
        max_keys: int = 100_000,
    ) -> None:
        if burst < 1 or refill_s <= 0:
            raise ValueError("burst must be at least 1 and refill_s above 0")
        self.burst = burst
        self.refill_s = refill_s
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens, the time they were counted at)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()


class RateLimiter(_Buckets):
    def __init__(
        self,
        *,
        burst: int,
        refill_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        super().__init__(burst=burst, refill_s=refill_s, clock=clock, max_keys=max_keys)

    def wait_s(self, key: str, *, take: bool = True, need: float = 1.0) -> float:
        """0 when `key` may go now (and, with `take`, a token is taken); else the seconds
        until it may. `need`: how many tokens the bucket must hold for it to go (one is
        taken): above 1 keeps the rest in reserve for others."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) / self.refill_s)
            if tokens >= need:
                if take:
                    tokens -= 1.0
                self._remember(key, tokens, now)
                return 0.0
            self._remember(key, tokens, now)
            return (need - tokens) * self.refill_s

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


class SentRateLimiter(_Buckets):
    """A token bucket per key whose clock is when each item was sent, not when it arrived:
    for The Things Stack's uplinks, timed by the Network Server (`received_at`).

    Uplinks that waited (in the bridge while the broker was away, in The Things Stack's webhook
    retries, in its Storage Integration while the gateway was down) arrive together but were
    sent apart: they pass as they were sent. An item sent before the newest one already counted
    for its key is such a late one and is not counted. A time ahead of the gateway's clock
    counts as now, so a wrong time cannot buy a key room in the future.
    """

    def __init__(
        self,
        *,
        burst: int,
        refill_s: float,
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
    ) -> None:
        # Its buckets are counted at send times (epoch s).
        super().__init__(burst=burst, refill_s=refill_s, clock=clock, max_keys=max_keys)

    def allow(self, key: str, sent_at: float | None) -> bool:
        """Whether `key` may have an item sent at `sent_at` (epoch s; None: now)."""
        now = self._clock()
        at = now if sent_at is None else min(sent_at, now)
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), at))
            if at < then:
                return True  # sent before the newest one counted: a late delivery
            tokens = min(float(self.burst), tokens + (at - then) / self.refill_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if key not in self._buckets and len(self._buckets) >= self._max_keys:
                horizon = now - self.burst * self.refill_s
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > horizon}
            self._buckets[key] = (tokens, at)
            return allowed

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)


class Pacer:
    """At most `per_s` items a second per key, spaced evenly: `wait(key)` returns when the
    key's next turn has come (at once when it is not sending faster than that).

    The kit gateway publishes each kit's messages through it, so uplinks that come all at once
    (a day of them from the Storage Integration after the gateway was down) reach the ingest
    at the pace an edge agent drains its outbox, within the ingest's quota per device, instead
    of being refused there. Another kit's turn does not wait for this one's.
    """

    def __init__(
        self,
        per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_keys: int = 100_000,
    ) -> None:
        if per_s <= 0:
            raise ValueError("per_s must be above 0")
        self.interval_s = 1.0 / per_s
        self._clock = clock
        self._sleep = sleep
        self._max_keys = max_keys
        self._next: dict[str, float] = {}  # key -> when its next item may go
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Wait for `key`'s turn; the seconds waited."""
        with self._lock:
            now = self._clock()
            turn = max(now, self._next.get(key, now))
            if key not in self._next and len(self._next) >= self._max_keys:
                self._next = {k: t for k, t in self._next.items() if t > now}
            self._next[key] = turn + self.interval_s
        delay = turn - now
        if delay > 0:
            self._sleep(delay)
        return delay


class Budget:
    """At most `items` items and `size` bytes in any `window_s`, refilled evenly over it
    (a token bucket in two units). `take(n)` takes one item of `n` bytes if both allow it.

    The kit gateway bounds the dead letters of The Things Stack nodes nobody registered with
    one per application: each invented node id would otherwise have a quota of its own."""

    def __init__(
        self,
        *,
        items: int,
        size: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if items < 0 or size < 0 or window_s <= 0:
            raise ValueError("items and size must be at least 0, window_s above 0")
        self.items = items
        self.size = size
        self.window_s = window_s
        self._clock = clock
        self._left = (float(items), float(size))
        self._then = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        now = self._clock()
        with self._lock:
            part = max(0.0, now - self._then) / self.window_s
            self._then = now
            items = min(float(self.items), self._left[0] + part * self.items)
            size = min(float(self.size), self._left[1] + part * self.size)
            # A letter larger than the whole byte budget needs all of it, not more.
            n = min(n, self.size) if self.size else n
            ok = items >= 1.0 and size >= n
            if ok:
                items -= 1.0
                size -= n
            self._left = (items, size)
            return ok
