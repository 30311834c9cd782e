"""What the quality flags cost the ingest: its rate with flags on ÷ off, in the same run.

    python -m bench.qc [--devices N] [--messages M] [--rounds R] [--real N] [--json]

A realistic batch: N devices (default 200), each with an SDS011 (PM2.5, PM10) and a BME280
(temperature, relative humidity, pressure), M air messages each (default 25), one a minute,
values wandering as real ones do (a quarter of the time at 70 % RH or more), signed as the
edge agent signs them. Each round measures the batch in chunks of 500 messages, each chunk off
and on close together (in turn first), in CPU time of the process (other work on a shared
machine takes wall-clock time, much less CPU time), with one `QualityChecker` per round (state
built over the batch as the ingest's is); the figures are medians over `--rounds` (default
5), the ratios the medians of all chunks' ratios (a pair of chunks measured within a second
of each other, so that a burst of other work spoils few pairs).

Figures (messages a CPU second, in-process: no broker, no InfluxDB):
- points_off / points_on: the message turned into points and line protocol
  (`ingest.points.message_points`, `to_line`), without and with the checker; the part of the
  ingest the flags are added to.
- ingest_off / ingest_on: the ingest's whole work per message in its writer thread (the
  default `validate_threads = 1`), by the ingest's own `ingest.checks.Checker` on batches of
  500: each message checked (JSON, registry, Ed25519 signature, schema and ranges; once, as
  the flags do not touch it), then numbered and made into points and lines by a worker with
  `[quality] enabled` false and one with true. The goal is ingest_ratio >= 0.9.
- flags_us_per_msg: what the flags add to a message (points on less off, in CPU µs), and
  ingest_ratio_from_cost, the ingest's ratio that cost implies (steadier than ingest_ratio
  on a busy machine: the points figures are a tenth of the ingest's).
- with `--real N`, real_off / real_on: through the real ingest (`real_ingest`), publish to
  stored in InfluxDB, N messages a round, `--rounds` rounds; real_ratios lists each round's.

The other figure of the trust work, what `calibrate fit` costs on a year of 1-minute data of
100 devices, is `bench.calibrate`'s.
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
from typing import Any, TypeVar

from sensorpipe.ingest.checks import Checker
from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.link import Incoming
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.ingest.validate import RegistryView
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.enrollment import KeyStore
from sensorpipe.protocol.messages import AirMessage, Link, Reading
from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for
from sensorpipe.quality.checker import QualityChecker

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
T = TypeVar("T")
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


# Messages measured off, then on (or on, then off), before the next chunk: the ingest's
# default batch (batch_max).
CHUNK = 500


def _timed(work: Callable[[], T]) -> tuple[T, float]:
    """What `work` gives, and the CPU seconds of this process it took: other processes on a
    shared machine take wall-clock time from a run, much less its CPU time."""
    t0 = time.process_time()
    out = work()
    return out, time.process_time() - t0


def _cpu_s(work: Callable[[], object]) -> float:
    return _timed(work)[1]


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
        wire = [(topic_for(m.device_id, "air"), encode(m, signer.sign)) for m in msgs]
        now = START.timestamp() + 86400
        incoming = [Incoming(0, i, t, p, False, now) for i, (t, p) in enumerate(wire)]

        def checker(enabled: bool) -> Checker:
            """The ingest's own checks of a batch (ingest.checks), as a worker runs them."""
            config = IngestConfig.model_validate(
                {
                    "broker": {"password": "x"},
                    "registry_path": str(registry_path),
                    "quality": {"enabled": enabled},
                }
            )
            keys = KeyStore(Path(tmp) / "keys.sqlite")
            registry = RegistryView(registry_path, keys)
            return Checker(config, registry, keys, publish=lambda _t, _p: None, clock=lambda: now)

        def points(chunk: slice, quality: QualityChecker | None) -> None:
            for m in msgs[chunk]:
                for p in message_points(m, "bench", RECEIPT, "edge", quality):
                    to_line(p)

        figures: dict[str, list[float]] = {}
        n = len(msgs)
        chunks = [slice(i, i + CHUNK) for i in range(0, n, CHUNK)]
        for r in range(rounds):
            # The batch in chunks, each measured off and on close together (off first in even
            # rounds, on first in odd ones); the state carries on from chunk to chunk.
            quality = QualityChecker()
            checkers = {False: checker(False), True: checker(True)}
            totals: dict[str, float] = {}
            for chunk in chunks:
                # points: the same messages off and on
                off_p = partial(points, chunk, None)
                on_p = partial(points, chunk, quality)
                # the ingest: each message checked once (what flags do not touch: JSON,
                # registry, signature, schema), then numbered and made into points and lines
                # by a worker with flags off and one with flags on
                batch_ = incoming[chunk]
                # validate_threads = 1: `start` checks them all before it returns
                checks, check_s = _timed(partial(checkers[False].start, batch_))
                off_i = partial(checkers[False].evaluate_all, batch_, checks.results())
                on_i = partial(checkers[True].evaluate_all, batch_, checks.results())
                pairs = (("points", off_p, on_p, 0.0), ("ingest", off_i, on_i, check_s))
                for name, off, on, common in pairs:
                    if r % 2 == 0:
                        off_chunk, on_chunk = _cpu_s(off), _cpu_s(on)
                    else:
                        on_chunk, off_chunk = _cpu_s(on), _cpu_s(off)
                    off_chunk += common
                    on_chunk += common
                    totals[name + "_off"] = totals.get(name + "_off", 0.0) + off_chunk
                    totals[name + "_on"] = totals.get(name + "_on", 0.0) + on_chunk
                    # a chunk's pair is measured within a second: a burst of other work on
                    # the machine spoils a few pairs, and the median leaves them out
                    figures.setdefault(f"{name}_ratio", []).append(off_chunk / on_chunk)
            for name in ("points", "ingest"):
                figures.setdefault(f"{name}_off_msg_s", []).append(n / totals.pop(name + "_off"))
                figures.setdefault(f"{name}_on_msg_s", []).append(n / totals.pop(name + "_on"))
            for c in checkers.values():
                c.close()
    result: dict[str, Any] = {"devices": devices, "messages": n, "rounds": rounds}
    for key, values in figures.items():
        result[key] = round(median(values), 3 if key.endswith("ratio") else 0)
    # What the flags add to a message, in CPU µs (from the points figures, the shorter and
    # steadier measurement), and the ingest's ratio it implies.
    cost_us = 1e6 / result["points_on_msg_s"] - 1e6 / result["points_off_msg_s"]
    result["flags_us_per_msg"] = round(cost_us, 1)
    ingest_us = 1e6 / result["ingest_off_msg_s"]
    result["ingest_ratio_from_cost"] = round(ingest_us / (ingest_us + cost_us), 3)
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
        "real_ratios": [round(x, 3) for x in ratios],
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
        result.update(real_ingest(args.real, args.rounds))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['messages']} messages ({result['devices']} devices), {args.rounds} rounds")
    for name in ("points", "ingest"):
        off, on = result[f"{name}_off_msg_s"], result[f"{name}_on_msg_s"]
        ratio = result[f"{name}_ratio"]
        print(f"{name:7} off {off:>9,.0f} msg/s   on {on:>9,.0f} msg/s   on/off {ratio:.3f}")
    print(
        f"the flags add {result['flags_us_per_msg']} µs of CPU a message: the ingest's work "
        f"on/off {result['ingest_ratio_from_cost']:.3f} by that cost"
    )
    if args.real:
        off, on, ratio = result["real_off_msg_s"], result["real_on_msg_s"], result["real_ratio"]
        print(f"real    off {off:>9,.0f} msg/s   on {on:>9,.0f} msg/s   on/off {ratio:.3f}")
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"goal: ingest on/off >= 0.9: {verdict}")


if __name__ == "__main__":
    main()
