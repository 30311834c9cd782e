"""What `stack status` reads besides the processes: the ingest's dead-letter store and the room
left on its disk, the kit gateway's /health, and the registered devices whose sensors are not
ok or that sent nothing yet. Each answers None (or nulls) where its source does not answer:
a status is never held up or failed by one part that is down.
"""

from __future__ import annotations

import json
import shutil
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from sensorpipe.protocol.registry import Registry


def deadletter_status(ingest_config: Path, stats: dict[str, Any] | None) -> dict[str, Any]:
    """Where the ingest keeps its dead letters and the room left on that disk; from its
    counters, whether it can write there and what it holds back while it cannot."""
    path: Path | None = None
    free: int | None = None
    try:
        path = Path(tomllib.loads(ingest_config.read_text())["deadletter_path"])
        free = shutil.disk_usage(path.parent).free
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    s = stats or {}
    return {
        "path": None if path is None else str(path),
        "free_bytes": free,
        "available": s.get("deadletter_available"),
        "error": s.get("deadletter_error"),
        "unavailable_since": s.get("deadletter_unavailable_since"),
        "held_back": s.get("held_back", 0),
        "held_back_waiting": s.get("held_back_waiting", 0),
        "left_to_sender": s.get("left_to_sender", 0),
    }


def gateway_health(url: str | None) -> dict[str, Any] | None:
    """The kit gateway's /health, when it answers over plain HTTP."""
    if not url or not url.startswith("http://"):
        return None
    try:
        with urllib.request.urlopen(f"{url}health", timeout=2) as answer:
            data = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sensor_health(
    influx_url: str, database: str, registry: Registry, *, running: bool
) -> dict[str, Any]:
    """The registered devices with a sensor that is not ok, and those with no data yet
    (sensorpipe.query.health); null where InfluxDB does not answer."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.register import register_stats

    unknown: dict[str, Any] = {"sensors_not_ok": None, "no_data_yet": None}
    if not running:
        return unknown
    client = InfluxClient(influx_url, database, timeout_s=5.0)
    try:
        if not client.ping(timeout_s=2.0):  # a stopped influxd: the status is not held up
            return unknown
        stats = register_stats(client)
    except (StorageUnavailable, QueryError):
        return unknown
    finally:
        client.close()
    not_ok = []
    for device_id in sorted(registry.devices):
        for _, h in sorted(stats.of(device_id).health.items()):
            if h.ok is False:
                not_ok.append({"device_id": device_id, **h.as_json(), "note": h.note()})
    no_data = [d for d in sorted(registry.devices) if stats.of(d).first_seen_ms is None]
    return {"sensors_not_ok": not_ok, "no_data_yet": no_data}
