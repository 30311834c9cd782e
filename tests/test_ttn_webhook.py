"""The Things Stack's webhook endpoint and the Storage Integration client, without a network:
the token, the answers (200 only once the broker took the uplink, else 503), the size limit,
and the storage's paging."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sensorpipe.gateway.kits import ttn
from sensorpipe.gateway.kits.context import KitContext, RegistryFile
from sensorpipe.gateway.kits.ttn_bridge import StorageIntegration, StorageUnavailable
from sensorpipe.gateway.kits.ttn_receiver import TtnReceiver
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.gateway.kits.ttn_webhook import token_hash, webhook_router
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.registry import save_registry
from tests.test_ttn import (
    APP,
    FakePublisher,
    Letters,
    application,
    edited,
    registry,
    sample,
)

TOKEN = "s3cret-webhook-token"
URL = f"/ttn/v3/{APP}/uplink"


class Counters:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}

    def add(self, kit: str, what: str, key: str, n: int = 1) -> None:
        self.counts[(kit, what, key)] = self.counts.get((kit, what, key), 0) + n


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def letters() -> Letters:
    return Letters()


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def client(
    tmp_path: Path, publisher: FakePublisher, letters: Letters, counters: Counters
) -> TestClient:
    app = application(webhook_token_hashes=[token_hash("old-token"), token_hash(TOKEN)])
    receiver = TtnReceiver(
        app,
        publisher=publisher,
        registry=registry,
        letters=letters,
        state=TtnState(tmp_path / "ttn.sqlite"),
        counters=counters,
        clock=lambda: 1_732_622_400.0,  # the samples' day: within the ingest's window
    )
    api = FastAPI()
    api.include_router(webhook_router({APP: receiver}, counters=counters, max_body_bytes=8192))
    return TestClient(api)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_an_uplink_with_the_token_is_published_before_the_answer(
    client: TestClient, publisher: FakePublisher, counters: Counters
) -> None:
    response = client.post(URL, content=sample("uplink.json"), headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.json() == {
        "device_id": "fijnstof-01",
        "published": True,
        "seq": 43,
        "dead_lettered": [],
        "duplicate": False,
        "dropped": None,
    }
    assert [m.device_id for m in publisher.messages] == ["fijnstof-01"]
    again = client.post(URL, content=sample("uplink.json"), headers=bearer(TOKEN))
    assert again.json()["duplicate"] is True and len(publisher.messages) == 1
    assert counters.counts[("ttn", "posts", "200")] == 2
    assert counters.counts[("ttn", "values", "stored")] == 5


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (URL, bearer("wrong")),
        (URL, {"Authorization": TOKEN}),  # no scheme
        (URL, {}),
        ("/ttn/v3/someone-else@ttn/uplink", bearer(TOKEN)),
    ],
)
def test_without_the_right_token_nothing_is_taken(
    client: TestClient,
    publisher: FakePublisher,
    letters: Letters,
    url: str,
    headers: dict[str, str],
) -> None:
    response = client.post(url, content=sample("uplink.json"), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert publisher.messages == [] and letters.kept == []


def test_a_broker_that_is_away_gives_503_and_nothing_is_kept(
    client: TestClient, publisher: FakePublisher, letters: Letters
) -> None:
    publisher.down = True
    response = client.post(URL, content=sample("uplink.json"), headers=bearer(TOKEN))
    assert response.status_code == 503 and response.headers["retry-after"] == "60"
    publisher.down = False
    response = client.post(URL, content=sample("uplink.json"), headers=bearer(TOKEN))
    assert response.status_code == 200 and response.json()["duplicate"] is False
    assert letters.kept == []


def test_a_full_dead_letter_store_gives_503(client: TestClient, letters: Letters) -> None:
    letters.full = True
    response = client.post(URL, content=sample("uplink_simulated.json"), headers=bearer(TOKEN))
    assert response.status_code == 503


def test_what_cannot_be_stored_is_answered_200_once_kept(
    client: TestClient, letters: Letters
) -> None:
    response = client.post(URL, content=sample("uplink_not_decoded.json"), headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.json()["published"] is False
    assert response.json()["dead_lettered"] == ["not_decoded"]
    assert letters.kept[0].payload == sample("uplink_not_decoded.json")


def test_a_body_over_the_limit_is_refused_unread(client: TestClient, letters: Letters) -> None:
    big = json.dumps({"padding": "x" * 9000}).encode()
    assert client.post(URL, content=big, headers=bearer(TOKEN)).status_code == 413

    def chunks() -> object:
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post(URL, content=chunks(), headers=bearer(TOKEN))
    assert streamed.status_code == 413 and letters.kept == []


# --- the Storage Integration ---------------------------------------------------------------
def test_the_storage_is_read_page_by_page_with_the_api_key(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("NNSXS.KEY")
    app = application(
        server="eu1.cloud.thethings.network",
        api_key_file=key,
        storage_url="https://eu1.cloud.thethings.network/",
    )
    stored = [json.loads(sample(name)) for name in ("uplink.json", "uplink_gateways.json")]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        after = request.url.params["after"]
        rest = [s for s in stored if s["received_at"] > after][:1]
        return httpx.Response(200, text="".join(json.dumps({"result": s}) + "\n" for s in rest))

    storage = StorageIntegration(app, "NNSXS.KEY", transport=httpx.MockTransport(answer), page=1)
    got = [json.loads(raw) for raw in storage.uplinks(1_732_600_000_000)]
    assert got == stored
    first = seen[0]
    assert first.url.path == "/api/v3/as/applications/fijnstof-wijk/packages/storage/uplink_message"
    assert first.headers["authorization"] == "Bearer NNSXS.KEY"
    assert dict(first.url.params) == {
        "after": "2024-11-26T05:46:40.000Z",
        "order": "received_at",
        "limit": "1",
    }
    assert seen[1].url.params["after"] == stored[0]["received_at"]
    assert len(seen) == 3  # the last page came back empty


@pytest.mark.parametrize(
    ("status", "text", "message"),
    [
        (403, '{"code": 7, "message": "no rights"}', "HTTP 403"),
        (200, '{"error": {"code": 5}}', "unexpected answer"),
        (200, "<html>", "not JSON"),
    ],
)
def test_a_storage_that_fails_says_why(
    tmp_path: Path, status: int, text: str, message: str
) -> None:
    key = tmp_path / "key"
    key.write_text("NNSXS.KEY")
    app = application(api_key_file=key, storage_url="https://tts.example.org")
    storage = StorageIntegration(
        app, "k", transport=httpx.MockTransport(lambda _: httpx.Response(status, text=text))
    )
    with pytest.raises(StorageUnavailable, match=message):
        list(storage.uplinks(0))


# --- the gateway's hooks ---------------------------------------------------------------------
def _context(tmp_path: Path, publisher: FakePublisher) -> KitContext:
    save_registry(registry(), tmp_path / "registry.toml")

    class Keep:
        def __init__(self) -> None:
            self.kept: list[tuple[str, str]] = []

        def keep(
            self, topic: str, payload: bytes, code: str, detail: str, *, device_id: str = ""
        ) -> None:
            self.kept.append((topic, code))

    return KitContext(
        gateway_id="gw-1",
        publisher=publisher,  # type: ignore[arg-type]
        registry=RegistryFile(tmp_path / "registry.toml"),
        deadletters=Keep(),
    )


def test_the_gateway_hooks_share_one_service(tmp_path: Path, publisher: FakePublisher) -> None:
    ctx = _context(tmp_path, publisher)
    app = application(webhook_token_hashes=[token_hash(TOKEN)])
    state = tmp_path / "ttn-state.sqlite"
    api = FastAPI()
    api.include_router(ttn.webhook_router([app], ctx, state_path=state))
    (service,) = ttn.start_bridges([app], ctx, state_path=state)
    assert service.bridges == []  # webhook only: no MQTT server to bridge
    client = TestClient(api)
    # Received now: the gateway's clock is the wall clock, and older than the ingest's window
    # would not be published.
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = edited("uplink.json", lambda obj: obj["uplink_message"].update(received_at=now))
    response = client.post(URL, content=body, headers=bearer(TOKEN))
    assert response.status_code == 200 and len(publisher.messages) == 1
    assert ctx.counters.get("ttn", "uplinks", "published") == 1
    later = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    simulated = edited("uplink_simulated.json", lambda obj: obj.update(received_at=later))
    response = client.post(URL, content=simulated, headers=bearer(TOKEN))
    assert response.json()["dead_lettered"] == ["simulated"]
    kept = ctx.deadletters.kept  # type: ignore[attr-defined]
    assert kept == [(f"ttn:{APP}/eui-70b3d57ed005e1a2", "simulated")]
    service.stop()
    assert state.exists()


def test_an_unusable_api_key_stops_the_gateway_with_its_file(
    tmp_path: Path, publisher: FakePublisher
) -> None:
    key = tmp_path / "ttn.key"
    key.write_text("\n")
    app = application(server="127.0.0.1", api_key_file=key)
    with pytest.raises(ConfigError, match=r"ttn.key: the API key of fijnstof-wijk@ttn cannot be"):
        ttn.webhook_router([app], _context(tmp_path, publisher), state_path=tmp_path / "s")
