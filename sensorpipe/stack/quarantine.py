"""Quarantine and lift on the local stack: the book first, then the running broker.

The quarantine book (quarantine.sqlite, sensorpipe.protocol.quarantine) is the record: the
ingest and the kit gateway consult it, and `stack up` generates the broker's security from it,
so a quarantine made while nothing runs holds from the next start. Where the stack's broker
runs, a quarantine disables the device's broker account at once. A lift ends in the book first
(the ingest and the kit gateway let the device in within a second) and stays pending there
until the broker confirms the account enabled: a broker that cannot be reached leaves it
pending, which `stack status` shows, the ingest retries, `lift` retries when called again, and
`stack up` applies (`StackQuarantine.applied_at_start`). Nothing here ever enables an account
the book holds quarantined.

A collaborator that `LocalStack` holds (`stack.quarantining`); it reaches the stack's registry, its
state and its running processes through the stack, so a test that replaces
`LocalStack.running` sees the same broker here as the stack does. LocalStack's `quarantine`,
`lift`, `quarantines`, `quarantined` and `pending_lifts` hand over to it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sensorpipe.gateway.brokeradmin import BrokerAdmin, BrokerAdminError, admin_credentials
from sensorpipe.protocol.quarantine import LIFT_RETRY_S, PendingLift, Quarantine, QuarantineBook
from sensorpipe.stack.errors import StackError
from sensorpipe.stack.state import RunningStack

T = TypeVar("T")


class StackQuarantine:
    """The quarantine book of `stack` (at `stack.quarantine_path`) and its running broker."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack

    def _book(self) -> QuarantineBook:
        try:
            return QuarantineBook(self.stack.quarantine_path)
        except (OSError, sqlite3.Error) as exc:
            raise StackError(
                f"{self.stack.quarantine_path}: cannot open the quarantine book ({exc})"
            ) from None

    def _read(self, read: Callable[[QuarantineBook], dict[str, T]]) -> dict[str, T]:
        """What `read` finds in the book (nothing when the stack has no book yet)."""
        if not self.stack.quarantine_path.exists():
            return {}
        book = self._book()
        try:
            return read(book)
        finally:
            book.close()

    def active(self) -> dict[str, Quarantine]:
        """The devices quarantined now."""
        return self._read(QuarantineBook.active)

    def pending_lifts(self) -> dict[str, PendingLift]:
        """Lifts whose broker account the broker has not confirmed enabled yet."""
        return self._read(QuarantineBook.pending_lifts)

    def applied_at_start(self) -> None:
        """The broker just started with the security generated from the book: every account
        not quarantined is enabled, so no lift is pending any more."""
        if not self.stack.quarantine_path.exists():
            return
        book = self._book()
        try:
            for device_id in book.pending_lifts():
                book.lift_done(device_id, by="stack up", detail="broker started with it enabled")
        finally:
            book.close()

    def quarantine(
        self, device_id: str, *, detail: str = "", by: str = "operator"
    ) -> tuple[Quarantine, bool | None]:
        """Quarantine a registered device by hand (reason `manual`) and, where the stack's
        broker runs, disable its broker account now. Returns the quarantine and whether the
        broker account was disabled (None: no broker runs, or the device has no broker
        account). StackError for an unknown device or one already quarantined (with since
        when and why)."""
        registry = self.stack.registry()
        if device_id not in registry.devices:
            raise StackError(self.stack.unknown_device(registry, device_id))
        book = self._book()
        try:
            if not book.quarantine(device_id, reason="manual", detail=detail, by=by):
                q = book.active()[device_id]
                raise StackError(
                    f"{device_id} is already quarantined (since {_when(q.since)}, {q.reason}"
                    f"{': ' + q.detail if q.detail else ''}, by {q.by})"
                )
            entry = book.active()[device_id]
        finally:
            book.close()
        return entry, self._broker_account(device_id, enable=False)

    def lift(self, device_id: str, *, by: str = "operator") -> tuple[Quarantine, bool | None]:
        """End a device's quarantine: the book first, then its broker account, enabled where
        the stack's broker runs. Returns the quarantine lifted and whether the broker account
        was enabled (None: no broker runs, or the device has no broker account). StackError
        for an unknown device or one not quarantined (a device removed from the registry can
        still be lifted), and for a lift left pending (see the module's docstring)."""
        if self.stack.quarantine_path.exists():
            book = self._book()
            try:
                entry = book.lift(device_id, by=by)
                if entry is None:
                    pending = book.pending_lifts().get(device_id)
                    if pending is not None:
                        entry = pending_entry(pending)
                if entry is not None:
                    return self._finish_lift(book, entry, by)
            finally:
                book.close()
        registry = self.stack.registry()
        if device_id not in registry.devices:
            raise StackError(self.stack.unknown_device(registry, device_id))
        raise StackError(f"{device_id} is not quarantined: nothing to lift")

    def _finish_lift(
        self, book: QuarantineBook, entry: Quarantine, by: str
    ) -> tuple[Quarantine, bool | None]:
        """Enable the lifted device's broker account; the book's pending lift ends only once
        the broker confirmed it (or there is no broker or account to enable)."""
        device_id = entry.device_id
        try:
            enabled = self._broker_account(device_id, enable=True)
        except StackError as exc:
            book.lift_failed(device_id, _cause(exc))
            raise StackError(
                f"the quarantine of {device_id} is lifted in the book, but its broker account "
                f"is still disabled: the broker could not enable it ({_cause(exc)}); the lift "
                f"stays pending: the ingest retries it every {LIFT_RETRY_S:g} s, `sensorpipe "
                f"devices lift {device_id}` tries again now, `stack up` applies it, and "
                f"`sensorpipe stack status` shows it until then"
            ) from None
        book.lift_done(device_id, by=by, enabled=bool(enabled))
        return entry, enabled

    def _broker_account(self, device_id: str, *, enable: bool) -> bool | None:
        """Enable or disable `device_id` at the running broker: True when done, None when no
        broker runs or the device has no broker account (a kit)."""
        info = self.stack.info()
        if info is None or not self.stack.running()["mosquitto"]:
            return None
        try:
            credentials = admin_credentials(self.stack.directory / "broker", create=False)
            with BrokerAdmin("127.0.0.1", info.broker_port, credentials) as admin:
                done = admin.enable(device_id) if enable else admin.disable(device_id)
        except BrokerAdminError as exc:
            action = "enable" if enable else "disable"
            raise StackError(
                f"the quarantine book is updated, but the broker could not {action} "
                f"{device_id}: {exc}; `sensorpipe stack down` and `stack up` apply the book"
            ) from exc
        return True if done else None


def pending_entry(p: PendingLift) -> Quarantine:
    """A pending lift as the quarantine it ended (what `lift` answers with)."""
    return Quarantine(p.device_id, p.lifted_at, p.reason, "", p.by)


def _cause(exc: StackError) -> str:
    """The broker's own words for a failed admin call, else the whole message."""
    cause = exc.__cause__
    return str(cause) if cause is not None else str(exc)


def _when(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))
