"""`sensorpipe ingest`: run the ingest, list and replay its dead letters."""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import CONFIG_FILE_OPTION, DIR_OPTION, json_option
from sensorpipe.protocol.configfile import ConfigError


@click.group()
def ingest() -> None:
    """Validate and store what devices send."""


@ingest.command("run")
@CONFIG_FILE_OPTION
def ingest_run(config_path: Path) -> None:
    """Subscribe and store until stopped (SIGTERM or Ctrl-C)."""
    from sensorpipe.ingest.config import load_ingest_config
    from sensorpipe.ingest.influx import quiet_request_log
    from sensorpipe.ingest.service import IngestService

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    quiet_request_log()
    try:
        config = load_ingest_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    if config.metrics_port:
        # Checked before connecting: the broker account is the running ingest's too, and a
        # second connection under it would take over that ingest's session.
        problem = _port_taken(config.metrics_bind, config.metrics_port)
        if problem:
            fail(
                f"{config_path}: metrics_port {config.metrics_port} on {config.metrics_bind} "
                f"{problem}; is an ingest already running? Choose another metrics_port"
            )
    try:
        service = IngestService(config)
    except ConfigError as exc:  # the registry it names
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:  # e.g. a dead-letter path that cannot be written
        fail(f"cannot open the dead-letter store {config.deadletter_path}: {exc}")
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


def _port_taken(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot be used ({exc.strerror})"
    return None


def _reason_option(code: str | None) -> None:
    from sensorpipe.ingest.reasons import check_reason

    if code is not None and (problem := check_reason(code)):
        fail(f"--reason: {problem}")


def _device_names(directory: Path | None, db: Path | None, device: str | None) -> list[str] | None:
    """The names `--device` finds letters by: itself, and for a kit of the stack's registry
    the name its letters' topic gives (`airrohr:<chip id>`, `ttn:<app>/<node>`), which is all
    that letters kept before they carried their device id have."""
    if device is None:
        return None
    names = [device]
    if db is not None:
        return names  # another store than the stack's: its registry is not known here
    from sensorpipe.protocol.configfile import ConfigError

    try:
        stack = local_stack(directory)
        entry = stack.registry().devices.get(device) if stack.registry_path.is_file() else None
    except (ConfigError, OSError):
        return names
    if entry is not None and entry.chip_id:
        names.append(f"airrohr:{entry.chip_id}")
    if entry is not None and entry.ttn_application and entry.ttn_device:
        names.append(f"ttn:{entry.ttn_application}/{entry.ttn_device}")
    return names


def _deadletter_path(directory: Path | None, db: Path | None) -> Path:
    from sensorpipe.ingest.deadletter import is_sqlite_file

    path = db or local_stack(directory).deadletter_path
    if not path.is_file():
        hint = (
            "give the ingest's deadletter_path with --db"
            if db
            else ("give --db, or --dir of a stack started with `sensorpipe stack up`")
        )
        fail(f"no dead-letter store at {path}: {hint}")
    if not is_sqlite_file(path):  # never turn someone's other file into a database
        fail(f"{path} is not a dead-letter store (not an SQLite database)")
    return path


def _since(value: str | None, option: str = "--since") -> float | None:
    """'1h', '-30m', '2d' back from now, a date (midnight UTC) or ISO 8601 with offset."""
    from sensorpipe.query.influxql import QueryInputError, parse_time

    if value is None:
        return None
    text = value.strip()
    if text[:1].isdigit() and text[-1:] in "smhdw" and text[:-1].isdigit():
        text = "-" + text
    try:
        return parse_time(text, relative_example="1h, 30m or 2d").timestamp()
    except QueryInputError as exc:
        fail(f"{option}: {exc}")


DB_OPTION = click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=None,
    help="Dead-letter database (default: the stack's).",
)

# The letters `ingest purge` and `ingest replay` take (`ingest rejects` names them otherwise).
REASON_OPTION = click.option(
    "--reason", "code", default=None, help="Only letters rejected for this reason."
)
# Since when `ingest rejects` lists letters and `ingest replay` replays them.
SINCE_OPTION = click.option(
    "--since",
    default=None,
    help="Only rejections since: 1h, 30m, 2d back from now, a date, or ISO 8601.",
)


@click.option("--limit", type=click.IntRange(1, 1_000_000), default=20, show_default=True)
@click.option("--reason", "--code", "code", default=None, help="Only this rejection reason.")
@SINCE_OPTION
@click.option(
    "--device",
    default=None,
    help="Only this device's letters: its device id (a kit's, the --device of an import) or "
    "the name its topic gives (airrohr:<chip id>, ttn:<app>/<node>, import:<format>:<file>).",
)
@json_option()
@DB_OPTION
@DIR_OPTION
def _rejects(
    directory: Path | None,
    db: Path | None,
    limit: int,
    code: str | None,
    since: str | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Rejected messages with their reasons, newest first (raw bytes kept), and how many
    letters each device keeps (its dead-letter quota is counted in them)."""
    from sensorpipe.ingest.deadletter import DeadLetterStore

    _reason_option(code)
    since_ts = _since(since)
    path = _deadletter_path(directory, db)
    try:
        store = DeadLetterStore(path)
        names = _device_names(directory, db, device)
        letters = store.list(limit=limit, code=code, since=since_ts, device=names)
        counts = store.counts_by_code()
        usage = store.usage_by_device()
        store.close()
    except (sqlite3.Error, OSError) as exc:
        fail(f"dead-letter store {path} cannot be read: {exc}")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "counts": counts,
                    "by_device": {
                        k: {"letters": u.letters, "bytes": u.bytes} for k, u in usage.items()
                    },
                    "letters": [
                        {
                            "id": d.id,
                            "received_at": d.received_at,
                            "topic": d.topic,
                            "device": d.device,
                            # The registered device it belongs to, where the topic names
                            # none (a kit's, an import's row's); "" when not known.
                            "device_id": d.device_id,
                            "repeats": d.repeats,
                            "code": d.code,
                            "detail": d.detail,
                            # Readable text, and the exact bytes as received.
                            "payload": d.payload.decode("utf-8", "replace"),
                            "payload_base64": base64.b64encode(d.payload).decode("ascii"),
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
    if usage:
        top = sorted(usage.items(), key=lambda kv: -kv[1].letters)[:10]
        click.echo(
            "letters by device: "
            + ", ".join(f"{k or '(none)'} {u.letters} ({u.bytes} bytes)" for k, u in top)
        )
    for d in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.received_at))
        again = f" (x{d.repeats})" if d.repeats > 1 else ""
        of = f" ({d.device_id})" if d.device_id else ""
        click.echo(f"#{d.id} {when}Z {d.topic}{of} [{d.code}]{again} {d.detail}")
    if not letters and (code or since or device):
        click.echo("no dead letters match " + _filters_text(code, since, device), err=True)


ingest.command("rejects")(_rejects)


def _filters_text(code: str | None, since: str | None, device: str | None = None) -> str:
    parts = ([f"reason {code}"] if code else []) + ([f"since {since}"] if since else [])
    parts += [f"device {device}"] if device else []
    return " and ".join(parts) or "(none stored)"


@ingest.command("purge")
@REASON_OPTION
@click.option("--device", default=None, help="Only this device's letters.")
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Only letters received before this: 30d, 12h back from now, a date, or ISO 8601.",
)
@click.option("--all", "everything", is_flag=True, help="Every letter (no filter given).")
@DB_OPTION
@DIR_OPTION
def ingest_purge(
    directory: Path | None,
    db: Path | None,
    code: str | None,
    device: str | None,
    older_than: str | None,
    everything: bool,
) -> None:
    """Remove dead letters for good: the operator's decision, as the store never removes a
    letter by itself (it may be the only copy of a reading). Frees the devices' quotas."""
    from sensorpipe.ingest.deadletter import DeadLetterStore, DeadLetterStoreUnavailable

    _reason_option(code)
    if not (code or device or older_than or everything):
        fail("give --reason, --device or --older-than to choose letters, or --all for every one")
    before = _since(older_than, "--older-than") if older_than else None
    path = _deadletter_path(directory, db)
    try:
        store = DeadLetterStore(path)
        removed = store.purge(code=code, device=_device_names(directory, db, device), before=before)
        left = store.count()
        store.close()
    except DeadLetterStoreUnavailable as exc:
        fail(f"dead-letter store {path} cannot write: {exc}")
    except (sqlite3.Error, OSError) as exc:
        fail(f"dead-letter store {path} cannot be changed: {exc}")
    parts = [f"reason {code}"] if code else []
    parts += [f"device {device}"] if device else []
    parts += [f"older than {older_than}"] if older_than else []
    click.echo(f"removed {removed} dead letters ({' and '.join(parts) or 'all'}); {left} left")


@ingest.command("replay")
@DIR_OPTION
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The ingest's configuration (default: the local stack's).",
)
@REASON_OPTION
@click.option(
    "--id",
    "ids",
    type=click.IntRange(1, 2**63 - 1),
    multiple=True,
    help="Only this letter (repeatable).",
)
@SINCE_OPTION
@json_option()
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
    from sensorpipe.ingest.deadletter import DeadLetterStore, DeadLetterStoreUnavailable
    from sensorpipe.ingest.service import IngestService
    from sensorpipe.protocol.topics import is_message_topic

    _reason_option(code)
    since_ts = _since(since)
    path = config_path or local_stack(directory).directory / "ingest" / "ingest.toml"
    if config_path is None and not path.is_file():
        fail(f"no stack ingest configuration at {path}: give --config, or --dir of a stack")
    try:
        config = load_ingest_config(path)
    except ConfigError as exc:
        fail(str(exc))
    dl_path = _deadletter_path(None, Path(config.deadletter_path))
    try:
        store = DeadLetterStore(dl_path)
        letters = store.list(limit=10**9, code=code, since=since_ts, ids=list(ids) or None)
        store.close()
    except (sqlite3.Error, OSError) as exc:
        fail(f"dead-letter store {dl_path} cannot be read: {exc}")
    missing = sorted(set(ids) - {d.id for d in letters})
    if missing:
        fail(
            f"--id {', '.join(map(str, missing))}: no such dead letter in {dl_path} "
            f"(or not matching the other filters); `sensorpipe ingest rejects` lists them"
        )
    # Rows of imported files and kits' posts were never MQTT messages: they cannot be fed
    # through the message validation again, only imported or posted again once fixed.
    foreign = [d for d in letters if not is_message_topic(d.topic)]
    letters = [d for d in letters if is_message_topic(d.topic)]
    if foreign:
        kinds = sorted({d.topic.split(":", 1)[0] for d in foreign})
        note = (
            f"{len(foreign)} dead letters came from {', '.join(kinds)} (not MQTT messages) and "
            f"are not replayed: fix the cause, then import the file or let the kit send again"
        )
        if ids and not letters:
            fail(note)
        click.echo(note, err=True)
    if not letters and not foreign:
        click.echo("no dead letters match " + _filters_text(code, since), err=True)
    letters.reverse()  # oldest first, in the order they arrived
    try:
        service = IngestService(config)
    except ConfigError as exc:
        fail(str(exc))
    try:
        if letters and not service.storage_reachable():
            # Replay waits for InfluxDB as the running ingest does; a person wants to know.
            fail(
                f"InfluxDB at {config.influx.url} does not answer: nothing replayed; start it "
                f"(or correct [influx] url in {path}) and run the replay again"
            )
        result = service.replay(letters)
    except DeadLetterStoreUnavailable as exc:
        # Whatever was stored stays in the store too; replaying it again stores nothing twice.
        fail(
            f"dead-letter store {dl_path} cannot write ({exc}): letters that passed may be "
            f"stored but are still listed; run the replay again once it has room"
        )
    finally:
        service.close()
    judged = result.stored + sum(result.still_rejected.values())
    out = {
        "replayed": judged,
        "stored": result.stored,
        "still_rejected": dict(result.still_rejected),
        "not_attempted": len(letters) - judged,
    }
    if as_json:
        click.echo(json.dumps(out))
    else:
        again = ", ".join(f"{k} {v}" for k, v in sorted(result.still_rejected.items())) or "none"
        click.echo(
            f"replayed {judged} dead letters: {result.stored} stored, "
            f"{sum(result.still_rejected.values())} still rejected ({again})"
        )
    if judged < len(letters):
        fail(
            f"InfluxDB at {config.influx.url} could not be written: {len(letters) - judged} "
            f"dead letters were not replayed and stay in the store; run the replay again"
        )
