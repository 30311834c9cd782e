"""Latency and throughput of `sensorpipe serve` against the same InfluxQL sent straight to
InfluxDB, over a week of history.

    python -m bench.api [--devices 100] [--counting 20] [--days 7] [--requests 100]
                        [--cold-requests 20] [--keep] [--stack DIR] [--json]

A local stack is started and loaded with `--devices` air devices and `--counting` counting
devices x `--days` days of 1-minute messages (sensorpipe.firmware_sim.history), written as line
protocol to InfluxDB's /write as the ingest writes it (not through MQTT). The load time and
points/s are figures of their own. `--keep` leaves the loaded stack running; `--stack DIR`
measures such a stack again without loading it. Measuring starts once influxd has finished
compacting what was loaded.

The API runs as `sensorpipe serve` in a process of its own (uvicorn, one worker), so the
clients here do not share its interpreter. Each scenario is measured with 1 and with 8
concurrent clients (threads, one httpx connection each), `--requests` requests in all after a
few warm-up requests:

- (a) one device's hourly means over the whole history (`/api/v1/air?device=..&every=1h`);
- (b) a site's hourly means (5 devices), `group=site` and `group=device`;
- (c) the device list with uptime (`/api/v1/devices`): warm, the register's statistics cached
  (the normal case), and cold, computed again for every request (`--cold-requests` requests);
- (d) a SensorThings page of 1000 observations, when /sta/v1.1 has Datastreams.

The baseline ("direct") of (a), (b) and (c) is the InfluxQL the API sends for that request,
obtained by calling the API's own query code (air_series, register_stats) with a client that
records its statements, sent to influxd's POST /query with the same clients and concurrency:
for (a) and (b) one after the other (SHOW SERIES to size the answer, then the SELECT), as the
API sends them; for (c) four side by side, as register_stats does. The warm device list asks
InfluxDB nothing, so it is held against its target only (p95 under 200 ms); the cold one is
compared with the register_stats statements.

Cold server: `sensorpipe serve --config` with `register_cache_s = 0` is started first. If it
answers statistics computed before the request (ApiContext.stats then answers the cached ones
and refreshes them in the background), the cold figures come from a server that computes them
for every request instead: the same app, with a context whose stats() calls register_stats.

Targets (reported, not asserted): the API's p50 at most 30 % over the direct statements' p50;
the device list p95 under 200 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sensorpipe.firmware_sim.history import (
    MINUTE_MS,
    HistoryDevice,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import free_port
from sensorpipe.protocol.registry import save_registry
from sensorpipe.query.register import register_stats
from sensorpipe.query.series import AirSeriesRequest, air_series
from sensorpipe.stack.local import LocalStack

CLIENTS = (1, 8)
WARMUP = 3
BLOCKS = 4  # API and direct measured in turn, each in this many blocks
AIR_TARGET = 1.30  # the API's p50 over the direct statements' p50
DEVICES_P95_MS = 200.0
STA_PAGE = 1000


# --- loading ---------------------------------------------------------------------------------
class _QueuedWriter(InfluxClient):
    """An InfluxClient whose write() hands the batch to a thread that posts it, so the next
    batch is made (Python) while InfluxDB stores the last one."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(url, database, timeout_s=120)
        self._queue: queue.Queue[Sequence[str] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    super().write(batch)
                except BaseException as exc:
                    self._error = exc

    def write(self, lines: Sequence[str], *, precision: str = "ms") -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(list(lines))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.close()
        if self._error is not None:
            raise self._error


def expected_points(devices: list[HistoryDevice], minutes: int) -> int:
    """Points the history will hold, before each device's 1 % outage: an air device writes
    two air points and a link point a minute, a counter ten traffic points, a counter point
    and a link point."""
    return sum(minutes * (12 if d.counting else 3) for d in devices)


def load(
    stack: LocalStack, devices: list[HistoryDevice], start_ms: int, end_ms: int, say: Any
) -> tuple[int, float, float]:
    """(points written, seconds to write them, seconds to register the devices)."""
    t0 = time.perf_counter()
    registry = stack.registry()
    register_history_devices(registry, devices)
    save_registry(registry, stack.registry_path)
    registered_s = time.perf_counter() - t0
    say(f"registered {len(devices)} devices in {registered_s:.1f} s")
    info = stack.require_info()
    total = expected_points(devices, (end_ms - start_ms) // MINUTE_MS)
    writer = _QueuedWriter(info.influx_url, info.database)
    t0 = time.perf_counter()
    shown = [0.0]

    def progress(written: int) -> None:
        now = time.perf_counter()
        if now - shown[0] >= 5 or written >= total:
            shown[0] = now
            rate = written / (now - t0)
            say(
                f"  loading: {written / 1e6:.2f} M of about {total / 1e6:.2f} M points "
                f"({100 * written / total:.0f} %), {rate / 1000:.0f} k points/s"
            )

    try:
        written = write_history(writer, devices, start_ms, end_ms, progress=progress)
    finally:
        writer.finish()
    return written, time.perf_counter() - t0, registered_s


def wait_for_quiet_influxd(stack: LocalStack, say: Any, limit_s: float = 300) -> float:
    """Wait until influxd has used under 10 % of a core for 3 s (its compactions after the
    load done), at most `limit_s`; the seconds waited."""
    pids = stack.running().get("influxd") or []
    if not pids:
        return 0.0
    stat = Path(f"/proc/{pids[0]}/stat")
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    t0 = time.monotonic()
    said = False
    while time.monotonic() - t0 < limit_s:
        before = cpu_s()
        time.sleep(3)
        if cpu_s() - before < 0.3:
            break
        if not said:
            say("waiting for InfluxDB to finish compacting")
            said = True
    return time.monotonic() - t0


# --- servers ---------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(argv: list[str], port: int, log: Path) -> Server:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server ended ({process.returncode}): {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/api/v1/health", timeout=2).status_code in (200, 503):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the API server on port {port} did not answer in 60 s")


def serve_config_file(stack: LocalStack, path: Path, port: int, cache_s: float) -> Path:
    info = stack.require_info()
    path.write_text(
        f"port = {port}\n"
        f'registry_path = "{stack.registry_path}"\n'
        f"register_cache_s = {cache_s}\n"
        f"[influx]\n"
        f'url = "{info.influx_url}"\n'
        f'database = "{info.database}"\n'
    )
    return path


def serve_uncached(config_path: str) -> None:
    """`sensorpipe serve --config`, with the register's statistics computed for every request
    (for the cold figures): the same listening socket, server and app as the command."""
    import sensorpipe.api.context as context_module
    from sensorpipe.api.config import load_serve_config
    from sensorpipe.api.context import ApiContext
    from sensorpipe.cli.serve import run_server
    from sensorpipe.query.register import RegisterStats

    class Uncached(ApiContext):
        def stats(self, *, now: Callable[[], float] = time.monotonic) -> RegisterStats:
            return register_stats(self.influx)

    context_module.ApiContext = Uncached  # type: ignore[misc]  # run_server builds it by name
    run_server(load_serve_config(config_path))


def recomputes_each_request(url: str) -> bool:
    """Whether /api/v1/devices answers statistics computed after the request was sent."""
    with httpx.Client(timeout=120) as client:
        client.get(f"{url}/api/v1/devices").raise_for_status()
        for _ in range(3):
            sent_ms = int(time.time() * 1000) - 2  # the answer's time is in whole ms
            body = client.get(f"{url}/api/v1/devices").json()
            computed = body["stats_computed_at"].replace("Z", "+00:00")
            if datetime.fromisoformat(computed).timestamp() * 1000 < sent_ms:
                return False
    return True


# --- measuring -------------------------------------------------------------------------------
@dataclass
class Figures:
    latencies_ms: list[float]
    wall_s: float

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]

    @staticmethod
    def joined(parts: list[Figures]) -> Figures:
        return Figures([x for f in parts for x in f.latencies_ms], sum(f.wall_s for f in parts))

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p95(self) -> float:
        return self.pct(95)

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s


def measure(
    call: Callable[[httpx.Client], None], clients: int, n: int, warmup: int = WARMUP
) -> Figures:
    """`n` calls from `clients` threads (each with its own connection), after `warmup` each."""
    counter = iter(range(n))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        try:
            with httpx.Client(timeout=300) as client:
                for _ in range(warmup):
                    call(client)
                start.wait()
                while True:
                    with lock:
                        if next(counter, None) is None:
                            return
                    t0 = time.perf_counter()
                    call(client)
                    elapsed = (time.perf_counter() - t0) * 1000
                    with lock:
                        latencies.append(elapsed)
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    if len(latencies) != n:
        raise RuntimeError(f"only {len(latencies)} of {n} requests completed")
    return Figures(latencies, wall)


def api_call(url: str, params: dict[str, str] | None = None) -> Callable[[httpx.Client], None]:
    def call(client: httpx.Client) -> None:
        r = client.get(url, params=params)
        if r.status_code != 200:
            raise RuntimeError(f"GET {r.url}: {r.status_code} {r.text[:300]}")

    return call


def direct_call(
    influx_url: str, database: str, statements: list[str], parallel: int = 1
) -> Callable[[httpx.Client], None]:
    """The statements to influxd's /query, as InfluxClient.query sends them: one after the
    other, or `parallel` side by side."""

    def one(client: httpx.Client, q: str) -> None:
        r = client.post(f"{influx_url}/query", params={"q": q, "db": database, "epoch": "ms"})
        if r.status_code != 200 or r.text.startswith('{"error"'):
            raise RuntimeError(f"InfluxDB: {r.status_code} {r.text[:300]}")

    if parallel == 1:

        def call(client: httpx.Client) -> None:
            for q in statements:
                one(client, q)

        return call

    def call_parallel(client: httpx.Client) -> None:
        # As register_stats: a pool of `parallel` threads for the statements of one request.
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for future in [pool.submit(one, client, q) for q in statements]:
                future.result()

    return call_parallel


class _Recorder(InfluxClient):
    """Runs queries as usual and keeps their statements."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(url, database, timeout_s=120)
        self.statements: list[str] = []

    def query(self, q: str, *, database: str | None = None) -> list[dict[str, Any]]:
        self.statements.append(q)
        return super().query(q, database=database)


@dataclass
class Scenario:
    name: str
    api: Callable[[httpx.Client], None]
    direct: Callable[[httpx.Client], None] | None
    requests: int
    target: str  # "ratio", "p95" or ""
    warmup: int = WARMUP
    results: dict[int, tuple[Figures, Figures | None]] = field(default_factory=dict)


def run_scenario(s: Scenario, say: Any) -> None:
    """The API and its direct statements in alternating blocks, so that a change in what
    else the machine does shifts both alike."""
    blocks = BLOCKS if s.direct is not None else 1
    for clients in CLIENTS:
        say(f"measuring {s.name}, {clients} client(s), {s.requests} requests")
        api: list[Figures] = []
        direct: list[Figures] = []
        for b in range(blocks):
            n = s.requests // blocks + (1 if b < s.requests % blocks else 0)
            warmup = s.warmup if b == 0 else 1
            api.append(measure(s.api, clients, n, warmup))
            if s.direct is not None:
                direct.append(measure(s.direct, clients, n, warmup))
        s.results[clients] = (Figures.joined(api), Figures.joined(direct) if direct else None)


def verdict(s: Scenario, api: Figures, direct: Figures | None) -> str:
    if s.target == "ratio" and direct is not None:
        ok = api.p50 <= AIR_TARGET * direct.p50
        return f"{'ok' if ok else 'MISSED'} (<= +{(AIR_TARGET - 1) * 100:.0f} %)"
    if s.target == "p95":
        ok = api.p95 < DEVICES_P95_MS
        return f"{'ok' if ok else 'MISSED'} (p95 < {DEVICES_P95_MS:.0f} ms)"
    return ""


def table(scenarios: list[Scenario]) -> str:
    head = (
        f"{'scenario':<38}{'cl':>3}{'API p50':>9}{'p95':>8}{'req/s':>8}"
        f"{'direct p50':>12}{'p95':>8}{'req/s':>8}{'API/direct':>12}  target"
    )
    lines = [head, "-" * len(head)]
    for s in scenarios:
        for clients, (api, direct) in s.results.items():
            row = f"{s.name:<38}{clients:>3}{api.p50:>9.1f}{api.p95:>8.1f}{api.rps:>8.1f}"
            if direct is not None:
                ratio = api.p50 / direct.p50
                row += f"{direct.p50:>12.1f}{direct.p95:>8.1f}{direct.rps:>8.1f}{ratio:>7.2f} p50"
            else:
                row += f"{'-':>12}{'-':>8}{'-':>8}{'-':>12}"
            lines.append(f"{row}  {verdict(s, api, direct)}")
    return "\n".join(lines)


def sta_scenario(base: str, requests: int) -> tuple[Scenario | None, str]:
    """The SensorThings page scenario, or why there is none."""
    r = httpx.get(f"{base}/sta/v1.1/Datastreams", params={"$top": "100"}, timeout=60)
    if r.status_code == 404:
        return None, "this build has no /sta/v1.1/Datastreams"
    if r.status_code != 200:
        return None, f"GET /sta/v1.1/Datastreams answered {r.status_code}: {r.text[:200]}"
    streams = r.json().get("value") or []
    # A stream of an air device's PM2.5 if there is one (a reading a minute), else the first.
    pick = next((d for d in streams if "pm2_5" in json.dumps(d).lower()), None) or (
        streams[0] if streams else None
    )
    if pick is None:
        return None, "/sta/v1.1/Datastreams lists no datastream"
    ds = pick["@iot.id"]
    ds_literal = f"'{ds}'" if isinstance(ds, str) else str(ds)
    url = f"{base}/sta/v1.1/Datastreams({ds_literal})/Observations"
    probe = httpx.get(url, params={"$top": str(STA_PAGE)}, timeout=60)
    if probe.status_code != 200:
        return None, f"GET {probe.url} answered {probe.status_code}: {probe.text[:200]}"
    got = len(probe.json().get("value") or [])
    name = f"(d) STA page of {got} observations"
    return Scenario(name, api_call(url, {"$top": str(STA_PAGE)}), None, requests, ""), ""


# --- main ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100, help="air devices")
    parser.add_argument("--counting", type=int, default=20, help="counting devices")
    parser.add_argument("--days", type=float, default=7.0, help="days of 1-minute history")
    parser.add_argument("--requests", type=int, default=100, help="per scenario and client count")
    parser.add_argument(
        "--cold-requests", type=int, default=20, help="for the device list computed each time"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument(
        "--stack",
        type=Path,
        help="measure a stack an earlier --keep run loaded (same --devices, --counting and "
        "--days), without loading it again; it is left running",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-uncached", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_uncached:
        serve_uncached(args.serve_uncached)
        return
    say = (lambda _m: None) if args.json else print

    workdir = Path(tempfile.mkdtemp(prefix="sensorpipe-bench-api-"))
    if args.stack is not None:
        stack = LocalStack(args.stack)
        stack.require_info()
    else:
        stack = LocalStack(workdir / "stack")
        say(f"starting the stack in {stack.directory} (mosquitto, influxd, ingest)")
        stack.up(detach=args.keep, serve=False)
    servers: list[Server] = []
    points, load_s = 0, 0.0
    try:
        devices = history_devices(args.devices, args.counting)
        if args.stack is None:
            end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
            start_ms = end_ms - int(args.days * 86_400_000)
            say(
                f"loading {args.devices} air + {args.counting} counting devices x "
                f"{args.days:g} days of 1-minute history"
            )
            points, load_s, _ = load(stack, devices, start_ms, end_ms, say)
            say(f"loaded {points:,} points in {load_s:.1f} s ({points / load_s:,.0f} points/s)")
        settle_s = wait_for_quiet_influxd(stack, say)

        info = stack.require_info()
        port = free_port()
        warm = start_server(
            [
                sys.executable,
                "-m",
                "sensorpipe",
                "serve",
                "--dir",
                str(stack.directory),
                "--port",
                str(port),
            ],
            port,
            workdir / "serve-warm.log",
        )
        servers.append(warm)
        cold_port = free_port()
        cold_config = serve_config_file(stack, workdir / "serve-cold.toml", cold_port, 0)
        cold = start_server(
            [sys.executable, "-m", "sensorpipe", "serve", "--config", str(cold_config)],
            cold_port,
            workdir / "serve-cold.log",
        )
        servers.append(cold)
        cold_how = "register_cache_s = 0"
        if not recomputes_each_request(cold.url):
            say(
                "register_cache_s = 0 answers statistics computed before the request (cached, "
                "refreshed in the background): cold figures from a server that computes them "
                "for every request"
            )
            cold.stop()
            servers.remove(cold)
            cold = start_server(
                [sys.executable, "-m", "bench.api", "--serve-uncached", str(cold_config)],
                cold_port,
                workdir / "serve-uncached.log",
            )
            servers.append(cold)
            cold_how = "statistics computed for every request"

        air_dev = next(d for d in devices if not d.counting)
        site = air_dev.site
        recorder = _Recorder(info.influx_url, info.database)
        span = f"-{round(args.days * 24)}h"
        scenarios = []
        air_cases = [
            ("(a) one device, hourly means", {"device": air_dev.device_id}, "device"),
            ("(b) one site, group=site", {"site": site}, "site"),
            ("(b) one site, group=device", {"site": site}, "device"),
        ]
        for name, filters, group in air_cases:
            recorder.statements.clear()
            req = AirSeriesRequest(
                devices=[filters["device"]] if "device" in filters else [],
                sites=[filters["site"]] if "site" in filters else [],
                start=span,
                every="1h",
                group=group,
            )
            answer = air_series(recorder, req)
            if not answer["series"]:
                raise RuntimeError(f"{name}: the query found no data")
            params = {**filters, "from": span, "every": "1h", "group": group}
            scenarios.append(
                Scenario(
                    f"{name} ({len(answer['series'])} series)",
                    api_call(f"{warm.url}/api/v1/air", params),
                    direct_call(info.influx_url, info.database, list(recorder.statements)),
                    args.requests,
                    "ratio",
                )
            )
        recorder.statements.clear()
        register_stats(recorder)
        stats_statements = list(recorder.statements)
        recorder.close()
        n_dev = len(devices)
        scenarios.append(
            Scenario(
                f"(c) device list, warm ({n_dev} devices)",
                api_call(f"{warm.url}/api/v1/devices"),
                None,
                args.requests,
                "p95",
            )
        )
        scenarios.append(
            Scenario(
                f"(c) device list, cold ({n_dev} devices)",
                api_call(f"{cold.url}/api/v1/devices"),
                direct_call(info.influx_url, info.database, stats_statements, parallel=4),
                args.cold_requests,
                "p95",
                warmup=1,
            )
        )
        sta, sta_skipped = sta_scenario(warm.url, args.requests)
        if sta is not None:
            scenarios.append(sta)
        else:
            say(f"(d) SensorThings skipped: {sta_skipped}")
        for s in scenarios:
            run_scenario(s, say)
    finally:
        for server in servers:
            server.stop()
        if args.keep or args.stack is not None:
            say(f"stack kept in {stack.directory}: `sensorpipe stack down --dir {stack.directory}`")
        else:
            stack.down()
        if not args.keep:  # the servers' files, and the stack unless it is kept
            shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(
            json.dumps(
                {
                    "points": points,
                    "load_s": round(load_s, 2),
                    "load_points_s": round(points / load_s) if load_s else None,
                    "influxd_settle_s": round(settle_s, 1),
                    "cold_server": cold_how,
                    "sta_skipped": sta_skipped or None,
                    "scenarios": [
                        {
                            "name": s.name,
                            "clients": clients,
                            "api_p50_ms": round(api.p50, 2),
                            "api_p95_ms": round(api.p95, 2),
                            "api_rps": round(api.rps, 1),
                            "direct_p50_ms": round(direct.p50, 2) if direct else None,
                            "direct_p95_ms": round(direct.p95, 2) if direct else None,
                            "direct_rps": round(direct.rps, 1) if direct else None,
                            "target": verdict(s, api, direct) or None,
                        }
                        for s in scenarios
                        for clients, (api, direct) in s.results.items()
                    ],
                }
            )
        )
        return
    print()
    loaded = (
        f"{points:,} points loaded in {load_s:.1f} s ({points / load_s:,.0f} points/s)"
        if load_s
        else f"the stack in {stack.directory}"
    )
    print(
        f"history: {args.devices} air + {args.counting} counting devices x {args.days:g} days, "
        f"{loaded}; InfluxDB settled {settle_s:.0f} s before measuring; {os.cpu_count()} CPUs"
    )
    print(f"times in ms; cold device list: {cold_how}")
    if sta is None:
        print(f"(d) SensorThings page: skipped, {sta_skipped}")
    print(table(scenarios))


if __name__ == "__main__":
    main()
