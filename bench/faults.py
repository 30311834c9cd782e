"""Fault suite: SIGKILL parts of the pipeline under steady load, then count in InfluxDB.

    python -m bench.faults [--devices 100] [--interval 1.0] [--cases broker,influxdb,...]
                           [--json]

Each case runs on a fresh local stack of real processes: Mosquitto, influxd and two ingest
workers sharing the stream (`$share/ingest/...`), fed by `--devices` simulated devices, each
running the real edge agent (a BME280 on a simulated I2C bus, SQLite outbox, Ed25519
signatures; no SDS011, whose pty would cost each device a dozen file descriptors) with one
reading every `--interval` seconds. After `--warmup` seconds the case SIGKILLs its targets,
waits `--down` seconds, restarts them and lets the load run `--after` seconds more; then the
devices stop and drain their outboxes, and the suite counts, per case, by querying InfluxDB:

- sent: messages the devices numbered (their sequence numbers run from 1 without gaps);
- stored: distinct sequence numbers InfluxDB holds per device;
- rejected: dead letters in the workers' stores (a valid fleet should have none);
- pending: still in a device outbox when the drain ended (not lost, not yet delivered);
- lost: sent, but neither stored nor rejected nor pending;
- duplicated: stored points beyond one per sequence number.

Cases: `broker`, `influxdb`, `worker` (one of the two), `all` (the three at once).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack

CASES = ("broker", "influxdb", "worker", "all")


@dataclass
class CaseResult:
    case: str
    devices: int
    sent: int
    stored: int
    rejected: int
    pending: int
    lost: int
    duplicated: int
    seconds: float


def run_case(
    case: str,
    workdir: Path,
    *,
    devices: int,
    interval_s: float,
    warmup_s: float,
    down_s: float,
    after_s: float,
    say: Callable[[str], None],
    confirm_timeout_s: float = 600.0,
) -> CaseResult:
    """One case. `confirm_timeout_s`: the agents' `[mqtt] confirm_timeout_s` (the default as
    deployed). A broker killed between two autosaves forgets messages it acknowledged; the
    agents offer those again after this long, so with the default they count as pending."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}: expected one of {', '.join(CASES)}")
    started = time.monotonic()
    stack = LocalStack(workdir / "stack")
    stack.up(detach=False, serve=False)
    fleet: Fleet | None = None
    try:
        info = stack.require_info()
        influx = InfluxClient(info.influx_url, info.database)
        assert stack.ingest is not None and stack.broker is not None and stack.influxd is not None
        stack.ingest.stop()  # the workers below share the stream instead
        workers = [stack.add_worker(f"worker-{i}") for i in (1, 2)]
        for w in workers:
            w.start()
        creds = stack.add_devices([(f"fault-{i:03d}", {"site": "faults"}) for i in range(devices)])
        fleet = Fleet(
            creds,
            broker_host="127.0.0.1",
            broker_port=info.broker_port,
            workdir=workdir / "fleet",
            interval_s=interval_s,
            status_interval_s=60.0,
            bad_frame_rate=0.0,
            sds011=False,  # a hundred pty-backed sensors need more descriptors than select()
            confirm_timeout_s=confirm_timeout_s,
        )
        fleet.start()
        say(f"[{case}] {devices} devices running; warm-up {warmup_s:g} s")
        time.sleep(warmup_s)
        broker, influxd = stack.broker, stack.influxd
        kill_broker = case in ("broker", "all")
        kill_influx = case in ("influxdb", "all")
        kill_worker = case in ("worker", "all")
        say(f"[{case}] SIGKILL")
        if kill_worker:
            workers[0].kill()
        if kill_broker:
            broker.process.kill()
        if kill_influx:
            influxd.process.kill()
        time.sleep(down_s)
        say(f"[{case}] restarting after {down_s:g} s")
        if kill_influx:
            influxd.start()
        if kill_broker:
            broker.start()
        if kill_worker:
            workers[0].start()
        time.sleep(after_s)
        say(f"[{case}] stopping the devices; they drain their outboxes")
        pending = fleet.stop()
        sent = {h.credentials.device_id: h.agent.stats.messages_queued for h in fleet.hosts}
        fleet = None
        rejected = _rejected(w.deadletter_path for w in workers)
        stored, duplicated = _settle(influx, sent, rejected + pending)
        influx.close()
        for w in workers:
            w.stop()
    finally:
        if fleet is not None:
            fleet.stop()
        stack.down()
    total = sum(sent.values())
    return CaseResult(
        case=case,
        devices=devices,
        sent=total,
        stored=stored,
        rejected=rejected,
        pending=pending,
        lost=max(0, total - stored - rejected - pending),
        duplicated=duplicated,
        seconds=round(time.monotonic() - started, 1),
    )


def _rejected(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        if path.exists():
            store = DeadLetterStore(path)
            total += sum(store.counts_by_code().values())
            store.close()
    return total


def _settle(influx: InfluxClient, sent: dict[str, int], accounted: int) -> tuple[int, int]:
    """(distinct sequence numbers stored, points beyond one per number), once the workers have
    written what they hold (up to 30 s)."""
    want = sum(sent.values()) - accounted
    deadline = time.monotonic() + 30
    while True:
        series = influx.query(
            "SELECT seq FROM link WHERE device_id =~ /^fault-/ GROUP BY device_id"
        )
        points = distinct = 0
        for s in series:
            seqs = [int(v[1]) for v in s["values"]]
            points += len(seqs)
            distinct += len(set(seqs))
        if distinct >= want or time.monotonic() > deadline:
            return distinct, points - distinct
        time.sleep(0.5)


def table(results: list[CaseResult]) -> str:
    head = ("case", "devices", "sent", "stored", "rejected", "pending", "lost", "duplicated", "s")
    rows = [
        (
            r.case,
            r.devices,
            r.sent,
            r.stored,
            r.rejected,
            r.pending,
            r.lost,
            r.duplicated,
            r.seconds,
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(str(x).rjust(w) for x, w in zip(head, widths, strict=True))]
    lines += ["  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--down", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="only the JSON")
    args = parser.parse_args()
    # The devices and workers log each disconnect they ride out; the table says what counts.
    logging.basicConfig(level=logging.ERROR)
    say = (lambda _m: None) if args.json else print
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}: expected some of {', '.join(CASES)}")
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix=f"sensorpipe-faults-{case}-") as tmp:
            results.append(
                run_case(
                    case,
                    Path(tmp),
                    devices=args.devices,
                    interval_s=args.interval,
                    warmup_s=args.warmup,
                    down_s=args.down,
                    after_s=args.after,
                    say=say,
                )
            )
    if not args.json:
        print()
        print(table(results))
        print()
    print(json.dumps({"cases": [asdict(r) for r in results]}, indent=2))


if __name__ == "__main__":
    main()
