"""The register's statistics are computed once, whoever asks first: the service's warm-up
thread and the first request share a lock, so a request that arrives while the warm-up is
computing waits for those figures instead of computing its own (and the warm-up does not
replace a request's fresh figures a moment later)."""

from __future__ import annotations

import threading
import time

import pytest

from sensorpipe.api import context as context_module
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext


class SlowStats:
    """Stands in for register_stats: counts its calls, each taking `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def __call__(self, influx: object) -> object:
        self.calls += 1
        time.sleep(self.delay_s)
        return ("figures", self.calls)


def context(cache_s: float) -> ApiContext:
    config = ServeConfig(
        registry_path="/nonexistent/registry.toml",
        influx=InfluxSettings(url="http://127.0.0.1:9", database="x"),
        register_cache_s=cache_s,
    )
    return ApiContext(config)


def counted(monkeypatch: pytest.MonkeyPatch, delay_s: float) -> tuple[SlowStats, ApiContext]:
    """A context of register_cache_s 600 whose statistics are SlowStats'."""
    slow = SlowStats(delay_s)
    monkeypatch.setattr(context_module, "register_stats", slow)
    return slow, context(600)


def test_warm_up_and_first_request_compute_the_statistics_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow, ctx = counted(monkeypatch, delay_s=0.2)
    stop = threading.Event()
    warm_up = threading.Thread(target=ctx.keep_stats_fresh, args=(stop,))
    warm_up.start()
    try:
        time.sleep(0.05)  # the warm-up is computing
        first = ctx.stats()
        second = ctx.stats()
    finally:
        stop.set()
        warm_up.join()
    assert first == second == ("figures", 1)
    assert slow.calls == 1


def test_a_request_first_then_the_warm_up_keeps_its_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow, ctx = counted(monkeypatch, delay_s=0.0)
    assert ctx.stats() == ("figures", 1)
    stop = threading.Event()
    warm_up = threading.Thread(target=ctx.keep_stats_fresh, args=(stop,))
    warm_up.start()
    time.sleep(0.1)
    stop.set()
    warm_up.join()
    assert ctx.stats() == ("figures", 1)
    assert slow.calls == 1


def test_old_figures_are_recomputed(monkeypatch: pytest.MonkeyPatch) -> None:
    _slow, ctx = counted(monkeypatch, delay_s=0.0)
    ctx.stats()
    ctx._compute_unless_fresh(0.0)  # anything older than nothing is recomputed
    assert ctx.stats() == ("figures", 2)
