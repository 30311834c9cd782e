"""`sensorpipe stack up|status|down`: Mosquitto, influxd, the ingest, the kit gateway and the
HTTP service on loopback ports, started and stopped as one, under one directory.

A process counts as one of the stack's components only while its command line names that
component's configuration file in this directory: process ids in stack.json are written down
as each process starts, but never trusted or signalled unchecked (after a reboot they may
belong to anything). `stack up` and `stack down` hold stack.lock while they work, so two of
them cannot start two brokers on one directory. A `stack up` that ends early for any reason
stops what it had started and removes stack.json.

Everything lives under the directory (default ./.sensorpipe): the registry, the broker's files
and persistence, InfluxDB's data, the ingest's dead letters and stats, the quarantine book
(quarantine.sqlite, shared by the ingest, the kit gateway and `sensorpipe devices
quarantine|lift`), logs, and stack.json with the endpoints and process ids. A quarantined
device stays quarantined across `stack down` and `stack up`: the broker's security is
generated with its account disabled.

This module runs the processes and reads their state; the rest is in collaborators, each with
one job: `ports` (addresses kept from run to run), `kitgateway` (the kit gateway's account and
configuration), `configs` (the ingest's and the API's configuration and command lines),
`registration` (devices, kits, gateways, readers and workers, applied to a running broker) and
`quarantine` (the book and the broker's accounts); `state` holds stack.json's record
(StackInfo) and `RunningStack`, the little of this class the last two use.

LocalStack keeps its public methods as thin hand-overs to the collaborators rather than
exposing them alone: the command line, the benchmarks and the tests call `stack.add_device`
or `stack.lift` on the one object that knows the directory, and need not know which module
does what. The collaborators stay reachable (`kit_gateway`, `registrar`, `quarantining`) for
the few callers that need more.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensorpipe.gateway.broker import Broker
from sensorpipe.gateway.brokeradmin import BrokerAdminError
from sensorpipe.gateway.devices import (
    DeviceCredentials,
    ProvisioningError,
    set_ingest_account,
)
from sensorpipe.gateway.kits.provision import GatewayCredentials, KitCredentials
from sensorpipe.gateway.mosquitto import MAX_QUEUED_MESSAGES
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import ManagedProcess, find_processes, port_open, stop_pid
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.quarantine import PendingLift, Quarantine
from sensorpipe.protocol.registry import Registry, load_registry, save_registry
from sensorpipe.stack.configs import (
    DATABASE,
    ingest_argv,
    ingest_connected,
    serve_argv,
    write_ingest_config,
    write_serve_config,
)
from sensorpipe.stack.configs import SERVE_KEPT as SERVE_KEPT  # callers import it from here
from sensorpipe.stack.errors import StackError
from sensorpipe.stack.kitgateway import STACK_GATEWAY_ID as STACK_GATEWAY_ID  # as SERVE_KEPT
from sensorpipe.stack.kitgateway import StackGateway, gateway_answers, gateway_argv
from sensorpipe.stack.ports import StackPorts, answers, fresh_ports
from sensorpipe.stack.quarantine import StackQuarantine
from sensorpipe.stack.registration import IngestWorker, StackRegistrar
from sensorpipe.stack.state import StackInfo
from sensorpipe.stack.status import deadletter_status, gateway_health, sensor_health

# The order the components start in; they stop in the reverse order (the ingest after the
# gateway, so it can finish its batch with what the gateway published last).
COMPONENTS = ("influxd", "mosquitto", "ingest", "gateway", "serve")
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
    """The stack in `directory`: its processes, its state (stack.json, stack.lock) and, through
    its collaborators, its configuration, registrations and quarantines."""

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
        # The calibration book (`sensorpipe calibrate`), beside the quarantine book.
        self.calibration_path = state / "calibrations.sqlite"
        # The forecast models `crowd train` saves, beside the stack's data (a server's state).
        self.models_path = state / "forecast"
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
        # Its collaborators, each with one job (see their modules' docstrings).
        self.kit_gateway = StackGateway(self.directory, self.registry_path, self.quarantine_path)
        self.quarantining = StackQuarantine(self)
        self.registrar = StackRegistrar(self)

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
        if endpoint is None and self.registry_path.exists():
            self.require_info()  # set up before and stopped: says so
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
            if self.registry_path.exists():  # set up before, stopped (`stack down` keeps data)
                raise StackError(
                    f"the stack in {self.directory} is stopped (its data and devices are kept): "
                    f"start it with `sensorpipe stack up --dir {self.directory}`"
                )
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
            "ingest": ingest_argv(self.directory / "ingest" / "ingest.toml"),
            "gateway": gateway_argv(self.gateway_config_path),
            "serve": serve_argv(self.directory / "serve" / "serve.toml"),
        }

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
                self.quarantining.applied_at_start()
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
                    api.start(lambda: answers(url), timeout_s=30, detach=detach)
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
                self.kit_gateway.ensure_account(registry)
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
            ingest_config = write_ingest_config(
                ingest_dir,
                registry_path=self.registry_path,
                quarantine_path=self.quarantine_path,
                keys_path=self.keys_path,
                broker_port=broker_port,
                influx_url=influxd.url,
                password=ingest_password,
                metrics_port=metrics_port,
                admin={"username": broker.admin.username, "password": broker.admin.password},
                calibration_path=self.calibration_path,
                models_path=self.models_path,
            )
        except OSError as exc:
            raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
        except BrokerAdminError as exc:
            raise StackError(str(exc)) from None
        ingest = ManagedProcess("ingest", ingest_argv(ingest_config), ingest_dir / "ingest.log")
        api = None
        if serve:
            try:
                serve_config = self._write_serve_config(broker_port, influxd.url, api_port)
            except OSError as exc:
                raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
            api = ManagedProcess(
                "serve", serve_argv(serve_config), serve_config.parent / "serve.log"
            )
        gateway = None
        kits_url = None
        if kits:
            try:
                gateway_config, kits_url = self.kit_gateway.write_config(broker_port, ports["kits"])
            except OSError as exc:
                raise StackError(f"cannot prepare the stack in {self.directory}: {exc}") from None
            gateway = ManagedProcess(
                "gateway", gateway_argv(gateway_config), gateway_config.parent / "gateway.log"
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
            gateway_http=self.kit_gateway.settings().get("http", {}),
        )

    @property
    def ports_path(self) -> Path:
        return self.ports.path

    # --- the kit gateway (stack.kitgateway) ---------------------------------------------------
    @property
    def gateway_config_path(self) -> Path:
        return self.kit_gateway.config_path

    def start_gateway(self, *, detach: bool = False) -> None:
        """(Re)start the kit gateway and wait until it answers."""
        info = self._state or self.require_info()
        if self.gateway is None or info.kits_url is None:
            raise StackError("the kit gateway was not set up by this object")
        url = info.kits_url
        self.gateway.start(lambda: gateway_answers(url), timeout_s=30, detach=detach)

    def kit_setup(self) -> dict[str, Any]:
        """What to type into an airrohr kit's config page to reach this stack's gateway, and
        a note when the kits cannot reach it as it is set up."""
        info = self.info()
        return self.kit_gateway.kit_setup(None if info is None else info.kits_url)

    # --- the ingest and the API's configuration (stack.configs) -------------------------------
    def start_ingest(self, *, detach: bool = False) -> None:
        """(Re)start the ingest process and wait until it is subscribed."""
        if self.ingest is None:
            raise StackError("the ingest was not set up by this object")
        stats_path = self.directory / "ingest" / "stats.json"
        stats_path.unlink(missing_ok=True)
        self.ingest.start(lambda: ingest_connected(stats_path), timeout_s=30, detach=detach)

    def _write_serve_config(self, broker_port: int, influx_url: str, api_port: int) -> Path:
        """serve/serve.toml for this run's ports, keeping what an operator set (tokens, tiles)."""
        return write_serve_config(
            self.directory / "serve" / "serve.toml",
            registry_path=self.registry_path,
            ingest_stats_path=self.directory / "ingest" / "stats.json",
            calibration_path=self.calibration_path,
            models_path=self.models_path,
            broker_port=broker_port,
            influx_url=influx_url,
            api_port=api_port,
        )

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

    # --- registering (stack.registration) ----------------------------------------------------
    def add_device(self, device_id: str, **fields: Any) -> DeviceCredentials:
        """Register a device (`fields`: site, owner, purpose, sensors, directions, location,
        ..., as gateway.devices.add_device takes them) and reload a running broker."""
        return self.registrar.add_device(device_id, **fields)

    def add_devices(self, specs: list[tuple[str, dict[str, Any]]]) -> list[DeviceCredentials]:
        return self.registrar.add_devices(specs)

    def add_airrohr_kit(self, *, chip_id: str, site: str, **fields: Any) -> KitCredentials:
        """Register an airrohr kit received by the stack's gateway (`fields`: device_id,
        owner, purpose, sensors, location, ... as provision.add_airrohr_kit takes them)."""
        return self.registrar.add_airrohr_kit(chip_id=chip_id, site=site, **fields)

    def add_ttn_node(self, *, application: str, ttn_device: str, site: str, **fields: Any) -> str:
        """Register The Things Stack end device `ttn_device` of `application` (`app@tenant`),
        bridged by the stack's gateway. Returns its device id."""
        return self.registrar.add_ttn_node(
            application=application, ttn_device=ttn_device, site=site, **fields
        )

    def add_gateway(self, gateway_id: str, *, rotate: bool = False) -> GatewayCredentials:
        """Register a further kit gateway (one that runs elsewhere), then reload the broker."""
        return self.registrar.add_gateway(gateway_id, rotate=rotate)

    def add_reader(self, username: str) -> str:
        """An account that reads every device's messages (an extra ingest worker, an auditor)."""
        return self.registrar.add_reader(username)

    def add_alert_subscriber(self, username: str, *, rotate: bool = True) -> str:
        """An account that may only read the crowding alerts (sensorpipe/alerts/v1/#); its
        password (`rotate` False: one that exists is refused, not given a new one)."""
        return self.registrar.add_alert_subscriber(username, rotate=rotate)

    def remove_alert_subscriber(self, username: str) -> None:
        """Remove an alert subscriber's account, from the registry and a running broker."""
        self.registrar.remove_alert_subscriber(username)

    def add_worker(self, name: str, *, group: str | None = None) -> IngestWorker:
        """A further ingest process on the stack's shared subscription; not started (see
        StackRegistrar.add_worker)."""
        return self.registrar.add_worker(name, group=group)

    def shared_group(self) -> str:
        """The workers' group name, made once per stack at random: devices cannot guess it."""
        return self.registrar.shared_group()

    # --- quarantine (stack.quarantine) ------------------------------------------------------
    def quarantines(self) -> dict[str, Quarantine]:
        """The devices quarantined now."""
        return self.quarantining.active()

    def quarantined(self) -> set[str]:
        return set(self.quarantining.active())

    def pending_lifts(self) -> dict[str, PendingLift]:
        """Lifts whose broker account the broker has not confirmed enabled yet."""
        return self.quarantining.pending_lifts()

    def quarantine(
        self, device_id: str, *, detail: str = "", by: str = "operator"
    ) -> tuple[Quarantine, bool | None]:
        """Quarantine a device by hand and disable its account at a running broker (see
        StackQuarantine.quarantine)."""
        return self.quarantining.quarantine(device_id, detail=detail, by=by)

    def lift(self, device_id: str, *, by: str = "operator") -> tuple[Quarantine, bool | None]:
        """End a device's quarantine, in the book and at a running broker (see
        StackQuarantine.lift)."""
        return self.quarantining.lift(device_id, by=by)

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
