"""`sensorpipe stack up|status|down`: Mosquitto, influxd, the ingest, the kit gateway and the
HTTP service on free loopback ports.

Everything lives under one directory (default ./.sensorpipe): the registry, the broker's files
and persistence, InfluxDB's data, the ingest's dead letters and stats, the quarantine book
(quarantine.sqlite, shared by the ingest, the kit gateway and `sensorpipe devices
quarantine|lift`), logs, and stack.json with the endpoints and process ids.

A quarantined device stays quarantined across `stack down` and `stack up`: the broker's
security is generated with its account disabled. Registry changes while the stack runs reach the
broker without a restart (gateway.broker.reload_pid: password file, SIGHUP, the security
plugin brought in line).

A process counts as one of the stack's components only while its command line names that
component's configuration file in this directory: process ids in stack.json are written down
as each process starts, but never trusted or signalled unchecked (after a reboot they may
belong to anything). `stack up` and `stack down` hold stack.lock while they work, so two of
them cannot start two brokers on one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import socket
import sqlite3
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from sensorpipe.gateway.broker import Broker, reload_pid
from sensorpipe.gateway.brokeradmin import BrokerAdmin, BrokerAdminError, admin_credentials
from sensorpipe.gateway.devices import (
    INGEST_USERNAME,
    DeviceCredentials,
    ProvisioningError,
    add_device,
    add_reader,
    set_ingest_account,
)
from sensorpipe.gateway.kits.provision import (
    GatewayCredentials,
    KitCredentials,
    add_airrohr_kit,
    add_gateway,
)
from sensorpipe.gateway.mosquitto import MAX_QUEUED_MESSAGES, is_loopback
from sensorpipe.ingest.config import new_shared_group
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import (
    ManagedProcess,
    find_processes,
    port_open,
    stop_pid,
)
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.quarantine import (
    LIFT_RETRY_S,
    PendingLift,
    Quarantine,
    QuarantineBook,
)
from sensorpipe.protocol.registry import Registry, load_registry, save_registry
from sensorpipe.stack.errors import StackError
from sensorpipe.stack.ports import GATEWAY_PORT, StackPorts, first_kits_port, fresh_ports
from sensorpipe.stack.status import deadletter_status, gateway_health, sensor_health

T = TypeVar("T")
DATABASE = "sensorpipe"
# The order the components start in; they stop in the reverse order (the ingest after the
# gateway, so it can finish its batch with what the gateway published last).
COMPONENTS = ("influxd", "mosquitto", "ingest", "gateway", "serve")
# What an operator may set in the stack's serve.toml that `stack up` keeps when it writes the
# file again with the new ports.
SERVE_KEPT = (
    "token_hashes",
    "tile_url",
    "tile_attribution",
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
# The stack's kit gateway (airrohr kits post to it) and what an operator may set in its
# gateway.toml that `stack up` keeps: where kits reach it (the port is kept from run to run, as
# kits have it typed into their config page), its limits and The Things Stack applications.
STACK_GATEWAY_ID = "local-gateway"
GATEWAY_KEPT = ("airrohr", "ttn")
# How long a registry change waits for the stack's kit gateway to reconnect to the broker.
GATEWAY_RECONNECT_S = 15.0
GATEWAY_HTTP_KEPT = (
    "bind",
    "port",
    "tls_cert",
    "tls_key",
    "allow_plaintext",
    "max_body_bytes",
    "request_timeout_s",
    "max_connections_per_client",
)


@dataclass
class StackInfo:
    directory: Path
    broker_port: int
    influx_url: str
    database: str
    pids: dict[str, int]
    metrics_port: int | None = None
    api_port: int | None = None
    # The kit gateway's base URL (`http(s)://host:port/`), when the stack runs one.
    kits_url: str | None = None

    @property
    def api_url(self) -> str | None:
        """The dashboard and API (`sensorpipe serve`), when the stack runs one."""
        return None if self.api_port is None else f"http://127.0.0.1:{self.api_port}/"

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
            "api": self.api_url,
            "kits": self.kits_url,
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
            _port_of(d.get("metrics")),
            _port_of(d.get("api")),
            d.get("kits") or None,
        )


SERVER_FILE = "server.toml"


def _server_section(directory: Path, name: str) -> dict[str, Any] | None:
    """A section of the server.toml `server setup` writes into its configuration directory
    (/etc/sensorpipe); None where there is none (a local stack's directory)."""
    try:
        with (directory / SERVER_FILE).open("rb") as f:
            section = tomllib.load(f).get(name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StackError(f"{directory / SERVER_FILE}: cannot read it ({exc})") from None
    return section if isinstance(section, dict) else None


def server_state_dir(directory: Path) -> Path | None:
    """The state directory a `server setup` directory names; None elsewhere."""
    state = (_server_section(directory, "state") or {}).get("directory")
    return Path(state) if isinstance(state, str) else None


def join_broker(directory: Path) -> dict[str, Any] | None:
    """How devices reach the broker of a `server setup` directory ([broker]: host, port, tls,
    ca_file); None elsewhere."""
    return _server_section(directory, "broker")


class LocalStack:
    def __init__(self, directory: Path | str, *, broker_queue: int = MAX_QUEUED_MESSAGES) -> None:
        self.directory = Path(directory).resolve()
        self.broker_queue = broker_queue  # messages the broker holds per client
        self.registry_path = self.directory / "registry.toml"
        self.state_path = self.directory / "stack.json"
        self.lock_path = self.directory / "stack.lock"
        # A directory written by `server setup` names where the services keep their state
        # (server.toml): the quarantine book and the enrolled keys are there, not here.
        server_state = server_state_dir(self.directory)
        state = server_state or self.directory
        self.quarantine_path = state / "quarantine.sqlite"
        self.keys_path = state / "keys.sqlite"
        # The ingest's dead letters: the local stack's ingest directory, a server's state.
        self.deadletter_path = (
            server_state / "deadletter.sqlite"
            if server_state is not None
            else self.directory / "ingest" / "deadletter.sqlite"
        )
        self._processes: list[ManagedProcess] = []
        self._state: StackInfo | None = None  # what stack.json says, while this object runs it
        # Set by up() in this process, for callers (tests) that restart one component.
        self.broker: Broker | None = None
        self.influxd: Influxd | None = None
        self.ingest: ManagedProcess | None = None
        self.api: ManagedProcess | None = None
        self.gateway: ManagedProcess | None = None

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

    def influx_endpoint(self) -> tuple[str, str] | None:
        """The InfluxDB this directory's data is in, (url, database): the running stack's, or
        the one a `server setup` directory names; None where neither is known."""
        info = self.info()
        if info is not None:
            return info.influx_url, info.database
        influx = _server_section(self.directory, "influx")
        if influx is not None and isinstance(influx.get("url"), str):
            return influx["url"], str(influx.get("database") or DATABASE)
        return None

    def require_influx(self) -> tuple[str, str]:
        endpoint = self.influx_endpoint()
        if endpoint is None:
            raise StackError(
                f"no stack in {self.directory} and no server configuration "
                f"({self.directory / SERVER_FILE}): run `sensorpipe stack up` first, or give "
                "--dir /etc/sensorpipe on a lasting server"
            )
        return endpoint

    def require_info(self) -> StackInfo:
        info = self.info()
        if info is None:
            raise StackError(f"no stack in {self.directory}: run `sensorpipe stack up` first")
        return info

    def registry(self) -> Registry:
        return load_registry(self.registry_path)

    def commands(self) -> dict[str, list[str]]:
        """The command line of each component: its program and its configuration file in
        this directory, which is how its process is recognised."""
        return {
            "influxd": ["influxd", "-config", str(self.directory / "influxdb" / "influxdb.conf")],
            "mosquitto": ["mosquitto", "-c", str(self.directory / "broker" / "mosquitto.conf")],
            "ingest": _ingest_argv(self.directory / "ingest" / "ingest.toml"),
            "gateway": _gateway_argv(self.gateway_config_path),
            "serve": _serve_argv(self.directory / "serve" / "serve.toml"),
        }

    @property
    def gateway_config_path(self) -> Path:
        return self.directory / "gateway" / "gateway.toml"

    def running(self) -> dict[str, list[int]]:
        """For each component, the ids of the processes that run it now: found by their
        command lines, whatever stack.json says (it may be stale, damaged or missing)."""
        return find_processes(self.commands())

    # --- up / down ------------------------------------------------------------------------
    def up(
        self,
        *,
        detach: bool = True,
        progress: Any = None,
        serve: bool = True,
        kits: bool | None = None,
    ) -> StackInfo:
        """Start influxd, Mosquitto, the ingest, (with `kits`) the kit gateway that airrohr
        kits post to and The Things Stack bridges, and (with `serve`) the HTTP API and
        dashboard, each waited for until it answers. `kits` left out: as `serve`, the two
        services that face people and kits.

        Each process id goes into stack.json as soon as the process exists. Whatever ends
        `up` early (a component that does not start, Ctrl-C, a closed output pipe, any
        exception) stops what it had started and removes stack.json before it is raised."""
        say = progress or (lambda _msg: None)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StackError(
                f"{self.directory}: cannot create the stack directory ({exc.strerror or exc})"
            ) from None
        with self._exclusive():
            self.info()  # a damaged state file ends `up` here with what to do about it
            running = self.running()
            if any(running.values()):
                raise StackError(
                    f"a stack is already running from {self.directory} ({describe_pids(running)}); "
                    f"`sensorpipe stack down --dir {self.directory}` stops it"
                )
            influxd, broker, ingest, api, gateway, info = self._prepare(
                serve, serve if kits is None else kits
            )
            self._state = info
            try:
                self._write_state()
                for process in (influxd.process, broker.process, ingest, gateway, api):
                    if process is None:
                        continue
                    process.on_spawn = functools.partial(self._record, process.name)
                say(f"starting influxd on {influxd.url.removeprefix('http://')}")
                self._processes.append(influxd.process)
                influxd.start(detach=detach)
                say(f"starting mosquitto on 127.0.0.1:{broker.port}")
                self._processes.append(broker.process)
                broker.start(detach=detach)
                self._pending_lifts_applied()
                say("starting the ingest")
                self._processes.append(ingest)
                self.ingest = ingest
                self.start_ingest(detach=detach)
                if gateway is not None:
                    say(f"starting the kit gateway on {info.kits_url}")
                    self._processes.append(gateway)
                    self.gateway = gateway
                    self.start_gateway(detach=detach)
                if api is not None:
                    say(f"starting the API and dashboard on {info.api_url}")
                    self._processes.append(api)
                    self.api = api
                    url = f"{info.api_url}api/v1/health"
                    api.start(lambda: _answers(url), timeout_s=30, detach=detach)
            except BaseException:
                self._stop_all()
                raise
        self.broker, self.influxd = broker, influxd
        return info

    def _prepare(
        self, serve: bool, kits: bool
    ) -> tuple[
        Influxd, Broker, ManagedProcess, ManagedProcess | None, ManagedProcess | None, StackInfo
    ]:
        """The registry with a new ingest account (and the kit gateway's, once), and each
        component's files; nothing runs."""
        registry = self.registry()
        try:
            ingest_password = set_ingest_account(registry)
            if kits:
                self._ensure_gateway(registry)
        except ProvisioningError as exc:
            raise StackError(
                f"{self.registry_path}: {exc}; remove that entry and register it under another id"
            ) from None
        try:
            save_registry(registry, self.registry_path)
            ports = self.ports.plan(serve=serve, kits=kits)
            broker_port, metrics_port, api_port = ports["mqtt"], ports["metrics"], ports["api"]
            http_port, rpc_port = fresh_ports(2, exclude=set(ports.values()))
            influxd = Influxd(
                self.directory / "influxdb",
                http_port=http_port,
                rpc_port=rpc_port,
                database=DATABASE,
            )
            broker = Broker(
                self.directory / "broker",
                registry,
                port=broker_port,
                max_queued_messages=self.broker_queue,
                disabled=self.quarantined(),
            )
            ingest_dir = self.directory / "ingest"
            ingest_config = self._write_ingest_config(
                ingest_dir,
                broker_port,
                influxd.url,
                ingest_password,
                metrics_port,
                admin={"username": broker.admin.username, "password": broker.admin.password},
            )
        except OSError as exc:
            raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
        except BrokerAdminError as exc:
            raise StackError(str(exc)) from None
        ingest = ManagedProcess("ingest", _ingest_argv(ingest_config), ingest_dir / "ingest.log")
        api = None
        if serve:
            try:
                serve_config = self._write_serve_config(broker_port, influxd.url, api_port)
            except OSError as exc:
                raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
            api = ManagedProcess(
                "serve", _serve_argv(serve_config), serve_config.parent / "serve.log"
            )
        gateway = None
        kits_url = None
        if kits:
            try:
                gateway_config, kits_url = self._write_gateway_config(broker_port, ports["kits"])
            except OSError as exc:
                raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
            gateway = ManagedProcess(
                "gateway", _gateway_argv(gateway_config), gateway_config.parent / "gateway.log"
            )
        info = StackInfo(
            self.directory,
            broker_port,
            influxd.url,
            DATABASE,
            {},
            metrics_port,
            api_port if serve else None,
            kits_url,
        )
        return influxd, broker, ingest, api, gateway, info

    # --- stable addresses (stack.ports) -----------------------------------------------------
    @property
    def ports(self) -> StackPorts:
        return StackPorts(
            self.directory,
            gateway_config=self.gateway_config_path,
            serve_config=self.directory / "serve" / "serve.toml",
            gateway_http=self._gateway_settings().get("http", {}),
        )

    @property
    def ports_path(self) -> Path:
        return self.ports.path

    # --- the kit gateway --------------------------------------------------------------------
    @property
    def gateway_key_path(self) -> Path:
        return self.directory / "gateway" / f"{STACK_GATEWAY_ID}.key"

    @property
    def gateway_password_path(self) -> Path:
        return self.directory / "gateway" / f"{STACK_GATEWAY_ID}.password"

    def _ensure_gateway(self, registry: Registry) -> GatewayCredentials | None:
        """Give the stack's kit gateway its account, once: its key signs kits' readings, and
        messages signed with an earlier key would no longer verify. A new account only when
        the registry or the private files lack it. The caller saves the registry."""
        have_files = self.gateway_key_path.is_file() and self.gateway_password_path.is_file()
        if STACK_GATEWAY_ID in registry.gateways and have_files:
            return None
        credentials = add_gateway(registry, STACK_GATEWAY_ID, rotate=True)
        write_private(self.gateway_key_path, credentials.private_key + "\n")
        write_private(self.gateway_password_path, credentials.password + "\n")
        return credentials

    def _gateway_settings(self) -> dict[str, Any]:
        """What the operator set in gateway.toml that is kept (see GATEWAY_KEPT)."""
        path = self.gateway_config_path
        try:
            old = tomllib.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StackError(
                f"{path}: cannot read it ({exc}); correct it or remove it (it is written anew)"
            ) from None
        kept: dict[str, Any] = {k: old[k] for k in GATEWAY_KEPT if k in old}
        http = old.get("http")
        if isinstance(http, dict):
            kept["http"] = {k: http[k] for k in GATEWAY_HTTP_KEPT if k in http}
        return kept

    def _gateway_quarantine(self) -> dict[str, Any]:
        """The stack's quarantine book for the kit gateway, where its configuration has the key
        (a gateway that does not know it would refuse its configuration)."""
        from sensorpipe.gateway.kits.config import GatewayConfig

        if "quarantine_path" not in GatewayConfig.model_fields:
            return {}
        return {"quarantine_path": str(self.quarantine_path)}

    def _write_gateway_config(self, broker_port: int, port: int) -> tuple[Path, str]:
        """gateway/gateway.toml for this run, and the gateway's URL. Its port (`ports.plan`)
        stays that of the last run: kits have it typed in."""
        path = self.gateway_config_path
        kept = self._gateway_settings()
        http: dict[str, Any] = {"bind": "127.0.0.1", **kept.pop("http", {})}
        bind = str(http["bind"])
        http["port"] = port
        config = {
            "gateway_id": STACK_GATEWAY_ID,
            "private_key_file": self.gateway_key_path.name,
            "registry_path": str(self.registry_path),
            # The ingest's store: `sensorpipe ingest rejects` shows kits' rejected posts too.
            "deadletter_path": str(self.directory / "ingest" / "deadletter.sqlite"),
            "seq_path": "kit-seq.sqlite",
            **self._gateway_quarantine(),
            **kept,
            "broker": {
                "host": "127.0.0.1",
                "port": broker_port,
                "password_file": self.gateway_password_path.name,
            },
            "http": http,
        }
        write_private(path, tomli_w.dumps(config))
        scheme = "https" if http.get("tls_cert") else "http"
        return path, f"{scheme}://{_connect_host(bind)}:{port}/"

    def start_gateway(self, *, detach: bool = False) -> None:
        """(Re)start the kit gateway and wait until it answers."""
        info = self._state or self.require_info()
        if self.gateway is None or info.kits_url is None:
            raise StackError("the kit gateway was not set up by this object")
        url = info.kits_url
        if url.startswith("https://"):
            host, port = url.removeprefix("https://").rstrip("/").rsplit(":", 1)

            def ready() -> bool:
                return port_open(int(port), host.strip("[]"))
        else:

            def ready() -> bool:
                return _answers(f"{url}health")

        self.gateway.start(ready, timeout_s=30, detach=detach)

    def kit_setup(self) -> dict[str, Any]:
        """What to type into an airrohr kit's config page to reach this stack's gateway, and
        a note when the kits cannot reach it as it is set up."""
        from sensorpipe.gateway.kits.app import AIRROHR_PATH

        settings = self._gateway_settings().get("http", {})
        bind = str(settings.get("bind", "127.0.0.1"))
        port = settings.get("port")
        info = self.info()
        if info is not None and info.kits_url:
            port = _port_of(info.kits_url)
        note = None
        if is_loopback(bind):
            server = "127.0.0.1"
            note = (
                f"the gateway listens on {bind} only, where no kit can reach it: set "
                f'[http] bind = "0.0.0.0" and allow_plaintext = true (or tls_cert and tls_key) '
                f"in {self.gateway_config_path}, then `sensorpipe stack down` and `stack up`"
            )
        elif bind in ("0.0.0.0", "::"):
            server = _lan_address()
        else:
            server = bind
        if port is None:
            note = "the kit gateway has not run yet: `sensorpipe stack up` starts it"
        return {
            "server": server,
            "path": AIRROHR_PATH,
            "port": port or first_kits_port() or GATEWAY_PORT,
            "https": bool(settings.get("tls_cert")),
            "note": note,
        }

    def _write_serve_config(self, broker_port: int, influx_url: str, api_port: int) -> Path:
        """serve/serve.toml for this run's ports, keeping what an operator set (tokens, tiles)."""
        path = self.directory / "serve" / "serve.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        kept: dict[str, Any] = {}
        try:
            old = tomllib.loads(path.read_text())
            kept = {k: old[k] for k in SERVE_KEPT if k in old}
            for was, now in SERVE_RENAMED.items():
                if was in old and now not in kept:
                    kept[now] = old[was]
        except FileNotFoundError:
            pass
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StackError(
                f"{path}: cannot read it ({exc}); correct it or remove it (it is written anew)"
            ) from None
        config = {
            "host": "127.0.0.1",
            "port": api_port,
            "registry_path": str(self.registry_path),
            "ingest_stats_path": str(self.directory / "ingest" / "stats.json"),
            # A local stack holds little: its figures can be fresh within seconds.
            "register_cache_s": 5.0,
            **kept,
            "influx": {"url": influx_url, "database": DATABASE},
            "broker": {"host": "127.0.0.1", "port": broker_port},
        }
        write_private(path, tomli_w.dumps(config))
        return path

    def _record(self, name: str, pid: int) -> None:
        if self._state is not None:
            self._state.pids[name] = pid
            self._write_state()

    def _write_state(self) -> None:
        if self._state is not None:
            write_private(self.state_path, json.dumps(self._state.as_dict(), indent=2))

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold stack.lock: one `up` or `down` at a time in a directory."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            yield  # no directory: nothing to start, and `down` still finds what runs
            return
        except OSError as exc:
            raise StackError(f"{self.lock_path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another `sensorpipe stack up` or `stack down` is at work on "
                    f"{self.directory}; try again when it has finished"
                ) from None
            yield
        finally:
            os.close(fd)

    def start_ingest(self, *, detach: bool = False) -> None:
        """(Re)start the ingest process and wait until it is subscribed."""
        if self.ingest is None:
            raise StackError("the ingest was not set up by this object")
        stats_path = self.directory / "ingest" / "stats.json"
        stats_path.unlink(missing_ok=True)
        self.ingest.start(lambda: _ingest_connected(stats_path), timeout_s=30, detach=detach)

    def _write_ingest_config(
        self,
        directory: Path,
        broker_port: int,
        influx_url: str,
        password: str,
        metrics_port: int,
        *,
        admin: dict[str, str] | None = None,
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
            # Devices over their quota are quarantined in the stack's book, and their broker
            # accounts disabled with the admin account.
            "quarantine_path": str(self.quarantine_path),
            "keys_path": str(self.keys_path),
            "broker": {
                "host": "127.0.0.1",
                "port": broker_port,
                "username": INGEST_USERNAME,
                "password": password,
            },
            "influx": {"url": influx_url, "database": DATABASE},
            **({"broker_admin": admin} if admin is not None else {}),
        }
        write_private(path, tomli_w.dumps(config))  # holds the broker passwords
        return path

    def down(self) -> list[tuple[str, int]]:
        """Stop every process of this stack, the ingest first (so it can finish its batch):
        those this object started and any other that runs a component's command line (left
        by an interrupted `up`, or started elsewhere). What was stopped: (name, pid)."""
        with self._exclusive():
            self.info()  # a damaged state file ends `down` here with what to do about it
            return self._stop_all()

    def _stop_all(self) -> list[tuple[str, int]]:
        commands = self.commands()
        found = find_processes(commands)
        stopped: list[tuple[str, int]] = []
        for name in reversed(COMPONENTS):
            own = [p for p in self._processes if p.name == name]
            own_pids = {p.pid for p in own}
            for process in own:
                if process.pid is not None and process.running:
                    stopped.append((name, process.pid))
                process.stop()
            for pid in found.get(name, []):
                if pid not in own_pids:
                    stop_pid(pid, argv=commands[name])
                    stopped.append((name, pid))
        self._processes.clear()
        self._state = None
        self.state_path.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, Any]:
        """stack.json's endpoints, whether each component runs (checked, not assumed from
        stack.json), the ingest's counters and its dead-letter store."""
        info = self.info()
        running = self.running()
        if info is None:
            if any(running.values()):
                raise StackError(
                    f"no stack.json in {self.directory}, but its {describe_pids(running)} run: "
                    f"`sensorpipe stack down --dir {self.directory}` stops them"
                )
            info = self.require_info()
        components: dict[str, Any] = {}
        for name in COMPONENTS:
            pids = running.get(name, [])
            if name == "serve" and info.api_port is None and not pids:
                continue  # started without the API (`up(serve=False)`)
            if name == "gateway" and info.kits_url is None and not pids:
                continue  # started without the kit gateway (`up(kits=False)`)
            recorded = info.pids.get(name)
            pid = recorded if recorded in pids or not pids else pids[0]
            components[name] = {"pid": pid, "running": bool(pids)}
        if "gateway" in components:
            components["gateway"]["url"] = info.kits_url
            components["gateway"]["health"] = gateway_health(info.kits_url)
        components["mosquitto"]["port_open"] = port_open(info.broker_port)
        stats_path = self.directory / "ingest" / "stats.json"
        try:
            components["ingest"]["stats"] = json.loads(stats_path.read_text())
        except (FileNotFoundError, ValueError):
            components["ingest"]["stats"] = None
        components["ingest"]["deadletter"] = deadletter_status(
            self.directory / "ingest" / "ingest.toml", components["ingest"]["stats"]
        )
        return {
            **info.as_dict(),
            "components": components,
            "devices": len(self.registry().devices),
            "quarantined": [q.as_dict() for q in self.quarantines().values()],
            "pending_lifts": [p.as_dict() for p in self.pending_lifts().values()],
        }

    def sensor_health(self) -> dict[str, Any]:
        """For `stack status`: the registered devices with a sensor that is not ok, and those
        with no data yet (sensorpipe.query.health); null where InfluxDB does not answer.
        Apart from status(), which stays cheap for those who call it in a loop."""
        info = self.info()
        if info is None:
            return {"sensors_not_ok": None, "no_data_yet": None}
        running = bool(self.running().get("influxd"))
        return sensor_health(info.influx_url, info.database, self.registry(), running=running)

    # --- devices --------------------------------------------------------------------------
    def add_device(self, device_id: str, **fields: Any) -> DeviceCredentials:
        """Register a device (`fields`: site, owner, purpose, sensors, directions, location,
        ..., as gateway.devices.add_device takes them) and reload a running broker."""
        registry = self.registry()
        credentials = add_device(registry, device_id, **fields)
        save_registry(registry, self.registry_path)
        self._reload_broker(registry)
        return credentials

    def add_airrohr_kit(self, *, chip_id: str, site: str, **fields: Any) -> KitCredentials:
        """Register an airrohr kit received by the stack's gateway (`fields`: device_id,
        owner, purpose, sensors, location, ... as provision.add_airrohr_kit takes them)."""
        return self._add_kit(
            lambda registry: add_airrohr_kit(
                registry, chip_id=chip_id, gateway=STACK_GATEWAY_ID, site=site, **fields
            )
        )

    def add_ttn_node(self, *, application: str, ttn_device: str, site: str, **fields: Any) -> str:
        """Register The Things Stack end device `ttn_device` of `application` (`app@tenant`),
        bridged by the stack's gateway (`fields`: device_id, owner, purpose, sensors,
        location, ... as ttn_provision.add_ttn_node takes them). Returns its device id."""
        from sensorpipe.gateway.kits.ttn_provision import add_ttn_node

        return self._add_kit(
            lambda registry: add_ttn_node(
                registry,
                application=application,
                ttn_device=ttn_device,
                gateway=STACK_GATEWAY_ID,
                site=site,
                **fields,
            )
        )

    def _add_kit(self, add: Callable[[Registry], T]) -> T:
        """Register a kit with `add`, vouched for by the stack's gateway (given its account
        first where it has none): reload a running broker (the gateway may now publish for
        the kit), then save the registry, which the gateway re-reads by itself."""
        registry = self.registry()
        self._ensure_gateway(registry)
        registered = add(registry)
        # The broker first: a gateway that saw the kit in the registry before the broker's ACL
        # let it publish for the kit would be acknowledged and its messages dropped unsaid.
        self._reload_broker(registry)
        save_registry(registry, self.registry_path)
        return registered

    def add_gateway(self, gateway_id: str, *, rotate: bool = False) -> GatewayCredentials:
        """Register a further kit gateway (one that runs elsewhere), then reload the broker."""
        registry = self.registry()
        credentials = add_gateway(registry, gateway_id, rotate=rotate)
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
        process = ManagedProcess(name, _ingest_argv(path), directory / "ingest.log")
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
        """Apply `registry` to the running broker (none running: the files are written at the
        next `stack up`): its password file, SIGHUP, then the security plugin brought in line
        with the registry and the quarantine book. StackError when the plugin could not be
        (the registry is saved; the next `stack up` applies it)."""
        brokers = self.running()["mosquitto"]
        if not brokers:
            return
        info = self.info()
        disabled = self.quarantined()
        for pid in brokers:
            try:
                result = reload_pid(
                    pid,
                    self.directory / "broker",
                    registry,
                    disabled,
                    port=None if info is None else info.broker_port,
                )
            except BrokerAdminError as exc:
                raise StackError(
                    f"the registry is saved, but the running broker could not apply it: {exc}; "
                    f"`sensorpipe stack down` and `stack up` apply it"
                ) from None
            if result is not None and STACK_GATEWAY_ID in result.rules_changed:
                self._await_gateway_reconnect(info)

    def _await_gateway_reconnect(self, info: StackInfo | None) -> None:
        """The broker disconnects a client whose rights changed (Mosquitto 2.0's dynamic
        security plugin does so for every change to a role), so the stack's kit gateway, given
        a new kit, reconnects about a second later; a kit posting meanwhile would be answered
        503. Wait (at most GATEWAY_RECONNECT_S) until the gateway says it is connected again."""
        if info is None or not info.kits_url or not self.running()["gateway"]:
            return
        time.sleep(0.2)  # the broker has disconnected it; let the gateway notice
        deadline = time.monotonic() + GATEWAY_RECONNECT_S
        while time.monotonic() < deadline:
            health = gateway_health(info.kits_url)
            if health is None and not info.kits_url.startswith("http://"):
                time.sleep(2.0)  # TLS: no health to read here; paho reconnects after 1 s
                return
            if health and (health.get("broker") or {}).get("connected"):
                return
            time.sleep(0.1)

    # --- quarantine -------------------------------------------------------------------------
    def _book(self) -> QuarantineBook:
        try:
            return QuarantineBook(self.quarantine_path)
        except (OSError, sqlite3.Error) as exc:
            raise StackError(
                f"{self.quarantine_path}: cannot open the quarantine book ({exc})"
            ) from None

    def _read_book(self, read: Callable[[QuarantineBook], dict[str, T]]) -> dict[str, T]:
        """What `read` finds in the quarantine book (nothing when the stack has no book yet)."""
        if not self.quarantine_path.exists():
            return {}
        book = self._book()
        try:
            return read(book)
        finally:
            book.close()

    def quarantines(self) -> dict[str, Quarantine]:
        """The devices quarantined now."""
        return self._read_book(QuarantineBook.active)

    def quarantined(self) -> set[str]:
        return set(self.quarantines())

    def pending_lifts(self) -> dict[str, PendingLift]:
        """Lifts whose broker account the broker has not confirmed enabled yet."""
        return self._read_book(QuarantineBook.pending_lifts)

    def _pending_lifts_applied(self) -> None:
        """The broker just started with the security generated from the book: every account
        not quarantined is enabled, so no lift is pending any more."""
        if not self.quarantine_path.exists():
            return
        book = self._book()
        try:
            for device_id in book.pending_lifts():
                book.lift_done(device_id, by="stack up", detail="broker started with it enabled")
        finally:
            book.close()

    def quarantine(
        self, device_id: str, *, detail: str = "", by: str = "operator"
    ) -> tuple[Quarantine, bool | None]:
        """Quarantine a registered device by hand (reason `manual`) and, where the stack's
        broker runs, disable its broker account now. Returns the quarantine and whether the
        broker account was disabled (None: no broker runs, or the device has no broker
        account). StackError for an unknown device or one already quarantined (with since
        when and why)."""
        registry = self.registry()
        if device_id not in registry.devices:
            raise StackError(self.unknown_device(registry, device_id))
        book = self._book()
        try:
            if not book.quarantine(device_id, reason="manual", detail=detail, by=by):
                q = book.active()[device_id]
                raise StackError(
                    f"{device_id} is already quarantined (since {_when(q.since)}, {q.reason}"
                    f"{': ' + q.detail if q.detail else ''}, by {q.by})"
                )
            entry = book.active()[device_id]
        finally:
            book.close()
        return entry, self._broker_account(device_id, enable=False)

    def lift(self, device_id: str, *, by: str = "operator") -> tuple[Quarantine, bool | None]:
        """End a device's quarantine: the book first (the kit gateway and the ingest let it in
        within a second), then its broker account, enabled where the stack's broker runs.
        Returns the quarantine lifted and whether the broker account was enabled (None: no
        broker runs, or the device has no broker account). StackError for an unknown device
        or one not quarantined (a device removed from the registry can still be lifted).

        Until the broker confirms, the lift is pending in the book: a broker that cannot be
        reached leaves it pending (StackError says so), shown by `stack status`, retried by
        the ingest, by calling this again, and applied by `stack up`."""
        if self.quarantine_path.exists():
            book = self._book()
            try:
                entry = book.lift(device_id, by=by)
                if entry is None:
                    pending = book.pending_lifts().get(device_id)
                    if pending is not None:
                        entry = pending_entry(pending)
                if entry is not None:
                    return self._finish_lift(book, entry, by)
            finally:
                book.close()
        registry = self.registry()
        if device_id not in registry.devices:
            raise StackError(self.unknown_device(registry, device_id))
        raise StackError(f"{device_id} is not quarantined: nothing to lift")

    def _finish_lift(
        self, book: QuarantineBook, entry: Quarantine, by: str
    ) -> tuple[Quarantine, bool | None]:
        """Enable the lifted device's broker account; the book's pending lift ends only once
        the broker confirmed it (or there is no broker or account to enable)."""
        device_id = entry.device_id
        try:
            enabled = self._broker_account(device_id, enable=True)
        except StackError as exc:
            book.lift_failed(device_id, _cause(exc))
            raise StackError(
                f"the quarantine of {device_id} is lifted in the book, but its broker account "
                f"is still disabled: the broker could not enable it ({_cause(exc)}); the lift "
                f"stays pending: the ingest retries it every {LIFT_RETRY_S:g} s, `sensorpipe "
                f"devices lift {device_id}` tries again now, `stack up` applies it, and "
                f"`sensorpipe stack status` shows it until then"
            ) from None
        book.lift_done(device_id, by=by, enabled=bool(enabled))
        return entry, enabled

    def _broker_account(self, device_id: str, *, enable: bool) -> bool | None:
        """Enable or disable `device_id` at the running broker: True when done, None when no
        broker runs or the device has no broker account (a kit)."""
        info = self.info()
        if info is None or not self.running()["mosquitto"]:
            return None
        try:
            credentials = admin_credentials(self.directory / "broker", create=False)
            with BrokerAdmin("127.0.0.1", info.broker_port, credentials) as admin:
                done = admin.enable(device_id) if enable else admin.disable(device_id)
        except BrokerAdminError as exc:
            action = "enable" if enable else "disable"
            raise StackError(
                f"the quarantine book is updated, but the broker could not {action} "
                f"{device_id}: {exc}; `sensorpipe stack down` and `stack up` apply the book"
            ) from exc
        return True if done else None

    def unknown_device(self, registry: Registry, device_id: str) -> str:
        """Why `device_id` is not found, naming the registry looked in and the nearest id."""
        import difflib

        close = difflib.get_close_matches(device_id, list(registry.devices), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        elsewhere = "" if self.registry_path.exists() else " (there is none: give --dir)"
        return (
            f"{device_id}: no such device in the registry {self.registry_path}{elsewhere}{hint}; "
            f"`sensorpipe devices list --dir {self.directory}` lists them"
        )


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


def _ingest_connected(stats_path: Path) -> bool:
    try:
        return bool(json.loads(stats_path.read_text()).get("connected"))
    except (FileNotFoundError, ValueError):
        return False


def _gateway_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "gateway", "run", "--config", str(config)]


def _connect_host(bind: str) -> str:
    """Where this machine reaches a service listening on `bind`."""
    if bind == "0.0.0.0":
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


def _lan_address() -> str:
    """This machine's address on its network (the one its default route leaves from; no
    packet is sent), or its host name."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostname()
    finally:
        probe.close()


def _serve_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "serve", "--config", str(config)]


def _answers(url: str) -> bool:
    """Whether the HTTP service answers at `url` (whatever it says: 503 is an answer too)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _port_of(url: str | None) -> int | None:
    if not url:
        return None
    return int(url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1])


def _ingest_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "ingest", "run", "--config", str(config)]


def pending_entry(p: PendingLift) -> Quarantine:
    """A pending lift as the quarantine it ended (what `lift` answers with)."""
    return Quarantine(p.device_id, p.lifted_at, p.reason, "", p.by)


def _cause(exc: StackError) -> str:
    """The broker's own words for a failed admin call, else the whole message."""
    cause = exc.__cause__
    return str(cause) if cause is not None else str(exc)


def _when(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


def describe_pids(running: dict[str, list[int]]) -> str:
    """`influxd pid 12, mosquitto pids 13, 14` for the components that run."""
    return ", ".join(
        f"{name} pid{'s' if len(pids) > 1 else ''} {', '.join(map(str, pids))}"
        for name, pids in running.items()
        if pids
    )


def default_directory() -> Path:
    """$SENSORPIPE_DIR, or ./.sensorpipe when it is unset or empty (an empty value must not
    make the current directory the stack directory)."""
    return Path(os.environ.get("SENSORPIPE_DIR") or ".sensorpipe")
