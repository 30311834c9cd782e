"""The Things Stack v3 through the real kit gateway process, Mosquitto, the ingest and influxd.

A second Mosquitto plays The Things Stack's MQTT server: the bridge logs in as
`fijnstof-wijk@ttn` with the API key as password, and the test publishes uplinks in the exact
v3 JSON (tests/data/ttn) on `v3/fijnstof-wijk@ttn/devices/<device id>/up`, with QoS 0 as The
Things Stack does. A small HTTP server in the test plays its Storage Integration (every uplink
"received" is kept there, as The Things Stack would). One stack for the module.
"""

from __future__ import annotations

import copy
import getpass
import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import paho.mqtt.client as mqtt
import pytest
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.gateway.kits.ttn_webhook import token_hash
from sensorpipe.gateway.mosquitto import hash_password
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import ManagedProcess, free_ports, port_open
from sensorpipe.protocol.files import write_private
from sensorpipe.quality.flags import QC_VERSION
from sensorpipe.stack.local import STACK_GATEWAY_ID, LocalStack
from tests.helpers import wait_for
from tests.integration.conftest import _require_binaries
from tests.test_ttn import FIELDS

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data" / "ttn"
APP = "fijnstof-wijk@ttn"
API_KEY = "NNSXS.TESTKEY4BRIDGE.SECRETPART0123456789"
WEBHOOK_TOKEN = "webhook-token-for-the-test"
AS_USER, AS_PASSWORD = "application-server", "as-password"
# Each uplink is received 5 s after the one before, as The Things Stack's clock goes on: the
# gap filling asks for what came after the last uplink the bridge handled, and no node sends
# faster than the LoRa duty cycle allows (the gateway's uplink rate limit).
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
_SECONDS = itertools.count(5, 5)
NODES = {  # sensorpipe device id: TTN end device id
    "fijnstof-01": "eui-70b3d57ed005e1a2",
    "school-02": "school-dak-02",
    "hook-03": "hook-03",
    "fault-04": "fault-04",
    "flood-05": "flood-05",
    "order-06": "order-06",
}


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as The Things Stack


def uplink(
    ttn_device: str,
    f_cnt: int,
    *,
    template: str = "uplink.json",
    pm25: float = 0,
    at: datetime | None = None,
) -> dict:
    """A sample uplink as `ttn_device` sends it with frame counter `f_cnt`, received now (or
    `at`, by the Network Server)."""
    obj: dict[str, Any] = json.loads((DATA / template).read_text())
    obj["end_device_ids"]["device_id"] = ttn_device
    up = obj["uplink_message"]
    ns = at if at is not None else T0 + timedelta(seconds=next(_SECONDS))
    up["received_at"] = _time(ns)
    obj["received_at"] = _time(ns + timedelta(milliseconds=180))
    up["f_cnt"] = f_cnt
    if pm25 and up.get("decoded_payload"):
        up["decoded_payload"]["pm25"] = pm25
    return obj


class StorageDouble:
    """The Storage Integration: what The Things Stack received, served as it serves it."""

    def __init__(self, port: int) -> None:
        self.stored: list[dict[str, Any]] = []
        self.queries = 0
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                path = "/api/v3/as/applications/fijnstof-wijk/packages/storage/uplink_message"
                if url.path != path or self.headers["Authorization"] != f"Bearer {API_KEY}":
                    self.send_error(403)
                    return
                params = parse_qs(url.query)
                after = params["after"][0]
                limit = int(params["limit"][0])
                assert params["order"] == ["received_at"]
                after_dt = datetime.fromisoformat(after.replace("Z", "+00:00"))
                with double._lock:
                    double.queries += 1
                    found = sorted(
                        (
                            u
                            for u in double.stored
                            if datetime.fromisoformat(u["received_at"][:26] + "+00:00") > after_dt
                        ),
                        key=lambda u: u["received_at"],
                    )[:limit]
                body = "".join(json.dumps({"result": u}) + "\n" for u in found).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keep(self, up: dict[str, Any]) -> None:
        with self._lock:
            self.stored.append(up)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TheThingsStack:
    """A Mosquitto playing The Things Stack's MQTT server, and its Storage Integration."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        self.port, storage_port = free_ports(2)
        passwords = directory / "passwd"
        write_private(
            passwords,
            f"{APP}:{hash_password(APP, API_KEY)}\n"
            f"{AS_USER}:{hash_password(AS_USER, AS_PASSWORD)}\n",
        )
        (directory / "data").mkdir()
        config = directory / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    # As the stack's broker: stay the user that started it (it owns the files).
                    f"user {'root' if os.geteuid() == 0 else getpass.getuser()}",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwords}",
                    "persistence true",
                    f"persistence_location {directory / 'data'}/",
                    "autosave_interval 1",
                    "log_dest stdout",
                    "",
                ]
            )
        )
        self.process = ManagedProcess(
            "tts-mqtt", [mosquitto_binary(), "-c", str(config)], directory / "mosquitto.log"
        )
        self.storage = StorageDouble(storage_port)
        self.storage_url = f"http://127.0.0.1:{storage_port}"
        self._client: mqtt.Client | None = None

    def start(self) -> None:
        self.process.start(lambda: port_open(self.port), timeout_s=15)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="tts-application-server", protocol=mqtt.MQTTv311
        )
        client.username_pw_set(AS_USER, AS_PASSWORD)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.process.stop()

    def uplink(self, up: dict[str, Any], *, qos: int = 0, publish: bool = True) -> None:
        """The Things Stack received `up`: its storage keeps it and (`publish`) its MQTT
        server sends it, with QoS 0 as The Things Stack does (`qos` 1: a server that can)."""
        self.storage.keep(copy.deepcopy(up))
        if not publish:
            return
        assert self._client is not None
        device = up["end_device_ids"]["device_id"]
        info = self._client.publish(
            f"v3/{APP}/devices/{device}/up", json.dumps(up, indent=2).encode(), qos=qos
        )
        info.wait_for_publish(5)


class Ttn:
    def __init__(self, stack: LocalStack, tts: TheThingsStack, influx: InfluxClient) -> None:
        self.stack, self.tts, self.influx = stack, tts, influx

    def rows(self, q: str) -> list[dict[str, Any]]:
        out = []
        for series in self.influx.query(q):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                out.append({**series.get("tags", {}), **row})
        return out

    def health(self) -> dict[str, Any]:
        url = self.stack.require_info().kits_url
        with urllib.request.urlopen(f"{url}health", timeout=5) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def letters(self) -> list[Any]:
        store = DeadLetterStore(self.stack.directory / "ingest" / "deadletter.sqlite")
        try:
            return [d for d in store.list(limit=10_000) if d.topic.startswith("ttn:")]
        finally:
            store.close()


@pytest.fixture(scope="module")
def ttn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ttn]:
    _require_binaries()
    base = tmp_path_factory.mktemp("ttn")
    tts = TheThingsStack(base / "tts")
    tts.start()
    stack = LocalStack(base / "stack")
    try:
        for device_id, ttn_device in NODES.items():
            stack.add_ttn_node(
                application=APP, ttn_device=ttn_device, site="centrum", device_id=device_id
            )
        gateway_dir = stack.gateway_config_path.parent
        write_private(gateway_dir / "ttn.key", API_KEY + "\n")
        # What the operator adds to the stack's gateway.toml; `stack up` keeps it.
        section = {
            "application": APP,
            "server": "127.0.0.1",
            "port": tts.port,
            "tls": False,
            "api_key_file": "ttn.key",
            "storage_url": tts.storage_url,
            "backfill_settle_s": 2.0,
            "webhook_token_hashes": [token_hash(WEBHOOK_TOKEN)],
            "ignore_fields": ["battery_v", "status"],
            "fields": FIELDS,
        }
        write_private(stack.gateway_config_path, tomli_w.dumps({"ttn": [section]}))
        stack.up(detach=False, serve=False, kits=True)
    except BaseException:
        tts.stop()
        tts.storage.close()
        raise
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        t = Ttn(stack, tts, influx)
        wait_for(lambda: t.health()["broker"]["connected"], what="the gateway on the broker")
        yield t
    finally:
        influx.close()
        stack.down()
        tts.stop()
        tts.storage.close()


def _link(ttn: Ttn, device: str) -> list[dict[str, Any]]:
    return ttn.rows(f"SELECT * FROM link WHERE device_id = '{device}' GROUP BY *")


def test_uplinks_through_the_bridge_are_stored_with_metadata_and_provenance(ttn: Ttn) -> None:
    first = uplink("eui-70b3d57ed005e1a2", 42)
    ttn.tts.uplink(first)
    ttn.tts.uplink(uplink("school-dak-02", 1234, template="uplink_gateways.json"))
    q = "SELECT * FROM air WHERE device_id = 'fijnstof-01' GROUP BY *"

    def complete() -> list[dict[str, Any]]:
        # The ingest's writes may land in two batches: wait for every field, not the first.
        rows = ttn.rows(q)
        fields = {r["sensor"]: {k for k, v in r.items() if v is not None} for r in rows}
        wanted = {"sds011": {"pm2_5", "pm10"}, "bme280": {"temperature", "pressure"}}
        return rows if all(f <= fields.get(s, set()) for s, f in wanted.items()) else []

    rows = wait_for(complete, what="the node's readings in InfluxDB")
    by_sensor = {r["sensor"]: r for r in rows}
    assert set(by_sensor) == {"sds011", "bme280"}
    sds, bme = by_sensor["sds011"], by_sensor["bme280"]
    assert (sds["pm2_5"], sds["pm10"]) == (12.3, 20.1)
    assert (bme["temperature"], bme["relative_humidity"]) == (18.45, 61.5)
    assert bme["pressure"] == pytest.approx(1013.2)  # the node's Pa, in hPa
    for row in rows:
        assert (row["source"], row["vouch"], row["site"]) == ("ttn", "gateway", "centrum")
        assert row["qc"] == QC_VERSION  # quality-checked as any device's readings
        # The Network Server's received_at, to the millisecond.
        ns = datetime.fromisoformat(first["uplink_message"]["received_at"][:26] + "+00:00")
        assert row["time"] == round(ns.timestamp() * 1000)

    (link,) = _link(ttn, "fijnstof-01")
    assert (link["source"], link["vouch"], link["vouched_by"]) == (
        "ttn",
        "gateway",
        "local-gateway",
    )
    assert link["seq"] == 43 and link["f_cnt"] == 42 and link["f_port"] == 1
    assert (link["gateways"], link["gateway_ids"]) == (1, "ttn-bibliotheek-dak")
    assert (link["rssi_dbm"], link["snr_db"]) == (-87, 9.25)
    assert (link["spreading_factor"], link["bandwidth_hz"]) == (7, 125000)
    assert (link["frequency_hz"], link["airtime_s"]) == (868500000, 0.061696)
    assert (link["time_source"], link["clock_synced"], link["firmware"]) == (
        "network",
        True,
        "1.2",
    )
    assert link["gateway"] == "local"  # the ingest that stored it

    (school,) = wait_for(lambda: _link(ttn, "school-02"), what="the school node's link point")
    assert school["seq"] == 1235 and school["gateways"] == 3
    assert school["gateway_ids"] == "ttn-school-roof,eui-b827ebfffe8b01dd,kerkplein-gw"
    assert (school["rssi_dbm"], school["snr_db"], school["spreading_factor"]) == (-97, 4.5, 9)
    assert (school["frequency_hz"], school["airtime_s"]) == (867300000, 0.205824)


def test_what_cannot_be_stored_is_in_the_dead_letter_store(ttn: Ttn) -> None:
    stranger = uplink("eui-00000000000000ff", 7)
    ttn.tts.uplink(stranger)
    simulated = uplink("eui-70b3d57ed005e1a2", 0, template="uplink_simulated.json")
    ttn.tts.uplink(simulated)
    extra = uplink("eui-70b3d57ed005e1a2", 57, template="uplink_extra_fields.json")
    ttn.tts.uplink(extra)
    wait_for(lambda: len(ttn.letters()) >= 3, what="the dead letters")
    letters = ttn.letters()
    by_code = {d.code: d for d in letters}
    assert set(by_code) == {"unknown_device", "simulated", "schema"}
    assert by_code["unknown_device"].topic == f"ttn:{APP}/eui-00000000000000ff"
    assert json.loads(by_code["unknown_device"].payload) == stranger  # the bytes as sent
    assert "humidity = 127.5" in by_code["schema"].detail  # battery_v, status: ignored
    # What could be stored of the uplink with the bad humidity is stored: its PM and its
    # temperature and pressure, at one time, without the humidity (the test stands alone: the
    # device's readings from other tests are told apart by their values).
    q = "SELECT * FROM air WHERE device_id = 'fijnstof-01' AND time > '2000-01-01' GROUP BY *"

    def stored() -> dict[str, dict[str, Any]]:
        return {
            r["sensor"]: r
            for r in ttn.rows(q)
            if r.get("pm2_5") == 13.2 or r.get("temperature") == 18.55
        }

    wait_for(lambda: set(stored()) == {"sds011", "bme280"}, what="the second uplink's readings")
    rows = stored()
    assert rows["sds011"]["pm10"] == 20.7
    assert rows["bme280"]["pressure"] == 1014.4 and rows["bme280"].get("humidity") is None
    assert rows["sds011"]["time"] == rows["bme280"]["time"]


def test_the_webhook_takes_uplinks_with_its_token_only(ttn: Ttn) -> None:
    url = f"{ttn.stack.require_info().kits_url}ttn/v3/{APP}/uplink"
    body = json.dumps(uplink("hook-03", 5)).encode()

    def post(token: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, _ = post("not-the-token")
    assert status == 401
    status, answer = post(WEBHOOK_TOKEN)
    assert status == 200 and answer["published"] is True and answer["seq"] == 6
    # Answered only after the broker acknowledged: the ingest stores it shortly.
    (link,) = wait_for(lambda: _link(ttn, "hook-03"), what="the webhook's uplink stored")
    assert link["f_cnt"] == 5 and link["vouched_by"] == STACK_GATEWAY_ID
    assert ttn.health()["kits"]["ttn"]["posts"] == {"200": 1, "401": 1}


def test_a_bridge_that_loses_its_connection_resumes_without_loss_or_duplicates(ttn: Ttn) -> None:
    """The FAULT test. Uplinks of one node keep coming while, in turn, the gateway process is
    killed, The Things Stack's MQTT server goes away, and our broker is stopped. Every uplink
    ends up stored exactly once: each f_cnt one point, with seq = f_cnt + 1."""
    stack, tts = ttn.stack, ttn.tts
    assert stack.gateway is not None and stack.broker is not None
    f_cnt = iter(range(100, 1000))

    def send(n: int, **kwargs: Any) -> list[int]:
        sent = [next(f_cnt) for _ in range(n)]
        for c in sent:
            tts.uplink(uplink("fault-04", c, pm25=float(c)), **kwargs)
        return sent

    def stored() -> list[int]:
        return sorted(
            r["seq"] for r in ttn.rows("SELECT seq FROM link WHERE device_id = 'fault-04'")
        )

    expected = send(5)  # connected: straight through
    wait_for(lambda: len(stored()) == 5, what="the first uplinks")

    # 1. The gateway process dies. The MQTT server keeps nothing for it at QoS 0 (as The
    # Things Stack); at QoS 1 (a server that can) it queues for the bridge's session.
    stack.gateway.kill()
    expected += send(4)
    expected += send(4, qos=1)
    stack.start_gateway()

    # 2. The Things Stack's MQTT server goes away; uplinks reach only its storage meanwhile.
    wait_for(lambda: len(stored()) == 13, timeout_s=30, what="the uplinks of the gateway's death")
    tts.stop()
    expected += send(4, publish=False)
    tts.start()

    # 3. Our broker is stopped while uplinks come over MQTT: the bridge acknowledges none of
    # them (QoS 1) or keeps them in memory (QoS 0) until the broker takes them.
    wait_for(lambda: len(stored()) == 17, timeout_s=60, what="the uplinks of the server's outage")
    stack.broker.stop()
    try:
        wait_for(lambda: not ttn.health()["broker"]["connected"], what="the gateway to notice")
        expected += send(3, qos=1)
        expected += send(3)
    finally:
        stack.broker.start()

    want = sorted(c + 1 for c in expected)
    wait_for(lambda: stored() == want, timeout_s=60, what="every uplink stored")
    time.sleep(3)  # a late duplicate would show now (a second gap filling comes after 2 s)
    assert stored() == want
    rows = ttn.rows("SELECT pm2_5 FROM air WHERE device_id = 'fault-04'")
    assert sorted(r["pm2_5"] for r in rows) == sorted(float(c) for c in expected)
    links = ttn.rows("SELECT seq, f_cnt FROM link WHERE device_id = 'fault-04'")
    assert all(r["seq"] == r["f_cnt"] + 1 for r in links)
    letters = ttn.letters()
    assert not [d for d in letters if d.topic.endswith("/fault-04")]
    # The gap filling after the restart went over earlier uplinks too: none was kept twice.
    codes = [d.code for d in letters]
    assert len(codes) == len(set(codes))
    assert tts.storage.queries >= 4  # at each of the three connections, and 2 s after
    # Since the gateway's restart: the 8 uplinks that came over MQTT with QoS 0 or not at all
    # were fetched from the storage; the bridge connected twice (start, server back).
    counts = ttn.health()["kits"]["ttn"]
    assert counts["uplinks"]["gap_filled"] >= 8
    assert counts["connections"]["made"] == 2 and counts["connections"]["lost"] == 1


def test_a_node_that_floods_is_limited_then_quarantined_until_lifted(ttn: Ttn) -> None:
    """A node sending four uplinks a second (by the Network Server's times, twice what the
    LoRa duty cycle allows at the shortest airtime) has those over its limit dropped, then is
    quarantined by the gateway in the stack's book; another node's uplinks go on being stored
    meanwhile; nothing of the flood is dead-lettered; one lift lets the node back. Last in
    the module: its uplinks' times run ahead of the shared clock."""
    tts, stack = ttn.tts, ttn.stack
    base = T0 + timedelta(seconds=next(_SECONDS))
    sent = 0
    school: list[int] = []
    give_up = time.monotonic() + 90  # a guard against a test that never ends, not a bound
    while "flood-05" not in stack.quarantines() and time.monotonic() < give_up:
        at = base + timedelta(seconds=0.25 * sent)
        tts.uplink(uplink("flood-05", sent, at=at, pm25=1.0 + sent))
        if sent % 8 == 0:  # the school's node, every 2 s: within its limit
            school.append(5000 + sent)
            tts.uplink(uplink("school-dak-02", school[-1], at=at))
        sent += 1
        time.sleep(0.25)
    entry = stack.quarantines().get("flood-05")
    assert entry is not None, f"not quarantined after {sent} uplinks"
    assert (entry.reason, entry.by) == ("kit_flood", STACK_GATEWAY_ID)
    assert "rate limit of 10 at once, then one every 2 s" in entry.detail
    # Quarantined: its uplinks are dropped (and acknowledged upstream).
    for i in range(sent, sent + 4):
        tts.uplink(uplink("flood-05", i, at=base + timedelta(seconds=0.25 * i)))
    health = wait_for(
        lambda: (
            (h := ttn.health())["kits"]["ttn"]["uplinks"].get("dropped_quarantined", 0) >= 4 and h
        ),
        what="the quarantined node's uplinks dropped",
    )
    counts = health["kits"]["ttn"]
    assert counts["uplinks"]["dropped_over_rate"] >= 10
    assert counts["quarantine"]["quarantined"] == 1
    assert health["quarantine"]["quarantined_kits"] == 1
    # Stored: the burst and one per 2 s of the flood's network time, nothing else.
    links = wait_for(lambda: _link(ttn, "flood-05"), what="the flood's first uplinks")
    time.sleep(1.0)
    links = _link(ttn, "flood-05")
    assert 10 <= len(links) <= 10 + sent * 0.25 / 2 + 1
    assert not [d for d in ttn.letters() if d.topic.endswith("/flood-05")]
    # The other node was not touched.
    q = "SELECT f_cnt FROM link WHERE device_id = 'school-02' AND f_cnt >= 5000"
    wait_for(
        lambda: sorted(r["f_cnt"] for r in ttn.rows(q)) == school,
        what="the school node's uplinks during the flood",
    )
    # One lift: its next uplink (sent well within its limit) is stored again.
    stack.lift("flood-05", by="test")
    after = base + timedelta(seconds=0.25 * (sent + 4) + 60)
    time.sleep(1.5)  # the book's cache
    tts.uplink(uplink("flood-05", 10_000, at=after))
    q = "SELECT f_cnt FROM link WHERE device_id = 'flood-05' AND f_cnt = 10000"
    wait_for(lambda: ttn.rows(q), what="the node's uplink after the lift")


def _webhook(ttn: Ttn, up: dict[str, Any]) -> dict[str, Any]:
    url = f"{ttn.stack.require_info().kits_url}ttn/v3/{APP}/uplink"
    request = urllib.request.Request(
        url,
        data=json.dumps(up).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as answer:
        assert answer.status == 200
        data: dict[str, Any] = json.loads(answer.read())
    return data


def test_a_token_holder_can_neither_overwrite_nor_resequence_stored_readings(ttn: Ttn) -> None:
    at = T0 + timedelta(minutes=30)
    assert _webhook(ttn, uplink("order-06", 10, pm25=5.0, at=at))["published"] is True
    # Another f_cnt at the same network time: it would overwrite the stored reading.
    forged = _webhook(ttn, uplink("order-06", 99, pm25=444.0, at=at))
    assert forged["published"] is False and forged["dead_lettered"] == ["conflicting_uplink"]
    # Dated tomorrow and in 9999: kept by the gateway, no sequence number moved.
    tomorrow = _webhook(ttn, uplink("order-06", 5000, at=datetime.now(UTC) + timedelta(days=1)))
    assert tomorrow["dead_lettered"] == ["future_timestamp"]
    far = uplink("order-06", 6000)
    far["uplink_message"]["received_at"] = far["received_at"] = "9999-12-31T23:59:59.000000123Z"
    assert _webhook(ttn, far)["dead_lettered"] == ["future_timestamp"]
    later = _webhook(ttn, uplink("order-06", 11, pm25=6.0, at=at + timedelta(minutes=1)))
    assert later["published"] is True and later["seq"] == 12
    q = "SELECT pm2_5 FROM air WHERE device_id = 'order-06'"
    wait_for(lambda: len(ttn.rows(q)) == 2, what="both readings")
    assert [r["pm2_5"] for r in ttn.rows(q)] == [5.0, 6.0]
    links = wait_for(lambda: _link(ttn, "order-06"), what="the link points")
    assert sorted(link["seq"] for link in links) == [11, 12]
    codes = {d.code for d in ttn.letters() if d.topic.endswith("/order-06")}
    assert codes == {"conflicting_uplink", "future_timestamp"}
