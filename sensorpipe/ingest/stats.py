"""The ingest's counters: what the service counts and metrics, status points and files report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
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
    # The periodic jobs (ingest.schedule): runs that failed, by job, and the last failure.
    periodic_errors: Counter[str] = field(default_factory=Counter)
    periodic_last_error: str | None = None
    periodic_last_error_at: float | None = None  # epoch s
    # Group calibrations kept up to date ([calibration]): runs done, calibrations updated and
    # hourly factors written by them.
    calibration_update_runs: int = 0
    calibration_updates: int = 0
    calibration_hours_written: int = 0
    # Saved forecast models retrained by the ingest ([forecast]): retrainings that saved a new
    # model, those that failed or were stopped (the previous model kept), and the last reason.
    forecast_retrains: int = 0
    forecast_retrain_failures: int = 0
    forecast_retrain_last_error: str | None = None

    def note_shed(self, device: str, reason: str, size: int) -> None:
        self.shed += 1
        self.shed_bytes += size
        self.shed_by_reason[reason] += 1
        if device in self.shed_by_device or len(self.shed_by_device) < 10_000:
            self.shed_by_device[device] += 1

    def as_dict(self) -> dict[str, Any]:
        """Every field, in their order (the stats file's keys), counters as plain values."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            rejected_by_code=dict(self.rejected_by_code),
            # Copied first (one C-level copy, which the network thread adding a key cannot
            # interrupt), then sorted: these counters grow in the network thread.
            shed_by_reason=dict(self.shed_by_reason),
            shed_by_device=dict(Counter(dict(self.shed_by_device)).most_common(20)),
            deadletter_near_full=sorted(self.deadletter_near_full),
            quarantines_by_reason=dict(self.quarantines_by_reason),
            periodic_errors=dict(self.periodic_errors),
        )
        return out
