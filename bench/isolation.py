"""One device cannot hurt the others: good devices' figures while one attacker misbehaves.

    python -m bench.isolation [--devices N] [--rate R] [--seconds S] [--baseline-seconds B]
                              [--drain-seconds D] [--modes m1,m2,...] [--json]

A real stack (Mosquitto, influxd, the ingest and the kit gateway, sensorpipe.stack.local) with
`--devices` good devices (default 5) that publish edge-like signed air messages (the project's
own encoder and signer, QoS 1, a persistent session each) at `--rate` messages a second each
(default 2), without pause for the whole run. Each good device also has 10 readings from a
sensor it did not declare dead-lettered before the first attack: the only copy of them, which
no attack may evict. Then, one mode after the other, a registered attacker of its own (a
separate process, so its CPU is not the good devices'), in this order:

- subscriptions: 500 SUBSCRIBE packets of 200 filters each on a persistent session, then it
  stays until the window ends and leaves; first, while the broker's memory is what it was at
  its start (its allocator keeps what a later flood makes it take);
- bad_signatures: signed air messages of about 600 B, each with a different sequence number
  and a signature that does not verify, QoS 1, as fast as the broker acknowledges them;
- large_messages: payloads just under the broker's packet limit (63 KiB), QoS 1, flat out;
- kit_flood: a registered airrohr kit (its right password) posting to the stack's kit gateway
  from 4 connections flat out;
- shared_group: for this mode the stack's ingest is replaced by a worker on the stack's own
  shared subscription (`$share/<the stack's group>/sensorpipe/v1/+/+`, stack.shared_group)
  and the attacker subscribes to exactly that, taking its turn of the group's messages.
  Always run last (the stack's ingest does not come back).

Each mode has a baseline window (`--baseline-seconds`, default 8) right before the attack
(`--seconds`, default 20), then up to `--drain-seconds` (default 30) for the good devices'
messages to arrive. Figures per mode:

- stored_rate_ratio: the good devices' stored rate during the attack over their normal stored
  rate, the same in the baseline window (target >= 0.95). A message counts as stored when a
  query to InfluxDB (polled every 0.1 s) returns it within `--grace-seconds` (default 1 s,
  five times the p99 delay without an attack here) of its publication; as the devices publish
  at a steady rate, the ratio is that of the fractions stored in time, which a window's edges
  do not blur (a message queued behind a flood and stored later does not count);
- stored_by_end: of the good messages published during the attack, the fraction stored by the
  attack's end;
- p99_ms / baseline_p99_ms: publish (handed to the MQTT client) to queryable in InfluxDB, for
  messages published during the attack and during the baseline (0.1 s resolution);
- lost: good messages published from this mode's start up to the attack's end that are not
  stored after the drain;
- broker RSS (MB): median of the baseline window, peak during the attack, and after the drain;
- deadletter_mb: growth of the dead-letter store (file + WAL) during the attack;
- good_letters_kept: the good devices' undeclared-sensor letters still in the store / made;
- quarantined_after_s: when the quarantine book (<stack>/quarantine.sqlite) recorded the
  attacker quarantined, in seconds after the attack began (None: not quarantined);
- the attacker's own figures: what it sent, what the broker/gateway answered, when it was cut
  off (its connection closed or refused, or the gateway's first 403).

Everything runs on one machine: the attacker, the good devices, the broker, influxd, the ingest
and the gateway share its cores, so a flood also takes CPU from the good devices' path here,
which a real attacker elsewhere would not.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing as mp
import sqlite3
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.codec import MAX_PAYLOAD_BYTES, encode
from sensorpipe.protocol.messages import AirMessage, Link, Reading
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for
from sensorpipe.stack.local import LocalStack

# In this order: subscriptions first, so the broker's memory is measured from where it starts
# (its allocator keeps what a flood made it take); shared_group last (the ingest goes).
MODES = ("subscriptions", "bad_signatures", "large_messages", "kit_flood", "shared_group")
GOOD_PREFIX = "good-"
GOOD_SENSORS = ["sds011", "bme280"]
UNDECLARED = "sps30"  # the sensor model the good devices send a few readings from
LETTERS_PER_GOOD = 10
POLL_S = 0.1
# A good message counts as stored in time when InfluxDB returns it within this many seconds
# of its publication (five times the p99 delay without an attack on this machine).
GRACE_S = 1.0
KIT_CHIP = "77001"
SUBSCRIBE_PACKETS = 500
FILTERS_PER_PACKET = 200


# --- the good devices ----------------------------------------------------------------------
class GoodDevices:
    """`creds` publishing one signed air message each every 1/`rate` s, staggered, on their
    own connections; `published` and `stored` map (device, seq) to perf_counter times."""

    def __init__(self, creds: list[DeviceCredentials], port: int, rate: float) -> None:
        self.creds = creds
        self.rate = rate
        self.signers = {c.device_id: Signer(c.private_key) for c in creds}
        self.seq = dict.fromkeys(self.signers, 0)
        self.published: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        self.clients: dict[str, mqtt.Client] = {}
        for c in creds:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=c.device_id, protocol=mqtt.MQTTv5
            )
            client.username_pw_set(c.username, c.password)
            client.max_queued_messages_set(0)
            client.reconnect_delay_set(1, 4)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            client.connect("127.0.0.1", port, clean_start=False, properties=props)
            client.loop_start()
            self.clients[c.device_id] = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def message(self, device: str, seq: int, sensor: str = "sds011") -> bytes:
        now = datetime.now(UTC)
        if sensor == "sds011":
            readings = [
                Reading(quantity="pm2_5", value=8.0 + seq % 5, unit="ug/m3", sensor="sds011"),
                Reading(quantity="pm10", value=14.0 + seq % 7, unit="ug/m3", sensor="sds011"),
                Reading(quantity="temperature", value=17.5, unit="degC", sensor="bme280"),
            ]
        else:
            readings = [Reading(quantity="pm2_5", value=9.0, unit="ug/m3", sensor=sensor)]
        message = AirMessage(
            device_id=device,
            seq=seq,
            observed_at=now,
            clock_synced=True,
            sent_at=now,
            link=Link(rssi_dbm=-64, reconnects=0, outbox_depth=0, uptime_s=seq, firmware="b/1"),
            readings=readings,
        )
        return encode(message, self.signers[device].sign)

    def send(self, device: str, sensor: str = "sds011") -> tuple[str, int]:
        with self.lock:
            self.seq[device] += 1
            seq = self.seq[device]
        payload = self.message(device, seq, sensor)
        if sensor == "sds011":
            self.published[(device, seq)] = time.perf_counter()
        self.clients[device].publish(topic_for(device, "air"), payload, qos=1)
        return device, seq

    def start(self) -> None:
        def run() -> None:
            devices = list(self.clients)
            step = 1.0 / (self.rate * len(devices))
            t0 = time.perf_counter()
            i = 0
            while not self._stop.is_set():
                due = t0 + i * step
                wait = due - time.perf_counter()
                if wait > 0:
                    self._stop.wait(wait)
                self.send(devices[i % len(devices)])
                i += 1

        self._thread = threading.Thread(target=run, name="good-devices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()


class StoredPoller:
    """Polls InfluxDB every POLL_S for the good devices' `link` points since `since`."""

    def __init__(self, influx: InfluxClient, since: datetime) -> None:
        self.influx = influx
        self.since = since.isoformat()
        self.stored: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stored-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                series = self.influx.query(
                    f"SELECT seq FROM link WHERE time >= '{self.since}' "
                    f"AND device_id =~ /^{GOOD_PREFIX}/ GROUP BY device_id"
                )
                now = time.perf_counter()
                for s in series:
                    device = s["tags"]["device_id"]
                    for _t, seq in s["values"]:
                        self.stored.setdefault((device, int(seq)), now)
            self._stop.wait(POLL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class RssSampler:
    """The broker's resident memory every 0.25 s: (perf_counter, bytes)."""

    def __init__(self, pid_of: Callable[[], int | None]) -> None:
        self.pid_of = pid_of
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes(self.pid_of())
            if rss is not None:
                self.samples.append((time.perf_counter(), rss))
            self._stop.wait(0.25)

    def between(self, t0: float, t1: float) -> list[int]:
        return [b for t, b in self.samples if t0 <= t <= t1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


# --- the attacker (a process of its own) -----------------------------------------------------
def _connect(spec: dict[str, Any], client_id: str, *, clean: bool, expiry: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(spec["username"], spec["password"])
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(1, 2)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    client.connect("127.0.0.1", spec["port"], clean_start=clean, properties=props)
    return client


class _Cutoff:
    """Records when the attacker was first cut off: its connection closed by the broker, or a
    CONNACK, PUBACK or SUBACK that refuses it."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.first: float | None = None
        self.events: dict[str, int] = {}

    def note(self, what: str) -> None:
        self.events[what] = self.events.get(what, 0) + 1
        if self.first is None and self.t0 > 0:
            self.first = time.time() - self.t0

    def start(self, go: Any) -> None:
        """Wait for the signal that the attack window begins, and start its clock there."""
        go.wait()
        self.t0 = time.time()


def _start(client: mqtt.Client, go: Any, cut: _Cutoff, settle_s: float = 0.0) -> None:
    """Start the attacker's network loop, give it `settle_s` to connect before the window, and
    wait for the window to begin."""
    client.loop_start()
    time.sleep(settle_s)
    cut.start(go)


def _flood(spec: dict[str, Any], payloads: list[bytes], go: Any, cut: _Cutoff) -> dict[str, Any]:
    """QoS 1 publishes flat out, at most 1000 unacknowledged."""
    lock = threading.Lock()
    leaving = threading.Event()
    state = {"inflight": 0, "sent": 0, "acked": 0, "refused": 0, "connected": False}
    codes: dict[str, int] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        state["connected"] = not reason.is_failure
        if reason.is_failure:
            cut.note(f"connect refused: {reason}")

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with lock:
            state["connected"] = False
            state["inflight"] = 0
        if cut.t0 > 0 and not leaving.is_set():
            cut.note(f"disconnected: {reason}")

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        with lock:
            state["inflight"] = max(0, state["inflight"] - 1)
            state["acked"] += 1
            codes[str(reason)] = codes.get(str(reason), 0) + 1
            if reason.is_failure:
                state["refused"] += 1
        if reason.is_failure:
            cut.note(f"puback: {reason}")

    client = _connect(spec, spec["username"], clean=True, expiry=0)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    _start(client, go, cut)
    start = time.perf_counter()
    end = start + spec["seconds"]
    topic = spec["topic"]
    i = 0
    nbytes = 0
    last = start
    while time.perf_counter() < end:
        if not state["connected"] or state["inflight"] >= 1000:
            time.sleep(0.001)
            continue
        payload = payloads[i % len(payloads)]
        info = client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            with lock:
                state["inflight"] += 1
                state["sent"] += 1
            nbytes += len(payload)
            i += 1
            last = time.perf_counter()
        else:
            time.sleep(0.01)
    # The rate while it could send: until its last publish (it may have been cut off early).
    elapsed = max(last - start, 1e-3)
    leaving.set()
    client.disconnect()
    client.loop_stop()
    return {
        "sent": state["sent"],
        "sent_per_s": round(state["sent"] / elapsed),
        "sent_mb_s": round(nbytes / elapsed / 1e6, 1),
        "payload_bytes": len(payloads[0]),
        "acked": state["acked"],
        "refused": state["refused"],
        "puback_codes": codes,
    }


def _subscriptions(spec: dict[str, Any], go: Any, cut: _Cutoff) -> dict[str, Any]:
    """500 SUBSCRIBE packets of 200 filters on a persistent session, then stay until the
    window ends and leave (the session stays behind, as the issue's attacker's did)."""
    granted = refused = 0
    done = threading.Event()
    leaving = threading.Event()
    answered = 0
    lock = threading.Lock()

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        nonlocal granted, refused, answered
        with lock:
            for code in codes:
                if code.is_failure:
                    refused += 1
                else:
                    granted += 1
            answered += 1
            if answered >= SUBSCRIBE_PACKETS:
                done.set()
        if any(code.is_failure for code in codes):
            cut.note("suback refused")

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if cut.t0 > 0 and not leaving.is_set():
            cut.note(f"disconnected: {reason}")
            done.set()

    client = _connect(spec, spec["username"], clean=False, expiry=7 * 86400)
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    _start(client, go, cut, settle_s=0.3)
    start = time.perf_counter()
    me = spec["username"]
    for p in range(SUBSCRIBE_PACKETS):
        filters = [
            (f"sensorpipe/v1/{me}-{p:03d}-{f:03d}/+", SubscribeOptions(qos=1))
            for f in range(FILTERS_PER_PACKET)
        ]
        client.subscribe(filters)
    done.wait(max(1.0, spec["seconds"]))
    burst_s = time.perf_counter() - start
    rest = spec["seconds"] - (time.perf_counter() - start)
    if rest > 0:
        time.sleep(rest)
    leaving.set()
    client.disconnect()
    client.loop_stop()
    return {
        "subscribe_packets": SUBSCRIBE_PACKETS,
        "filters": SUBSCRIBE_PACKETS * FILTERS_PER_PACKET,
        "granted": granted,
        "refused": refused,
        "answered_packets": answered,
        "burst_s": round(burst_s, 1),
    }


def _shared(spec: dict[str, Any], go: Any, cut: _Cutoff) -> dict[str, Any]:
    """Join the stack's own shared group for the window and take what it is dealt."""
    received = 0
    codes: list[str] = []

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        codes.extend(str(r) for r in reasons)
        if any(r.is_failure for r in reasons):
            cut.note("suback refused")

    def on_message(*_args: Any) -> None:
        nonlocal received
        received += 1

    client = _connect(spec, spec["username"], clean=True, expiry=0)
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    _start(client, go, cut, settle_s=0.3)
    client.subscribe(f"$share/{spec['group']}/sensorpipe/v1/+/+", qos=1)
    time.sleep(spec["seconds"])
    client.disconnect()
    client.loop_stop()
    return {
        "filter": f"$share/{spec['group']}/sensorpipe/v1/+/+",
        "suback": codes,
        "received": received,
    }


def airrohr_body(chip_id: str) -> bytes:
    """What an airrohr kit posts (SDS011 and BME280), as its firmware writes it."""
    values = [
        ("SDS_P1", "12.30"),
        ("SDS_P2", "5.60"),
        ("BME280_temperature", "21.53"),
        ("BME280_pressure", "101325.45"),
        ("BME280_humidity", "54.20"),
        ("signal", "-67"),
    ]
    data = "".join('{"value_type":"' + t + '","value":"' + v + '"},' for t, v in values)
    return (
        '{"esp8266id": "' + chip_id + '", "software_version": "NRZ-2024-135", '
        '"sensordatavalues":[' + data.rstrip(",") + "]}"
    ).encode()


def _kit_flood(spec: dict[str, Any], go: Any, cut: _Cutoff) -> dict[str, Any]:
    import httpx

    from sensorpipe.gateway.kits.app import AIRROHR_PATH

    token = base64.b64encode(f"{spec['username']}:{spec['password']}".encode()).decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
        "X-Sensor": f"esp8266-{spec['chip_id']}",
        "X-PIN": "1",
    }
    body = airrohr_body(spec["chip_id"])
    url = spec["kits_url"].rstrip("/") + AIRROHR_PATH
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    cut.start(go)
    end = time.perf_counter() + spec["seconds"]

    def worker() -> None:
        with httpx.Client(timeout=10) as client:
            while time.perf_counter() < end:
                try:
                    status = str(client.post(url, content=body, headers=headers).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                if status == "403":
                    cut.note("403")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posts = sum(statuses.values())
    return {
        "posts": posts,
        "posts_per_s": round(posts / (time.perf_counter() - start)),
        "statuses": statuses,
    }


def bad_signature_payloads(device_id: str, n: int) -> list[bytes]:
    """`n` different air messages of about 600 B whose signature does not verify."""
    signer = Signer(generate_keypair()[0])  # not the device's key
    now = datetime.now(UTC)
    readings = [
        Reading(quantity=q, value=v, unit=u, sensor=s)
        for q, v, u, s in [
            ("pm2_5", 10.0, "ug/m3", "sds011"),
            ("pm10", 15.0, "ug/m3", "sds011"),
            ("temperature", 18.5, "degC", "bme280"),
            ("relative_humidity", 71.0, "%", "bme280"),
        ]
    ]
    template = encode(
        AirMessage(
            device_id=device_id,
            seq=1_000_000,
            observed_at=now,
            clock_synced=True,
            sent_at=now,
            link=Link(rssi_dbm=-70, reconnects=0, outbox_depth=0, uptime_s=1.0, firmware="x/1"),
            readings=readings,
        ),
        signer.sign,
    )
    marker = b'"seq":1000000'
    assert template.count(marker) == 1, template
    return [template.replace(marker, b'"seq":%d' % (1_000_000 + i)) for i in range(n)]


def large_payloads(device_id: str, n: int) -> list[bytes]:
    """`n` different payloads of MAX_PAYLOAD_BYTES - 1 KiB (just under the packet limit)."""
    size = MAX_PAYLOAD_BYTES - 1024
    out = []
    for i in range(n):
        head = f'{{"device_id":"{device_id}","seq":{i},"pad":"'.encode()
        out.append(head + b"x" * (size - len(head) - 2) + b'"}')
    return out


def attacker_main(mode: str, spec: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    cut = _Cutoff(0.0)
    try:
        if mode == "bad_signatures":
            items = bad_signature_payloads(spec["username"], 50_000)
            ready.set()
            result = _flood(spec, items, go, cut)
        elif mode == "large_messages":
            items = large_payloads(spec["username"], 64)
            ready.set()
            result = _flood(spec, items, go, cut)
        elif mode == "subscriptions":
            ready.set()
            result = _subscriptions(spec, go, cut)
        elif mode == "shared_group":
            ready.set()
            result = _shared(spec, go, cut)
        elif mode == "kit_flood":
            ready.set()
            result = _kit_flood(spec, go, cut)
        else:
            raise ValueError(mode)
        result["cut_off_after_s"] = None if cut.first is None else round(cut.first, 1)
        result["cut_off_events"] = cut.events
        out.put(result)
    except BaseException as exc:
        ready.set()
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


# --- one mode ----------------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: str
    attacker: str
    baseline_stored_per_s: float
    attack_stored_per_s: float
    stored_rate_ratio: float
    stored_by_end: float
    baseline_p99_ms: float | None
    p99_ms: float | None
    published: int
    lost: int
    rss_before_mb: float | None
    rss_peak_mb: float | None
    rss_after_mb: float | None
    deadletter_mb: float
    deadletter_mb_s: float
    good_letters_kept: int
    good_letters_made: int
    quarantined_after_s: float | None
    quarantine_reason: str | None
    grace_s: float = GRACE_S
    attack: dict[str, Any] = field(default_factory=dict)


def deadletter_bytes(path: Path) -> int:
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


def good_letters(path: Path, devices: list[str]) -> int:
    """The good devices' undeclared-sensor letters in the store (read-only)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        n = 0
        for d in devices:
            row = db.execute(
                "SELECT count(*) FROM dead_letters WHERE topic LIKE ? AND code = ?",
                (f"sensorpipe/v1/{d}/%", "undeclared_sensor"),
            ).fetchone()
            n += int(row[0])
        return n
    finally:
        db.close()


def quarantined_at(path: Path, device_id: str, since: float) -> tuple[float | None, str | None]:
    """When the quarantine book first recorded `device_id` quarantined at or after `since`
    (epoch s), and why; (None, None) without such an event or without a book."""
    if not path.exists():
        return None, None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT at, reason FROM events WHERE device_id = ? AND event = 'quarantined' "
            "AND at >= ? ORDER BY at LIMIT 1",
            (device_id, since - 1.0),
        ).fetchone()
    except sqlite3.Error:
        return None, None
    finally:
        db.close()
    return (None, None) if row is None else (float(row[0]), str(row[1]))


class Bench:
    """The stack, the good devices and their pollers, for one run of several modes."""

    def __init__(
        self,
        workdir: Path,
        *,
        devices: int = 5,
        rate: float = 2.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.say = say
        self.stack = LocalStack(workdir / "stack")
        self.good_ids = [f"{GOOD_PREFIX}{i + 1:02d}" for i in range(devices)]
        specs: list[tuple[str, dict[str, Any]]] = [
            (d, {"site": "bench", "sensors": GOOD_SENSORS}) for d in self.good_ids
        ]
        specs += [
            (f"attacker-{m.replace('_', '-')}", {"site": "bench", "sensors": GOOD_SENSORS})
            for m in MODES
            if m != "kit_flood"
        ]
        creds = self.stack.add_devices(specs)
        self.good_creds = creds[:devices]
        self.attackers = {c.device_id: c for c in creds[devices:]}
        self.kit = self.stack.add_airrohr_kit(chip_id=KIT_CHIP, site="bench")
        self.rate = rate
        self.started = False
        self.worker: Any = None

    @property
    def deadletter_path(self) -> Path:
        return self.stack.directory / "ingest" / "deadletter.sqlite"

    @property
    def quarantine_path(self) -> Path:
        return self.stack.directory / "quarantine.sqlite"

    def start(self) -> None:
        self.say("starting the stack (mosquitto, influxd, the ingest, the kit gateway)")
        since = datetime.now(UTC) - timedelta(seconds=5)
        self.stack.up(detach=False, serve=False, kits=True)
        self.started = True
        info = self.stack.require_info()
        self.influx = InfluxClient(info.influx_url, info.database)
        self.good = GoodDevices(self.good_creds, info.broker_port, self.rate)
        self.poller = StoredPoller(self.influx, since)
        self.rss = RssSampler(self._broker_pid)
        time.sleep(0.5)
        # The only copy of these readings, once the ingest has confirmed them.
        for d in self.good_ids:
            for _ in range(LETTERS_PER_GOOD):
                self.good.send(d, sensor=UNDECLARED)
        self.letters_made = LETTERS_PER_GOOD * len(self.good_ids)
        deadline = time.monotonic() + 30
        while good_letters(self.deadletter_path, self.good_ids) < self.letters_made:
            if time.monotonic() > deadline:
                raise RuntimeError("the good devices' undeclared-sensor letters were not kept")
            time.sleep(0.2)
        self.good.start()

    def _broker_pid(self) -> int | None:
        if self.stack.broker is not None and self.stack.broker.process.pid is not None:
            return self.stack.broker.process.pid
        return None

    def stop(self) -> None:
        if not self.started:
            return
        self.good.stop()
        self.poller.stop()
        self.rss.stop()
        self.influx.close()
        if self.worker is not None:
            self.worker.stop()
        self.stack.down()

    def drain(self, until: float, timeout_s: float) -> None:
        """Wait until every good message published before `until` is stored, or timeout."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            pending = [
                k
                for k, t in list(self.good.published.items())
                if t <= until and k not in self.poller.stored
            ]
            if not pending:
                return
            time.sleep(0.2)

    def _spec(self, mode: str) -> dict[str, Any]:
        info = self.stack.require_info()
        if mode == "kit_flood":
            return {
                "username": self.kit.device_id,
                "password": self.kit.password,
                "chip_id": self.kit.chip_id,
                "kits_url": info.kits_url,
            }
        c = self.attackers[f"attacker-{mode.replace('_', '-')}"]
        spec: dict[str, Any] = {
            "username": c.username,
            "password": c.password,
            "port": info.broker_port,
            "topic": topic_for(c.device_id, "air"),
        }
        if mode == "shared_group":
            spec["group"] = self.stack.shared_group()
        return spec

    def _to_shared_worker(self) -> None:
        """The stack's ingest gives way to a worker on the stack's shared group: the worker
        first (so nothing published meanwhile misses both), then the ingest stops and its
        persistent session is ended, so what the group loses is not stored from it later."""
        self.say("  the ingest gives way to a worker on the stack's shared group")
        self.worker = self.stack.add_worker("bench-worker")
        self.worker.start()
        config = tomllib.loads((self.stack.directory / "ingest" / "ingest.toml").read_text())
        if self.stack.ingest is not None:
            self.stack.ingest.stop()
        b = config["broker"]
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=b.get("client_id", "sensorpipe-ingest"),
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(b["username"], b["password"])
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        client.connect(b["host"], b["port"], clean_start=True, properties=props)
        client.loop_start()
        time.sleep(0.5)
        client.disconnect()
        client.loop_stop()

    def run_mode(
        self,
        mode: str,
        *,
        baseline_s: float,
        attack_s: float,
        drain_s: float,
        grace_s: float = GRACE_S,
    ) -> ModeResult:
        say = self.say
        say(f"{mode}: draining what came before")
        self.drain(time.perf_counter(), drain_s)
        m0 = time.perf_counter()  # earlier messages count for earlier modes
        if mode == "shared_group":
            self._to_shared_worker()
        spec = {**self._spec(mode), "seconds": attack_s}
        ctx = mp.get_context("spawn")
        ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=attacker_main, args=(mode, spec, ready, go, out), daemon=True)
        proc.start()
        ready.wait(60)
        say(f"{mode}: baseline {baseline_s:g} s")
        b0 = time.perf_counter()
        time.sleep(baseline_s)
        b1 = time.perf_counter()
        dl0 = deadletter_bytes(self.deadletter_path)
        say(f"{mode}: attack {attack_s:g} s")
        a0_wall = time.time()
        a0 = time.perf_counter()
        go.set()
        try:
            attack = out.get(timeout=attack_s + 120)
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        a1 = max(time.perf_counter(), a0 + attack_s)
        dl1 = deadletter_bytes(self.deadletter_path)
        say(f"{mode}: draining (up to {drain_s:g} s)")
        self.drain(a1, drain_s)
        time.sleep(1.0)
        d1 = time.perf_counter()
        published = dict(self.good.published)
        stored = dict(self.poller.stored)

        def in_time(t0: float, t1: float) -> tuple[int, int]:
            """(published in [t0, t1), of them stored within the grace)."""
            keys = [k for k, t in published.items() if t0 <= t < t1]
            ok = sum(1 for k in keys if k in stored and stored[k] - published[k] <= grace_s)
            return len(keys), ok

        base_n, base_ok = in_time(b0, b1)
        attack_n, attack_ok = in_time(a0, a1)
        base_fraction = base_ok / base_n if base_n else 0.0
        attack_fraction = attack_ok / attack_n if attack_n else 0.0
        base_rate = base_ok / (b1 - b0)
        attack_rate = attack_ok / (a1 - a0)
        during = [k for k, t in published.items() if a0 <= t < a1]
        by_end = sum(1 for k in during if k in stored and stored[k] <= a1)

        def p99(t0: float, t1: float) -> float | None:
            delays = sorted(
                (stored[k] - t) * 1000 for k, t in published.items() if t0 <= t < t1 and k in stored
            )
            return round(delays[max(0, int(len(delays) * 0.99) - 1)]) if delays else None

        lost = sum(1 for k, t in published.items() if m0 <= t < a1 and k not in stored)
        before = self.rss.between(b0, b1)
        peak = self.rss.between(a0, a1)
        after = self.rss.between(d1 - 1.5, d1 + 1)
        mb = 1024 * 1024
        q_at, q_reason = quarantined_at(self.quarantine_path, spec["username"], a0_wall)
        result = ModeResult(
            mode=mode,
            attacker=spec["username"],
            baseline_stored_per_s=round(base_rate, 2),
            attack_stored_per_s=round(attack_rate, 2),
            stored_rate_ratio=round(attack_fraction / base_fraction, 3) if base_fraction else 0.0,
            stored_by_end=round(by_end / len(during), 3) if during else 0.0,
            baseline_p99_ms=p99(b0, b1),
            p99_ms=p99(a0, a1),
            published=len(during),
            lost=lost,
            rss_before_mb=round(median(before) / mb, 1) if before else None,
            rss_peak_mb=round(max(peak) / mb, 1) if peak else None,
            rss_after_mb=round(after[-1] / mb, 1) if after else None,
            deadletter_mb=round((dl1 - dl0) / 1e6, 1),
            deadletter_mb_s=round((dl1 - dl0) / 1e6 / (a1 - a0), 1),
            good_letters_kept=good_letters(self.deadletter_path, self.good_ids),
            good_letters_made=self.letters_made,
            quarantined_after_s=None if q_at is None else round(q_at - a0_wall, 1),
            quarantine_reason=q_reason,
            grace_s=grace_s,
            attack=attack,
        )
        say(f"  {line(result)}")
        return result


def line(r: ModeResult) -> str:
    q = "never" if r.quarantined_after_s is None else f"+{r.quarantined_after_s:g} s"
    return (
        f"stored rate {r.stored_rate_ratio:.0%} of normal ({r.attack_stored_per_s:g} vs "
        f"{r.baseline_stored_per_s:g}/s), {r.stored_by_end:.0%} by the end, p99 {r.p99_ms} ms "
        f"(baseline {r.baseline_p99_ms} ms), lost {r.lost}; broker RSS {r.rss_before_mb} -> "
        f"{r.rss_peak_mb} -> {r.rss_after_mb} MB; dead letters +{r.deadletter_mb:g} MB; "
        f"good letters {r.good_letters_kept}/{r.good_letters_made}; quarantined {q}"
    )


def attack_summary(r: ModeResult) -> str:
    a = r.attack
    cut = a.get("cut_off_after_s")
    cut_s = "never" if cut is None else f"+{cut:g} s"
    if "error" in a:
        return f"error: {a['error']}"
    if r.mode in ("bad_signatures", "large_messages"):
        return (
            f"{a['sent']} sent ({a['sent_per_s']}/s, {a['sent_mb_s']} MB/s while it could, "
            f"{a['payload_bytes']} B), {a['refused']} refused at PUBACK; cut off {cut_s}"
        )
    if r.mode == "kit_flood":
        return (
            f"{a['posts']} posts ({a['posts_per_s']}/s), answers {a['statuses']}; cut off {cut_s}"
        )
    if r.mode == "subscriptions":
        return (
            f"{a['filters']} filters in {a['subscribe_packets']} SUBSCRIBE: {a['granted']} granted,"
            f" {a['refused']} refused, in {a['burst_s']} s"
        )
    return f"SUBACK {a['suback']}, {a['received']} messages received by the attacker"


def table(results: list[ModeResult]) -> str:
    head = (
        f"{'mode':<15} {'stored':>7} {'by end':>7} {'p99 ms':>7} {'base p99':>8} {'lost':>5} "
        f"{'RSS MB before/peak/after':>25} {'DL MB':>6} {'letters':>8} {'quarantined':>11}"
    )
    rows = [head]
    for r in results:
        q = "never" if r.quarantined_after_s is None else f"+{r.quarantined_after_s:g} s"
        rss = f"{r.rss_before_mb}/{r.rss_peak_mb}/{r.rss_after_mb}"
        rows.append(
            f"{r.mode:<15} {r.stored_rate_ratio:>7.0%} {r.stored_by_end:>7.0%} "
            f"{r.p99_ms!s:>7} {r.baseline_p99_ms!s:>8} {r.lost:>5} {rss:>25} "
            f"{r.deadletter_mb:>6g} {f'{r.good_letters_kept}/{r.good_letters_made}':>8} {q:>11}"
        )
    rows.append("")
    rows += [f"{r.mode:<15} attacker: {attack_summary(r)}" for r in results]
    return "\n".join(rows)


def run(
    workdir: Path,
    modes: list[str],
    *,
    devices: int = 5,
    rate: float = 2.0,
    baseline_s: float = 10.0,
    attack_s: float = 25.0,
    drain_s: float = 30.0,
    grace_s: float = GRACE_S,
    say: Callable[[str], None] = print,
) -> list[ModeResult]:
    bench = Bench(workdir, devices=devices, rate=rate, say=say)
    results = []
    try:
        bench.start()
        for mode in sorted(modes, key=MODES.index):  # shared_group last: the ingest goes
            results.append(
                bench.run_mode(
                    mode,
                    baseline_s=baseline_s,
                    attack_s=attack_s,
                    drain_s=drain_s,
                    grace_s=grace_s,
                )
            )
    finally:
        bench.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5, help="good devices")
    parser.add_argument("--rate", type=float, default=2.0, help="messages a second per device")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each attack")
    parser.add_argument("--baseline-seconds", type=float, default=8.0)
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    parser.add_argument(
        "--grace-seconds", type=float, default=GRACE_S, help="publish to stored, in time"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)}; known: {', '.join(MODES)}")
    say = (lambda _m: None) if args.json else print
    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-isolation-") as tmp:
        results = run(
            Path(tmp),
            modes,
            devices=args.devices,
            rate=args.rate,
            baseline_s=args.baseline_seconds,
            attack_s=args.seconds,
            drain_s=args.drain_seconds,
            grace_s=args.grace_seconds,
            say=say,
        )
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
        return
    print()
    print(
        f"{args.devices} good devices at {args.rate:g} msg/s each; attacks of {args.seconds:g} s "
        f"after a {args.baseline_seconds:g} s baseline; stored = the good devices' messages "
        f"stored within {args.grace_seconds:g} s, during the attack / during the baseline"
    )
    print(table(results))


if __name__ == "__main__":
    main()
