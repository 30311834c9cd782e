"""Throughput of the pipeline against baselines measured in the same run.

    python -m bench.pipeline [--messages N] [--rounds R] [--json]

The throughput pair (baseline, then pipeline, each with its own device and fresh messages) is
measured `--rounds` times in turn (default 3); the figures are the medians, and the ratio is
the median of the rounds' ratios, since on a small machine one measurement can be off by a
quarter either way.

Figures:
- broker_qos1_msg_s: a bare Mosquitto, one paho publisher to one paho subscriber, QoS 1, the
  same payloads: what MQTT alone does on this machine (baseline).
- pipeline_msg_s: signed messages published QoS 1 until InfluxDB holds each of them (counted
  by querying InfluxDB) through the ingest (validation, signature, line protocol, batched
  /write, ack after write).
- validate_2threads_msg_s: the same checks in two threads side by side, as the ingest does them
  with `validate_threads = 2`: Ed25519 verification releases the GIL, the rest does not. The
  ingest's default is 1 thread; this figure shows whether more would pay on this machine.
- validate_msg_s: the ingest's full check of one message on one core (JSON, registry,
  Ed25519 signature, pydantic schema and ranges), against pydantic_only_msg_s, the bare
  model_validate_json of the same bytes (baseline).
- influx_points_s: batches of 500 pre-serialised lines to /write (baseline for storage).
- latency_p50_ms / latency_p99_ms: publish to queryable, at a steady `--rate` (default 1000
  messages a second, from 20 devices, for `--seconds`): the time from handing a message to
  the MQTT client until a query to InfluxDB returns it (InfluxDB is polled every 20 ms, so
  figures are up to 20 ms late).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.gateway.mosquitto import MAX_QUEUED_MESSAGES
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.ingest.validate import RegistryView, Validator
from sensorpipe.process import ManagedProcess, free_port, port_open
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import MESSAGE_ADAPTER, AirMessage, Link, Reading
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for
from sensorpipe.stack.local import LocalStack

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


# The benchmark's devices send far beyond the network's default quota per device (20 messages a
# second, ingest [quota]): each is registered with a quota of its own that lets it.
FLOODING: dict[str, Any] = {
    "site": "bench",
    "max_messages_per_s": 100_000.0,
    "max_bytes_per_s": 1_000_000_000,
}


def payloads(creds: DeviceCredentials, n: int) -> list[bytes]:
    signer = Signer(creds.private_key)
    out = []
    for seq in range(1, n + 1):
        message = AirMessage(
            device_id=creds.device_id,
            seq=seq,
            observed_at=START + timedelta(seconds=seq),
            clock_synced=True,
            sent_at=START + timedelta(seconds=seq, milliseconds=40),
            link=Link(rssi_dbm=-67, reconnects=0, outbox_depth=0, uptime_s=seq, firmware="b/1"),
            readings=[
                Reading(quantity="pm2_5", value=10 + seq % 7, unit="ug/m3", sensor="sds011"),
                Reading(quantity="pm10", value=15 + seq % 9, unit="ug/m3", sensor="sds011"),
                Reading(quantity="temperature", value=18.5, unit="degC", sensor="bme280"),
                Reading(quantity="relative_humidity", value=71.0, unit="%", sensor="bme280"),
            ],
        )
        out.append(encode(message, signer.sign))
    return out


class Publisher:
    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.acked = 0
        self.done = threading.Event()
        self.target = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, *args: Any) -> None:
        self.acked += 1
        if self.acked >= self.target:
            self.done.set()

    def publish_all(self, topic: str, items: list[bytes]) -> None:
        self.target = len(items)
        for payload in items:
            self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def broker_baseline(items: list[bytes], workdir: Path) -> float:
    port = free_port()
    conf = workdir / "bare.conf"
    # Same queue and in-flight limits as the generated broker config (the default queue of
    # 1000 would drop overflow), without accounts, ACLs or persistence.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"max_queued_messages {MAX_QUEUED_MESSAGES}\nmax_inflight_messages 200\n"
    )
    broker = ManagedProcess("mosquitto", [mosquitto_binary(), "-c", str(conf)], workdir / "b.log")
    broker.start(lambda: port_open(port))
    received = threading.Event()
    count = 0

    def on_message(*_args: Any) -> None:
        nonlocal count
        count += 1
        if count >= len(items):
            received.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    pub = Publisher(port)
    try:
        t0 = time.perf_counter()
        pub.publish_all("bench/air", items)
        if not received.wait(120):
            raise RuntimeError(f"bare broker delivered only {count} of {len(items)} messages")
        elapsed = time.perf_counter() - t0
    finally:
        pub.close()
        sub.disconnect()
        sub.loop_stop()
        broker.stop()
    return len(items) / elapsed


def stored_in_influxdb(client: InfluxClient, device_id: str) -> int:
    """Messages of this device that InfluxDB holds (one `link` point each): what counts."""
    series = client.query(f"SELECT count(seq) FROM link WHERE device_id = '{device_id}'")
    return int(series[0]["values"][0][1]) if series else 0


def pipeline(items: list[bytes], stack: LocalStack, creds: DeviceCredentials) -> float:
    info = stack.require_info()
    client = InfluxClient(info.influx_url, info.database)
    pub = Publisher(info.broker_port, creds.username, creds.password)
    try:
        t0 = time.perf_counter()
        pub.publish_all(topic_for(creds.device_id, "air"), items)
        while True:
            # Counted in InfluxDB itself, not from the ingest's own counter.
            stored = stored_in_influxdb(client, creds.device_id)
            if stored >= len(items):
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"only {stored} of {len(items)} stored after 300 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    finally:
        pub.close()
        client.close()
    return len(items) / elapsed


def latency(
    stack: LocalStack, creds: list[DeviceCredentials], rate: float, seconds: float
) -> dict[str, float]:
    """Publish at a steady rate and time each message until InfluxDB returns it."""
    info = stack.require_info()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    n = int(rate * seconds)
    signers = {c.device_id: Signer(c.private_key) for c in creds}
    plan = []  # (device, seq, payload)
    for i in range(n):
        c = creds[i % len(creds)]
        seq = i // len(creds) + 1
        message = AirMessage(
            device_id=c.device_id,
            seq=seq,
            observed_at=base + timedelta(milliseconds=i),
            clock_synced=True,
            sent_at=base + timedelta(milliseconds=i),
            link=Link(uptime_s=seq, firmware="b/1"),
            readings=[Reading(quantity="pm10", value=15.0, unit="ug/m3", sensor="sds011")],
        )
        plan.append((c.device_id, seq, encode(message, signers[c.device_id].sign)))
    publishers = {c.device_id: Publisher(info.broker_port, c.username, c.password) for c in creds}
    client = InfluxClient(info.influx_url, info.database)
    published: dict[tuple[str, int], float] = {}
    seen: dict[tuple[str, int], float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or len(seen) < len(published):
            series = client.query(
                f"SELECT seq FROM link WHERE time >= '{base.isoformat()}' "
                "AND device_id =~ /^lat-/ GROUP BY device_id"
            )
            now = time.perf_counter()
            for s in series:
                device = s["tags"]["device_id"]
                for _t, seq in s["values"]:
                    seen.setdefault((device, int(seq)), now)
            if done.is_set() and time.perf_counter() - finished > 60:
                break
            time.sleep(0.02)

    finished = 0.0
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        t0 = time.perf_counter()
        for i, (device, seq, payload) in enumerate(plan):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            published[(device, seq)] = time.perf_counter()
            publishers[device].client.publish(topic_for(device, "air"), payload, qos=1)
        finished = time.perf_counter()
        done.set()
        poller.join(90)
    finally:
        for pub in publishers.values():
            pub.close()
        client.close()
    delays = sorted((seen[k] - t) * 1000 for k, t in published.items() if k in seen)
    if len(delays) < len(published):
        raise RuntimeError(f"only {len(delays)} of {len(published)} messages became queryable")
    return {
        "rate": rate,
        "achieved_rate": round(len(plan) / (finished - t0), 1),
        "messages": len(plan),
        "p50_ms": round(delays[len(delays) // 2], 1),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 1),
        "max_ms": round(delays[-1], 1),
    }


def validation(
    items: list[bytes], device_id: str, registry_path: Path
) -> tuple[float, float, float]:
    """(full checks/s on one thread, on two threads side by side, bare pydantic/s)."""
    validator = Validator(RegistryView(registry_path))
    topic = topic_for(device_id, "air")
    sample = items[: min(len(items), 3000)]

    def check(share: list[bytes]) -> None:
        for payload in share:
            validator.check(topic, payload)

    t0 = time.perf_counter()
    for payload in sample:
        MESSAGE_ADAPTER.validate_json(payload)
    bare = len(sample) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    check(sample)
    full = len(sample) / (time.perf_counter() - t0)
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(check, [sample[0::2], sample[1::2]]))
        two = len(sample) / (time.perf_counter() - t0)
    return full, two, bare


def influx_write(client: InfluxClient, n_points: int) -> float:
    lines = [
        to_line(
            Point(
                "bench",
                {"device_id": f"d{i % 50}", "sensor": "sds011"},
                {"pm2_5": 10.0 + i % 13, "pm10": 20.0},
                1_700_000_000_000 + i,
            )
        )
        for i in range(n_points)
    ]
    t0 = time.perf_counter()
    for start in range(0, len(lines), 500):
        client.write(lines[start : start + 500])
    return n_points / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/pipeline pairs")
    parser.add_argument("--rate", type=float, default=1000.0, help="msg/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda _m: None) if args.json else print

    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-") as tmp:
        workdir = Path(tmp)
        stack = LocalStack(workdir / "stack")
        say("starting the stack (mosquitto, influxd, ingest)")
        stack.up(detach=False, serve=False)
        try:
            devices = [(f"bench-{r + 1:02d}", FLOODING) for r in range(args.rounds)]
            rounds = []
            for r, creds in enumerate(stack.add_devices(devices), start=1):
                say(f"round {r}/{args.rounds}: signing {args.messages} messages")
                items = payloads(creds, args.messages)
                say(f"round {r}/{args.rounds}: bare broker baseline")
                b = broker_baseline(items, workdir)
                say(f"round {r}/{args.rounds}: full pipeline to InfluxDB")
                p = pipeline(items, stack, creds)
                say(f"  broker {b:.0f} msg/s, pipeline {p:.0f} msg/s ({p / b:.2f}x)")
                rounds.append((b, p))
            size = sum(len(payload) for payload in items) / len(items)
            broker = median(b for b, _ in rounds)
            piped = median(p for _, p in rounds)
            ratio = median(p / b for b, p in rounds)
            say(f"measuring: publish-to-queryable latency at {args.rate:g} msg/s")
            lat_creds = stack.add_devices([(f"lat-{i:02d}", FLOODING) for i in range(20)])
            lat = latency(stack, lat_creds, args.rate, args.seconds)
            say("measuring: validation on one core")
            full, two, bare = validation(items, creds.device_id, stack.registry_path)
            info = stack.require_info()
            client = InfluxClient(info.influx_url, info.database)
            say("measuring: InfluxDB /write baseline")
            points = influx_write(client, 50_000)
            client.close()
        finally:
            stack.down()

    result = {
        "messages": args.messages,
        "payload_bytes": round(size),
        "broker_qos1_msg_s": round(broker),
        "pipeline_msg_s": round(piped),
        "pipeline_vs_broker": round(ratio, 3),
        "rounds": [
            {"broker_qos1_msg_s": round(b), "pipeline_msg_s": round(p), "ratio": round(p / b, 3)}
            for b, p in rounds
        ],
        "pipeline_points_s": round(piped * 3),  # two air points and one link point a message
        "validate_msg_s": round(full),
        "validate_2threads_msg_s": round(two),
        "pydantic_only_msg_s": round(bare),
        "validate_vs_pydantic": round(full / bare, 3),
        "influx_points_s": round(points),
        "latency_rate_msg_s": lat["achieved_rate"],
        "latency_p50_ms": lat["p50_ms"],
        "latency_p99_ms": lat["p99_ms"],
        "latency_max_ms": lat["max_ms"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print()
    print(
        f"payload: {result['payload_bytes']} B signed air message, {args.messages} messages, "
        f"{args.rounds} rounds (medians; ratios per round: "
        + ", ".join(f"{r['ratio']:.2f}" for r in result["rounds"])
        + ")"
    )
    print(f"bare broker, QoS 1 pub->sub    : {result['broker_qos1_msg_s']:>8} msg/s (baseline)")
    print(
        f"pipeline, publish->InfluxDB    : {result['pipeline_msg_s']:>8} msg/s "
        f"({result['pipeline_vs_broker']:.2f}x broker, median of the rounds)"
    )
    print(
        f"ingest validation, one core    : {result['validate_msg_s']:>8} msg/s "
        f"({result['validate_vs_pydantic']:.2f}x bare pydantic at "
        f"{result['pydantic_only_msg_s']} msg/s)"
    )
    print(
        f"ingest validation, two threads : {result['validate_2threads_msg_s']:>8} msg/s "
        f"({result['validate_2threads_msg_s'] / result['validate_msg_s']:.2f}x one core)"
    )
    print(f"InfluxDB /write, batches of 500: {result['influx_points_s']:>8} points/s")
    print(
        f"publish->queryable at {result['latency_rate_msg_s']:g} msg/s: "
        f"p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, "
        f"max {result['latency_max_ms']} ms"
    )


if __name__ == "__main__":
    main()
