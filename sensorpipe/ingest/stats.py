"""The ingest's counters: what the service counts and metrics, status points and files report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestStats:
    received: int = 0
    stored_messages: int = 0
    stored_points: int = 0
    rejected: int = 0
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    write_retries: int = 0
    internal_errors: int = 0
    batches: int = 0
    deadletters_pruned: int = 0
    confirmations: int = 0  # acknowledgements published to devices (protocol.ack)
    connected: bool = False
    # Attempts to connect to the broker that failed: unreachable, refused, never answered.
    connect_failures: int = 0
    # The dead-letter store: whether it can write, why not (SQLite's error), since when (epoch s).
    deadletter_available: bool = True
    deadletter_error: str | None = None
    deadletter_unavailable_since: float | None = None
    # Rejected messages it could not keep when they came: not confirmed to their devices.
    held_back: int = 0
    # Of those, held unacknowledged now, to be dead-lettered once the store writes again.
    held_back_waiting: int = 0
    # Of those, acknowledged to the broker unconfirmed (beyond the ingest's hold): kept only
    # by a sender that waits for confirmations, which sends them again.
    left_to_sender: int = 0
    # Messages refused on arrival (over their device's quota, or from a quarantined device):
    # acknowledged to the broker, not stored, not confirmed.
    shed: int = 0
    shed_bytes: int = 0
    shed_by_reason: Counter[str] = field(default_factory=Counter)
    shed_by_device: Counter[str] = field(default_factory=Counter)
    # Rejected messages not kept: their device's dead-letter quota (or the store) was full.
    deadletter_refused: int = 0
    # Devices whose dead letters passed the warning share of their quota.
    deadletter_near_full: set[str] = field(default_factory=set)
    quarantines: int = 0  # devices this worker quarantined
    quarantines_by_reason: Counter[str] = field(default_factory=Counter)
    broker_disabled: int = 0  # of those, broker accounts disabled
    over_quota_reported: int = 0  # devices over their quota with no quarantine book to put them in

    def note_shed(self, device: str, reason: str, size: int) -> None:
        self.shed += 1
        self.shed_bytes += size
        self.shed_by_reason[reason] += 1
        if device in self.shed_by_device or len(self.shed_by_device) < 10_000:
            self.shed_by_device[device] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored_messages": self.stored_messages,
            "stored_points": self.stored_points,
            "rejected": self.rejected,
            "rejected_by_code": dict(self.rejected_by_code),
            "write_retries": self.write_retries,
            "internal_errors": self.internal_errors,
            "batches": self.batches,
            "deadletters_pruned": self.deadletters_pruned,
            "confirmations": self.confirmations,
            "connected": self.connected,
            "connect_failures": self.connect_failures,
            "deadletter_available": self.deadletter_available,
            "deadletter_error": self.deadletter_error,
            "deadletter_unavailable_since": self.deadletter_unavailable_since,
            "held_back": self.held_back,
            "held_back_waiting": self.held_back_waiting,
            "left_to_sender": self.left_to_sender,
            "shed": self.shed,
            "shed_bytes": self.shed_bytes,
            # Copied first (one C-level copy, which the network thread adding a key cannot
            # interrupt), then sorted: these counters grow in the network thread.
            "shed_by_reason": dict(self.shed_by_reason),
            "shed_by_device": dict(Counter(dict(self.shed_by_device)).most_common(20)),
            "deadletter_refused": self.deadletter_refused,
            "deadletter_near_full": sorted(self.deadletter_near_full),
            "quarantines": self.quarantines,
            "quarantines_by_reason": dict(self.quarantines_by_reason),
            "broker_disabled": self.broker_disabled,
            "over_quota_reported": self.over_quota_reported,
        }
