"""Quarantine at the kit gateway's airrohr endpoint, without a broker: a kit that keeps posting
over its rate limit is quarantined, a quarantined kit is refused before its password is
checked, an operator's lift lets it back, and wrong passwords never quarantine a kit."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from sensorpipe.gateway.kits.app import AIRROHR_PATH, create_app
from sensorpipe.gateway.kits.auth import KitAuthenticator
from sensorpipe.gateway.kits.config import (
    QUARANTINE_AFTER_S,
    GatewaySecrets,
    load_gateway_config,
)
from sensorpipe.gateway.kits.context import Counters, KitContext, RegistryFile
from sensorpipe.gateway.kits.intake import AirrohrIntake
from sensorpipe.gateway.kits.limits import RateLimiter
from sensorpipe.gateway.kits.quarantine import KitQuarantine, SustainedOver, describe
from sensorpipe.gateway.kits.seq import SeqStore
from sensorpipe.gateway.kits.service import KitGateway
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.quarantine import Quarantine, QuarantineBook
from tests.airrohr_post import SDS_BME280_VALUES, SOFTWARE_VERSION, firmware_body
from tests.test_airrohr_gateway import (
    GATEWAY,
    FakeClock,
    FakePublisher,
    MemoryLetters,
    _basic,
    _gateway_files,
    _registry,
)

KIT = "airrohr-13107491"
OTHER = "airrohr-777"
BODY = firmware_body("13107491", SDS_BME280_VALUES)
OTHER_BODY = firmware_body("777", SDS_BME280_VALUES)


class Gateway:
    """The airrohr endpoint with the default limits, a quarantine book and one fake clock."""

    def __init__(self, tmp_path: Path, *, book: bool = True) -> None:
        self.clock = FakeClock()
        self.passwords = _registry(tmp_path / "registry.toml")
        self.publisher = FakePublisher()
        self.registry = RegistryFile(tmp_path / "registry.toml")
        self.counters = Counters()
        self.book_path = tmp_path / "quarantine.sqlite"
        self.book = QuarantineBook(self.book_path, clock=self.clock) if book else None
        self.quarantine = KitQuarantine(
            self.book,
            gateway_id=GATEWAY,
            counters=self.counters,
            after_s=QUARANTINE_AFTER_S,
            clock=self.clock,
        )
        self.ctx = KitContext(
            GATEWAY,
            self.publisher,
            self.registry,
            MemoryLetters(),
            self.counters,
            quarantine=self.quarantine,
        )
        self.seq = SeqStore(tmp_path / "seq.sqlite")
        self.intake = AirrohrIntake(
            self.ctx,
            next_seq=self.seq.next,
            limiter=RateLimiter(burst=5, refill_s=10.0, clock=self.clock),
            authenticator=KitAuthenticator(self.registry.current, clock=self.clock),
        )
        self.client = TestClient(create_app(self.ctx, self.intake, max_body_bytes=4096))

    def post(
        self, kit: str = KIT, *, password: str | None = None, body: bytes = BODY
    ) -> httpx.Response:
        chip = kit.removeprefix("airrohr-")
        headers = {
            "Authorization": _basic(kit, self.passwords[kit] if password is None else password),
            "Content-Type": "application/json",
            "X-Sensor": f"esp8266-{chip}",
            "User-Agent": f"{SOFTWARE_VERSION}/{chip}/5ccf7f1a2b3c",
        }
        return self.client.post(AIRROHR_PATH, content=body, headers=headers)

    def flood(self, seconds: int, per_second: int = 4) -> list[int]:
        """`per_second` posts of KIT in each of `seconds` seconds; their statuses."""
        statuses = []
        for _ in range(seconds):
            for _ in range(per_second):
                statuses.append(self.post().status_code)
                self.clock.now += 1.0 / per_second
        return statuses

    def close(self) -> None:
        self.seq.close()
        self.quarantine.close()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(tmp_path)
    yield g
    g.close()


def _operator_book(gw: Gateway) -> QuarantineBook:
    """The book as `sensorpipe devices lift|quarantine` opens it: another connection."""
    return QuarantineBook(gw.book_path)


# --- the rule for "sustained" ------------------------------------------------------------------


def test_over_the_limit_in_10_of_15_seconds_is_sustained() -> None:
    clock = FakeClock()
    sustained = SustainedOver(10, clock=clock)
    for _ in range(9):
        assert not sustained.over("k")
        assert not sustained.over("k")  # twice in a second counts once
        clock.now += 1
    assert sustained.over("k")
    sustained.forget("k")
    assert not sustained.over("k")


def test_over_the_limit_now_and_then_is_never_sustained() -> None:
    clock = FakeClock()
    sustained = SustainedOver(10, clock=clock)
    # Every other second for ten minutes: at most 8 of any 15 seconds.
    for _ in range(300):
        assert not sustained.over("k")
        clock.now += 2
    never = SustainedOver(0, clock=clock)
    for _ in range(100):
        assert not never.over("k")
        clock.now += 1


# --- the endpoint ------------------------------------------------------------------------------


def test_a_working_kit_is_never_refused_or_quarantined(gw: Gateway) -> None:
    # The firmware's shortest interval (30 s) for two hours, with a quick repost after a
    # restart now and then.
    for i in range(2 * 120):
        assert gw.post().status_code == 200
        gw.clock.now += 30 if i % 50 else 2
    assert gw.counters.get("airrohr", "posts", "429") == 0
    assert gw.quarantine.active() == []


def test_a_flooding_kit_is_quarantined_and_refused_while_the_others_post(gw: Gateway) -> None:
    statuses = gw.flood(30)
    assert statuses[:5] == [200] * 5 and 429 in statuses
    first_403 = statuses.index(403)
    # Refused for its rate from the 2nd second on: over it in 10 seconds by the 11th.
    assert all(s in (200, 429) for s in statuses[:first_403])
    assert 10 * 4 <= first_403 <= 12 * 4
    assert set(statuses[first_403:]) == {403}
    (entry,) = gw.quarantine.active()
    assert (entry.device_id, entry.reason, entry.by) == (KIT, "kit_flood", GATEWAY)
    assert "rate limit of 5 posts, then one every 10 s" in entry.detail
    assert "over it in 10 of 15 seconds" in entry.detail
    (event,) = gw.book.events() if gw.book else []
    assert event.event == "quarantined"
    answer = gw.post()
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert "\n" not in error and f"`sensorpipe devices lift {KIT}`" in error
    assert f"kit {KIT} is quarantined (kit_flood, since " in error and f"by {GATEWAY})" in error
    # The other kit of the gateway still gets in.
    assert gw.post(OTHER, body=OTHER_BODY).status_code == 200
    assert gw.counters.get("airrohr", "quarantine", "quarantined") == 1
    assert gw.counters.get("airrohr", "quarantine", "refused") == statuses.count(403) and (
        statuses.count(403) > 0
    )


def test_a_quarantined_kit_is_refused_before_its_password_is_checked(
    gw: Gateway, hashed_kit_passwords: list[str]
) -> None:
    # Quarantined by the ingest, not by this gateway: refused all the same.
    operator = _operator_book(gw)
    operator.quarantine(KIT, reason="over_rate", detail="x", by="ingest")
    gw.clock.now += 1.0
    for password in ("wrong-1", "wrong-2", gw.passwords[KIT]):
        answer = gw.post(password=password)
        assert answer.status_code == 403
        assert answer.json()["error"].startswith(f"kit {KIT} is quarantined (over_rate, since ")
        assert "by ingest)" in answer.json()["error"]
    assert hashed_kit_passwords == [] and gw.publisher.messages == []
    operator.close()


def test_a_lift_lets_the_kit_back_and_a_new_flood_quarantines_it_again(gw: Gateway) -> None:
    statuses = gw.flood(15)
    assert statuses[-1] == 403
    operator = _operator_book(gw)
    assert operator.lift(KIT, by="operator") is not None
    # Within the book's cache_s (1 s) it is still refused; then it is let back.
    assert gw.post().status_code == 403
    gw.clock.now += 30.0  # and its bucket has room again
    assert gw.post().status_code == 200
    # A few refusals after the lift do not quarantine it again at once ...
    statuses = gw.flood(5)
    assert 429 in statuses and 403 not in statuses
    # ... going on does.
    statuses = gw.flood(10)
    assert statuses[-1] == 403
    assert [e.event for e in operator.events(device_id=KIT)] == [
        "quarantined",
        "lifted",
        "quarantined",
    ]
    operator.close()


def test_wrong_passwords_at_a_kits_name_never_quarantine_it(gw: Gateway) -> None:
    statuses = []
    for _ in range(60):
        for _ in range(5):
            statuses.append(gw.post(password="guess").status_code)
        gw.clock.now += 1.0
    assert set(statuses) == {401, 429}
    assert gw.quarantine.active() == []
    assert gw.post().status_code == 200


def test_health_and_metrics_show_the_quarantine(gw: Gateway) -> None:
    gw.flood(15)
    health = gw.client.get("/health").json()
    quarantine = health["quarantine"]
    assert quarantine["enabled"] is True and quarantine["quarantine_after_s"] == 10
    assert quarantine["quarantined_kits"] == 1 and quarantine["book_readable"] is True
    assert health["kits"]["airrohr"]["quarantine"]["quarantined"] == 1
    text = gw.client.get("/metrics").text
    assert 'sensorpipe_gateway_quarantine_total{event="quarantined",kit="airrohr"} 1.0' in text
    refused = re.search(
        r'sensorpipe_gateway_quarantine_total\{event="refused",kit="airrohr"\} (\d+)', text
    )
    assert refused is not None and int(refused.group(1)) >= 1
    assert "sensorpipe_gateway_quarantined_kits 1.0" in text
    # A device of no kit of this gateway is not this gateway's to show.
    operator = _operator_book(gw)
    operator.quarantine("someone-else", reason="manual", by="operator")
    assert gw.client.get("/health").json()["quarantine"]["quarantined_kits"] == 1
    operator.close()


def test_anonymous_health_shows_counts_and_states_but_no_text_names_or_addresses(
    gw: Gateway,
) -> None:
    """The gateway faces the internet: /health tells anyone the status and counts, not the
    quarantine's free text, who quarantined, or the broker's problem (its address)."""
    operator = _operator_book(gw)
    secret = "the neighbour at Kerkstraat 12 complained"
    operator.quarantine(KIT, reason="manual", detail=secret, by="operator root")
    operator.close()
    gw.publisher.connected = False
    setattr(gw.publisher, "last_problem", "broker 10.0.3.7:8883: connection refused")  # noqa: B010
    gw.clock.now += 5.0  # past the book's cache
    answer = gw.client.get("/health")
    assert answer.status_code == 200
    for text in (secret, "operator root", "10.0.3.7", "connection refused", KIT, "manual"):
        assert text not in answer.text, text
    health = answer.json()
    assert health["status"] == "degraded" and health["broker"] == {"connected": False}
    assert health["quarantine"]["quarantined_kits"] == 1


def test_without_a_book_the_limit_holds_and_the_flood_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = Gateway(tmp_path, book=False)
    try:
        with caplog.at_level(logging.WARNING, logger="sensorpipe.gateway.kits.quarantine"):
            statuses = gw.flood(40)
        assert 403 not in statuses and statuses.count(429) > 100
        (record,) = caplog.records
        assert f"kit {KIT} keeps exceeding its rate limit" in record.getMessage()
        assert "no quarantine_path" in record.getMessage()
        health = gw.client.get("/health").json()["quarantine"]
        assert health == {
            "enabled": False,
            "quarantine_after_s": 10.0,
            "quarantined_kits": 0,
            "book_readable": True,
        }
    finally:
        gw.close()


def test_a_book_that_cannot_be_written_is_tried_again(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gw.book is not None
    real = gw.book.quarantine

    def broken(*args: object, **kwargs: object) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(gw.book, "quarantine", broken)
    statuses = gw.flood(15)
    assert 403 not in statuses
    assert gw.counters.get("airrohr", "quarantine", "not_recorded") >= 2
    monkeypatch.setattr(gw.book, "quarantine", real)
    assert gw.flood(1)[-1] == 403  # the next refusal records it


def test_a_book_that_cannot_be_read_lets_kits_in_and_says_so(gw: Gateway) -> None:
    assert gw.book is not None
    gw.book.close()
    gw.clock.now += 5.0
    assert gw.post().status_code == 200  # not a 500 for every kit
    statuses = gw.flood(3)
    assert 429 in statuses and 500 not in statuses
    health = gw.client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["quarantine"]["book_readable"] is False
    assert health["quarantine"]["quarantined_kits"] == 0
    assert gw.quarantine.problem is not None
    assert gw.quarantine.problem.startswith(f"{gw.book_path}: cannot be read (")


def test_the_refusal_names_the_lift_command() -> None:
    line = describe(Quarantine(KIT, 1764200000.0, "manual", "", "operator"))
    assert line == (
        f"kit {KIT} is quarantined (manual, since 2025-11-26T23:33:20Z, by operator); "
        f"an operator lets it back with `sensorpipe devices lift {KIT}`"
    )


# --- configuration -----------------------------------------------------------------------------


def test_quarantine_settings_in_the_gateway_config(tmp_path: Path) -> None:
    path = _gateway_files(tmp_path, "")
    config = load_gateway_config(path)
    assert config.quarantine_path is None and config.quarantine_after_s == 10.0
    text = path.read_text().replace(
        "[broker]", 'quarantine_path = "state/q.sqlite"\nquarantine_after_s = 20\n[broker]'
    )
    path.write_text(text)
    config = load_gateway_config(path)
    assert config.quarantine_path == str(tmp_path / "state" / "q.sqlite")
    assert config.quarantine_after_s == 20
    path.write_text(text.replace("quarantine_after_s = 20", "quarantine_after_s = -1"))
    with pytest.raises(ConfigError) as raised:
        load_gateway_config(path)
    assert "quarantine_after_s (line 4)" in str(raised.value) and "\n" not in str(raised.value)


def test_the_gateway_opens_its_book_or_says_why_not(tmp_path: Path) -> None:
    path = _gateway_files(tmp_path, "")
    path.write_text(path.read_text().replace("[broker]", 'quarantine_path = "q.sqlite"\n[broker]'))
    config = load_gateway_config(path)
    gateway = KitGateway(config, _secrets(), MemoryLetters(), publisher=FakePublisher())
    try:
        assert gateway.ctx.quarantine is gateway.quarantine
        assert gateway.quarantine.book is not None
        assert gateway.quarantine.book.path == tmp_path / "q.sqlite"
    finally:
        gateway.stop()
    (tmp_path / "blocked").write_text("a file, not a folder")
    config.quarantine_path = str(tmp_path / "blocked" / "q.sqlite")
    with pytest.raises(ConfigError) as raised:
        KitGateway(config, _secrets(), MemoryLetters(), publisher=FakePublisher())
    message = str(raised.value)
    assert "quarantine_path: cannot open the quarantine book" in message and "\n" not in message


def _secrets() -> GatewaySecrets:
    return GatewaySecrets(private_key="unused", broker_password="unused")
