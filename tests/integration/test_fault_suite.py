"""The fault suite (bench/faults.py), small: every case loses nothing and doubles nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import CASES, run_case, table


@pytest.mark.timeout(300)
def test_every_fault_case_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    results = [
        run_case(
            case,
            tmp_path / case,
            devices=10,
            interval_s=0.2,
            warmup_s=3.0,
            down_s=2.0,
            after_s=3.0,
            say=lambda _m: None,
            # What a killed broker acknowledged and forgot is offered again within the drain
            # (as deployed, after 10 min): every message must then be stored.
            confirm_timeout_s=10.0,
        )
        for case in CASES
    ]
    print(table(results))
    for r in results:
        assert r.sent > 10 * (3.0 + 2.0) / 0.2 * 0.5, r  # the load really ran through the fault
        assert (r.lost, r.duplicated, r.rejected, r.pending) == (0, 0, 0, 0), r
        assert r.stored == r.sent, r
