"""The quarantine book shared by the ingest, the kit gateway and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.protocol.quarantine import QuarantineBook
from tests.helpers import run_sql


def test_quarantine_lift_and_the_event_log(tmp_path: Path) -> None:
    book = QuarantineBook(tmp_path / "q.sqlite")
    assert book.quarantine("dev-1", reason="over_rate", detail="80 msg/s for 10 s", by="ingest")
    assert not book.quarantine("dev-1", reason="over_bytes", by="ingest")  # already
    assert book.is_quarantined("dev-1")
    assert book.active()["dev-1"].reason == "over_rate"  # the first reason stays
    lifted = book.lift("dev-1", by="operator")
    assert lifted is not None and lifted.detail == "80 msg/s for 10 s"
    assert not book.is_quarantined("dev-1")
    assert book.lift("dev-1", by="operator") is None
    assert [(e.event, e.by) for e in book.events(device_id="dev-1")] == [
        ("lifted", "operator"),
        ("quarantined", "ingest"),
    ]


def test_another_process_sees_a_change_within_the_cache_time(tmp_path: Path) -> None:
    now = [0.0]
    reader = QuarantineBook(tmp_path / "q.sqlite", cache_s=1.0, clock=lambda: now[0])
    writer = QuarantineBook(tmp_path / "q.sqlite")
    assert not reader.is_quarantined("dev-2")
    writer.quarantine("dev-2", reason="manual", by="operator")
    assert not reader.is_quarantined("dev-2")  # cached for up to a second
    now[0] = 1.5
    assert reader.is_quarantined("dev-2")
    writer.lift("dev-2", by="operator")
    now[0] = 3.0
    assert not reader.is_quarantined("dev-2")


def test_unknown_reason_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown quarantine reason"):
        QuarantineBook(tmp_path / "q.sqlite").quarantine("d", reason="bored", by="x")


def test_the_file_is_private(tmp_path: Path) -> None:
    QuarantineBook(tmp_path / "q.sqlite")
    assert (tmp_path / "q.sqlite").stat().st_mode & 0o077 == 0


def test_a_lift_stays_pending_until_the_broker_confirms_it(tmp_path: Path) -> None:
    book = QuarantineBook(tmp_path / "q.sqlite")
    book.quarantine("dev-3", reason="manual", by="operator")
    assert book.lift("dev-3", by="operator") is not None
    assert not book.is_quarantined("dev-3")
    (pending,) = book.pending_lifts().values()
    assert (pending.device_id, pending.reason, pending.attempts) == ("dev-3", "manual", 0)
    book.lift_failed("dev-3", "no answer within 10 s")
    book.lift_failed("dev-3", "connection refused")
    again = QuarantineBook(tmp_path / "q.sqlite").pending_lifts()["dev-3"]  # another process
    assert (again.attempts, again.last_error) == (2, "connection refused")
    assert book.lift_done("dev-3", by="ingest")
    assert book.pending_lifts() == {}
    assert not book.lift_done("dev-3", by="ingest")  # done once
    assert [e.event for e in book.events(device_id="dev-3")] == [
        "enabled",
        "lifted",
        "quarantined",
    ]


def test_quarantined_again_a_pending_lift_is_dropped(tmp_path: Path) -> None:
    book = QuarantineBook(tmp_path / "q.sqlite")
    book.quarantine("dev-4", reason="manual", by="operator")
    book.lift("dev-4", by="operator")
    assert "dev-4" in book.pending_lifts()
    book.quarantine("dev-4", reason="over_rate", by="ingest")
    assert book.pending_lifts() == {}  # the account must stay disabled: nothing to enable


def test_an_old_book_gains_the_pending_lifts_table(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    run_sql(
        path,
        "CREATE TABLE quarantined (device_id TEXT PRIMARY KEY, since REAL NOT NULL, "
        "reason TEXT NOT NULL, detail TEXT NOT NULL, by TEXT NOT NULL)",
        "INSERT INTO quarantined VALUES ('old', 1.0, 'manual', '', 'operator')",
    )
    book = QuarantineBook(path)
    assert book.lift("old", by="operator") is not None
    assert "old" in book.pending_lifts()
