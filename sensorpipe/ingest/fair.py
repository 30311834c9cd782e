"""The ingest's queue of arrived messages: one lane per device, taken in turn.

Messages wait here between the MQTT network thread and the writer. Taken first-in first-out, a
device that sent a thousand messages at once would put all of them before the next device's
one; taken one per device in turn (round robin), the other devices' messages go into the next
batch whatever one device has queued, so a device's backlog delays the others by at most one
message each per device queued. Within a lane the order is kept: a device's messages are
stored in the order it sent them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._lanes: dict[str, deque[T]] = {}
        self._turns: deque[str] = deque()  # devices with something queued, in turn order
        self._size = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return self._size

    def put(self, key: str, item: T) -> None:
        with self._cond:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = deque()
                self._turns.append(key)
            lane.append(item)
            self._size += 1
            self._cond.notify()

    def lanes(self) -> dict[str, int]:
        """How many messages each device has queued."""
        with self._cond:
            return {k: len(v) for k, v in self._lanes.items()}

    def take(self, n: int) -> list[T]:
        """Up to `n` items now, one per device in turn; [] when empty."""
        with self._cond:
            return self._take(n)

    def _take(self, n: int) -> list[T]:
        out: list[T] = []
        turns, lanes = self._turns, self._lanes
        while len(out) < n and turns:
            key = turns.popleft()
            lane = lanes[key]
            out.append(lane.popleft())
            if lane:
                turns.append(key)
            else:
                del lanes[key]
        self._size -= len(out)
        return out

    def get_batch(self, n: int, *, first_timeout_s: float, fill_s: float) -> list[T]:
        """Wait up to `first_timeout_s` for the first item, then up to `fill_s` for `n` in all;
        then take up to `n`, one per device in turn."""
        with self._cond:
            if not self._size and not self._cond.wait_for(
                lambda: self._size > 0, timeout=first_timeout_s
            ):
                return []
            if self._size < n and fill_s > 0:
                deadline = time.monotonic() + fill_s
                while self._size < n:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return self._take(n)
