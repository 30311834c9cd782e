"""The Things Stack nodes' rate limit and quarantine in the kit gateway: uplinks over a node's
limit (by the Network Server's times) are dropped and counted, late ones pass as they were
sent, a node that keeps exceeding it is quarantined, and a quarantined node's uplinks are
dropped yet acknowledged until an operator lifts it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sensorpipe.gateway.kits.context import Counters
from sensorpipe.gateway.kits.limits import Budget, Pacer, SentRateLimiter
from sensorpipe.gateway.kits.quarantine import KitQuarantine
from sensorpipe.gateway.kits.ttn_config import UPLINK_BURST, UPLINK_REFILL_S
from sensorpipe.gateway.kits.ttn_receiver import TtnReceiver
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.gateway.kits.ttn_webhook import token_hash, webhook_router
from sensorpipe.protocol.quarantine import QuarantineBook
from tests.test_ttn import APP, FakePublisher, Letters, application, registry, sample

START = datetime(2024, 11, 26, 9, 0, tzinfo=UTC)
NODE = "eui-70b3d57ed005e1a2"  # registered as fijnstof-01
OTHER = "school-dak-02"  # registered as school-02
TOKEN = "webhook-token"


class Clocks:
    """The gateway's wall clock (epoch s) and monotonic clock, moved together."""

    def __init__(self) -> None:
        self.wall = (START + timedelta(hours=1)).timestamp()
        self.mono = 5000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def uplink(device: str, f_cnt: int, at: datetime) -> bytes:
    obj: dict[str, Any] = json.loads(sample("uplink.json"))
    obj["end_device_ids"]["device_id"] = device
    obj["uplink_message"]["f_cnt"] = f_cnt
    obj["uplink_message"]["received_at"] = at.isoformat().replace("+00:00", "Z")
    obj["received_at"] = obj["uplink_message"]["received_at"]
    return json.dumps(obj).encode()


class Node:
    """A receiver for the test application with a quarantine book, and its fakes."""

    def __init__(self, tmp_path: Path, **app: Any) -> None:
        self.clocks = Clocks()
        self.publisher = FakePublisher()
        self.letters = Letters()
        self.counters = Counters()
        self.book_path = tmp_path / "quarantine.sqlite"
        self.book = QuarantineBook(self.book_path, clock=lambda: self.clocks.mono)
        self.quarantine = KitQuarantine(
            self.book,
            gateway_id="gw-1",
            counters=self.counters,
            after_s=10,
            clock=lambda: self.clocks.mono,
        )
        self.state = TtnState(tmp_path / "ttn.sqlite")
        self.waited: list[float] = []  # the publishing pace's waits
        self.pacer = Pacer(10.0, clock=lambda: self.clocks.mono, sleep=self._sleep)
        self.receiver = TtnReceiver(
            application(**app),
            publisher=self.publisher,
            registry=registry,
            letters=self.letters,
            state=self.state,
            counters=self.counters,
            clock=lambda: self.clocks.wall,
            quarantine=self.quarantine,
            pacer=self.pacer,
        )

    def _sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.clocks.advance(seconds)

    def live(self, device: str, f_cnt: int) -> str | None:
        """One uplink sent now and handled at once; why it was dropped, if it was."""
        at = datetime.fromtimestamp(self.clocks.wall, UTC)
        return self.receiver.handle(uplink(device, f_cnt, at)).dropped

    def published(self, kit: str) -> int:
        return sum(1 for m in self.publisher.messages if m.device_id == kit)

    def close(self) -> None:
        self.quarantine.close()
        self.state.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    yield n
    n.close()


def test_the_limiter_counts_by_send_time() -> None:
    now = [1000.0]
    limiter = SentRateLimiter(burst=2, refill_s=10.0, clock=lambda: now[0])
    assert [limiter.allow("n", t) for t in (900.0, 901.0, 902.0)] == [True, True, False]
    assert limiter.allow("n", 912.0)  # 10 s of send time later: one more
    # Sent before the newest counted: a late delivery, not counted.
    assert all(limiter.allow("n", 850.0 + i) for i in range(50))
    assert not limiter.allow("n", 912.0)
    # A time ahead of the gateway's clock counts as now: it buys nothing later.
    assert limiter.allow("n", 5000.0)  # counted at 1000: 88 s of refill, full again
    assert limiter.allow("n", 5000.0)
    assert not limiter.allow("n", 5000.0)
    assert not limiter.allow("n", None)
    assert limiter.allow("other", None)


def test_the_limiter_forgets_a_node_a_whole_burst_after_it_was_counted() -> None:
    now = [1000.0]
    limiter = SentRateLimiter(burst=2, refill_s=10.0, clock=lambda: now[0], max_keys=1)
    assert limiter.allow("a", 990.0)
    now[0] = 1005.0
    assert limiter.allow("b", None)  # a is full again, but counted only 15 s ago: kept
    assert all(limiter.allow("a", 980.0 + i) for i in range(3))  # late: not counted
    now[0] = 1011.0
    assert limiter.allow("c", None)  # a was counted 21 s ago: forgotten
    # A new bucket for a, which counts these: a burst of 2, then 0.1 a second.
    assert [limiter.allow("a", 980.0 + i) for i in range(3)] == [True, True, False]


def test_the_budget_uses_an_item_only_with_its_bytes() -> None:
    budget = Budget(items=2, size=1000, window_s=100.0, clock=lambda: 0.0)
    assert budget.take(900)
    assert not budget.take(500) and not budget.take(500)  # 100 bytes left: no item used
    assert budget.take(100)  # the second item
    assert not budget.take(0)  # and no third


def test_the_default_is_the_lora_duty_cycle() -> None:
    app = application()
    assert (app.uplink_burst, app.uplink_refill_s) == (UPLINK_BURST, UPLINK_REFILL_S) == (10, 2.0)


def test_a_node_over_its_rate_has_uplinks_dropped_and_counted_not_kept(node: Node) -> None:
    dropped = []
    for f_cnt in range(40):  # one a second for 40 s: twice the limit
        dropped.append(node.live(NODE, f_cnt))
        if f_cnt % 2 == 0:
            assert node.live(OTHER, f_cnt) is None  # another node, at the limit: all taken
        node.clocks.advance(1.0)
    # The burst of 10 (and the 9 s it took, 19 in all), then one every 2 s.
    assert dropped[:19] == [None] * 19
    assert dropped[19:] == ["over_rate", None] * 10 + ["over_rate"]
    assert node.published("fijnstof-01") == 29
    assert node.published("school-02") == 20
    assert node.letters.kept == []  # a flood must not fill the dead-letter store
    assert node.counters.get("ttn", "uplinks", "dropped_over_rate") == 11
    assert node.receiver.stats.dropped == {"over_rate": 11}
    # A dropped uplink counts as handled: delivered again, it is not taken after all.
    at = datetime.fromtimestamp(node.clocks.wall - 1.0, UTC)
    assert node.receiver.handle(uplink(NODE, 39, at)).duplicate
    # Over it every other second: never 10 of 15 seconds, not quarantined.
    assert node.quarantine.active() == []


def test_a_node_nobody_registered_is_limited_too_and_never_quarantined(node: Node) -> None:
    dropped = []
    for f_cnt in range(4 * 20):  # four a second for 20 s
        dropped.append(node.live("stranger", f_cnt))
        node.clocks.advance(0.25)
    # Its letters (unknown_device) stop at its limit: the store is not filled by a flood.
    assert node.letters.codes() == ["unknown_device"] * dropped.count(None)
    # The burst of 10 and one per 2 s of the 19.75 s that follow.
    assert dropped.count(None) == 19 and dropped.count("over_rate") == 61
    assert node.letters.kept[0].topic == f"ttn:{APP}/stranger"
    assert node.quarantine.active() == []  # there is no kit to quarantine


def test_a_kit_of_another_gateway_is_limited_but_not_quarantined_here(node: Node) -> None:
    for f_cnt in range(4 * 20):
        node.live("elders-03", f_cnt)  # registered to gw-2
        node.clocks.advance(0.25)
    assert node.letters.codes() == ["wrong_signer"] * 19
    assert node.quarantine.active() == []


def test_uplinks_that_arrive_together_pass_as_they_were_sent(node: Node) -> None:
    # Queued while the broker was away, or fetched from the Storage Integration: a day of
    # uplinks every 5 minutes, handled at once.
    node.clocks.advance(2 * 86400.0)
    for f_cnt in range(288):
        handled = node.receiver.handle(uplink(NODE, f_cnt, START + timedelta(minutes=5 * f_cnt)))
        assert handled.dropped is None
    # Live ones go on; one older than those (the storage's late batch) passes too.
    assert node.live(NODE, 300) is None
    late = node.receiver.handle(uplink(NODE, 299, START - timedelta(minutes=5)))
    assert late.dropped is None
    assert node.published("fijnstof-01") == 290
    # Published ten a second, not all at once: within the ingest's quota per device.
    assert len(node.waited) == 289 and all(w == pytest.approx(0.1) for w in node.waited)


def test_a_node_that_keeps_exceeding_is_quarantined_until_lifted(node: Node) -> None:
    dropped = []
    for f_cnt in range(4 * 30):  # four a second for 30 s
        dropped.append(node.live(NODE, f_cnt))
        node.clocks.advance(0.25)
    first = dropped.index("quarantined")
    assert set(dropped[first:]) == {"quarantined"}
    # Over its limit from the 3rd second on: over it in 10 seconds by the 13th.
    assert 11 * 4 <= first <= 14 * 4
    (entry,) = node.quarantine.active()
    assert (entry.device_id, entry.reason, entry.by) == ("fijnstof-01", "kit_flood", "gw-1")
    assert "rate limit of 10 at once, then one every 2 s" in entry.detail
    assert node.counters.get("ttn", "quarantine", "quarantined") == 1
    assert node.counters.get("ttn", "uplinks", "dropped_quarantined") == len(dropped) - first
    assert node.live(OTHER, 1) is None  # the other nodes are not touched
    # Lifted by an operator: within the book's cache_s it is taken again.
    operator = QuarantineBook(node.book_path)
    assert operator.lift("fijnstof-01", by="operator") is not None
    operator.close()
    node.clocks.advance(30.0)
    before = node.published("fijnstof-01")
    assert node.live(NODE, 500) is None
    assert node.published("fijnstof-01") == before + 1


def test_a_node_quarantined_elsewhere_is_dropped_and_the_webhook_still_says_200(
    node: Node,
) -> None:
    operator = QuarantineBook(node.book_path)
    operator.quarantine("fijnstof-01", reason="manual", by="operator")
    operator.close()
    node.clocks.advance(2.0)
    node.receiver.app = application(webhook_token_hashes=[token_hash(TOKEN)])
    api = FastAPI()
    api.include_router(webhook_router({APP: node.receiver}))
    at = datetime.fromtimestamp(node.clocks.wall, UTC)
    answer = TestClient(api).post(
        f"/ttn/v3/{APP}/uplink",
        content=uplink(NODE, 7, at),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    # Acknowledged: an error would count against the webhook, for every node.
    assert answer.status_code == 200
    assert answer.json()["dropped"] == "quarantined" and answer.json()["published"] is False
    assert node.publisher.messages == [] and node.letters.kept == []
    assert node.counters.get("ttn", "quarantine", "refused") == 1


def test_the_pace_is_per_kit() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    assert [pacer.wait("a") for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert pacer.wait("b") == 0.0  # another kit does not wait for this one
    now[0] = 5.0
    assert pacer.wait("a") == 0.0  # a kit within its pace never waits
    assert slept == pytest.approx([0.1, 0.2])


def test_the_pacer_keeps_a_kit_in_mind_while_its_turn_is_to_come() -> None:
    pacer = Pacer(10.0, clock=lambda: 0.0, sleep=lambda _s: None, max_keys=1)
    assert [pacer.wait("a") for _ in range(2)] == pytest.approx([0.0, 0.1])
    assert pacer.wait("b") == 0.0  # beyond max_keys, but a's next turn is still to come
    assert pacer.wait("a") == pytest.approx(0.2)


def test_limits_per_application_in_the_config() -> None:
    app = application(uplink_burst=3, uplink_refill_s=60)
    assert (app.uplink_burst, app.uplink_refill_s) == (3, 60)
    with pytest.raises(ValueError, match="uplink_refill_s"):
        application(uplink_refill_s=0)
