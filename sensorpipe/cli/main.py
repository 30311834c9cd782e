"""`sensorpipe`: stack, devices, edge, ingest, gateway, sim, query and demo."""

from __future__ import annotations

import json
import logging
import math
import signal
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from sensorpipe.protocol.configfile import ConfigError

DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Stack directory (default: $SENSORPIPE_DIR or ./.sensorpipe).",
)


def _stack(directory: Path | None) -> Any:
    from sensorpipe.stack.local import LocalStack, default_directory

    return LocalStack(directory or default_directory())


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _invalid(exc: ValidationError, options: dict[str, str] | None = None) -> NoReturn:
    """A pydantic validation error as one line per field, named as the option that set it."""
    lines = []
    for err in exc.errors():
        field = str(err["loc"][-1]) if err["loc"] else "value"
        name = (options or {}).get(field, field)
        msg = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            msg = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
        lines.append(f"{name} {err['input']!r}: {msg}")
    _fail("; ".join(lines))


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """sensorpipe: local environmental measurement from Raspberry Pi to InfluxDB."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# --- stack ---------------------------------------------------------------------------------
@main.group()
def stack() -> None:
    """Run Mosquitto, InfluxDB and the ingest locally, in the background."""


@stack.command("up")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def stack_up(directory: Path | None, as_json: bool) -> None:
    """Start the stack on free loopback ports and print its endpoints."""
    from sensorpipe.stack.local import StackError
    from sensorpipe.stack.process import ProcessStartError

    s = _stack(directory)
    try:
        info = s.up(detach=True, progress=None if as_json else click.echo)
    except (StackError, ProcessStartError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(info.as_dict()))
        return
    click.echo(f"stack up in {info.directory}")
    click.echo(f"  MQTT broker : mqtt://127.0.0.1:{info.broker_port}")
    click.echo(f"  InfluxDB    : {info.influx_url} (database {info.database})")
    click.echo(f"  registry    : {s.registry_path}")
    click.echo("next: `sensorpipe devices add ID` or `sensorpipe sim fleet --devices 3`")


@stack.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
def stack_status(directory: Path | None, as_json: bool) -> None:
    """Show whether each component runs, and the ingest's counters."""
    from sensorpipe.stack.local import StackError

    try:
        status = _stack(directory).status()
    except StackError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"stack in {status['directory']}, {status['devices']} devices registered")
    for name, c in status["components"].items():
        state = "running" if c["running"] else "NOT RUNNING"
        click.echo(f"  {name:10s} pid {c['pid']:<8d} {state}")
    stats = status["components"]["ingest"].get("stats")
    if stats:
        click.echo(
            f"  ingest: received {stats['received']}, stored {stats['stored_messages']}, "
            f"rejected {stats['rejected']}, write retries {stats['write_retries']}"
        )
    if status.get("metrics"):
        click.echo(f"  ingest metrics (Prometheus): {status['metrics']}")


@stack.command("down")
@DIR_OPTION
def stack_down(directory: Path | None) -> None:
    """Stop the stack (the data stays in the directory)."""
    stopped = _stack(directory).down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


# --- devices -------------------------------------------------------------------------------
@main.group()
def devices() -> None:
    """Register devices and publish what each one measures and why."""


@devices.command("add")
@click.argument("device_id")
@DIR_OPTION
@click.option("--site", default="unassigned", show_default=True, help="Site or neighbourhood tag.")
@click.option("--owner", default="", help="Who hosts the device.")
@click.option("--purpose", default="", help="Why it measures: shown to residents.")
@click.option(
    "--sensor",
    "sensors",
    multiple=True,
    help="Sensor model it may report (repeatable; none given: any model sensorpipe knows).",
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    help="Direction name of its counting line (repeatable; default left_to_right, right_to_left).",
)
@click.option("--lat", type=float, default=None)
@click.option("--lon", type=float, default=None)
@click.option(
    "--precision",
    type=click.IntRange(0, 6),
    default=3,
    show_default=True,
    help="Decimals of the location that are published (3 ≈ 100 m).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def devices_add(
    device_id: str,
    directory: Path | None,
    site: str,
    owner: str,
    purpose: str,
    sensors: tuple[str, ...],
    directions: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    precision: int,
    as_json: bool,
) -> None:
    """Register DEVICE_ID and print its broker password and signing key (shown once)."""
    from sensorpipe.gateway.devices import ProvisioningError
    from sensorpipe.gateway.mosquitto import PasswordToolError
    from sensorpipe.protocol.messages import Location

    if (lat is None) != (lon is None):
        _fail("give both --lat and --lon, or neither")
    for name, value in (("--lat", lat), ("--lon", lon)):
        if value is not None and not math.isfinite(value):
            _fail(f"{name} {value}: not a number")
    options = {
        "lat": "--lat",
        "lon": "--lon",
        "site": "--site",
        "owner": "--owner",
        "sensors": "--sensor",
        "directions": "--direction",
    }
    try:
        location = Location(lat=lat, lon=lon) if lat is not None and lon is not None else None
    except ValidationError as exc:
        _invalid(exc, options)
    s = _stack(directory)
    try:
        creds = s.add_device(
            device_id,
            site=site,
            owner=owner,
            purpose=purpose,
            sensors=list(sensors),
            directions=list(directions),
            location=location,
            location_precision_decimals=precision,
        )
    except (ProvisioningError, PasswordToolError, ConfigError) as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _invalid(exc, options)
    info = s.info()
    out = {
        **creds.as_dict(),
        "site": site,
        "mqtt": {"host": "127.0.0.1", "port": info.broker_port} if info else None,
    }
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"registered {device_id} (site {site}) in {s.registry_path}")
    click.echo("credentials, shown only now; put them in the device's edge config:")
    click.echo(f"  username    = {creds.username}")
    click.echo(f"  password    = {creds.password}")
    click.echo(f"  private_key = {creds.private_key}")


@devices.command("list")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
def devices_list(directory: Path | None, as_json: bool) -> None:
    """List registered devices."""
    view = _stack(directory).registry().public_view()
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for d in view:
        click.echo(f"{d['device_id']:20s} site={d['site']:16s} sensors={','.join(d['sensors'])}")


@devices.command("export")
@DIR_OPTION
def devices_export(directory: Path | None) -> None:
    """Public register (JSON): what each sensor measures, who owns it and why."""
    click.echo(json.dumps(_stack(directory).registry().public_view(), indent=2))


# --- edge ----------------------------------------------------------------------------------
@main.group()
def edge() -> None:
    """The agent that runs on the Raspberry Pi."""


@edge.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
def edge_run(config_path: Path) -> None:
    """Read the configured sensors and publish until stopped (SIGTERM or Ctrl-C)."""
    from sensorpipe.edge.agent import Agent
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.edge.counting.config import build_pipeline, open_source
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.loop import CountingLoop
    from sensorpipe.edge.drivers import open_driver
    from sensorpipe.edge.errors import SensorConfigError
    from sensorpipe.edge.outbox import SqliteOutbox

    try:
        config = load_edge_config(config_path)
        drivers = [(open_driver(s), s.interval_s) for s in config.sensors]
        counter = None
        if config.counting is not None:
            pipeline = build_pipeline(config.counting, config_path.resolve().parent)
            counter = CountingLoop(pipeline, open_source(config.counting.source))
    except (ConfigError, SensorConfigError, ModelError, SourceUnavailable) as exc:
        _fail(str(exc))
    agent = Agent(
        config,
        drivers=drivers,
        outbox=SqliteOutbox(config.outbox_path, max_entries=config.outbox_max_entries),
        counter=counter,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"{config.device_id}: publishing to {config.mqtt.host}:{config.mqtt.port}")
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        stop.set()


# --- ingest --------------------------------------------------------------------------------
@main.group()
def ingest() -> None:
    """Validate and store what devices send."""


@ingest.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
def ingest_run(config_path: Path) -> None:
    """Subscribe and store until stopped (SIGTERM or Ctrl-C)."""
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.ingest.service import IngestService

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        config = load_ingest_config(config_path)
        service = IngestService(config)
    except ConfigError as exc:  # the configuration or the registry it names
        _fail(str(exc))
    except (OSError, sqlite3.Error) as exc:  # e.g. a dead-letter path that cannot be written
        _fail(f"cannot open the dead-letter store {config.deadletter_path}: {exc}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def _deadletter_path(directory: Path | None, db: Path | None) -> Path:
    from sensorpipe.ingest.deadletter import is_sqlite_file

    path = db or _stack(directory).directory / "ingest" / "deadletter.sqlite"
    if not path.is_file():
        _fail(f"no dead-letter store at {path}")
    if not is_sqlite_file(path):  # never turn someone's other file into a database
        _fail(f"{path} is not a dead-letter store (not an SQLite database)")
    return path


def _since(value: str | None) -> float | None:
    """'1h', '-30m', '2d' back from now, or an ISO 8601 time with offset; epoch seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = value.lstrip("-")
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--since {value!r}: use a time back from now like 1h, 30m or 2d, or ISO 8601")
    if ts.tzinfo is None:
        _fail(f"--since {value!r} has no UTC offset; add Z or +01:00")
    return ts.timestamp()


DB_OPTION = click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=None,
    help="Dead-letter database (default: the stack's).",
)


@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--reason", "--code", "code", default=None, help="Only this rejection reason.")
@click.option("--since", default=None, help="Only rejections since: 1h, 30m, 2d or ISO 8601.")
@click.option("--json", "as_json", is_flag=True)
@DB_OPTION
@DIR_OPTION
def _rejects(
    directory: Path | None,
    db: Path | None,
    limit: int,
    code: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Rejected messages with their reasons, newest first (raw bytes kept)."""
    from sensorpipe.ingest.deadletter import DeadLetterStore

    path = _deadletter_path(directory, db)
    store = DeadLetterStore(path)
    letters = store.list(limit=limit, code=code, since=_since(since))
    counts = store.counts_by_code()
    store.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "counts": counts,
                    "letters": [
                        {
                            "id": d.id,
                            "received_at": d.received_at,
                            "topic": d.topic,
                            "code": d.code,
                            "detail": d.detail,
                            "payload": d.payload.decode("utf-8", "replace"),
                        }
                        for d in letters
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(
        "rejections by reason: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
    )
    for d in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.received_at))
        click.echo(f"#{d.id} {when}Z {d.topic} [{d.code}] {d.detail}")


ingest.command("rejects")(_rejects)


@ingest.command("replay")
@DIR_OPTION
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The ingest's configuration (default: the local stack's).",
)
@click.option("--reason", "code", default=None, help="Only letters rejected for this reason.")
@click.option("--id", "ids", type=int, multiple=True, help="Only this letter (repeatable).")
@click.option("--since", default=None, help="Only rejections since: 1h, 30m, 2d or ISO 8601.")
@click.option("--json", "as_json", is_flag=True)
def ingest_replay(
    directory: Path | None,
    config_path: Path | None,
    code: str | None,
    ids: tuple[int, ...],
    since: str | None,
    as_json: bool,
) -> None:
    """Validate dead letters again and store those that pass now (e.g. after registering a
    forgotten device); the rest stay, with the reason they fail for now."""
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.ingest.deadletter import DeadLetterStore
    from sensorpipe.ingest.service import IngestService

    path = config_path or _stack(directory).directory / "ingest" / "ingest.toml"
    try:
        config = load_ingest_config(path)
    except ConfigError as exc:
        _fail(str(exc))
    dl_path = _deadletter_path(None, Path(config.deadletter_path))
    store = DeadLetterStore(dl_path)
    letters = store.list(limit=10**9, code=code, since=_since(since), ids=list(ids) or None)
    store.close()
    letters.reverse()  # oldest first, in the order they arrived
    service = IngestService(config)
    try:
        result = service.replay(letters)
    finally:
        service.close()
    out = {
        "replayed": len(letters),
        "stored": result.stored,
        "still_rejected": dict(result.still_rejected),
    }
    if as_json:
        click.echo(json.dumps(out))
        return
    again = ", ".join(f"{k} {v}" for k, v in sorted(result.still_rejected.items())) or "none"
    click.echo(
        f"replayed {len(letters)} dead letters: {result.stored} stored, "
        f"{sum(result.still_rejected.values())} still rejected ({again})"
    )


# --- gateway -------------------------------------------------------------------------------
@main.group()
def gateway() -> None:
    """Mosquitto configuration from the device registry."""


@gateway.command("config")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--port", type=int, default=1883, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option(
    "--tls-ca",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CA file for client certificates (optional).",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow a listener off loopback without TLS (passwords cross the network readable).",
)
@click.option(
    "--user",
    "run_as",
    default="mosquitto",
    show_default=True,
    help="User the broker drops to when started as root.",
)
def gateway_config(
    registry_path: Path,
    out_dir: Path,
    port: int,
    bind: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    allow_plaintext: bool,
    run_as: str,
) -> None:
    """Write mosquitto.conf, passwd and acl for a system broker.

    A listener off loopback needs TLS: --tls-cert and --tls-key (PEM files the broker user can
    read), or --allow-plaintext to accept the risk.
    """
    from sensorpipe.gateway.mosquitto import (
        BrokerFiles,
        ListenerError,
        Tls,
        broker_config,
        is_loopback,
        write_security_files,
    )
    from sensorpipe.protocol.registry import load_registry

    if (tls_cert is None) != (tls_key is None):
        _fail("give both --tls-cert and --tls-key, or neither")
    tls = None
    if tls_cert is not None and tls_key is not None:
        for path in (tls_cert, tls_key, *([tls_ca] if tls_ca else [])):
            if not path.is_file():
                _fail(f"{path}: no such file")
        tls = Tls(tls_cert.resolve(), tls_key.resolve(), tls_ca.resolve() if tls_ca else None)
    try:
        registry = load_registry(registry_path)
    except ConfigError as exc:
        _fail(str(exc))
    files = BrokerFiles(
        out_dir / "mosquitto.conf", out_dir / "passwd", out_dir / "acl", out_dir / "data"
    )
    try:
        config = broker_config(
            files, port=port, bind=bind, tls=tls, allow_plaintext=allow_plaintext, user=run_as
        )
    except ListenerError as exc:
        _fail(str(exc))
    out_dir.mkdir(parents=True, exist_ok=True)
    files.data_dir.mkdir(exist_ok=True)
    write_security_files(files, registry)
    files.config.write_text(config)
    click.echo(f"wrote {files.config}, {files.passwords}, {files.acl}")
    if tls is None and not is_loopback(bind):
        click.echo("warning: plain-text listener off loopback (--allow-plaintext)", err=True)


# --- sim -----------------------------------------------------------------------------------
@main.group()
def sim() -> None:
    """Simulated devices (byte-accurate SDS011 and BME280) against the stack."""


@sim.command("fleet")
@DIR_OPTION
@click.option("--devices", "count", type=click.IntRange(1, 500), default=5, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between readings per device.",
)
def sim_fleet(directory: Path | None, count: int, duration: float, interval: float) -> None:
    """Run COUNT simulated devices against a running stack for DURATION seconds."""
    from sensorpipe.firmware_sim.fleet import Fleet
    from sensorpipe.stack.local import StackError

    s = _stack(directory)
    try:
        info = s.require_info()
    except StackError as exc:
        _fail(str(exc))
    registry = s.registry()
    stamp = time.strftime("%H%M%S")
    specs = [
        (
            f"sim-{stamp}-{i + 1:03d}",
            {
                "site": f"sim-site-{i % 3 + 1}",
                "owner": "simulator",
                "sensors": ["sds011", "bme280"],
            },
        )
        for i in range(count)
    ]
    specs = [(d, f) for d, f in specs if d not in registry.devices]
    creds = s.add_devices(specs)
    workdir = s.directory / "sim"
    workdir.mkdir(exist_ok=True)
    fleet = Fleet(
        creds,
        broker_host="127.0.0.1",
        broker_port=info.broker_port,
        workdir=workdir,
        interval_s=interval,
    )
    fleet.start()
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration:
            click.echo(f"[{elapsed:5.1f}s] queued {fleet.queued()}  acked {fleet.acked()}")
            time.sleep(min(2.0, duration - elapsed))
    except KeyboardInterrupt:
        click.echo("interrupted")
    left = fleet.stop()
    click.echo(
        f"done: {fleet.acked()} messages acknowledged by the broker, {left} still in outboxes"
    )


# --- query ---------------------------------------------------------------------------------
@main.command()
@DIR_OPTION
@click.option("--influx-url", default=None, help="InfluxDB URL (default: the stack's).")
@click.option("--database", default="sensorpipe", show_default=True)
@click.option("--device", "devices_", multiple=True, help="Device id (repeatable).")
@click.option("--site", "sites", multiple=True, help="Site (repeatable).")
@click.option("--quantity", "quantities", multiple=True, help="e.g. pm2_5 (repeatable).")
@click.option(
    "--from",
    "start",
    default="-1h",
    show_default=True,
    help="Start: -1h, -30m, or ISO 8601 with offset.",
)
@click.option("--to", "end", default="now", show_default=True)
@click.option("--every", default=None, help="Aggregation window, e.g. 5m; raw values if unset.")
@click.option("--agg", "aggregate", default="mean", show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many rows per series.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def query(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    sites: tuple[str, ...],
    quantities: tuple[str, ...],
    start: str,
    end: str,
    every: str | None,
    aggregate: str,
    limit: int | None,
    fmt: str,
) -> None:
    """Select air measurements by device, site, quantity and time; print table, CSV or JSON."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.influxql import GROUP_TAGS, AirQuery, QueryInputError
    from sensorpipe.query.output import drop_empty_columns, render, rows_from_series
    from sensorpipe.stack.local import StackError

    try:
        q = AirQuery(
            devices=devices_,
            sites=sites,
            quantities=quantities,
            start=start,
            end=end,
            every=every,
            aggregate=aggregate,
            limit=limit,
        )
    except QueryInputError as exc:
        _fail(str(exc))
    if influx_url is None:
        try:
            influx_url = _stack(directory).require_info().influx_url
        except StackError as exc:
            _fail(f"{exc} (or pass --influx-url)")
    try:
        influxql = q.to_influxql()
    except QueryInputError as exc:
        _fail(str(exc))
    client = InfluxClient(influx_url, database)
    try:
        rows = rows_from_series(client.query(influxql), GROUP_TAGS)
    except (QueryError, StorageUnavailable) as exc:
        _fail(str(exc))
    finally:
        client.close()
    columns = drop_empty_columns(rows, ["time", *GROUP_TAGS])
    click.echo(render(rows, columns, fmt).rstrip("\n"))


# --- counting ------------------------------------------------------------------------------
@main.command("count-eval")
@click.option(
    "--seed",
    type=int,
    default=1000,
    show_default=True,
    help="Scene seed; 1000 and up were never used in training.",
)
@click.option("--minutes", type=click.FloatRange(min=0.5), default=15, show_default=True)
@click.option(
    "--fps",
    type=click.FloatRange(min=1),
    default=5,
    show_default=True,
    help="Camera frame rate of the synthetic sequence.",
)
@click.option("--interval-minutes", type=click.FloatRange(min=0.5), default=15, show_default=True)
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="ONNX model (default: the shipped street detector).",
)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--video",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Evaluate on a real video instead, against --truth.",
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Annotated crossings of --video: CSV with time_s,class,direction.",
)
@click.option("--line", "line_text", default=None, help="Counting line for --video: X1,Y1,X2,Y2.")
@click.option(
    "--conditions",
    default="none",
    show_default=True,
    help="Synthetic street conditions, comma-separated: perspective, crowds, parked, shadows, "
    "night, rain, motion_blur, jpeg; or 'day' (all but night) or 'all'.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1.5,
    show_default=True,
    help="Seconds a counted crossing may lie from the annotated one (--video).",
)
@click.option("--json", "as_json", is_flag=True)
def count_eval(
    seed: int,
    minutes: float,
    fps: float,
    interval_minutes: float,
    model: Path | None,
    threads: int,
    video: Path | None,
    truth: Path | None,
    line_text: str | None,
    conditions: str,
    tolerance: float,
    as_json: bool,
) -> None:
    """Count a held-out synthetic street (or, with --video, a real clip) against the truth."""
    from sensorpipe.edge.counting.errors import ModelError
    from sensorpipe.firmware_sim.conditions import parse_conditions
    from sensorpipe.firmware_sim.count_eval import DEFAULT_MODEL, evaluate

    if video is not None or truth is not None:
        if video is None or truth is None or line_text is None:
            _fail("--video needs --truth and --line (and --truth needs --video)")
        _eval_video(video, truth, line_text, fps, model, threads, tolerance, as_json)
        return
    try:
        chosen = parse_conditions(conditions)
    except ValueError as exc:
        _fail(str(exc))

    def progress(fraction: float) -> None:
        click.echo(f"  {fraction * 100:5.1f} % of the sequence counted", err=True)

    try:
        result = evaluate(
            seed,
            minutes,
            model=model or DEFAULT_MODEL,
            fps=fps,
            interval_minutes=interval_minutes,
            threads=threads,
            conditions=chosen,
            progress=None if as_json else progress,
        )
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        f"seed {seed}, {minutes:g} min at {fps:g} fps, intervals of "
        f"{interval_minutes:g} min, model {result.model_id}, "
        f"conditions {', '.join(result.conditions) or 'none'}"
    )
    click.echo(f"{'class':14s} {'direction':15s} {'predicted':>9s} {'true':>6s} {'hidden':>6s}")
    for name, c in result.classes.items():
        for d in c.true:
            click.echo(f"{name:14s} {d:15s} {c.predicted[d]:9d} {c.true[d]:6d} {c.hidden[d]:6d}")
    click.echo("")
    click.echo(f"{'class':14s} {'WAPE':>7s} {'MAE':>7s} {'bias':>7s}")
    for name, c in result.classes.items():
        click.echo(f"{name:14s} {c.wape * 100:6.1f}% {c.mae:7.2f} {c.bias * 100:+6.1f}%")
    if any(sum(c.hidden.values()) for c in result.classes.values()):
        click.echo(
            "\n'hidden': crossings behind parked vehicles up to the line, which no camera at "
            "this spot can see;\nany count between 'true' and 'true' + 'hidden' is no error."
        )
    click.echo(
        f"\n{result.frames} frames in {result.seconds:.1f} s "
        f"({result.frames / result.seconds:.1f} frames/s, {threads} thread)"
    )


def _count_progress(seconds: float, frames: int) -> None:
    click.echo(f"  {seconds:7.1f} s of video, {frames} frames counted", err=True)


def _eval_video(
    video: Path,
    truth_path: Path,
    line_text: str,
    fps: float,
    model: Path | None,
    threads: int,
    tolerance: float,
    as_json: bool,
) -> None:
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.video import (
        REAL_MODEL,
        count_video,
        parse_line,
        read_truth,
        score,
    )

    try:
        line = parse_line(line_text)
        truth = read_truth(truth_path)
        count = count_video(
            video,
            line,
            fps=fps,
            model=model or REAL_MODEL,
            threads=threads,
            progress=None if as_json else _count_progress,
        )
    except (ModelError, SourceUnavailable, ValueError) as exc:
        _fail(str(exc))
    result = score(count, truth, tolerance)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        f"{video.name}: {count.seconds:.1f} s at {fps:g} fps, model {count.model_id}, "
        f"tolerance {tolerance:g} s"
    )
    click.echo(
        f"{'class':14s} {'true':>5s} {'counted':>7s} {'matched':>7s} {'WAPE':>7s} "
        f"{'precision':>9s} {'recall':>7s}"
    )

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v * 100:.1f}%"

    for name, c in result.classes.items():
        click.echo(
            f"{name:14s} {sum(c.true.values()):5d} {sum(c.predicted.values()):7d} "
            f"{c.matched:7d} {pct(c.wape):>7s} {pct(c.precision):>9s} {pct(c.recall):>7s}"
        )
    click.echo(f"all crossings: precision {pct(result.precision)}, recall {pct(result.recall)}")
    click.echo(f"{count.frames} frames in {count.processing_s:.1f} s")


@main.command("count-video")
@click.argument("video", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--line",
    "line_text",
    required=True,
    help="Counting line X1,Y1,X2,Y2: frame fractions if all are 0..1, else pixels.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0.5, max=60),
    default=5,
    show_default=True,
    help="Frames per second to decode and count (the camera rate on a device).",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="ONNX detector with a <name>.json class list beside it (default: the COCO detector).",
)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def count_video_cmd(
    video: Path,
    line_text: str,
    fps: float,
    model: Path | None,
    threads: int,
    as_json: bool,
) -> None:
    """Count the crossings of a line in a video file, per class and direction."""
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.video import REAL_MODEL, count_video, parse_line

    try:
        count = count_video(
            video,
            parse_line(line_text),
            fps=fps,
            model=model or REAL_MODEL,
            threads=threads,
            progress=_count_progress,
        )
    except (ModelError, SourceUnavailable, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(count.as_dict()))
        return
    click.echo(f"{video.name}: {count.seconds:.1f} s at {fps:g} fps, model {count.model_id}")
    click.echo(f"{'class':14s} {'total':>6s} {'left_to_right':>14s} {'right_to_left':>14s}")
    for name, n in count.totals.items():
        d = count.by_direction[name]
        click.echo(f"{name:14s} {n:6d} {d['left_to_right']:14d} {d['right_to_left']:14d}")
    click.echo(
        f"{count.frames} frames in {count.processing_s:.1f} s "
        f"({count.frames / max(count.processing_s, 1e-9):.1f} frames/s, {threads} thread)"
    )


# --- demo ----------------------------------------------------------------------------------
@main.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds the devices run (Ctrl-C ends early).",
)
@click.option("--devices", "count", type=click.IntRange(1, 200), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def demo(duration: float, count: int, as_json: bool) -> None:
    """The whole pipeline on real parts, then a summary counted from InfluxDB."""
    from sensorpipe.stack.demo import run_demo
    from sensorpipe.stack.process import ProcessStartError

    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        summary = run_demo(devices=count, duration_s=duration, say=say)
    except ProcessStartError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    click.echo("")
    click.echo(f"devices {summary.devices}, ran {summary.duration_s} s")
    click.echo(demo_totals_line(summary))
    click.echo(
        "rejected by reason: "
        + ", ".join(f"{k} {v}" for k, v in summary.rejected_by_reason.items())
    )
    click.echo(
        f"malformed SDS011 frames skipped on the devices: {summary.malformed_frames_skipped}"
    )
    from sensorpipe.query.output import drop_empty_columns, render

    cols = drop_empty_columns(summary.query, ["time", "device_id", "site", "sensor"])
    click.echo("\nper-minute means from InfluxDB:")
    click.echo(render(summary.query[-10:], cols, "table"))
    if summary.lost:
        sys.exit(1)


def demo_totals_line(summary: Any) -> str:
    """The demo's account of every reading: where each one is now."""
    line = (
        f"published {summary.published}  stored {summary.stored}  "
        f"rejected {summary.rejected}  lost {summary.lost}  "
        f"still in device outboxes {summary.pending_in_outboxes}"
    )
    if summary.pending_in_outboxes:
        line += " (not lost: sent when the devices next reach the broker)"
    return line


if __name__ == "__main__":
    main()
