"""One device cannot hurt the others (bench/isolation.py, short): five good devices at 2 msg/s
through a real Mosquitto, influxd, the ingest and the kit gateway, and one registered attacker
per mode. For every mode the good devices keep at least 95 % of the stored rate they had in the
baseline window measured just before, lose nothing, and keep their dead letters; a flooding
attacker is quarantined (the quarantine book says so) and cut off (the broker closes or refuses
its connection, the kit gateway answers 403); how soon is a printed figure, not an assertion.
A subscribing attacker is refused at SUBSCRIBE and the broker's memory stays put.

One stack for the module, the modes in the bench's order (the shared-group mode replaces the
stack's ingest by a worker on its shared group, so it runs last)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.isolation import MODES, Bench, ModeResult, attack_summary, line
from tests.integration.conftest import _require_binaries

pytestmark = pytest.mark.integration

BASELINE_S = 3.0
# Long enough for a sustained flood to be quarantined (the ingest's default: over its quota in
# 10 s out of 15; it took 8 to 9 s on a 2-core machine), with room for a slower one; the
# subscribing attackers need only the time to subscribe.
ATTACK_S = {"subscriptions": 5.0, "shared_group": 5.0}
FLOOD_ATTACK_S = 16.0
DRAIN_S = 20.0
# A message counts as stored in time within 2 s of its publication (the bench: 1 s): a CI
# machine may be slower, and the attacker takes its CPU too. A flood that queues good messages
# delays them by far more (p99 2 to 20 s measured before the ingest took devices in turn).
GRACE_S = 2.0
# What the broker may grow by while one device sends 100,000 subscription filters (it grew by
# 100 MB, and kept it, when they were granted).
RSS_GROWTH_MB = 16.0


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    _require_binaries()
    b = Bench(Path(tmp_path_factory.mktemp("isolation")), devices=5, rate=2.0, say=print)
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", MODES)
def test_one_attacker_does_not_hurt_the_good_devices(bench: Bench, mode: str) -> None:
    r: ModeResult = bench.run_mode(
        mode,
        baseline_s=BASELINE_S,
        attack_s=ATTACK_S.get(mode, FLOOD_ATTACK_S),
        drain_s=DRAIN_S,
        grace_s=GRACE_S,
    )
    print(f"{mode}: {line(r)}\n  attacker: {attack_summary(r)}")
    assert "error" not in r.attack, r.attack
    assert r.published >= 0.5 * 10 * ATTACK_S.get(mode, FLOOD_ATTACK_S), r  # they did publish
    assert r.lost == 0, r
    assert r.stored_rate_ratio >= 0.95, r
    assert r.good_letters_kept == r.good_letters_made, r
    if mode in ("bad_signatures", "large_messages", "kit_flood"):
        assert r.quarantined_after_s is not None, r
        assert r.attack["cut_off_after_s"] is not None, r.attack  # and the quarantine holds
    if mode == "subscriptions":
        a = r.attack
        assert a["answered_packets"] == a["subscribe_packets"] or a["cut_off_after_s"], a
        assert a["granted"] == 0, a
        assert r.rss_peak_mb is not None and r.rss_before_mb is not None, r
        assert r.rss_peak_mb - r.rss_before_mb < RSS_GROWTH_MB, r
    if mode == "shared_group":
        assert r.attack["received"] == 0, r.attack
        assert all("Not authorized" in code for code in r.attack["suback"]), r.attack
