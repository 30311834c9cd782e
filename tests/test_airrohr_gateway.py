"""The kit gateway without a broker: credentials, limits, sequence numbers, its configuration,
and every answer of the airrohr endpoint (with a fake publisher and dead-letter store)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from sensorpipe.gateway.kits import auth as auth_module
from sensorpipe.gateway.kits.app import AIRROHR_PATH, create_app
from sensorpipe.gateway.kits.auth import (
    KitAuthenticator,
    hash_kit_password,
    is_kit_password_hash,
    new_kit_password,
    parse_basic,
    verify_kit_password,
)
from sensorpipe.gateway.kits.config import load_gateway_config, load_gateway_secrets
from sensorpipe.gateway.kits.context import Counters, KitContext, LetterNotKept, RegistryFile
from sensorpipe.gateway.kits.intake import AirrohrIntake
from sensorpipe.gateway.kits.limits import RateLimiter, retry_after
from sensorpipe.gateway.kits.provision import add_airrohr_kit
from sensorpipe.gateway.kits.publish import BrokerUnavailable
from sensorpipe.gateway.kits.seq import SeqStore
from sensorpipe.gateway.kits.service import check_registered, check_ttn
from sensorpipe.gateway.kits.service import ttn_module as real_ttn_module
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.messages import AirMessage, AnyMessage, StatusMessage
from sensorpipe.protocol.registry import GatewayAccount, Registry, save_registry
from sensorpipe.protocol.signing import generate_keypair
from tests.airrohr_post import SDS_BME280_VALUES, SOFTWARE_VERSION, firmware_body

GATEWAY = "gw-1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePublisher:
    gateway_id = GATEWAY

    def __init__(self) -> None:
        self.connected = True
        self.messages: list[AnyMessage] = []

    def publish(self, message: AnyMessage, *, timeout_s: float = 10.0) -> None:
        if not self.connected:
            raise BrokerUnavailable("broker 127.0.0.1:1: not connected")
        self.messages.append(message)


class MemoryLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[str, bytes, str, str]] = []
        self.broken = False

    def keep(
        self, topic: str, payload: bytes, code: str, detail: str, *, device_id: str = ""
    ) -> None:
        if self.broken:
            raise LetterNotKept("database or disk is full")
        self.letters.append((topic, payload, code, detail))


def _registry(path: Path) -> dict[str, str]:
    """Two airrohr kits of GATEWAY in a registry file; their passwords."""
    registry = Registry()
    registry.gateways[GATEWAY] = GatewayAccount(public_key=generate_keypair()[1], password_hash="x")
    passwords = {}
    for chip in ("13107491", "777"):
        creds = add_airrohr_kit(registry, chip_id=chip, gateway=GATEWAY, site="oost")
        passwords[creds.device_id] = creds.password
    save_registry(registry, path)
    return passwords


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- passwords -------------------------------------------------------------------------------


def test_kit_passwords_are_salted_scrypt_and_typeable() -> None:
    password = new_kit_password()
    assert len(password) == 20 and password.isalnum() and password.islower()
    stored = hash_kit_password(password)
    assert is_kit_password_hash(stored) and stored.startswith("scrypt$16384$8$1$")
    assert stored != hash_kit_password(password)  # salted
    assert verify_kit_password(password, stored)
    assert not verify_kit_password(password + "x", stored)
    for broken in ("", "scrypt$1$2", "bcrypt$16384$8$1$AA==$AA==", "scrypt$x$8$1$AA==$AA=="):
        assert not verify_kit_password(password, broken)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (_basic("airrohr-1", "pw:with:colons"), ("airrohr-1", "pw:with:colons")),
        ("basic " + base64.b64encode(b"a:").decode(), ("a", "")),
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
    ],
)
def test_basic_auth_headers(header: str | None, parsed: tuple[str, str] | None) -> None:
    assert parse_basic(header) == parsed


def test_a_flood_of_wrong_passwords_is_throttled_without_hashing(
    tmp_path: Path, hashed_kit_passwords: list[str]
) -> None:
    passwords = _registry(tmp_path / "registry.toml")
    registry = RegistryFile(tmp_path / "registry.toml")
    clock = FakeClock()
    checker = KitAuthenticator(registry.current, clock=clock)
    good = _basic("airrohr-13107491", passwords["airrohr-13107491"])
    assert checker.check(good).device_id == "airrohr-13107491"
    assert checker.check(good).device_id == "airrohr-13107491"
    assert len(hashed_kit_passwords) == 1  # remembered
    # Unknown users and malformed headers cost nothing.
    for header in (_basic("nobody", "x"), _basic("gw-1", "x"), "Basic x", None):
        assert checker.check(header).status == 401
    assert len(hashed_kit_passwords) == 1
    wrong = _basic("airrohr-13107491", "guess")
    assert [checker.check(wrong).status for _ in range(5)] == [401] * 5
    # Over its own throttle a name is still checked, from the global budget above its reserve.
    after = [checker.check(wrong) for _ in range(100)]
    checked = auth_module.CHECKS_BURST - auth_module.CHECKS_RESERVE - 6
    assert [r.status for r in after] == [401] * checked + [429] * (100 - checked)
    assert len(hashed_kit_passwords) == 6 + checked
    assert after[-1].retry_after_s == pytest.approx(auth_module.CHECK_REFILL_S)
    # The kit itself, remembered, is not locked out; a guess at the other kit's name is tried.
    assert checker.check(good).device_id == "airrohr-13107491"
    assert checker.check(_basic("airrohr-777", "guess")).status == 401
    clock.now += 2 * auth_module.CHECK_REFILL_S  # the reserve again, and one over it
    assert checker.check(wrong).status == 401  # one more guess after the refill


def test_a_new_password_replaces_the_remembered_one(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    passwords = _registry(path)
    clock = FakeClock()
    registry = RegistryFile(path, check_s=0.0, clock=clock)
    checker = KitAuthenticator(registry.current)
    old = _basic("airrohr-777", passwords["airrohr-777"])
    assert checker.check(old).device_id == "airrohr-777"
    r = registry.current()
    entry = r.devices["airrohr-777"]
    r.devices["airrohr-777"] = entry.model_copy(update={"password_hash": hash_kit_password("new")})
    save_registry(r, path)
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    assert checker.check(old).status == 401
    assert checker.check(_basic("airrohr-777", "new")).device_id == "airrohr-777"


def test_a_broken_registry_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    _registry(path)
    registry = RegistryFile(path, check_s=0.0)
    assert len(registry.current().devices) == 2
    path.write_text("devices = [\n")
    os.utime(path, ns=(2, 2))
    assert len(registry.current().devices) == 2


# --- limits and sequence numbers -------------------------------------------------------------


def test_the_token_bucket_allows_a_burst_then_one_per_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=5, refill_s=10.0, clock=clock)
    assert [limiter.wait_s("a") for _ in range(5)] == [0.0] * 5
    assert limiter.wait_s("a") == pytest.approx(10.0)
    assert limiter.wait_s("b") == 0.0  # each key its own bucket
    clock.now += 4.0
    assert limiter.wait_s("a") == pytest.approx(6.0)
    clock.now += 6.0
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a", take=False) == pytest.approx(10.0)
    clock.now += 1000.0
    assert [limiter.wait_s("a") for _ in range(6)][-1] > 0  # never more than the burst
    assert retry_after(0.2) == "1" and retry_after(6.01) == "7"
    with pytest.raises(ValueError):
        RateLimiter(burst=0, refill_s=1)


def test_forgotten_buckets_are_full_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=2, refill_s=10.0, clock=clock, max_keys=2)
    limiter.wait_s("a")
    limiter.wait_s("a")
    limiter.wait_s("b")
    clock.now += 10.0  # b is full again, a is not
    limiter.wait_s("c")
    assert limiter.wait_s("a") == 0.0 and limiter.wait_s("a") > 0


def test_sequence_numbers_grow_across_restarts_and_start_at_the_time(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "seq.sqlite", clock=lambda: 1_800_000_000.7)
    assert [store.next("k1") for _ in range(3)] == [1_800_000_000, 1_800_000_001, 1_800_000_002]
    assert store.next("k2") == 1_800_000_000
    store.close()
    assert (tmp_path / "seq.sqlite").stat().st_mode & 0o777 == 0o600
    again = SeqStore(tmp_path / "seq.sqlite", clock=lambda: 0.0)
    assert again.next("k1") == 1_800_000_003
    again.close()


# --- the configuration -----------------------------------------------------------------------


def _gateway_files(tmp_path: Path, text: str = "") -> Path:
    private, public = generate_keypair()
    registry = Registry()
    registry.gateways[GATEWAY] = GatewayAccount(public_key=public, password_hash="x")
    save_registry(registry, tmp_path / "registry.toml")
    (tmp_path / "gw.key").write_text(private + "\n")
    (tmp_path / "gw.password").write_text("pw\n")
    for name in ("gw.key", "gw.password"):
        os.chmod(tmp_path / name, 0o600)
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'gateway_id = "{GATEWAY}"\nprivate_key_file = "gw.key"\n'
        f'[broker]\npassword_file = "gw.password"\n{text}'
    )
    return path


def test_a_gateway_config_resolves_its_paths_and_reads_its_secrets(tmp_path: Path) -> None:
    path = _gateway_files(tmp_path, "[http]\nport = 9000\n[airrohr]\nburst = 2\n")
    config = load_gateway_config(path)
    assert config.registry_path == str(tmp_path / "registry.toml")
    assert config.http.port == 9000 and config.airrohr.burst == 2
    assert config.http.max_body_bytes == 16384
    secrets = load_gateway_secrets(config, str(path))
    assert secrets.broker_password == "pw"
    check_registered(config, secrets, str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[http]\nbind = '192.168.1.5'\n", "[http] bind '192.168.1.5' is not loopback"),
        ("[http]\nbind = 'a b'\n", "not an IP address or host name"),
        ("[http]\ntls_cert = 'none.pem'\n", "http.tls_cert (line 6): 'none.pem': no such file"),
        ("[http]\nmax_body_bytes = 10\n", "http.max_body_bytes (line 6)"),
        ("[http]\nprot = 1\n", "http.prot (line 6): unknown key; did you mean 'port'?"),
        ("[airrohr]\nrefill_s = 0\n", "airrohr.refill_s (line 6)"),
        ("[[ttn]]\napplication = 'Bad'\n", "ttn.application (line 6)"),
    ],
)
def test_gateway_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_gateway_config(_gateway_files(tmp_path, text))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_public_bind_is_allowed_with_tls_or_plaintext_explicitly(tmp_path: Path) -> None:
    path = _gateway_files(tmp_path, "[http]\nbind = '0.0.0.0'\n")
    assert load_gateway_config(path, allow_plaintext=True).http.allow_plaintext
    (tmp_path / "c.pem").write_text("x")
    path = _gateway_files(tmp_path, "[http]\nbind = '0.0.0.0'\ntls_cert = 'c.pem'\n")
    with pytest.raises(ConfigError, match="give tls_cert and tls_key together"):
        load_gateway_config(path)
    path = _gateway_files(
        tmp_path, "[http]\nbind = '0.0.0.0'\ntls_cert = 'c.pem'\ntls_key = 'c.pem'\n"
    )
    assert load_gateway_config(path).http.tls_key == str(tmp_path / "c.pem")


def test_secrets_must_be_private_and_the_key_the_registered_one(tmp_path: Path) -> None:
    path = _gateway_files(tmp_path)
    config = load_gateway_config(path)
    os.chmod(tmp_path / "gw.password", 0o640)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 640\); chmod 600"):
        load_gateway_secrets(config, str(path))
    os.chmod(tmp_path / "gw.password", 0o600)
    (tmp_path / "gw.key").write_text(generate_keypair()[0])
    with pytest.raises(ConfigError, match="is not the key registered for gateway 'gw-1'"):
        check_registered(config, load_gateway_secrets(config, str(path)), str(path))
    (tmp_path / "gw.key").write_text("not a key")
    with pytest.raises(ConfigError, match=r"private_key_file .*base64"):
        load_gateway_secrets(config, str(path))
    (tmp_path / "gw.key").unlink()
    with pytest.raises(ConfigError, match=r"no such file \(`sensorpipe devices add-gateway`"):
        load_gateway_secrets(config, str(path))
    config.gateway_id = "other"
    (tmp_path / "gw.key").write_text(generate_keypair()[0])
    os.chmod(tmp_path / "gw.key", 0o600)
    with pytest.raises(ConfigError, match="'other' is not registered in"):
        check_registered(config, load_gateway_secrets(config, str(path)), str(path))


def test_ttn_sections_need_the_ttn_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k").write_text("NNSXS.X")
    path = _gateway_files(
        tmp_path,
        '[[ttn]]\napplication = "my-app@ttn"\nserver = "localhost"\napi_key_file = "k"\n',
    )
    config = load_gateway_config(path)
    assert str(config.ttn[0].api_key_file) == str(tmp_path / "k")
    monkeypatch.setattr("sensorpipe.gateway.kits.service.ttn_module", lambda: None)
    with pytest.raises(ConfigError, match="no The Things Stack adapter"):
        check_ttn(config, str(path))
    config.ttn = []
    check_ttn(config, str(path))
    assert real_ttn_module() is None or hasattr(real_ttn_module(), "webhook_router")


# --- the endpoint ----------------------------------------------------------------------------


class Gateway:
    def __init__(self, tmp_path: Path) -> None:
        self.passwords = _registry(tmp_path / "registry.toml")
        self.publisher = FakePublisher()
        self.letters = MemoryLetters()
        self.registry = RegistryFile(tmp_path / "registry.toml")
        self.ctx = KitContext(GATEWAY, self.publisher, self.registry, self.letters, Counters())
        self.seq = SeqStore(tmp_path / "seq.sqlite")
        self.intake = AirrohrIntake(
            self.ctx,
            next_seq=self.seq.next,
            limiter=RateLimiter(burst=3, refill_s=60.0),
            authenticator=KitAuthenticator(self.registry.current),
        )
        self.client = TestClient(create_app(self.ctx, self.intake, max_body_bytes=2048))

    def post(
        self,
        body: bytes,
        *,
        kit: str = "airrohr-13107491",
        password: str | None = None,
        chip: str = "13107491",
        path: str = AIRROHR_PATH,
        **headers: str,
    ) -> httpx.Response:
        h = {
            "Authorization": _basic(
                kit, self.passwords.get(kit, "") if password is None else password
            ),
            "Content-Type": "application/json",
            "X-Sensor": f"esp8266-{chip}",
            "X-MAC-ID": "esp8266-5ccf7f1a2b3c",
            "User-Agent": f"{SOFTWARE_VERSION}/{chip}/5ccf7f1a2b3c",
            **headers,
        }
        return self.client.post(path, content=body, headers=h)

    def posts(self, status: int) -> int:
        return self.ctx.counters.get("airrohr", "posts", str(status))


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(tmp_path)
    yield g
    g.seq.close()


BODY = firmware_body("13107491", SDS_BME280_VALUES)


def test_a_firmware_post_is_published_and_answered_200(gw: Gateway) -> None:
    answer = gw.post(BODY)
    assert answer.status_code == 200, answer.text
    (message,) = gw.publisher.messages
    assert isinstance(message, AirMessage)
    assert message.device_id == "airrohr-13107491" and len(message.readings) == 5
    assert answer.json()["seq"] == message.seq
    assert gw.letters.letters == []
    # Both spellings of the path the firmware may be given.
    assert gw.post(BODY, path=AIRROHR_PATH + "/").status_code == 200
    second = gw.publisher.messages[1]
    assert second.seq == message.seq + 1
    assert gw.posts(200) == 2
    assert gw.ctx.counters.get("airrohr", "values", "stored") == 10


def test_unknown_value_types_are_dead_lettered_and_the_rest_published(gw: Gateway) -> None:
    body = firmware_body("13107491", [("SDS_P1", "3.00"), ("NEW_thing", "1"), ("SDS_P2", "x")])
    answer = gw.post(body)
    assert answer.status_code == 200
    assert [r.quantity for r in gw.publisher.messages[0].readings] == ["pm10"]  # type: ignore[union-attr]
    letters = {
        code: (topic, payload, detail) for topic, payload, code, detail in gw.letters.letters
    }
    assert set(letters) == {"unknown_value_type", "bad_value"}
    topic, payload, detail = letters["unknown_value_type"]
    assert topic == "airrohr:13107491" and payload == body
    assert detail.startswith("kit airrohr-13107491 (chip 13107491), message ")
    assert "NEW_thing = '1'" in detail
    assert answer.json()["dead_lettered"]["bad_value"] == ["SDS_P2 = 'x': not a number"]


def test_a_post_with_nothing_known_is_kept_and_its_link_recorded(gw: Gateway) -> None:
    body = firmware_body("13107491", [("NEW_thing", "1"), ("signal", "-70")])
    assert gw.post(body).status_code == 200
    (message,) = gw.publisher.messages
    assert isinstance(message, StatusMessage) and message.link.rssi_dbm == -70
    assert [code for _t, _p, code, _d in gw.letters.letters] == ["unknown_value_type"]


def test_wrong_or_missing_credentials_are_401_and_counted(gw: Gateway) -> None:
    for answer in (
        gw.post(BODY, password="wrong"),
        gw.post(BODY, kit="nobody", password="x"),
        gw.client.post(AIRROHR_PATH, content=BODY),
    ):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="sensorpipe kits"')
    assert gw.posts(401) == 3 and gw.publisher.messages == [] and gw.letters.letters == []


def test_a_kits_credentials_admit_only_its_chip(gw: Gateway) -> None:
    other = firmware_body("777", SDS_BME280_VALUES)
    answer = gw.post(other, chip="777")
    assert answer.status_code == 403
    assert "were used for chip 777" in answer.json()["error"]
    answer = gw.post(BODY, chip="777")  # the body is right, the X-Sensor header is not
    assert answer.status_code == 403
    assert gw.posts(403) == 2 and gw.publisher.messages == []
    # Its own credentials let the other kit in; an ESP32 header names the chip too.
    assert gw.post(other, kit="airrohr-777", chip="777").status_code == 200
    answer = gw.post(BODY, **{"X-Sensor": "esp32-13107491"})
    assert answer.status_code == 200


def test_a_kit_of_another_gateway_is_refused_403(gw: Gateway, tmp_path: Path) -> None:
    # The broker's ACL would acknowledge and drop what this gateway published for it.
    registry = gw.registry.current()
    registry.gateways["gw-2"] = GatewayAccount(public_key=generate_keypair()[1], password_hash="x")
    entry = registry.devices["airrohr-777"]
    registry.devices["airrohr-777"] = entry.model_copy(update={"gateway": "gw-2"})
    answer = gw.post(firmware_body("777", SDS_BME280_VALUES), kit="airrohr-777", chip="777")
    assert answer.status_code == 403
    assert "received by gateway gw-2, not gw-1" in answer.json()["error"]
    assert gw.publisher.messages == []


def test_a_flooding_kit_gets_429_while_another_kit_still_posts(gw: Gateway) -> None:
    statuses = [gw.post(BODY).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
    answer = gw.post(BODY)
    assert answer.status_code == 429 and 1 <= int(answer.headers["Retry-After"]) <= 60
    other = firmware_body("777", SDS_BME280_VALUES)
    assert gw.post(other, kit="airrohr-777", chip="777").status_code == 200
    assert gw.posts(429) == 4 and len(gw.publisher.messages) == 4


def test_a_body_over_the_limit_is_refused_413_unread(gw: Gateway) -> None:
    big = firmware_body("13107491", [("SDS_P1", "1.00")] * 200)
    assert len(big) > 2048
    assert gw.post(big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off once over the limit
        yield big[:1500]
        yield big[1500:]

    answer = gw.client.post(
        AIRROHR_PATH,
        content=chunks(),
        headers={"Authorization": _basic("airrohr-13107491", gw.passwords["airrohr-13107491"])},
    )
    assert answer.status_code == 413
    assert gw.posts(413) == 2 and gw.publisher.messages == [] and gw.letters.letters == []


def test_malformed_json_is_400_and_a_dead_letter(gw: Gateway) -> None:
    answer = gw.post(b'{"esp8266id": "13107491", "sensordatavalues": [')
    assert answer.status_code == 400
    ((topic, payload, code, _detail),) = gw.letters.letters
    assert (topic, code) == ("airrohr:13107491", "malformed_json")
    assert payload == b'{"esp8266id": "13107491", "sensordatavalues": ['
    assert gw.posts(400) == 1 and gw.publisher.messages == []


def test_when_the_broker_is_away_the_kit_gets_503_and_nothing_is_kept(gw: Gateway) -> None:
    gw.publisher.connected = False
    body = firmware_body("13107491", [("SDS_P1", "3.00"), ("NEW_thing", "1")])
    answer = gw.post(body)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert gw.letters.letters == [] and gw.posts(503) == 1
    gw.publisher.connected = True
    answer = gw.post(body)
    assert answer.status_code == 200
    # The refused post's number stays unused: the ingest shows it as a gap.
    assert answer.json()["seq"] == gw.publisher.messages[0].seq
    assert gw.seq.next("airrohr-13107491") == gw.publisher.messages[0].seq + 1


def test_a_dead_letter_that_cannot_be_kept_is_counted(gw: Gateway) -> None:
    gw.letters.broken = True
    answer = gw.post(firmware_body("13107491", [("SDS_P1", "3.00"), ("NEW_thing", "1")]))
    assert answer.status_code == 200 and len(gw.publisher.messages) == 1
    assert gw.ctx.counters.get("airrohr", "deadletters", "not_kept") == 1


def test_health_and_metrics_report_the_counts(gw: Gateway) -> None:
    gw.post(BODY)
    gw.post(BODY, password="wrong")
    health = gw.client.get("/health").json()
    assert health["status"] == "ok" and health["broker"] == {"connected": True}
    assert health["kits"]["airrohr"]["posts"] == {"200": 1, "401": 1}
    text = gw.client.get("/metrics").text
    assert 'sensorpipe_gateway_posts_total{kit="airrohr",status="401"} 1.0' in text
    assert 'sensorpipe_gateway_values_total{kit="airrohr",outcome="stored"} 5.0' in text
    assert "sensorpipe_gateway_broker_connected 1.0" in text
    assert gw.client.get(AIRROHR_PATH).status_code == 405
    assert gw.client.post("/data.php", content=BODY).status_code == 404
