"""What every kit adapter (airrohr, The Things Stack) is given: the gateway's publisher, the
registry as it is now, the dead-letter store, the gateway's counters and the quarantine book.

Each is an interface here, so that adapters and their unit tests need no broker, no file and
no SQLite: `sensorpipe gateway run` passes the real ones (KitPublisher, the ingest's
DeadLetterStore behind `DeadLetterSink`, the registry file).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sensorpipe.gateway.kits.quarantine import KitQuarantine
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.messages import AnyMessage
from sensorpipe.protocol.registry import Registry, load_registry

log = logging.getLogger(__name__)


class LetterNotKept(RuntimeError):
    """The dead-letter store could not commit the letter (disk full, I/O error). Retryable."""


class DeadLetterSink(Protocol):
    def keep(
        self, topic: str, payload: bytes, code: str, detail: str, *, device_id: str = ""
    ) -> None:
        """Keep one rejected input: `topic` names where it came from (`airrohr:<chip id>`,
        `ttn:<app>/<device>`), `payload` is the exact bytes received, `code` a reason from
        sensorpipe.ingest.reasons and `detail` one line; `device_id` the registered kit it is
        of, when known (`sensorpipe ingest rejects --device` finds it by that). Returns once it
        is committed; raises LetterNotKept otherwise."""
        ...


class Publisher(Protocol):
    """gateway.kits.publish.KitPublisher, as adapters use it."""

    gateway_id: str

    @property
    def connected(self) -> bool: ...

    def publish(self, message: AnyMessage, *, timeout_s: float = 10.0) -> None:
        """Returns once the broker acknowledged the message; raises BrokerUnavailable."""
        ...


class RegistryFile:
    """The registry file, re-read when it changes (looked at no more than once a second), so
    kits registered while the gateway runs are let in. A registry that cannot be read is
    logged and the last good one kept: a half-written edit must not lock every kit out."""

    def __init__(
        self,
        path: Path | str,
        *,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._check_s = check_s
        self._clock = clock
        self._lock = threading.Lock()
        self._registry = load_registry(self.path, must_exist=True)
        self._mtime = self._stat()
        self._next_check = clock() + check_s

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def current(self) -> Registry:
        now = self._clock()
        if now < self._next_check:
            return self._registry
        with self._lock:
            self._next_check = now + self._check_s
            mtime = self._stat()
            if mtime is not None and mtime != self._mtime:
                try:
                    self._registry = load_registry(self.path, must_exist=True)
                    self._mtime = mtime
                except ConfigError as exc:
                    log.error("registry not reloaded, keeping the previous one: %s", exc)
        return self._registry


@dataclass
class Counters:
    """The gateway's counters: thread-safe, read by /health and /metrics."""

    _counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kit: str, what: str, key: str, n: int = 1) -> None:
        """Count `n` of `what` (posts, values, deadletters) by `key` (an HTTP status, an
        outcome, a reason) for the kit adapter `kit` (airrohr, ttn)."""
        with self._lock:
            k = (kit, what, key)
            self._counts[k] = self._counts.get(k, 0) + n

    def get(self, kit: str, what: str, key: str) -> int:
        with self._lock:
            return self._counts.get((kit, what, key), 0)

    def items(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        with self._lock:
            snapshot = sorted(self._counts.items())
        return iter(snapshot)

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (kit, what, key), n in self.items():
            out.setdefault(kit, {}).setdefault(what, {})[key] = n
        return out


@dataclass
class KitContext:
    gateway_id: str
    publisher: Publisher
    registry: RegistryFile
    deadletters: DeadLetterSink
    counters: Counters = field(default_factory=Counters)
    publish_timeout_s: float = 5.0
    # The quarantine book (None: no quarantine, only rate limits).
    quarantine: KitQuarantine | None = None
