"""The ingest's guard: per-device quotas, quarantine, and the broker's admin account.

What it guarantees: one device cannot take the ingest from the others. `admit` is asked in the
MQTT network thread before anything else is done with a message (`ingest.quota`): a message
over its device's quota, or from a quarantined device, is refused there. The link then
acknowledges it to the broker at once, and it goes no further: not stored, not dead-lettered,
not confirmed. So it is lost to a sender that does not wait for confirmations; a sender that
waits (the edge agent) keeps it and sends it again later. Messages admitted are never refused
afterwards by the guard; they wait in their device's lane (`ingest.fair`).

A device over its quota for long enough is quarantined in the quarantine book, once, by
whichever worker (or gateway, or operator) gets there first; without a book it is only said.
An edge device's broker account is then disabled by the admin thread, off the writer thread,
retrying while the broker cannot be reached; lifts that an operator made while the broker was
away are applied by the same thread every LIFT_RETRY_S until the broker confirms each. A
quarantine can wait for the broker; it is never forgotten while the book keeps it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.quota import Due, QuotaKeeper
from sensorpipe.ingest.stats import IngestStats
from sensorpipe.ingest.validate import RegistryView
from sensorpipe.protocol.provenance import EDGE
from sensorpipe.protocol.quarantine import LIFT_RETRY_S, QuarantineBook

if TYPE_CHECKING:
    from sensorpipe.gateway.brokeradmin import BrokerAdmin

# The ingest's rooms share the one logger name its lines have always had.
log = logging.getLogger("sensorpipe.ingest.service")


class Guard:
    """Quotas and quarantine of one ingest worker. `admit` runs in the MQTT network thread,
    `rejected`, `refresh_limits` and `tend` in the writer thread, the broker's admin in a
    thread of its own (`start_admin`)."""

    def __init__(
        self,
        config: IngestConfig,
        registry: RegistryView,
        stats: IngestStats,
        stop: threading.Event,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """A quarantine book that cannot be opened is a ConfigError naming quarantine_path."""
        self.config = config
        self._registry = registry
        self._stats = stats
        self._stop = stop
        self._monotonic = monotonic
        self.quota = QuotaKeeper(config.quota, limits_for=self._device_limits)
        self.book: QuarantineBook | None = None
        if config.quarantine_path is not None:
            try:
                self.book = QuarantineBook(config.quarantine_path)
            except (OSError, sqlite3.Error) as exc:
                raise config.key_error(
                    "quarantine_path",
                    f"cannot open the quarantine book {config.quarantine_path}: {exc}",
                ) from None
        # Quarantines to apply at the broker, off the writer thread (BrokerAdmin waits for it).
        self._to_disable: queue.Queue[str] = queue.Queue()
        self._admin_thread: threading.Thread | None = None
        self._due_devices: set[str] = set()  # reported due for quarantine, until lifted
        self._next_lift_check = 0.0

    def admit(self, device: str, size: int) -> str | None:
        """None if a message of `size` bytes from `device` may go on; else why not
        ("quarantined", or the quota it is over)."""
        if self.book is not None and self.book.is_quarantined(device):
            return "quarantined"
        return self.quota.admit(device, size)

    def rejected(self, device: str) -> None:
        """Count a message of `device` that failed its checks against its reject quota."""
        self.quota.rejected(device)

    def refresh_limits(self) -> None:
        """The registry changed: devices' own limits are read again."""
        self.quota.refresh_limits()

    def _device_limits(self, device: str) -> tuple[float | None, int | None]:
        entry = self._registry.device(device)
        if entry is None:
            return None, None
        return entry.max_messages_per_s, entry.max_bytes_per_s

    def start(self) -> None:
        """With a book and a broker admin account: start the admin thread now, so that lifts
        left pending by an unreachable broker are retried."""
        if self.book is not None and self.config.broker_admin is not None:
            self.start_admin()

    def tend(self) -> None:
        """Quarantine the devices due for it; a device whose quarantine was lifted (or never
        made) has its meter start afresh, so that it is quarantined again if it goes on."""
        for due in self.quota.due():
            self._quarantine(due)
            self._due_devices.add(due.device)
        if self._due_devices and self._monotonic() >= self._next_lift_check:
            self._next_lift_check = self._monotonic() + 1.0
            for device in list(self._due_devices):
                if self.book is None or not self.book.is_quarantined(device):
                    self.quota.forget(device)
                    self._due_devices.discard(device)

    def _quarantine(self, due: Due) -> None:
        device, reason, detail = due.device, due.reason, due.detail
        entry = self._registry.device(device)
        if entry is None:
            return  # not a device: its messages are rejected anyway
        if self.book is None:
            self._stats.over_quota_reported += 1
            log.error(
                "device %s is over its quota (%s: %s); no quarantine_path is configured, so it "
                "is not quarantined",
                device,
                reason,
                detail,
            )
            return
        by = f"ingest {self.config.broker.username}"
        if not self.book.quarantine(device, reason=reason, detail=detail, by=by):
            return  # quarantined already (by another worker, the gateway, an operator)
        self._stats.quarantines += 1
        self._stats.quarantines_by_reason[reason] += 1
        where = "its messages are refused here"
        if entry.source == EDGE and self.config.broker_admin is not None:
            where = "its broker account is being disabled"
            self.start_admin()
            self._to_disable.put(device)
        elif entry.gateway is not None:
            where = f"its gateway {entry.gateway} refuses it"
        log.warning(
            "quarantined %s (%s): %s; %s. `sensorpipe devices lift %s` lets it back",
            device,
            reason,
            detail,
            where,
            device,
        )

    def start_admin(self) -> None:
        if self._admin_thread is None:
            self._admin_thread = threading.Thread(
                target=self._disable_accounts, name="ingest-quarantine", daemon=True
            )
            self._admin_thread.start()

    def _disable_accounts(self) -> None:
        """Disable quarantined devices' broker accounts, one at a time, retrying while the
        broker cannot be reached; and every LIFT_RETRY_S enable the accounts of lifts the
        quarantine book holds as pending (an operator's lift whose broker could not be
        reached), until the broker confirms each."""
        from sensorpipe.gateway.brokeradmin import AdminCredentials, BrokerAdmin, BrokerAdminError

        a = self.config.broker_admin
        assert a is not None
        b = self.config.broker
        admin: BrokerAdmin | None = None
        next_lifts = 0.0

        def connected() -> BrokerAdmin:
            nonlocal admin
            if admin is None:
                admin = BrokerAdmin(
                    b.host,
                    b.port,
                    AdminCredentials(a.username, a.password),
                    tls=b.tls,
                    ca_file=b.ca_file,
                )
            return admin

        def drop() -> None:
            nonlocal admin
            if admin is not None:
                admin.close()
                admin = None

        while not self._stop.is_set():
            if self._monotonic() >= next_lifts:
                next_lifts = self._monotonic() + LIFT_RETRY_S
                try:
                    self._enable_pending_lifts(connected)
                except BrokerAdminError:
                    drop()
                except sqlite3.Error as exc:
                    log.error("cannot update the quarantine book's pending lifts: %s", exc)
            try:
                device = self._to_disable.get(timeout=0.5)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    if connected().disable(device):
                        self._stats.broker_disabled += 1
                        log.info("broker account of %s disabled", device)
                    else:
                        log.warning("the broker has no account %s to disable", device)
                    break
                except BrokerAdminError as exc:
                    log.error("could not disable the broker account of %s: %s", device, exc)
                    drop()
                    self._stop.wait(5.0)
        drop()

    def _enable_pending_lifts(self, admin: Callable[[], BrokerAdmin]) -> None:
        """Enable the broker account of each lift pending in the book; a lift ends in the book
        only once the broker confirmed it. BrokerAdminError when the broker cannot be reached
        (each failure is also noted in the book, where `stack status` shows it)."""
        from sensorpipe.gateway.brokeradmin import BrokerAdminError

        if self.book is None:
            return
        try:
            pending = self.book.pending_lifts()
        except sqlite3.Error as exc:
            log.error("cannot read the pending lifts of the quarantine book: %s", exc)
            return
        by = f"ingest {self.config.broker.username}"
        for device in pending:
            if self.book.is_quarantined(device):
                continue  # quarantined again meanwhile: the book dropped the lift
            try:
                enabled = admin().enable(device)
            except BrokerAdminError as exc:
                log.error("could not enable the broker account of %s (lifted): %s", device, exc)
                self.book.lift_failed(device, str(exc))
                raise
            self.book.lift_done(device, by=by, enabled=enabled)
            log.info("broker account of %s enabled (its pending lift is done)", device)
