"""Registering devices, kits, gateways, readers and ingest workers with the local stack: saved
in its registry, and applied to its running broker without a restart.

`reload_broker` brings a running broker in line (password file, SIGHUP, the security plugin
made to match the registry and the quarantine book); with no broker running, the next
`stack up` writes its files from the registry. A broker that cannot apply a change is a
StackError saying that `stack down` and `stack up` apply it.

A kit is vouched for by the stack's kit gateway, which is given its account first where it has
none, and the broker learns of the kit before the registry is saved: the gateway re-reads the
registry by itself, and one that saw the kit before the broker let it publish for the kit
would have its messages acknowledged and dropped unsaid. A kit the running broker could not
take is therefore not saved. A change to the gateway's rights
makes the broker disconnect it; registering waits (at most GATEWAY_RECONNECT_S) until it is
connected again, so a kit that posts right after being added is not answered 503.

A collaborator that `LocalStack` holds (`stack.registrar`); it reaches the registry, the
running processes and the quarantine book through the stack. LocalStack's `add_*` methods and
`shared_group` hand over to it.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from sensorpipe.gateway.broker import reload_pid
from sensorpipe.gateway.brokeradmin import BrokerAdminError
from sensorpipe.gateway.devices import (
    DeviceCredentials,
    add_alert_subscriber,
    add_device,
    add_reader,
    remove_alert_subscriber,
)
from sensorpipe.gateway.kits.provision import (
    GatewayCredentials,
    KitCredentials,
    add_airrohr_kit,
    add_gateway,
)
from sensorpipe.ingest.config import new_shared_group
from sensorpipe.process import ManagedProcess
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import Registry, save_registry
from sensorpipe.stack.configs import ingest_argv, ingest_connected
from sensorpipe.stack.errors import StackError
from sensorpipe.stack.kitgateway import STACK_GATEWAY_ID
from sensorpipe.stack.state import RunningStack, StackInfo
from sensorpipe.stack.status import gateway_health

T = TypeVar("T")
# How long a registry change waits for the stack's kit gateway to reconnect to the broker.
GATEWAY_RECONNECT_S = 15.0


@dataclass
class IngestWorker:
    """A further ingest process of the stack (`LocalStack.add_worker`), with its own
    dead-letter store and stats in `directory`."""

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
        self.process.start(lambda: ingest_connected(self.stats_path), timeout_s=30)

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


class StackRegistrar:
    """What `stack` registers, saved in its registry and applied to its running broker."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack

    def _register(self, add: Callable[[Registry], T]) -> T:
        """Register with `add`, save the registry, then bring a running broker in line."""
        registry = self.stack.registry()
        registered = add(registry)
        save_registry(registry, self.stack.registry_path)
        self.reload_broker(registry)
        return registered

    def add_device(self, device_id: str, **fields: Any) -> DeviceCredentials:
        """Register a device (`fields` as gateway.devices.add_device takes them)."""
        return self._register(lambda registry: add_device(registry, device_id, **fields))

    def add_devices(self, specs: list[tuple[str, dict[str, Any]]]) -> list[DeviceCredentials]:
        """Register several devices, (device_id, fields) each, with one broker reload."""
        return self._register(
            lambda registry: [add_device(registry, device_id, **f) for device_id, f in specs]
        )

    def add_gateway(self, gateway_id: str, *, rotate: bool = False) -> GatewayCredentials:
        """Register a further kit gateway (one that runs elsewhere)."""
        return self._register(lambda registry: add_gateway(registry, gateway_id, rotate=rotate))

    def add_reader(self, username: str) -> str:
        """An account that reads every device's messages; its password."""
        return self._register(lambda registry: add_reader(registry, username))

    def add_alert_subscriber(self, username: str, *, rotate: bool = True) -> str:
        """An account that may only read the crowding alerts; its password."""
        return self._register(
            lambda registry: add_alert_subscriber(registry, username, rotate=rotate)
        )

    def remove_alert_subscriber(self, username: str) -> None:
        """Remove an alert subscriber's account (a running broker lets it in no more)."""
        self._register(lambda registry: remove_alert_subscriber(registry, username))

    def add_airrohr_kit(self, *, chip_id: str, site: str, **fields: Any) -> KitCredentials:
        """Register an airrohr kit received by the stack's gateway (`fields` as
        provision.add_airrohr_kit takes them)."""
        return self.add_kit(
            lambda registry: add_airrohr_kit(
                registry, chip_id=chip_id, gateway=STACK_GATEWAY_ID, site=site, **fields
            )
        )

    def add_ttn_node(self, *, application: str, ttn_device: str, site: str, **fields: Any) -> str:
        """Register The Things Stack end device `ttn_device` of `application` (`app@tenant`),
        bridged by the stack's gateway (`fields` as ttn_provision.add_ttn_node takes them).
        Returns its device id."""
        from sensorpipe.gateway.kits.ttn_provision import add_ttn_node

        return self.add_kit(
            lambda registry: add_ttn_node(
                registry,
                application=application,
                ttn_device=ttn_device,
                gateway=STACK_GATEWAY_ID,
                site=site,
                **fields,
            )
        )

    def add_kit(self, add: Callable[[Registry], T]) -> T:
        """Register a kit with `add`, vouched for by the stack's gateway: the broker first,
        then the registry (see the module's docstring)."""
        registry = self.stack.registry()
        self.stack.kit_gateway.ensure_account(registry)
        registered = add(registry)
        self.reload_broker(registry, saved=False)
        save_registry(registry, self.stack.registry_path)
        return registered

    def add_worker(self, name: str, *, group: str | None = None) -> IngestWorker:
        """A further ingest process on the shared subscription `$share/<group>/...`, with a
        broker account of its own (the broker ties client ids to user names) and its own
        dead-letter store and stats; not started. The group is the stack's own random one
        (`shared_group`) unless given. The stack's own ingest reads unshared: stop it
        (`stack.ingest.stop()`) when workers are to split the stream."""
        directory = self.stack.directory
        group = group or self.shared_group()
        base = tomllib.loads((directory / "ingest" / "ingest.toml").read_text())
        password = self.add_reader(name)
        worker_dir = directory / name
        worker_dir.mkdir(exist_ok=True)
        config = {
            **base,
            "stats_path": str(worker_dir / "stats.json"),
            "deadletter_path": str(worker_dir / "deadletter.sqlite"),
            "broker": {
                **base["broker"],
                "username": name,
                "password": password,
                "shared_group": group,
            },
        }
        config.pop("metrics_port", None)
        path = worker_dir / "ingest.toml"
        write_private(path, tomli_w.dumps(config))
        process = ManagedProcess(name, ingest_argv(path), worker_dir / "ingest.log")
        return IngestWorker(process, worker_dir)

    def shared_group(self) -> str:
        """The workers' group name, made once per stack at random: devices cannot guess it."""
        path = self.stack.directory / "ingest" / "shared_group"
        if not path.exists():
            write_private(path, new_shared_group() + "\n")
        return path.read_text().strip()

    def reload_broker(self, registry: Registry, *, saved: bool = True) -> None:
        """Apply `registry` to the running broker (none running: the files are written at the
        next `stack up`). StackError when the security plugin could not be brought in line;
        its message says whether the registry was `saved` before (the next `stack up` applies
        it) or not (a kit: nothing was registered, add it again once the broker runs anew)."""
        brokers = self.stack.running()["mosquitto"]
        if not brokers:
            return
        info = self.stack.info()
        disabled = self.stack.quarantined()
        for pid in brokers:
            try:
                result = reload_pid(
                    pid,
                    self.stack.directory / "broker",
                    registry,
                    disabled,
                    port=None if info is None else info.broker_port,
                )
            except BrokerAdminError as exc:
                if not saved:
                    raise StackError(
                        f"nothing was registered: the running broker could not take it: {exc}; "
                        f"run `sensorpipe stack down` and `stack up`, then add it again"
                    ) from None
                raise StackError(
                    f"the registry is saved, but the running broker could not apply it: {exc}; "
                    f"`sensorpipe stack down` and `stack up` apply it"
                ) from None
            if result is not None and STACK_GATEWAY_ID in result.rules_changed:
                self._await_gateway_reconnect(info)

    def _await_gateway_reconnect(self, info: StackInfo | None) -> None:
        """The broker disconnects a client whose rights changed (Mosquitto 2.0's dynamic
        security plugin does so for every change to a role), so the stack's kit gateway, given
        a new kit, reconnects about a second later. Wait (at most GATEWAY_RECONNECT_S) until
        the gateway says it is connected again."""
        if info is None or not info.kits_url or not self.stack.running()["gateway"]:
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
