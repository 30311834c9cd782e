"""The quarantine book shared by the ingest, the kit gateway and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.protocol.quarantine import QuarantineBook


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
