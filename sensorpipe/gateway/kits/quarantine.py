"""Quarantine in the kit gateway: a kit that keeps exceeding its rate limit is taken off the
network until an operator lifts it, and a quarantined kit (whoever quarantined it: this
gateway, the ingest, an operator) is refused cheaply.

What a kit is held to:
- an airrohr kit posting above its rate limit is answered 429 (gateway.kits.limits), a TTN node
  sending uplinks above its own (by the Network Server's reception times) has them dropped;
- a kit over its limit in `after_s` seconds within 1.5 times as long is quarantined in the
  book (protocol.quarantine, reason `kit_flood`, by this gateway's id), logged once and
  counted. A working kit is never over its limit at all (an airrohr kit posts every 145 s, its
  bucket allows one every 10 s), a flood is over it every second: quarantined about `after_s`
  seconds after it began. Only a kit's own traffic counts: wrong passwords tried at a kit's
  name are throttled (auth.KitAuthenticator) but never quarantine it, or anyone who knows a
  kit's id (it is public in the register) could take it off the network;
- a quarantined kit's posts are refused 403 before its password is checked (a dictionary
  lookup, not a scrypt), with a one-line reason naming the lift command; its TTN uplinks are
  dropped (counted) and still acknowledged upstream, so The Things Stack does not resend them
  and does not mark the application's webhook as failing for the other nodes;
- lifting (`sensorpipe devices lift`) lets the kit back within the book's `cache_s` (1 s),
  and its record here starts afresh: it is quarantined again only after another sustained
  period over its limit.

Without a book (`quarantine_path` unset) the limits still hold and a kit that would have been
quarantined is logged, once. A book that cannot be read (a broken disk) lets kits in unchecked
rather than answering every kit 500 (logged, shown in /health); one that cannot be written is
tried again at the kit's next refusal.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from sensorpipe.protocol.quarantine import Quarantine, QuarantineBook

log = logging.getLogger(__name__)

KIT_FLOOD = "kit_flood"
LIFT_COMMAND = "sensorpipe devices lift"


class Counting(Protocol):
    def add(self, kit: str, what: str, key: str, n: int = 1) -> None: ...


class SustainedOver:
    """Which keys were over their limit in `after_s` distinct seconds within the last
    1.5 * `after_s` seconds: the ingest's rule for a sustained excess (ingest.quota)."""

    def __init__(
        self,
        after_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.after_s = after_s
        self.window_s = 1.5 * after_s
        self._clock = clock
        self._max_keys = max_keys
        self._seconds: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def over(self, key: str) -> bool:
        """Count that `key` is over its limit now; True once it has been for long enough
        (and on each call after that, until `forget`). Never True with `after_s` 0."""
        if self.after_s <= 0:
            return False
        now = self._clock()
        second = int(now)
        with self._lock:
            seconds = self._seconds.get(key)
            if seconds is None:
                if len(self._seconds) >= self._max_keys:
                    self._drop_stale(now)
                seconds = self._seconds[key] = deque()
            if not seconds or seconds[-1] != second:
                seconds.append(second)
            while seconds and seconds[0] <= now - self.window_s:
                seconds.popleft()
            return len(seconds) >= self.after_s

    def _drop_stale(self, now: float) -> None:
        self._seconds = {
            k: v for k, v in self._seconds.items() if v and v[-1] > now - self.window_s
        }

    def forget(self, key: str) -> None:
        with self._lock:
            self._seconds.pop(key, None)


class KitQuarantine:
    """The quarantine book as the kit gateway uses it. Thread-safe: the HTTP worker threads
    and the TTN bridges call it at once."""

    def __init__(
        self,
        book: QuarantineBook | None,
        *,
        gateway_id: str,
        counters: Counting,
        after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.book = book
        self.gateway_id = gateway_id
        self._counters = counters
        self._clock = clock
        self._sustained = SustainedOver(after_s, clock=clock)
        self._lock = threading.Lock()
        # Who is quarantined with why, read from the book at most every cache_s.
        self._entries: dict[str, Quarantine] = {}
        self._entries_read = -float("inf")
        self._warned: set[str] = set()  # would have been quarantined, no book: said once
        # The book could not be read at the last look (logged at most once a minute).
        self.problem: str | None = None
        self._next_read_error_log = -float("inf")

    @property
    def after_s(self) -> float:
        return self._sustained.after_s

    def entry(self, device_id: str) -> Quarantine | None:
        """`device_id`'s quarantine, as of at most the book's `cache_s` ago; None when it is
        not quarantined. Costs a dictionary lookup: it runs before a password check."""
        book = self.book
        if book is None:
            return None
        try:
            if not book.is_quarantined(device_id):
                return None
            now = self._clock()
            with self._lock:
                if device_id not in self._entries and now - self._entries_read >= book.cache_s:
                    self._entries = book.active()
                    self._entries_read = now
                found = self._entries.get(device_id)
        except sqlite3.Error as exc:
            # Every kit would be answered 500 otherwise; the rate limits still hold.
            self.problem = f"{book.path}: cannot be read ({exc})"
            if self._clock() >= self._next_read_error_log:
                self._next_read_error_log = self._clock() + 60.0
                log.error("quarantine book %s, kits let in unchecked", self.problem)
            return None
        self.problem = None
        return found or Quarantine(device_id, 0.0, "", "", "")

    def refusal(self, device_id: str, adapter: str) -> str | None:
        """The one-line reason a quarantined kit is refused (and counted as refused), or None
        when `device_id` is not quarantined."""
        q = self.entry(device_id)
        if q is None:
            return None
        self._counters.add(adapter, "quarantine", "refused")
        return describe(q)

    def over_limit(self, adapter: str, device_id: str, detail: str) -> Quarantine | None:
        """Count one refusal of `device_id` over its rate limit (`detail`: the limit, for the
        book). When the kit has been over it for a sustained period it is quarantined here:
        its new entry is returned (None otherwise, also when the book could not be written:
        it is tried again at the next refusal)."""
        if not self._sustained.over(device_id):
            return None
        detail = f"{detail}; over it in {self.after_s:g} of {self._sustained.window_s:g} seconds"
        if self.book is None:
            self._sustained.forget(device_id)
            if device_id not in self._warned:
                self._warned.add(device_id)
                log.warning(
                    "kit %s keeps exceeding its rate limit (%s) and would be quarantined; "
                    "the gateway has no quarantine_path",
                    device_id,
                    detail,
                )
            return None
        try:
            added = self.book.quarantine(
                device_id, reason=KIT_FLOOD, detail=detail, by=self.gateway_id
            )
        except sqlite3.Error as exc:
            self._counters.add(adapter, "quarantine", "not_recorded")
            log.error(
                "kit %s keeps exceeding its rate limit but could not be quarantined (%s): %s",
                device_id,
                self.book.path,
                exc,
            )
            return None
        # A new record from here on: after a lift it takes another sustained period.
        self._sustained.forget(device_id)
        with self._lock:
            self._entries_read = -float("inf")
        if added:
            self._counters.add(adapter, "quarantine", "quarantined")
            log.warning(
                "quarantined kit %s (%s): %s. `%s %s` lets it back",
                device_id,
                KIT_FLOOD,
                detail,
                LIFT_COMMAND,
                device_id,
            )
        return self.entry(device_id)

    def active(self, devices: Iterable[str] | None = None) -> list[Quarantine]:
        """The quarantines in the book now (of `devices` only, when given), oldest first;
        none when the book cannot be read (`problem` says why)."""
        if self.book is None:
            return []
        try:
            entries = self.book.active()
        except sqlite3.Error as exc:
            self.problem = f"{self.book.path}: cannot be read ({exc})"
            return []
        if devices is not None:
            wanted = set(devices)
            entries = {k: v for k, v in entries.items() if k in wanted}
        return list(entries.values())

    def close(self) -> None:
        if self.book is not None:
            self.book.close()


def describe(q: Quarantine) -> str:
    """One line: which kit is quarantined, why, since when and by whom, and how to lift it."""
    parts = []
    if q.reason:
        parts.append(q.reason)
    if q.since:
        since = datetime.fromtimestamp(q.since, UTC).isoformat(timespec="seconds")
        parts.append(f"since {since.replace('+00:00', 'Z')}")
    if q.by:
        parts.append(f"by {q.by}")
    why = f" ({', '.join(parts)})" if parts else ""
    return (
        f"kit {q.device_id} is quarantined{why}; an operator lets it back with "
        f"`{LIFT_COMMAND} {q.device_id}`"
    )
