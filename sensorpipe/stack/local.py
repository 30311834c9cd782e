"""`sensorpipe stack up|status|down`: Mosquitto, influxd and the ingest on free loopback ports.

Everything lives under one directory (default ./.sensorpipe): the registry, the broker's files
and persistence, InfluxDB's data, the ingest's dead letters and stats, logs, and stack.json
with the endpoints and process ids.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from sensorpipe.gateway.broker import Broker, reload_pid
from sensorpipe.gateway.devices import DeviceCredentials, add_device, add_reader, set_ingest_account
from sensorpipe.gateway.mosquitto import MAX_QUEUED_MESSAGES
from sensorpipe.ingest.config import new_shared_group
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import Registry, load_registry, save_registry
from sensorpipe.stack.process import (
    ManagedProcess,
    ProcessStartError,
    free_ports,
    pid_alive,
    port_open,
    stop_pid,
)

DATABASE = "sensorpipe"


class StackError(RuntimeError):
    """The stack is not in a state for what was asked (not up, already up)."""


@dataclass
class StackInfo:
    directory: Path
    broker_port: int
    influx_url: str
    database: str
    pids: dict[str, int]
    metrics_port: int | None = None

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port},
            "influx": {"url": self.influx_url, "database": self.database},
            "metrics": self.metrics_url,
            "pids": self.pids,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StackInfo:
        return cls(
            Path(d["directory"]),
            int(d["mqtt"]["port"]),
            d["influx"]["url"],
            d["influx"]["database"],
            {k: int(v) for k, v in d["pids"].items()},
            int(d["metrics"].rsplit(":", 1)[1].split("/")[0]) if d.get("metrics") else None,
        )


class LocalStack:
    def __init__(self, directory: Path | str, *, broker_queue: int = MAX_QUEUED_MESSAGES) -> None:
        self.directory = Path(directory).resolve()
        self.broker_queue = broker_queue  # messages the broker holds per client
        self.registry_path = self.directory / "registry.toml"
        self.state_path = self.directory / "stack.json"
        self._processes: list[ManagedProcess] = []
        # Set by up() in this process, for callers (tests) that restart one component.
        self.broker: Broker | None = None
        self.influxd: Influxd | None = None
        self.ingest: ManagedProcess | None = None

    # --- state ----------------------------------------------------------------------------
    def info(self) -> StackInfo | None:
        try:
            return StackInfo.from_dict(json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StackError(
                f"{self.state_path}: not a stack state file ({type(exc).__name__}: {exc}); "
                f"if no stack runs there, remove it and run `sensorpipe stack up`"
            ) from None

    def require_info(self) -> StackInfo:
        info = self.info()
        if info is None:
            raise StackError(f"no stack in {self.directory}: run `sensorpipe stack up` first")
        return info

    def registry(self) -> Registry:
        return load_registry(self.registry_path)

    # --- up / down ------------------------------------------------------------------------
    def up(self, *, detach: bool = True, progress: Any = None) -> StackInfo:
        say = progress or (lambda _msg: None)
        existing = self.info()
        if existing is not None and any(pid_alive(p) for p in existing.pids.values()):
            raise StackError(
                f"a stack is already running from {self.directory}; "
                f"`sensorpipe stack down --dir {self.directory}` stops it"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        registry = self.registry()
        ingest_password = set_ingest_account(registry)
        save_registry(registry, self.registry_path)

        broker_port, http_port, rpc_port, metrics_port = free_ports(4)
        influxd = Influxd(
            self.directory / "influxdb", http_port=http_port, rpc_port=rpc_port, database=DATABASE
        )
        broker = Broker(
            self.directory / "broker",
            registry,
            port=broker_port,
            max_queued_messages=self.broker_queue,
        )
        ingest_dir = self.directory / "ingest"
        ingest_config = self._write_ingest_config(
            ingest_dir, broker_port, influxd.url, ingest_password, metrics_port
        )
        ingest = ManagedProcess(
            "ingest",
            [sys.executable, "-m", "sensorpipe", "ingest", "run", "--config", str(ingest_config)],
            ingest_dir / "ingest.log",
        )
        try:
            say(f"starting influxd on 127.0.0.1:{http_port}")
            influxd.start(detach=detach)
            self._processes.append(influxd.process)
            say(f"starting mosquitto on 127.0.0.1:{broker_port}")
            broker.start(detach=detach)
            self._processes.append(broker.process)
            say("starting the ingest")
            self.ingest = ingest
            self.start_ingest(detach=detach)
            self._processes.append(ingest)
        except ProcessStartError:
            self._stop_processes()
            raise
        self.broker, self.influxd = broker, influxd
        pids = {p.name: p.pid for p in self._processes if p.pid is not None}
        info = StackInfo(self.directory, broker_port, influxd.url, DATABASE, pids, metrics_port)
        self.state_path.write_text(json.dumps(info.as_dict(), indent=2))
        return info

    def start_ingest(self, *, detach: bool = False) -> None:
        """(Re)start the ingest process and wait until it is subscribed."""
        if self.ingest is None:
            raise StackError("the ingest was not set up by this object")
        stats_path = self.directory / "ingest" / "stats.json"
        stats_path.unlink(missing_ok=True)
        self.ingest.start(lambda: _ingest_connected(stats_path), timeout_s=30, detach=detach)

    def _write_ingest_config(
        self, directory: Path, broker_port: int, influx_url: str, password: str, metrics_port: int
    ) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "ingest.toml"
        config = {
            "registry_path": str(self.registry_path),
            "deadletter_path": str(directory / "deadletter.sqlite"),
            "stats_path": str(directory / "stats.json"),
            "gateway_id": "local",
            "metrics_port": metrics_port,
            "status_interval_s": 10.0,
            "broker": {
                "host": "127.0.0.1",
                "port": broker_port,
                "username": "ingest",
                "password": password,
            },
            "influx": {"url": influx_url, "database": DATABASE},
        }
        write_private(path, tomli_w.dumps(config))  # holds the ingest's broker password
        return path

    def down(self) -> list[str]:
        """Stop what runs (ingest first, so it can finish its batch); the names stopped."""
        stopped: list[str] = []
        if self._processes:
            stopped = [p.name for p in reversed(self._processes)]
            self._stop_processes()
        else:
            info = self.info()
            if info is not None:
                for name in ("ingest", "mosquitto", "influxd"):
                    pid = info.pids.get(name)
                    if pid is not None and pid_alive(pid):
                        stop_pid(pid)
                        stopped.append(name)
        self.state_path.unlink(missing_ok=True)
        return stopped

    def _stop_processes(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    def status(self) -> dict[str, Any]:
        info = self.require_info()
        components: dict[str, Any] = {}
        for name, pid in info.pids.items():
            components[name] = {"pid": pid, "running": pid_alive(pid)}
        components["mosquitto"]["port_open"] = port_open(info.broker_port)
        stats_path = self.directory / "ingest" / "stats.json"
        try:
            components["ingest"]["stats"] = json.loads(stats_path.read_text())
        except (FileNotFoundError, ValueError):
            components["ingest"]["stats"] = None
        components["ingest"]["deadletter"] = _deadletter_status(
            self.directory / "ingest" / "ingest.toml", components["ingest"]["stats"]
        )
        return {**info.as_dict(), "components": components, "devices": len(self.registry().devices)}

    # --- devices --------------------------------------------------------------------------
    def add_device(self, device_id: str, **fields: Any) -> DeviceCredentials:
        registry = self.registry()
        credentials = add_device(registry, device_id, **fields)
        save_registry(registry, self.registry_path)
        self._reload_broker(registry)
        return credentials

    def add_reader(self, username: str) -> str:
        """An account that reads every device's messages (an extra ingest worker, an auditor)."""
        registry = self.registry()
        password = add_reader(registry, username)
        save_registry(registry, self.registry_path)
        self._reload_broker(registry)
        return password

    def add_worker(self, name: str, *, group: str | None = None) -> IngestWorker:
        """A further ingest process on the shared subscription `$share/<group>/...`, with a
        broker account of its own (the broker ties client ids to user names) and its own
        dead-letter store and stats; not started. The group is the stack's own random one
        (`shared_group`) unless given. The stack's own ingest reads unshared: stop it
        (`stack.ingest.stop()`) when workers are to split the stream."""
        group = group or self.shared_group()
        base = tomllib.loads((self.directory / "ingest" / "ingest.toml").read_text())
        password = self.add_reader(name)
        directory = self.directory / name
        directory.mkdir(exist_ok=True)
        config = {
            **base,
            "stats_path": str(directory / "stats.json"),
            "deadletter_path": str(directory / "deadletter.sqlite"),
            "broker": {
                **base["broker"],
                "username": name,
                "password": password,
                "shared_group": group,
            },
        }
        config.pop("metrics_port", None)
        path = directory / "ingest.toml"
        write_private(path, tomli_w.dumps(config))
        process = ManagedProcess(
            name,
            [sys.executable, "-m", "sensorpipe", "ingest", "run", "--config", str(path)],
            directory / "ingest.log",
        )
        return IngestWorker(process, directory)

    def shared_group(self) -> str:
        """The workers' group name, made once per stack at random: devices cannot guess it."""
        path = self.directory / "ingest" / "shared_group"
        if not path.exists():
            write_private(path, new_shared_group() + "\n")
        return path.read_text().strip()

    def add_devices(self, specs: list[tuple[str, dict[str, Any]]]) -> list[DeviceCredentials]:
        registry = self.registry()
        out = [add_device(registry, device_id, **fields) for device_id, fields in specs]
        save_registry(registry, self.registry_path)
        self._reload_broker(registry)
        return out

    def _reload_broker(self, registry: Registry) -> None:
        info = self.info()
        if info is None or not pid_alive(info.pids.get("mosquitto", -1)):
            return  # not running: the files are written at the next `stack up`
        reload_pid(info.pids["mosquitto"], self.directory / "broker", registry)
        time.sleep(0.2)  # Mosquitto applies SIGHUP on its next loop iteration


@dataclass
class IngestWorker:
    process: ManagedProcess
    directory: Path

    @property
    def stats_path(self) -> Path:
        return self.directory / "stats.json"

    @property
    def deadletter_path(self) -> Path:
        return self.directory / "deadletter.sqlite"

    def start(self) -> None:
        """Start and wait until it is subscribed."""
        self.stats_path.unlink(missing_ok=True)
        self.process.start(lambda: _ingest_connected(self.stats_path), timeout_s=30)

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


def _deadletter_status(ingest_config: Path, stats: dict[str, Any] | None) -> dict[str, Any]:
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


def _ingest_connected(stats_path: Path) -> bool:
    try:
        return bool(json.loads(stats_path.read_text()).get("connected"))
    except (FileNotFoundError, ValueError):
        return False


def default_directory() -> Path:
    return Path(os.environ.get("SENSORPIPE_DIR", ".sensorpipe"))
