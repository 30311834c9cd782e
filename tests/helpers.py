"""Shared helpers for the test suite: polling instead of fixed sleeps; what tests are given
(a join code, a throw-away CA, an older release's SQLite file); the CLI in a new process; and
the services integration tests start once a module (a stack, a bare influxd), with what they
read back from them. Fixtures that several files use are in tests/conftest.py."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from sensorpipe.api.config import ServeConfig
    from sensorpipe.ingest.deadletter import DeadLetter
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.ingest.influxd import Influxd
    from sensorpipe.ingest.lineprotocol import Point
    from sensorpipe.protocol.enrollment import JoinCode
    from sensorpipe.protocol.messages import ClassCount, CountMessage
    from sensorpipe.stack.local import LocalStack, StackInfo

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval_s)
        last = probe()
    return last


def a_running_hour_with(seconds_left: float) -> datetime:
    """The start of the running hour (UTC) once at least `seconds_left` of it are left: in an
    hour's last `seconds_left`, the next hour's, after waiting for it. For a test whose
    counts of the hour before must be the last whole hour that a process with its own clock
    (the stack's ingest) sees, `seconds_left` from now."""
    from datetime import UTC

    now = time.time()
    left = 3600 - now % 3600
    if left < seconds_left:
        time.sleep(left)
        now = max(time.time(), now + left)
    return datetime.fromtimestamp(now - now % 3600, UTC)


def one_line_config_error(load: Callable[[Path], object], path: Path) -> str:
    """The ConfigError `load(path)` raises, checked to be one line that starts with the file."""
    from sensorpipe.protocol.configfile import ConfigError

    try:
        load(path)
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{path} loaded without an error")
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# What `sensorpipe edge check` prints, first two words a line, when everything a Pi with an
# SDS011 and a BME280 needs works.
EDGE_CHECK_ALL_OK = [
    ["ok", "sds011"],
    ["ok", "bme280"],
    ["ok", "clock"],
    ["ok", "outbox"],
    ["ok", "broker"],
    ["ok", "delivery"],
]


def join_code(**changes: object) -> JoinCode:
    """A join code for device pi-1 at sensors.example.nl:8883 (TLS), with `changes`."""
    from sensorpipe.protocol.enrollment import JoinCode

    values: dict[str, object] = {
        "device_id": "pi-1",
        "host": "sensors.example.nl",
        "port": 8883,
        "tls": True,
        "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "username": "pi-1",
        "password": "s3cret-password",
        "sensors": ["sds011", "bme280"],
    }
    return JoinCode.model_validate({**values, **changes})


def run_sensorpipe(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m sensorpipe *args` in a new process, its output and errors kept as text."""
    return subprocess.run(
        [sys.executable, "-m", "sensorpipe", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def throwaway_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA certificate for tests (and its key), valid from five minutes ago for a
    day."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensorpipe test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def run_sql(path: Path, *statements: str, rows: Iterable[Sequence[object]] | None = None) -> None:
    """Run `statements` in order on the SQLite file at `path` (made if missing) and commit:
    how a test writes what an older release left there. With `rows`, the last statement runs
    once for each row."""
    *first, last = statements
    with closing(sqlite3.connect(path)) as db:
        for statement in first:
            db.execute(statement)
        if rows is None:
            db.execute(last)
        else:
            db.executemany(last, rows)
        db.commit()


def dead_letters(stack_dir: Path) -> list[DeadLetter]:
    """The dead letters kept in the stack at `stack_dir` (the ingest's store), up to 1,000."""
    from sensorpipe.ingest.deadletter import DeadLetterStore

    store = DeadLetterStore(stack_dir / "ingest" / "deadletter.sqlite")
    try:
        return store.list(limit=1000)
    finally:
        store.close()


# --- integration: services started once a module --------------------------------------------
def require_binaries(*names: str) -> None:
    """Fail (not skip: a missing broker or database is a broken setup) when a program is missing."""
    missing = [b for b in names if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        pytest.fail(
            f"integration tests need {', '.join(missing)}: run `make test` as root "
            f"or apt-get install mosquitto influxdb"
        )


@contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, **up: Any
) -> Iterator[tuple[LocalStack, StackInfo]]:
    """A local stack in a new temporary folder `name`, up in the foreground with `up`
    (LocalStack.up's options), and down when the block ends."""
    from sensorpipe.stack.local import LocalStack

    require_binaries("mosquitto", "mosquitto_passwd", "influxd")
    stack = LocalStack(tmp_path_factory.mktemp(name) / "stack")
    info = stack.up(detach=False, **up)
    try:
        yield stack, info
    finally:
        stack.down()


@contextmanager
def running_stack_influx(
    tmp_path_factory: pytest.TempPathFactory, name: str, **up: Any
) -> Iterator[tuple[LocalStack, InfluxClient]]:
    """`running_stack`, with a client of its InfluxDB (closed when the block ends)."""
    from sensorpipe.ingest.influx import InfluxClient

    with running_stack(tmp_path_factory, name, **up) as (stack, info):
        influx = InfluxClient(info.influx_url, info.database)
        try:
            yield stack, influx
        finally:
            influx.close()


def stack_serve_config(stack: LocalStack, **settings: Any) -> ServeConfig:
    """What `sensorpipe serve` reads for a running stack (its register, the ingest's stats,
    its InfluxDB and broker), with `settings`."""
    from sensorpipe.api.config import BrokerSettings, InfluxSettings, ServeConfig

    info = stack.require_info()
    return ServeConfig(
        registry_path=str(stack.registry_path),
        ingest_stats_path=str(stack.directory / "ingest" / "stats.json"),
        influx=InfluxSettings(url=info.influx_url, database=info.database),
        broker=BrokerSettings(port=info.broker_port),
        **settings,
    )


@contextmanager
def running_influxd(
    tmp_path_factory: pytest.TempPathFactory, name: str, database: str
) -> Iterator[tuple[Influxd, Path]]:
    """A bare influxd (no broker, no ingest) on free loopback ports with `database`, in a new
    temporary folder `name` (given too, for the files a test writes beside it)."""
    from sensorpipe.ingest.influxd import Influxd
    from sensorpipe.process import free_ports

    require_binaries("influxd")
    root = tmp_path_factory.mktemp(name)
    http_port, rpc_port = free_ports(2)
    influxd = Influxd(root / "influxdb", http_port=http_port, rpc_port=rpc_port, database=database)
    influxd.start()
    try:
        yield influxd, root
    finally:
        influxd.stop()


def influx_rows(influx: InfluxClient, q: str) -> list[dict[str, Any]]:
    """Each row of each series `q` answers as a dict, with the series' tags."""
    out = []
    for series in influx.query(q):
        for values in series["values"]:
            out.append(
                {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
            )
    return out


def count_sums(
    points: Iterable[Point], every_ms: int
) -> tuple[dict[tuple[str, str, int], int], dict[int, float]]:
    """From the points a counting device wrote: the counts per (class, direction, interval
    start) and the seconds the counter ran per interval start, intervals `every_ms` long."""
    from sensorpipe.protocol import storage

    sums: dict[tuple[str, str, int], int] = {}
    running: dict[int, float] = {}
    for p in points:
        start = p.time_ms // every_ms * every_ms
        if p.measurement == storage.TRAFFIC:
            key = (p.tags["class"], p.tags["direction"], start)
            sums[key] = sums.get(key, 0) + int(p.fields["count"])
        elif p.measurement == storage.COUNTER:
            run = float(p.fields["running_fraction"]) * float(p.fields["interval_s"])
            running[start] = running.get(start, 0.0) + run
    return sums, running


def hourly_count_message(
    device: str, seq: int, start: datetime, counts: list[ClassCount], fraction: float = 1.0
) -> CountMessage:
    """The count message a counting device sends for the hour from `start` (its counter ran
    `fraction` of it)."""
    from datetime import timedelta

    from sensorpipe.protocol.messages import CountMessage, Link

    return CountMessage(
        device_id=device,
        seq=seq,
        observed_at=start,
        clock_synced=True,
        sent_at=start + timedelta(hours=1),
        link=Link(uptime_s=86400.0 * 30, firmware="t"),
        interval_end=start + timedelta(hours=1),
        model_id="counter",
        running_fraction=fraction,
        frames=3600,
        counts=counts,
    )


def csv_count_messages(path: Path, devices: dict[str, str]) -> list[CountMessage]:
    """The hourly count messages of a long-form counts file (`time_utc,site,count`, e.g. the
    Auckland slices in tests/data/pedestrian-counts), pedestrians of each site as its device
    in `devices` would send them, in time order."""
    import csv

    from sensorpipe.protocol.messages import ClassCount

    with path.open(encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["time_utc"])
    messages = []
    for seq, r in enumerate(rows, start=1):
        start = datetime.fromisoformat(r["time_utc"].replace("Z", "+00:00"))
        count = ClassCount(count_class="pedestrian", direction="both", count=int(r["count"]))
        messages.append(hourly_count_message(devices[r["site"]], seq, start, [count]))
    return messages


def kits_address(stack: LocalStack) -> tuple[str, str, int]:
    """The running stack's kit gateway: its base URL (plain HTTP), host and port."""
    url = stack.require_info().kits_url
    assert url is not None and url.startswith("http://")
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return url, host, int(port)


def count_message(device: str, seq: int, start: datetime, counts: list[ClassCount]) -> CountMessage:
    """The message a counting device sends for the hour from `start` (it ran all of it)."""
    return hourly_count_message(device, seq, start, counts)
