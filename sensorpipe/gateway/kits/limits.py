"""Per-kit rate limits: a token bucket per key, so one kit's flood cannot starve the others.

A bucket holds up to `burst` tokens and gains one every `refill_s` seconds; each request takes
one. An airrohr kit posts every 145 s (every 30 s at the shortest interval its config page
allows), so the default (a burst of 5, then one every 10 s) never stops a working kit, while a
kit stuck in a loop, or someone with its password, is answered 429 with a Retry-After.

The Things Stack's nodes are limited by SentRateLimiter: the same bucket, on the clock of the
Network Server that received each uplink, so uplinks delivered late and together pass as they
were sent. A kit that stays over its limit is quarantined (gateway.kits.quarantine).

The buckets themselves are protocol.ratelimit's; this module holds the rules of the kit
gateway around them and the lock each limit's callers share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sensorpipe.protocol.ratelimit import KeyedBuckets, TokenBucket


class _PerKey:
    """A token bucket per key: up to `burst` tokens, one more every `refill_s` seconds; and
    the lock the limit's callers share."""

    def __init__(
        self,
        *,
        burst: int,
        refill_s: float,
        clock: Callable[[], float],
        max_keys: int,
        idle_s: float = 0.0,
    ) -> None:
        if burst < 1 or refill_s <= 0:
            raise ValueError("burst must be at least 1 and refill_s above 0")
        self.burst = burst
        self.refill_s = refill_s
        self._clock = clock
        self._buckets = KeyedBuckets(
            rate=1.0 / refill_s, burst=burst, max_keys=max_keys, idle_s=idle_s
        )
        self._lock = threading.Lock()


class RateLimiter(_PerKey):
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
        taken): above 1 keeps the rest in reserve for others; above the burst it never
        comes (infinity)."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.bucket(key, now)
            wait = bucket.wait_s(need, now=now)
            if wait == 0 and take:
                bucket.take(1.0, now=now)
            return wait


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class SentRateLimiter(_PerKey):
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
        # Its buckets are counted at send times (epoch s). A bucket's send time marks what is
        # late for its key, so a bucket is forgotten only once it is a whole burst's refill
        # old, not as soon as it is full again.
        super().__init__(
            burst=burst,
            refill_s=refill_s,
            clock=clock,
            max_keys=max_keys,
            idle_s=burst * refill_s,
        )

    def allow(self, key: str, sent_at: float | None) -> bool:
        """Whether `key` may have an item sent at `sent_at` (epoch s; None: now)."""
        now = self._clock()
        at = now if sent_at is None else min(sent_at, now)
        # The bucket counts by the sender's clock (the send time is its `now`); the late rule
        # is the gateway's own, so it stays here rather than in the bucket.
        with self._lock:
            counted = self._buckets.get(key)
            if counted is not None and at < counted.counted_at:
                return True  # sent before the newest one counted: a late delivery
            bucket = self._buckets.bucket(key, now, start=at)
            return bucket.take(1.0, now=at)

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.forget(key)


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
        self._clock = clock
        self._sleep = sleep
        # A bucket of one: each item reserves the next turn, one 1/per_s after the last.
        self._turns = KeyedBuckets(rate=per_s, burst=1.0, max_keys=max_keys)
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Wait for `key`'s turn; the seconds waited."""
        with self._lock:
            now = self._clock()
            delay = self._turns.bucket(key, now).reserve(1.0, now=now)
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
        now = clock()
        self._items = TokenBucket(rate=items / window_s, burst=float(items), now=now)
        self._bytes = TokenBucket(rate=size / window_s, burst=float(size), now=now)
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        now = self._clock()
        with self._lock:
            # A letter larger than the whole byte budget needs all of it, not more.
            n = min(n, self.size) if self.size else n
            if self._items.level(now) < 1.0 or not self._bytes.take(n, now=now):
                return False
            return self._items.take(1.0, now=now)
