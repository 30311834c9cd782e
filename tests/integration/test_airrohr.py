"""airrohr kits through the real kit gateway process, Mosquitto, the ingest and influxd.

Each kit posts exactly what its firmware sends (tests/airrohr_post.py, written from the
firmware's source), over a raw socket as the ESP8266's HTTP client writes it. One stack for
the module; each test uses kits of its own, so the per-kit rate limit of one test does not
reach into another.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sensorpipe.gateway.kits.app import AIRROHR_PATH
from sensorpipe.gateway.kits.provision import KitCredentials
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.quality.flags import QC_VERSION
from sensorpipe.stack.local import STACK_GATEWAY_ID, LocalStack
from tests.airrohr_post import (
    SDS_BME280_VALUES,
    SOFTWARE_VERSION,
    firmware_body,
    firmware_request,
    send_raw,
)
from tests.helpers import influx_rows, kits_address, wait_for
from tests.integration.conftest import _require_binaries

pytestmark = pytest.mark.integration

KITS = {
    "firmware": "13107491",
    "chip-a": "2001",
    "chip-b": "2002",
    "flood": "3001",
    "big": "4001",
    "fault": "5001",
    "quarantine": "6001",
}


class Kits:
    def __init__(self, stack: LocalStack, credentials: dict[str, KitCredentials]) -> None:
        self.stack = stack
        self.credentials = credentials
        self.url, self.host, self.port = kits_address(stack)

    def post(
        self,
        name: str,
        values: list[tuple[str, str]] = SDS_BME280_VALUES,
        *,
        password: str | None = None,
        body_chip: str | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        c = self.credentials[name]
        if body is None:
            body = firmware_body(body_chip or c.chip_id, values)
        request = firmware_request(
            host=self.host,
            port=self.port,
            path=AIRROHR_PATH,
            chip_id=c.chip_id,
            body=body,
            user=c.device_id,
            password=c.password if password is None else password,
        )
        return send_raw(self.host, self.port, request)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}health", timeout=5) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def posts(self, status: int) -> int:
        return int(self.health()["kits"].get("airrohr", {}).get("posts", {}).get(str(status), 0))


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kits]:
    _require_binaries()
    stack = LocalStack(tmp_path_factory.mktemp("airrohr") / "stack")
    # Most kits are registered before the stack starts; one (chip-b) while it runs, to show
    # that the broker's ACL is reloaded and the gateway re-reads the registry.
    credentials = {
        name: stack.add_airrohr_kit(chip_id=chip, site="oost", owner="buurtgroep")
        for name, chip in KITS.items()
        if name != "chip-b"
    }
    stack.up(detach=False, serve=False, kits=True)
    try:
        credentials["chip-b"] = stack.add_airrohr_kit(chip_id=KITS["chip-b"], site="west")
        yield Kits(stack, credentials)
    finally:
        stack.down()


@pytest.fixture(scope="module")
def influx(kits: Kits) -> Iterator[InfluxClient]:
    info = kits.stack.require_info()
    client = InfluxClient(info.influx_url, info.database)
    yield client
    client.close()


def test_a_kit_posting_as_its_firmware_does_is_stored_with_metadata_and_provenance(
    kits: Kits, influx: InfluxClient
) -> None:
    kit = kits.credentials["firmware"]
    values = [*SDS_BME280_VALUES[:5], ("IPS_P5", "3.10"), ("FUTURE_sensor", "1.00")]
    values += SDS_BME280_VALUES[5:]
    status, answer = kits.post("firmware", values)
    assert status == 200, answer
    reply = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert reply["readings"] == 5 and reply["not_stored"] == ["IPS_P5"]

    q = f"SELECT * FROM air WHERE device_id = '{kit.device_id}' GROUP BY *"
    quantities = ("pm10", "pm2_5", "temperature", "relative_humidity", "pressure")

    def all_five() -> list[dict[str, Any]]:
        # A query while the write is under way can see some of a point's fields already.
        rows = influx_rows(influx, q)
        found = sum(1 for r in rows for k in quantities if r.get(k) is not None)
        return rows if found == 5 else []

    rows = wait_for(all_five, what="the kit's five readings in InfluxDB")
    by_sensor = {r["sensor"]: r for r in rows}
    assert set(by_sensor) == {"sds011", "bme280"}
    sds, bme = by_sensor["sds011"], by_sensor["bme280"]
    assert (sds["pm10"], sds["pm2_5"]) == (12.3, 5.6)
    assert bme["temperature"] == 21.53 and bme["relative_humidity"] == 54.2
    assert bme["pressure"] == pytest.approx(1013.2545)  # sent in Pa
    for r in rows:
        assert (r["source"], r["vouch"], r["site"]) == ("airrohr", "gateway", "oost")
        # quality-checked as any device's readings; a kit has no clock to flag (ingest.points)
        assert r["qc"] == QC_VERSION and r.get("qc_pm2_5") is None

    q = f"SELECT * FROM link WHERE device_id = '{kit.device_id}' GROUP BY *"
    (link,) = wait_for(lambda: influx_rows(influx, q), what="the kit's link point")
    assert link["rssi_dbm"] == -67 and link["firmware"] == SOFTWARE_VERSION
    assert (link["samples"], link["min_micro"], link["max_micro"]) == (645632, 28, 20145)
    assert link["interval_ms"] == 145000 and link["time_source"] == "receive"
    assert link["vouched_by"] == STACK_GATEWAY_ID and link["clock_synced"] is False
    assert (link["source"], link["vouch"], link["kind"]) == ("airrohr", "gateway", "air")
    assert link["seq"] == reply["seq"]

    # The unknown value type is kept, with the exact body, where `ingest rejects` looks.
    store = DeadLetterStore(kits.stack.directory / "ingest" / "deadletter.sqlite")
    try:
        (letter,) = store.list(code="unknown_value_type")
    finally:
        store.close()
    assert letter.topic == f"airrohr:{kit.chip_id}"
    assert letter.payload == firmware_body(kit.chip_id, values)
    assert "FUTURE_sensor = '1.00'" in letter.detail


def test_wrong_credentials_are_refused_401_and_counted(kits: Kits) -> None:
    before = kits.posts(401)
    status, answer = kits.post("chip-a", password="not-the-password")
    assert status == 401
    assert b'WWW-Authenticate: Basic realm="sensorpipe kits"' in answer.replace(
        b"www-authenticate", b"WWW-Authenticate"
    )
    assert kits.posts(401) == before + 1


def test_a_kits_credentials_do_not_admit_another_chip(kits: Kits, influx: InfluxClient) -> None:
    # chip-b was registered while the stack ran: once the gateway has read the registry again
    # (within a second), its own post is taken.
    wait_for(lambda: kits.post("chip-b")[0] == 200, timeout_s=10, what="chip-b let in")
    status, answer = kits.post("chip-b", body_chip=KITS["chip-a"])
    assert status == 403, answer
    assert b"were used for chip 2001" in answer
    device_a = kits.credentials["chip-a"].device_id
    device_b = kits.credentials["chip-b"].device_id
    # What chip-b posted is stored: the broker let the gateway publish for the new kit.
    q = f"SELECT pm10 FROM air WHERE device_id = '{device_b}'"
    wait_for(lambda: influx_rows(influx, q), what="chip-b's reading in InfluxDB")
    assert influx.query(f"SELECT * FROM air WHERE device_id = '{device_a}'") == []


def test_a_flooding_kit_gets_429_while_another_kit_still_gets_200(kits: Kits) -> None:
    statuses = [kits.post("flood")[0] for _ in range(8)]
    assert statuses[:5] == [200] * 5  # the burst
    assert statuses[5:] == [429] * 3
    status, answer = kits.post("flood")
    assert status == 429 and b"retry-after: " in answer.lower()
    assert kits.post("chip-a")[0] == 200
    assert kits.posts(429) >= 4


def test_a_kit_that_keeps_flooding_is_quarantined_until_lifted(kits: Kits) -> None:
    """A kit posting several times a second is answered 429, then quarantined by the gateway
    in the stack's book; refused 403 (whatever the password) while the other kits post; one
    lift lets it back."""
    device = kits.credentials["quarantine"].device_id
    statuses: list[int] = []
    give_up = time.monotonic() + 90  # a guard against a test that never ends, not a bound
    while (not statuses or statuses[-1] != 403) and time.monotonic() < give_up:
        statuses.append(kits.post("quarantine")[0])
        time.sleep(0.2)
    assert statuses[-1] == 403, statuses
    # The burst, then 429 (but for the one post every 10 s its bucket allows).
    assert statuses[:5] == [200] * 5 and set(statuses[5:-1]) <= {200, 429}
    assert statuses.count(429) >= 10
    status, answer = kits.post("quarantine", password="not its password")
    assert status == 403
    assert f"kit {device} is quarantined (kit_flood, since ".encode() in answer
    assert f"`sensorpipe devices lift {device}`".encode() in answer
    entry = kits.stack.quarantines()[device]
    assert (entry.reason, entry.by) == ("kit_flood", STACK_GATEWAY_ID)
    health = kits.health()
    assert health["quarantine"]["quarantined_kits"] == 1
    assert health["kits"]["airrohr"]["quarantine"]["quarantined"] == 1
    assert kits.post("chip-b")[0] == 200
    kits.stack.lift(device, by="test")
    # Let back within the book's cache (1 s); its bucket fills again at one post per 10 s.
    wait_for(lambda: kits.post("quarantine")[0] != 403, interval_s=1.0, what="the lift")
    wait_for(lambda: kits.post("quarantine")[0] == 200, interval_s=4.0, timeout_s=30)
    assert kits.stack.quarantines() == {}


def test_a_body_over_the_limit_is_refused_413(kits: Kits) -> None:
    values = [(f"X{i}", "1.00") for i in range(600)]  # about 21 KiB
    status, _answer = kits.post("big", values)
    assert status == 413
    assert kits.posts(413) == 1


def test_broker_down_the_kit_gets_503_and_nothing_is_stored(
    kits: Kits, influx: InfluxClient
) -> None:
    """The FAULT test: a post while the broker is stopped is answered 503 and leaves nothing;
    once the broker is back the gateway reconnects and the next post is stored."""
    stack = kits.stack
    device = kits.credentials["fault"].device_id
    assert stack.broker is not None
    stack.broker.stop()
    try:
        wait_for(lambda: not kits.health()["broker"]["connected"], what="the gateway to notice")
        status, answer = kits.post("fault", [("SDS_P1", "777.00"), ("SDS_P2", "77.00")])
        assert status == 503, answer
        assert b"retry-after: 60" in answer.lower()
    finally:
        stack.broker.start()
    wait_for(lambda: kits.health()["broker"]["connected"], timeout_s=30, what="reconnected")
    status, answer = kits.post("fault", [("SDS_P1", "333.00"), ("SDS_P2", "33.00")])
    assert status == 200, answer
    q = f"SELECT pm10, pm2_5 FROM air WHERE device_id = '{device}'"
    rows = wait_for(lambda: influx_rows(influx, q), timeout_s=30, what="the post after the outage")
    # The ingest has caught up (it took the later message): the refused one left no point.
    assert [(r["pm10"], r["pm2_5"]) for r in rows] == [(333.0, 33.0)]
    time.sleep(0.5)
    links = influx_rows(influx, f"SELECT seq FROM link WHERE device_id = '{device}'")
    assert len(links) == 1
    store = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    try:
        assert not [d for d in store.list(limit=1000) if d.topic == f"airrohr:{KITS['fault']}"]
    finally:
        store.close()
    assert kits.posts(503) == 1
