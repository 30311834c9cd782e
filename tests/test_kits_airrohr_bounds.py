"""The airrohr endpoint against a hostile client, through the gateway's real app, intake,
authenticator (on an injected clock: no sleeping) and dead-letter store:

- wrong passwords at a kit's name cannot keep the kit's right password out; a flood of them
  over the global budget of password checks is refused without hashing; one address guessing
  at many names cannot spend the global budget (it has a budget of its own);
- a value of more digits than Python converts is a `bad_value` letter, not a 500;
- an out-of-range GPS position is a `bad_value` letter, not silently dropped;
- every reason of one post is its own letter, findable by reason and by the kit's device id.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.cli.gateway import _DeadLetters
from sensorpipe.cli.main import main
from sensorpipe.gateway.kits import auth as auth_module
from sensorpipe.gateway.kits.app import AIRROHR_PATH, create_app
from sensorpipe.gateway.kits.auth import KitAuthenticator
from sensorpipe.gateway.kits.context import Counters, KitContext, RegistryFile
from sensorpipe.gateway.kits.intake import AirrohrIntake
from sensorpipe.gateway.kits.limits import RateLimiter
from sensorpipe.gateway.kits.provision import add_airrohr_kit
from sensorpipe.gateway.kits.seq import SeqStore
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.protocol.registry import GatewayAccount, Registry, save_registry
from sensorpipe.protocol.signing import generate_keypair
from tests.airrohr_post import SDS_BME280_VALUES, firmware_body
from tests.test_airrohr_gateway import FakeClock, FakePublisher

GATEWAY = "gw-1"
KIT, CHIP = "airrohr-555001", "555001"
OTHER, OTHER_CHIP = "airrohr-555002", "555002"
KIT_ADDRESS = "192.0.2.10"  # where the kits post from, unless a test says otherwise
ATTACKER = "203.0.113.9"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Gateway:
    """A freshly started gateway: nothing remembered, every bucket full."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, more_kits: int = 0):
        registry = Registry()
        registry.gateways[GATEWAY] = GatewayAccount(
            public_key=generate_keypair()[1], password_hash="x"
        )
        self.passwords = {}
        self.chips = {}
        for chip in (CHIP, OTHER_CHIP, *(str(555100 + i) for i in range(more_kits))):
            creds = add_airrohr_kit(registry, chip_id=chip, gateway=GATEWAY, site="oost")
            self.passwords[creds.device_id] = creds.password
            self.chips[creds.device_id] = chip
        save_registry(registry, tmp_path / "registry.toml")
        self.db = tmp_path / "deadletter.sqlite"
        self.store = DeadLetterStore(self.db, per_device_letters=100)
        self.clock = FakeClock()
        self.publisher = FakePublisher()
        self.ctx = KitContext(
            GATEWAY,
            self.publisher,
            RegistryFile(tmp_path / "registry.toml"),
            _DeadLetters(self.store),
            Counters(),
        )
        self.seq = SeqStore(tmp_path / "seq.sqlite")
        self.intake = AirrohrIntake(
            self.ctx,
            next_seq=self.seq.next,
            limiter=RateLimiter(burst=5, refill_s=10.0, clock=self.clock),
            authenticator=KitAuthenticator(self.ctx.registry.current, clock=self.clock),
        )
        self.app = create_app(self.ctx, self.intake, max_body_bytes=16 * 1024)
        self.clients: dict[str, TestClient] = {}
        self.hashed: list[str] = []
        real = auth_module.verify_kit_password

        def counting(password: str, stored: str) -> bool:
            self.hashed.append(password)
            return real(password, stored)

        monkeypatch.setattr(auth_module, "verify_kit_password", counting)

    def post(
        self,
        values: list[tuple[str, str]] = SDS_BME280_VALUES,
        *,
        kit: str = KIT,
        password: str | None = None,
        body: bytes | None = None,
        frm: str = KIT_ADDRESS,
    ) -> tuple[int, dict[str, Any]]:
        chip = self.chips[kit]
        client = self.clients.get(frm)
        if client is None:
            client = self.clients[frm] = TestClient(self.app, client=(frm, 40000))
        response = client.post(
            AIRROHR_PATH,
            content=firmware_body(chip, values) if body is None else body,
            headers={
                "Authorization": _basic(kit, self.passwords[kit] if password is None else password),
                "Content-Type": "application/json",
                "X-Sensor": f"esp8266-{chip}",
            },
        )
        return response.status_code, response.json()

    def letters(self) -> list[tuple[str, str, int]]:
        return sorted((d.code, d.device_id, d.repeats) for d in self.store.list(limit=100))


@pytest.fixture
def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    g = Gateway(tmp_path, monkeypatch)
    yield g
    g.seq.close()
    g.store.close()


# --- 5. wrong passwords cannot keep a kit out --------------------------------------------------
def test_the_right_password_passes_while_wrong_ones_keep_coming(gw: Gateway) -> None:
    # After a restart: five wrong passwords at the kit's name, then one every 10 s.
    for _ in range(5):
        assert gw.post(password="guess")[0] == 401
    accepted = 0
    for _ in range(4):  # the kit posts every 10 s for 40 s (its rate limit allows it)
        gw.clock.now += 5.0
        assert gw.post(password="guess")[0] in (401, 429)
        gw.clock.now += 5.0
        status, _ = gw.post()
        accepted += status == 200
    assert accepted == 4
    assert len(gw.publisher.messages) == 4


def test_a_flood_of_wrong_passwords_is_refused_cheaply_and_others_still_get_in(
    gw: Gateway,
) -> None:
    # From many addresses: one address alone has a smaller budget of its own (below).
    answers = [gw.post(password=f"guess-{i}", frm=f"203.0.113.{i % 50}")[0] for i in range(300)]
    # Checked within the global budget of password checks, the rest refused unhashed.
    checks = len(gw.hashed)
    assert checks <= auth_module.CHECKS_BURST
    assert answers.count(429) == 300 - checks and answers.count(401) == checks
    # Another kit, posting for the first time since the start, still gets its check.
    assert gw.post(kit=OTHER)[0] == 200
    assert gw.ctx.counters.get("airrohr", "logins", "throttled") == 300 - checks
    # Once the budget refills, the attacked kit's right password is checked and passes.
    gw.clock.now += auth_module.CHECKS_BURST * auth_module.CHECK_REFILL_S
    assert gw.post()[0] == 200


def test_a_flood_at_many_names_cannot_take_more_than_the_global_budget(gw: Gateway) -> None:
    # Wrong passwords spread over two names: each name's own throttle alone would allow more.
    for i in range(100):
        gw.post(kit=KIT if i % 2 else OTHER, password=f"guess-{i}", frm=f"203.0.113.{i % 50}")
    assert len(gw.hashed) <= auth_module.CHECKS_BURST


def test_one_address_guessing_at_many_names_cannot_keep_the_other_kits_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One address cycling over 19 kit names, 10 wrong passwords a second for a minute: the
    18 other kits' first posts since the gateway started, each from its own address, pass."""
    gw = Gateway(tmp_path, monkeypatch, more_kits=18)
    try:
        names = sorted(gw.passwords)[:19]
        kits = sorted(set(gw.passwords) - {names[0]})[:18]
        firsts: dict[str, int] = {}
        guesses: list[int] = []
        for tick in range(600):  # 0.1 s each
            guesses.append(gw.post(kit=names[tick % 19], password=f"guess-{tick}", frm=ATTACKER)[0])
            if tick % 30 == 15 and len(firsts) < len(kits):  # a first post every 3 s
                kit = kits[len(firsts)]
                firsts[kit] = gw.post(kit=kit, frm=f"198.51.100.{len(firsts)}")[0]
            gw.clock.now += 0.1
        assert firsts == dict.fromkeys(kits, 200)
        # The attacker got its own budget's checks (10, then one per 2 s), the rest 429.
        checks = auth_module.CLIENT_CHECKS_BURST + 60 / auth_module.CLIENT_CHECK_REFILL_S
        assert guesses.count(401) <= checks and guesses.count(429) >= 600 - checks
    finally:
        gw.seq.close()
        gw.store.close()


# --- 6. numbers Python will not convert --------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [
        [("samples", "1" * 5000)],  # a link value: int() of over 4,300 digits
        [("SDS_P1", "1" * 5000)],
        [("signal", "-" + "1" * 5000)],
        [("GPS_lat", "1" * 5000), ("GPS_lon", "5.1")],
    ],
)
def test_a_value_with_too_many_digits_is_a_bad_value_letter(
    gw: Gateway, values: list[tuple[str, str]]
) -> None:
    status, answer = gw.post([*SDS_BME280_VALUES[:1], *values])
    assert status == 200, answer
    assert "bad_value" in answer["dead_lettered"]
    assert ("bad_value", KIT, 1) in gw.letters()
    assert answer["readings"] == 1  # the rest of the post is taken


def test_a_json_number_with_too_many_digits_is_a_bad_value_letter(gw: Gateway) -> None:
    body = (
        b'{"esp8266id": "555001", "sensordatavalues": ['
        b'{"value_type": "SDS_P2", "value": "3.5"},'
        b'{"value_type": "SDS_P1", "value": ' + b"9" * 5000 + b"},"
        b'{"value_type": "samples", "value": 1' + b"0" * 400 + b"}]}"
    )
    status, answer = gw.post(body=body)
    assert status == 200, answer
    assert len(answer["dead_lettered"]["bad_value"]) == 2
    assert answer["readings"] == 1


# --- GPS positions -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lat", "lon"), [("1e308", "5.1"), ("52.1", "-181"), ("91", "5.1"), ("52.1", "1e400")]
)
def test_an_out_of_range_position_is_a_bad_value_letter(gw: Gateway, lat: str, lon: str) -> None:
    status, answer = gw.post([*SDS_BME280_VALUES, ("GPS_lat", lat), ("GPS_lon", lon)])
    assert status == 200
    assert "bad_value" in answer["dead_lettered"]
    assert gw.publisher.messages[-1].location is None
    assert ("bad_value", KIT, 1) in gw.letters()


@pytest.mark.parametrize(
    "gps",
    [
        [("GPS_lat", "1e308")],
        [("GPS_lon", "5.1")],
        [("GPS_lat", "-200"), ("GPS_lon", "1e308")],
        [("GPS_lat", "52.1"), ("GPS_lon", "-200")],
        [("GPS_lat", "52.1")],
    ],
)
def test_half_a_position_is_a_bad_value_letter(gw: Gateway, gps: list[tuple[str, str]]) -> None:
    status, answer = gw.post([*SDS_BME280_VALUES, *gps])
    assert status == 200
    assert "bad_value" in answer["dead_lettered"], answer
    assert gw.publisher.messages[-1].location is None
    assert ("bad_value", KIT, 1) in gw.letters()


def test_no_gps_fix_is_no_position_and_no_letter(gw: Gateway) -> None:
    status, answer = gw.post([*SDS_BME280_VALUES, ("GPS_lat", "-200.000000"), ("GPS_lon", "-200")])
    assert status == 200 and answer["dead_lettered"] == {}
    status, answer = gw.post([*SDS_BME280_VALUES, ("GPS_lat", "52.1"), ("GPS_lon", "5.1")])
    assert gw.publisher.messages[-1].location is not None


# --- 15. every reason kept, findable by the kit's device id -----------------------------------
def test_each_reason_of_a_post_is_kept_and_found_by_the_kits_id(gw: Gateway) -> None:
    values = [*SDS_BME280_VALUES[1:], ("SDS_P1", "nan"), ("FOO_X", "1")]
    status, answer = gw.post(values)
    assert status == 200
    assert set(answer["dead_lettered"]) == {"bad_value", "unknown_value_type"}
    assert gw.letters() == [("bad_value", KIT, 1), ("unknown_value_type", KIT, 1)]
    gw.store.close()
    cli = CliRunner()
    found = cli.invoke(
        main,
        ["ingest", "rejects", "--db", str(gw.db), "--json", "--reason", "unknown_value_type"],
    )
    assert [x["code"] for x in json.loads(found.output)["letters"]] == ["unknown_value_type"]
    mine = cli.invoke(main, ["ingest", "rejects", "--db", str(gw.db), "--device", KIT])
    assert mine.exit_code == 0 and mine.output.count(f"airrohr:{CHIP} ({KIT})") == 2
    assert "(x2)" not in mine.output
