"""What the quality flags cost the ingest: its rate with flags on ÷ off, in the same run.

    python -m bench.qc [--devices N] [--messages M] [--rounds R] [--real N] [--json]

A realistic batch: N devices (default 200), each with an SDS011 (PM2.5, PM10) and a BME280
(temperature, relative humidity, pressure), M air messages each (default 25), one a minute,
values wandering as real ones do (a quarter of the time at 70 % RH or more), signed as the
edge agent signs them. Each round measures the batch in chunks of 200 messages, each chunk off
and on close together (in turn first), in CPU time of the process (other work on a shared
machine takes wall-clock time, much less CPU time), with one `QualityChecker` per round (state
built over the batch as the ingest's is); the figures are medians over `--rounds` (default
5), the ratios the medians of the rounds' ratios.

Figures (messages a CPU second, in-process: no broker, no InfluxDB):
- points_off / points_on: the message turned into points and line protocol
  (`ingest.points.message_points`, `to_line`), without and with the checker; the part of the
  ingest the flags are added to.
- ingest_off / ingest_on: the ingest's whole work per message in its writer thread (the
  default `validate_threads = 1`): the check (JSON, registry, Ed25519 signature, schema and
  ranges, `ingest.validate.Validator`) and the points and lines as above. The goal is
  ingest_ratio >= 0.9.
- with `--real N`, real_off / real_on: through the real ingest (`real_ingest`), publish to
  stored in InfluxDB, N messages a round, at most 3 rounds.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.ingest.validate import RegistryView, Validator
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import AirMessage, Link, Reading
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for
from sensorpipe.quality.checker import QualityChecker

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)


def batch(devices: int, messages: int, seed: int = 7) -> list[AirMessage]:
    """The messages in arrival order: each minute, every device's message."""
    rng = random.Random(seed)
    state = [[rng.uniform(3, 30), rng.uniform(5, 25), rng.uniform(40, 95)] for _ in range(devices)]
    out = []
    for minute in range(messages):
        for d in range(devices):
            pm, temp, rh = state[d]
            pm = max(0.0, pm + rng.gauss(0, 1.0))
            temp += rng.gauss(0, 0.05)
            rh = min(100.0, max(20.0, rh + rng.gauss(0, 0.3)))
            state[d] = [pm, temp, rh]
            observed = START + timedelta(minutes=minute)
            out.append(
                AirMessage(
                    device_id=f"bench-{d:04d}",
                    seq=minute + 1,
                    observed_at=observed,
                    clock_synced=True,
                    sent_at=observed + timedelta(seconds=1),
                    link=Link(uptime_s=86400.0 + minute * 60, firmware="bench/1", rssi_dbm=-60),
                    readings=[
                        Reading(
                            quantity="pm2_5", value=round(pm, 1), unit="ug/m3", sensor="sds011"
                        ),
                        Reading(
                            quantity="pm10", value=round(pm * 1.6, 1), unit="ug/m3", sensor="sds011"
                        ),
                        Reading(
                            quantity="temperature",
                            value=round(temp, 2),
                            unit="degC",
                            sensor="bme280",
                        ),
                        Reading(
                            quantity="relative_humidity",
                            value=round(rh, 2),
                            unit="%",
                            sensor="bme280",
                        ),
                        Reading(
                            quantity="pressure",
                            value=round(1013 + rng.gauss(0, 0.2), 2),
                            unit="hPa",
                            sensor="bme280",
                        ),
                    ],
                )
            )
    return out


CHUNK = 200  # messages measured off, then on (or on, then off), before the next chunk


def _cpu_s(work: Callable[[], None]) -> float:
    """CPU seconds of this process that `work` took: other processes on a shared machine
    take wall-clock time from a run, much less its CPU time."""
    t0 = time.process_time()
    work()
    return time.process_time() - t0


def measure(devices: int, messages: int, rounds: int) -> dict[str, Any]:
    msgs = batch(devices, messages)
    private, public = generate_keypair()
    signer = Signer(private)
    with tempfile.TemporaryDirectory() as tmp:
        registry_path = Path(tmp) / "registry.toml"
        entries = {
            f"bench-{d:04d}": DeviceEntry(
                site="bench", public_key=public, password_hash="x", sensors=["sds011", "bme280"]
            )
            for d in range(devices)
        }
        save_registry(Registry(devices=entries), registry_path)
        validator = Validator(RegistryView(registry_path), clock=lambda: START.timestamp() + 86400)
        wire = [(topic_for(m.device_id, "air"), encode(m, signer.sign)) for m in msgs]

        def points(chunk: slice, quality: QualityChecker | None) -> None:
            for m in msgs[chunk]:
                for p in message_points(m, "bench", RECEIPT, "edge", quality):
                    to_line(p)

        def ingest(chunk: slice, quality: QualityChecker | None) -> None:
            for topic, payload in wire[chunk]:
                m = validator.check(topic, payload)
                for p in message_points(m, "bench", RECEIPT, "edge", quality):
                    to_line(p)

        figures: dict[str, list[float]] = {}
        n = len(msgs)
        chunks = [slice(i, i + CHUNK) for i in range(0, n, CHUNK)]
        for r in range(rounds):
            for name, work in (("points", points), ("ingest", ingest)):
                # The batch in chunks, each measured off and on close together (off first in
                # even rounds, on first in odd ones); one checker keeps its state throughout.
                checker = QualityChecker()
                off_s = on_s = 0.0
                for chunk in chunks:
                    off, on = partial(work, chunk, None), partial(work, chunk, checker)
                    if r % 2 == 0:
                        off_s += _cpu_s(off)
                        on_s += _cpu_s(on)
                    else:
                        on_s += _cpu_s(on)
                        off_s += _cpu_s(off)
                figures.setdefault(f"{name}_off_msg_s", []).append(n / off_s)
                figures.setdefault(f"{name}_on_msg_s", []).append(n / on_s)
                figures.setdefault(f"{name}_ratio", []).append(off_s / on_s)
    result: dict[str, Any] = {"devices": devices, "messages": n, "rounds": rounds}
    for key, values in figures.items():
        result[key] = round(median(values), 3 if key.endswith("ratio") else 0)
    result["goal_ingest_ratio"] = 0.9
    result["goal_met"] = result["ingest_ratio"] >= 0.9
    return result


def real_ingest(messages: int, rounds: int) -> dict[str, Any]:
    """Through the real ingest: two local stacks side by side (Mosquitto, influxd, the
    ingest), one with `[quality] enabled = false`; each round a new device on each sends the
    same `messages` signed messages (bench.pipeline's: humid air, a device just started)
    as fast as QoS 1 allows, timed until InfluxDB holds them all; off and on in turn first."""
    from bench.pipeline import FLOODING, payloads, pipeline
    from sensorpipe.stack.local import LocalStack

    with tempfile.TemporaryDirectory(prefix="sensorpipe-bench-qc-") as tmp:
        stacks = {}
        for name, enabled in (("off", "false"), ("on", "true")):
            stack = LocalStack(Path(tmp) / name)
            config = stack.directory / "ingest" / "ingest.toml"
            config.parent.mkdir(parents=True)
            config.write_text(f"[quality]\nenabled = {enabled}\n", encoding="utf-8")
            stacks[name] = stack
        for stack in stacks.values():
            stack.up(detach=False, serve=False, kits=False)
        try:
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(rounds):
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                for name in order:
                    (creds,) = stacks[name].add_devices([(f"qc-{r:02d}", FLOODING)])
                    items = payloads(creds, messages)
                    rates[name].append(pipeline(items, stacks[name], creds))
        finally:
            for stack in stacks.values():
                stack.down()
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    return {
        "real_off_msg_s": round(median(rates["off"])),
        "real_on_msg_s": round(median(rates["on"])),
        "real_ratio": round(median(ratios), 3),
        "real_messages": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--messages", type=int, default=25, help="messages per device")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--real",
        type=int,
        default=0,
        metavar="N",
        help="also through the real ingest: N messages a round to two local stacks",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.devices, args.messages, args.rounds)
    if args.real:
        result.update(real_ingest(args.real, min(args.rounds, 3)))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['messages']} messages ({result['devices']} devices), {args.rounds} rounds")
    for name in ("points", "ingest"):
        off, on = result[f"{name}_off_msg_s"], result[f"{name}_on_msg_s"]
        ratio = result[f"{name}_ratio"]
        print(f"{name:7} off {off:>9,.0f} msg/s   on {on:>9,.0f} msg/s   on/off {ratio:.3f}")
    if args.real:
        off, on, ratio = result["real_off_msg_s"], result["real_on_msg_s"], result["real_ratio"]
        print(f"real    off {off:>9,.0f} msg/s   on {on:>9,.0f} msg/s   on/off {ratio:.3f}")
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"goal: ingest on/off >= 0.9: {verdict}")


if __name__ == "__main__":
    main()
