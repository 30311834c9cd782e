"""The local stack's ingest and API configuration, written anew at every `stack up` with what an
operator set kept, and the command lines that run them.

ingest.toml and serve.toml get each run's ports and the ingest's new broker password, and are
private to the stack's user (they hold broker passwords). What an operator set in serve.toml
(SERVE_KEPT: tokens, the map, bounds, public address) is kept, under its new name where a key
was renamed (SERVE_RENAMED); a serve.toml that cannot be read is an error naming it, never
silently replaced. ingest.toml is the stack's own: nothing in it is kept but its [quality]
section (the quality flags' thresholds, which `sensorpipe import` reads from it too),
[calibration], [alerts] and [forecast] settings, and extra ingest workers
(`LocalStack.add_worker`) start from a copy of it.

Plain functions of paths and ports: they write files and start nothing.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from sensorpipe.gateway.devices import INGEST_USERNAME
from sensorpipe.protocol.files import write_private
from sensorpipe.stack.errors import StackError

DATABASE = "sensorpipe"
# What an operator may set in the stack's serve.toml that `stack up` keeps when it writes the
# file again with the new ports.
SERVE_KEPT = (
    "token_hashes",
    "tile_url",
    "tile_attribution",
    "map",
    "max_points",
    "register_cache_s",
    "max_heavy_requests",
    "busy_retry_after_s",
    "health_cache_s",
    "request_timeout_s",
    "max_connections_per_client",
    "public_url",
)
# Keys of serve.toml renamed since: an operator's value is kept under the new name.
SERVE_RENAMED = {"header_timeout_s": "request_timeout_s"}


def write_serve_config(
    path: Path,
    *,
    registry_path: Path,
    ingest_stats_path: Path,
    broker_port: int,
    influx_url: str,
    api_port: int,
    calibration_path: Path | None = None,
    models_path: Path | None = None,
) -> Path:
    """serve.toml at `path` for this run's ports, keeping what an operator set there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = written_before(path)
    kept = {k: old[k] for k in SERVE_KEPT if k in old}
    for was, now in SERVE_RENAMED.items():
        if was in old and now not in kept:
            kept[now] = old[was]
    config = {
        "host": "127.0.0.1",
        "port": api_port,
        "registry_path": str(registry_path),
        "ingest_stats_path": str(ingest_stats_path),
        # The ingest's alert store ([alerts] store, beside its ingest.toml).
        "alerts_path": str(ingest_stats_path.parent / "alerts.sqlite"),
        **({"calibration_path": str(calibration_path)} if calibration_path else {}),
        # The forecast models `crowd train` saves (the stack's forecast/ folder).
        **({"models_path": str(models_path)} if models_path else {}),
        # A local stack holds little: its figures can be fresh within seconds.
        "register_cache_s": 5.0,
        **kept,
        "influx": {"url": influx_url, "database": DATABASE},
        "broker": {"host": "127.0.0.1", "port": broker_port},
    }
    write_private(path, tomli_w.dumps(config))
    return path


def written_before(path: Path) -> dict[str, Any]:
    """What the file at `path` held (nothing when it does not exist); StackError when it
    cannot be read, rather than replacing what an operator set there."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StackError(
            f"{path}: cannot read it ({exc}); correct it or remove it (it is written anew)"
        ) from None


def write_ingest_config(
    directory: Path,
    *,
    registry_path: Path,
    quarantine_path: Path,
    keys_path: Path,
    broker_port: int,
    influx_url: str,
    password: str,
    metrics_port: int,
    admin: dict[str, str] | None = None,
    calibration_path: Path | None = None,
    models_path: Path | None = None,
) -> Path:
    """ingest.toml in `directory` (with its dead letters and stats), for this run's ports and
    the ingest's broker password; `admin`: the broker's admin account, with which the ingest
    disables the accounts of devices it quarantines; `calibration_path`: the calibration book
    whose group calibrations the ingest keeps up to date; `models_path`: the forecast models
    its alerts job forecasts with ([alerts] models)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ingest.toml"
    # The operator's quality thresholds ([quality]) are kept; `sensorpipe import` reads them too.
    before = written_before(path)
    quality = before.get("quality")
    # And their [calibration] settings (update_every_s, enabled); the book is the stack's.
    calibration = before.get("calibration")
    calibration = dict(calibration) if isinstance(calibration, dict) else {}
    # And their [alerts] settings (webhooks, margin, how often); the store is the stack's.
    alerts = before.get("alerts")
    alerts = dict(alerts) if isinstance(alerts, dict) else {}
    if models_path is not None:
        alerts.setdefault("models", str(models_path))
    # And their [forecast] settings (how often the saved models are retrained).
    forecast = before.get("forecast")
    if calibration_path is not None:
        calibration["book"] = str(calibration_path)
    config = {
        "registry_path": str(registry_path),
        "deadletter_path": str(directory / "deadletter.sqlite"),
        "stats_path": str(directory / "stats.json"),
        "gateway_id": "local",
        "metrics_port": metrics_port,
        "status_interval_s": 10.0,
        # Devices over their quota are quarantined in the stack's book, and their broker
        # accounts disabled with the admin account.
        "quarantine_path": str(quarantine_path),
        "keys_path": str(keys_path),
        "broker": {
            "host": "127.0.0.1",
            "port": broker_port,
            "username": INGEST_USERNAME,
            "password": password,
        },
        "influx": {"url": influx_url, "database": DATABASE},
        **({"broker_admin": admin} if admin is not None else {}),
        **({"quality": quality} if isinstance(quality, dict) else {}),
        **({"calibration": calibration} if calibration else {}),
        **({"alerts": alerts} if alerts else {}),
        **({"forecast": forecast} if isinstance(forecast, dict) else {}),
    }
    write_private(path, INGEST_HEADER + tomli_w.dumps(config))  # holds the broker passwords
    return path


# What a person who opens the stack's ingest.toml should know before editing it.
INGEST_HEADER = """\
# Written by `sensorpipe stack up` at each start, for this run's ports and passwords. Your
# settings in [quality], [calibration], [alerts] and [forecast] are kept; comments and other
# changes are not. A lasting set-up: `sensorpipe server setup` (see its --help).

"""


def ingest_connected(stats_path: Path) -> bool:
    """Whether the ingest writing `stats_path` says it is connected and subscribed."""
    try:
        return bool(json.loads(stats_path.read_text()).get("connected"))
    except (FileNotFoundError, ValueError):
        return False


def ingest_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "ingest", "run", "--config", str(config)]


def serve_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "serve", "--config", str(config)]
