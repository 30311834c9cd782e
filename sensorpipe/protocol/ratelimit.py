"""One token bucket for every rate limit in sensorpipe: the ingest's quotas per device
(`ingest.quota`), the kit gateway's limits per kit, per node and its pace per kit
(`gateway.kits.limits`), and the edge agent's sending pace (`edge.publisher`).

What a `TokenBucket` guarantees:

- It holds at most `burst` tokens, and starts full unless told how many it holds.
- It refills at `rate` tokens a second, continuously, up to `burst`: over any t seconds at
  most `burst + rate * t` tokens are taken from it (turns handed out by `reserve` included).
- Time is what the caller says: every method takes `now`, in seconds of whatever clock the
  caller counts by (monotonic, or the sender's clock). A `now` before the last one adds
  nothing and takes nothing back: a clock that steps back buys no tokens.
- `take(amount)` takes all of `amount` or, refusing, nothing: a refusal costs nothing, and
  asking again at once is refused again.
- `wait_s(amount)` says how long until `amount` is there (0: now; infinity: never, as it is
  above the burst or the rate is 0). It takes nothing.
- `reserve(amount)` never refuses: it takes `amount` now, into debt if need be, and says how
  long the caller waits for its turn (pacing: every item goes, spaced by the rate). A bucket
  in debt refuses `take` until the debt is paid.
- An amount below 0, or one above the burst for `reserve`, is a ValueError.

`KeyedBuckets` keeps a bucket per key (a kit, a node, an address) and at most about
`max_keys` of them: when a new key would go beyond that, it first forgets the buckets that
are full again, which hold nothing a new bucket would not (with `idle_s`: full, and not
counted for that long, for a caller that also keeps in mind when a bucket was counted).

Neither is thread-safe: each caller changes other state together with its buckets and holds
its own lock around both.
"""

from __future__ import annotations

import math


class TokenBucket:
    """Up to `burst` tokens, refilled at `rate` a second; see the module for what it
    guarantees."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(
        self, *, rate: float, burst: float, now: float, tokens: float | None = None
    ) -> None:
        """A bucket counted at `now`, holding `tokens` (default: full)."""
        if not (rate >= 0 and burst >= 0):  # also refuses NaN
            raise ValueError(f"rate and burst must be at least 0, not {rate!r} and {burst!r}")
        tokens = burst if tokens is None else tokens
        if not tokens <= burst:
            raise ValueError(f"tokens must be at most the burst ({burst!r}), not {tokens!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = tokens
        self._at = now

    @property
    def counted_at(self) -> float:
        """The latest `now` the bucket was counted at."""
        return self._at

    def level(self, now: float) -> float:
        """The tokens there are at `now` (below 0: in debt); the bucket is counted at `now`."""
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        return self._tokens

    def is_full(self, now: float) -> bool:
        """Whether the bucket is full at `now`; changes nothing."""
        elapsed = max(0.0, now - self._at)
        return self._tokens + elapsed * self.rate >= self.burst

    def take(self, amount: float = 1.0, *, now: float) -> bool:
        """Take `amount` if the bucket holds it at `now`; else take nothing."""
        if amount < 0:
            raise ValueError(f"amount must be at least 0, not {amount!r}")
        if self.level(now) >= amount:
            self._tokens -= amount
            return True
        return False

    def wait_s(self, amount: float = 1.0, *, now: float) -> float:
        """Seconds from `now` until the bucket holds `amount`: 0 if it does, infinity if it
        never will. Takes nothing."""
        if amount < 0:
            raise ValueError(f"amount must be at least 0, not {amount!r}")
        missing = amount - self.level(now)
        if missing <= 0:
            return 0.0
        if amount > self.burst or self.rate <= 0:
            return math.inf
        return missing / self.rate

    def reserve(self, amount: float = 1.0, *, now: float) -> float:
        """Take `amount` at `now` even into debt; the seconds until the caller's turn, when
        the bucket has refilled what it lacked (0: at once)."""
        if not 0 <= amount <= self.burst:
            # More than the burst at once would be more than the bucket can ever hold.
            raise ValueError(f"amount must be from 0 to the burst ({self.burst!r}), not {amount!r}")
        self._tokens = self.level(now) - amount
        if self._tokens >= 0:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return -self._tokens / self.rate


class KeyedBuckets:
    """A `TokenBucket` per key, all with the same rate and burst, at most about `max_keys`
    of them (see the module)."""

    def __init__(
        self, *, rate: float, burst: float, max_keys: int = 100_000, idle_s: float = 0.0
    ) -> None:
        """`idle_s`: forget a full bucket only once it has not been counted for that long
        (for a caller that keeps more than tokens in mind, such as the time it was counted
        at)."""
        TokenBucket(rate=rate, burst=burst, now=0.0)  # the same checks, once
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.idle_s = idle_s
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key: str) -> TokenBucket | None:
        """`key`'s bucket, if it has one."""
        return self._buckets.get(key)

    def bucket(self, key: str, now: float, *, start: float | None = None) -> TokenBucket:
        """`key`'s bucket; a new one is full and counted at `start` (default `now`). Before
        going beyond `max_keys`, the buckets full at `now` are forgotten."""
        found = self._buckets.get(key)
        if found is not None:
            return found
        if len(self._buckets) >= self.max_keys:
            self._buckets = {
                k: b
                for k, b in self._buckets.items()
                if not (b.is_full(now) and now - b.counted_at >= self.idle_s)
            }
        made = self._buckets[key] = TokenBucket(
            rate=self.rate, burst=self.burst, now=now if start is None else start
        )
        return made

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
