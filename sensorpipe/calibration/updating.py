"""Keeping group calibrations' hourly factors up to date: one calibration (`update_group`) or
every group calibration in the book (`update_all`), for `calibrate update` and the ingest's
periodic job (`GroupUpdateJob`, on the schedule it shares with the neighbour outlier).

An update computes the hours from 48 hours before the last stored hour (reference values
arrive late) to the last finished hour, with the group stored in the calibration; an hour
stored with a factor keeps it, an hour stored without one is computed again (store). It reads
InfluxDB like a query and writes only the book. A calibration whose update fails (InfluxDB
away, its devices gone) is reported as failed; the others are still updated.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorpipe.ingest.errors import QueryError, StorageUnavailable

if TYPE_CHECKING:  # imported when used: the ingest imports this module, numpy only if it runs
    from sensorpipe.calibration.store import CalibrationBook
    from sensorpipe.ingest.influx import InfluxClient

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
LOOKBACK_MS = 48 * HOUR_MS  # hours before the last stored one computed again
# What one calibration's update may fail with (the others still run).
UPDATE_ERRORS = (QueryError, StorageUnavailable, sqlite3.Error, KeyError, TypeError, ValueError)


class NotGroup(ValueError):
    """The calibration is not a group calibration (fixed coefficients: nothing to update)."""

    @classmethod
    def of(cls, record: dict[str, Any]) -> NotGroup:
        return cls(
            f"{record.get('id')}: a {record.get('method')} calibration has fixed coefficients, "
            "nothing to update; `calibrate update` is for group calibrations"
        )


@dataclass
class Updated:
    """What one calibration's update did (`error`: why it failed, nothing written)."""

    calibration_id: str
    written: int = 0
    first: str | None = None
    last: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    note: str | None = None  # e.g. no finished hour to add yet
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        """The one-line summary `calibrate update` prints and the ingest logs."""
        if self.error is not None:
            return f"{self.calibration_id}: FAILED: {self.error}"
        if self.note is not None:
            return f"{self.calibration_id}: {self.note}"
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return (
            f"{self.calibration_id}: {self.written} hours written; stored {self.first} .. "
            f"{self.last} ({counts})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "calibration_id": self.calibration_id,
            "ok": self.ok,
            "hours_written": self.written,
            "first": self.first,
            "last": self.last,
            "counts": self.counts,
            "note": self.note,
            "error": self.error,
        }


def iso_ms(iso: str) -> int:
    """Epoch milliseconds of a stored ISO time (`2026-01-01T00:00:00Z`)."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def hours_summary(book: CalibrationBook, calibration_id: str) -> dict[str, Any]:
    """The stored hours of a group calibration: their span and how many got a factor or not
    and why."""
    from sensorpipe.calibration.group import reasons
    from sensorpipe.calibration.store import _iso

    stored = book.factors(calibration_id)
    return {
        "first": _iso(stored[0].hour_ms) if stored else None,
        "last": _iso(stored[-1].hour_ms) if stored else None,
        "counts": reasons(stored),
    }


def update_group(
    book: CalibrationBook,
    client: InfluxClient,
    record: dict[str, Any],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    now_ms: int | None = None,
    not_before_ms: int | None = None,
) -> Updated:
    """Extend one group calibration's factors over [start_ms, end_ms) (default: 48 hours
    before its last stored hour, but not before `not_before_ms`, to the last finished hour).
    NotGroup for another method;
    CalibrationError, QueryError, StorageUnavailable and sqlite3.Error as they come."""
    from sensorpipe.calibration.data import Window, group_inputs
    from sensorpipe.calibration.group import hourly_factors

    calibration_id = str(record["id"])
    if record.get("method") != "group":
        raise NotGroup.of(record)
    if start_ms is None:
        stored = book.factors(calibration_id)
        start_ms = stored[-1].hour_ms - LOOKBACK_MS if stored else iso_ms(record["period"]["from"])
        if not_before_ms is not None:  # a calibration fitted long ago: not years of hours
            start_ms = max(start_ms, not_before_ms - not_before_ms % HOUR_MS)
    if end_ms is None:
        end_ms = int(time.time() * 1000) if now_ms is None else now_ms
    end_ms -= end_ms % HOUR_MS  # the unfinished hour waits
    if end_ms <= start_ms:
        return Updated(calibration_id, note="no finished hour to add yet")
    inputs = group_inputs(
        client,
        record["devices"],
        record["reference"],
        record["quantity"],
        Window(start_ms, end_ms),
        require_all=False,
    )
    factors = hourly_factors(inputs, record["group"]["min_members"])
    written = book.add_factors(calibration_id, factors)
    summary = hours_summary(book, calibration_id)
    return Updated(calibration_id, written, summary["first"], summary["last"], summary["counts"])


def group_ids(book: CalibrationBook) -> list[str]:
    """The book's group calibrations, oldest first."""
    return [r["id"] for r in book.all() if r.get("method") == "group"]


def update_each(
    book: CalibrationBook,
    client: InfluxClient,
    ids: list[str],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    now_ms: int | None = None,
    not_before_ms: int | None = None,
) -> list[Updated]:
    """Update each calibration of `ids` (group calibrations of `book`); one that fails is
    reported failed and the next is updated."""
    from sensorpipe.calibration.methods import CalibrationError

    done = []
    for calibration_id in ids:
        try:
            record = book.get(calibration_id)
            if record is None:
                done.append(Updated(calibration_id, error="no such calibration in the book"))
                continue
            done.append(
                update_group(
                    book,
                    client,
                    record,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    now_ms=now_ms,
                    not_before_ms=not_before_ms,
                )
            )
        except (CalibrationError, NotGroup, *UPDATE_ERRORS) as exc:
            done.append(Updated(calibration_id, error=_why(exc)))
    return done


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):  # a record without a key an update needs
        return f"its record has no {exc}"
    return str(exc) or type(exc).__name__


class GroupUpdateJob:
    """The ingest's periodic job: every group calibration in the book at `book_path`, updated
    with the ingest's InfluxDB client, over at most the last `catch_up_s`. A book that does not
    exist yet: nothing to do. A book that cannot be read raises; a calibration that fails
    raises after the others are done (the schedule logs and counts it); `note(updated)` hears
    of each run's results."""

    name = "calibration update"

    def __init__(
        self,
        book_path: Path | str,
        every_s: float,
        client: Callable[[], InfluxClient],
        *,
        catch_up_s: float = 7 * 86400.0,
        note: Callable[[list[Updated]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book_path = Path(book_path)
        self.every_s = every_s
        self.catch_up_s = catch_up_s
        self._client = client
        self._note = note
        self._clock = clock
        self.runs = 0  # runs completed (failed ones too)
        self.last: list[Updated] = []

    def run_once(self) -> list[Updated]:
        from sensorpipe.calibration.store import open_book

        book = open_book(self.book_path, create=False)
        if book is None:
            self.runs += 1
            self.last = []
            return []
        try:
            now_ms = int(self._clock() * 1000)
            ids = group_ids(book)
            done = update_each(
                book,
                self._client() if ids else None,  # type: ignore[arg-type]
                ids,
                now_ms=now_ms,
                not_before_ms=now_ms - int(self.catch_up_s * 1000),
            )
        finally:
            book.close()
        self.runs += 1
        self.last = done
        for u in done:
            log.log(logging.INFO if u.ok else logging.WARNING, "calibration update: %s", u.line())
        if self._note is not None:
            self._note(done)
        failed = [u for u in done if not u.ok]
        if failed:
            raise UpdateFailed("; ".join(u.line() for u in failed))
        return done


class UpdateFailed(RuntimeError):
    """One or more calibrations of a periodic run failed (the others were updated)."""
