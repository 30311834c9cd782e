"""A problem that keeps happening is logged at once, then less and less often, never lost."""

from __future__ import annotations

import logging

import pytest

from sensorpipe.protocol.problems import RepeatedProblem

log = logging.getLogger("test.problems")


def test_repeats_are_logged_after_doubling_pauses_and_the_end_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    problem = RepeatedProblem(log, "broker", clock=lambda: now[0], first_pause_s=10, max_pause_s=40)
    logged_at = []
    with caplog.at_level(logging.WARNING, logger="test.problems"):
        for second in range(200):  # the same failure once a second
            now[0] = float(second)
            if problem.report("refused"):
                logged_at.append(second)
        assert logged_at == [0, 10, 30, 70, 110, 150, 190]  # pauses 10, 20, 40, 40, ...
        assert caplog.records[1].getMessage() == "broker: refused; 10 times in the last 10 s"
        now[0] = 200.5
        assert problem.report("another reason")  # a new reason: at once
        now[0] = 260.0
        assert problem.resolved("connected")
        assert caplog.records[-1].getMessage() == (
            "connected (after 201 failed attempts over 260 s)"
        )
        assert not problem.resolved("connected")  # said once
        assert not problem.active
