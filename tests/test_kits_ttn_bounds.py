"""The Things Stack uplinks a webhook token holder (or a node nobody registered) could abuse,
through the gateway's real webhook, receiver, state file and dead-letter store:

- an uplink at a time already handled for the node, with another f_cnt, is refused and kept
  (it would overwrite the stored reading);
- uplinks dated beyond the ingest's window (future, too old) are dead-lettered by the gateway
  and move no state: later genuine uplinks keep their sequence numbers;
- the answer says "published" (the ingest may still reject what was published);
- letters of nodes nobody registered are bounded per application.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sensorpipe.cli.gateway import _DeadLetters
from sensorpipe.gateway.kits import ttn
from sensorpipe.gateway.kits.context import KitContext, RegistryFile
from sensorpipe.gateway.kits.ttn_receiver import TtnReceiver
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.gateway.kits.ttn_webhook import token_hash, webhook_router
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.reasons import REASONS
from sensorpipe.protocol.registry import save_registry
from tests.test_ttn import APP, FakePublisher, Letters, application, edited, registry

TOKEN = "webhook-token"
URL = f"/ttn/v3/{APP}/uplink"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
NOW = datetime(2024, 11, 26, 9, 16, 40, tzinfo=UTC)
NODE = "eui-70b3d57ed005e1a2"  # registered as fijnstof-01


def _time(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def uplink(f_cnt: int, at: datetime | str, *, node: str = NODE, pm25: Any = 5.0) -> bytes:
    stamp = at if isinstance(at, str) else _time(at)

    def change(obj: dict[str, Any]) -> None:
        obj["end_device_ids"]["device_id"] = node
        up = obj["uplink_message"]
        up["f_cnt"] = f_cnt
        up["received_at"] = stamp
        obj["received_at"] = stamp
        for meta in up.get("rx_metadata", []):
            meta["received_at"] = stamp
        up["decoded_payload"] = {"pm25": pm25}

    return edited("uplink.json", change)


class Setup:
    def __init__(self, tmp_path: Path, **app_settings: Any) -> None:
        self.publisher = FakePublisher()
        self.letters = Letters()
        self.state = TtnState(tmp_path / "ttn.sqlite")
        self.receiver = TtnReceiver(
            application(webhook_token_hashes=[token_hash(TOKEN)], **app_settings),
            publisher=self.publisher,
            registry=registry,
            letters=self.letters,
            state=self.state,
            clock=lambda: NOW.timestamp(),
        )
        api = FastAPI()
        api.include_router(webhook_router({APP: self.receiver}))
        self.client = TestClient(api)

    def post(self, body: bytes) -> dict[str, Any]:
        response = self.client.post(URL, content=body, headers=HEADERS)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path)
    yield setup
    setup.state.close()


def test_an_uplink_at_a_handled_time_with_another_f_cnt_is_refused_and_kept(gw: Setup) -> None:
    at = NOW - timedelta(minutes=5)
    first = gw.post(uplink(10, at, pm25=5.0))
    assert first["published"] is True and first["seq"] == 11
    forged = gw.post(uplink(99, at, pm25=444))
    assert forged["published"] is False
    assert forged["dead_lettered"] == ["conflicting_uplink"]
    assert [m.readings[0].value for m in gw.publisher.messages] == [5.0]
    (letter,) = gw.letters.kept
    assert letter.code == "conflicting_uplink" and letter.device_id == "fijnstof-01"
    assert "f_cnt 10" in letter.detail and "f_cnt 99" in letter.detail
    assert "conflicting_uplink" in REASONS
    # It moved no sequence state: the next genuine uplink follows the first.
    assert gw.post(uplink(11, NOW - timedelta(minutes=4)))["seq"] == 12


@pytest.mark.parametrize(
    ("at", "code"),
    [
        (_time(NOW + timedelta(days=1)), "future_timestamp"),
        ("9999-12-31T23:59:59Z", "future_timestamp"),
        (_time(NOW - timedelta(days=8)), "too_old"),
    ],
)
def test_an_uplink_outside_the_ingests_window_is_kept_and_moves_no_state(
    gw: Setup, at: str, code: str
) -> None:
    gw.post(uplink(10, NOW - timedelta(minutes=10)))
    rejected = gw.post(uplink(500, at))
    assert rejected["published"] is False and rejected["dead_lettered"] == [code]
    assert rejected["seq"] is None
    (letter,) = gw.letters.kept
    assert letter.device_id == "fijnstof-01"
    # A genuine uplink after it: numbered after the last genuine one, not after f_cnt 500.
    later = gw.post(uplink(11, NOW - timedelta(minutes=5)))
    assert later["published"] is True and later["seq"] == 12
    assert [m.seq for m in gw.publisher.messages] == [11, 12]
    # The uplinks remembered as handled are the genuine ones only (no time in 9999 that would
    # make the week of handled uplinks look old).
    assert not gw.state.was_handled(APP, (NODE, _ms(at), 500, False))
    assert gw.state.was_handled(APP, (NODE, _ms(_time(NOW - timedelta(minutes=10))), 10, False))


def _ms(at: str) -> int:
    return round(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)


def test_a_little_clock_skew_is_still_taken(gw: Setup) -> None:
    assert gw.post(uplink(1, NOW + timedelta(seconds=200)))["published"] is True


def test_the_window_is_configurable(tmp_path: Path) -> None:
    setup = Setup(tmp_path, max_future_s=3600, max_backlog_s=30 * 86400)
    assert setup.post(uplink(1, NOW - timedelta(days=20)))["published"] is True
    assert setup.post(uplink(2, NOW + timedelta(minutes=30)))["published"] is True
    assert setup.post(uplink(3, NOW + timedelta(hours=2)))["dead_lettered"] == ["future_timestamp"]


# --- nodes nobody registered -------------------------------------------------------------------
def _gateway(tmp_path: Path, **app_settings: Any) -> tuple[TestClient, KitContext, Path]:
    """The gateway's webhook (its TtnService) with the real dead-letter store behind it."""
    save_registry(registry(), tmp_path / "registry.toml")
    db = tmp_path / "deadletter.sqlite"
    store = DeadLetterStore(db, per_device_letters=10_000, per_device_bytes=64 * 1024 * 1024)
    ctx = KitContext(
        gateway_id="gw-1",
        publisher=FakePublisher(),  # type: ignore[arg-type]
        registry=RegistryFile(tmp_path / "registry.toml"),
        deadletters=_DeadLetters(store),
    )
    app = application(webhook_token_hashes=[token_hash(TOKEN)], **app_settings)
    api = FastAPI()
    api.include_router(ttn.webhook_router([app], ctx, state_path=tmp_path / "ttn-state.sqlite"))
    return TestClient(api), ctx, db


def test_letters_of_unregistered_nodes_are_bounded_per_application(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, ctx, db = _gateway(tmp_path, unknown_node_letters=5)
    padding = "x" * 20_000
    caplog.set_level(logging.WARNING)
    now = datetime.now(UTC)
    answers = []
    for i in range(20):
        body = uplink(1, now - timedelta(seconds=i), node=f"invented-{i:04d}", pm25=padding)
        response = client.post(URL, content=body, headers=HEADERS)
        assert response.status_code == 200
        answers.append(response.json())
    store = DeadLetterStore(db)
    kept = store.list(limit=100)
    store.close()
    assert len(kept) == 5 and {d.code for d in kept} == {"unknown_device"}
    assert [a["dropped"] for a in answers].count("letter_budget") == 15
    assert ctx.counters.get("ttn", "uplinks", "dropped_letter_budget") == 15
    assert ctx.counters.get("ttn", "deadletters", "over_budget") == 15
    said = [r for r in caplog.records if "unregistered nodes" in r.getMessage()]
    assert len(said) == 1  # said once a minute, not per uplink
    # A registered node's letters do not count against it.
    mine = client.post(URL, content=uplink(3, now, pm25="text"), headers=HEADERS).json()
    assert mine["dead_lettered"] == ["schema"] and mine["dropped"] is None


def test_the_unknown_node_budget_has_a_default(tmp_path: Path) -> None:
    app = application()
    assert app.unknown_node_letters == 500
    assert app.unknown_node_letter_bytes == 4 * 1024 * 1024
    assert app.unknown_node_window_s == 86400


def test_uplinks_of_nodes_that_are_no_kit_of_this_gateway_are_not_remembered(
    tmp_path: Path,
) -> None:
    """Uplinks of nodes that are no kit of this gateway are remembered as handled in
    ttn-state.sqlite only while their letters are kept (within the budget of unknown nodes'
    letters): an invented node id per uplink, dropped over the budget, adds nothing to the
    file, which would otherwise grow by a row per uplink for a week."""
    setup = Setup(tmp_path, unknown_node_letters=3)
    try:
        for i in range(20):
            answer = setup.post(uplink(1, NOW - timedelta(seconds=i), node=f"invented-{i:04d}"))
            assert answer["published"] is False
        mine = setup.post(uplink(10, NOW - timedelta(minutes=1)))
        assert mine["published"] is True
        db = sqlite3.connect(tmp_path / "ttn.sqlite")
        rows = db.execute("SELECT device FROM handled").fetchall()
        db.close()
        kept = {"invented-0000", "invented-0001", "invented-0002"}  # the budget's three letters
        assert sorted(d for (d,) in rows) == sorted({NODE, *kept})
        # One whose letter was kept, delivered again: known, not kept twice.
        assert setup.post(uplink(1, NOW, node="invented-0000"))["duplicate"] is True
        # A kit's uplink delivered again is still known as handled.
        assert setup.post(uplink(10, NOW - timedelta(minutes=1)))["duplicate"] is True
    finally:
        setup.state.close()
