"""A process that fails to start is shown with what it wrote this time: its log is appended to
across starts (`stack up` after `stack up`), and an earlier run's errors would bury the one
that matters now."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sensorpipe.process import ManagedProcess, ProcessStartError


def _failing(log: Path, says: str) -> ManagedProcess:
    code = f"import sys; print({says!r}); sys.exit(3)"
    return ManagedProcess("ingest", [sys.executable, "-c", code], log)


def test_a_failed_start_shows_only_this_starts_lines(tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    with pytest.raises(ProcessStartError) as first:
        _failing(log, "Error: the first typo").start(lambda: False, timeout_s=30)
    assert "Error: the first typo" in str(first.value)
    with pytest.raises(ProcessStartError) as second:
        _failing(log, "Error: the second typo").start(lambda: False, timeout_s=30)
    said = str(second.value)
    assert said == "ingest exited with code 3:\nError: the second typo"
    assert "first typo" in log.read_text()  # the log keeps both
