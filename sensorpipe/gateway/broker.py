"""Mosquitto as a managed child process, configured from the device registry.

A registry change reaches a running broker in two steps: the password file is written again
and the broker re-reads it on SIGHUP (who may log in), then the dynamic security plugin is
brought in line over its control topic (gateway.brokeradmin: what each account may do, who is
disabled), as the plugin does not re-read its file. Quarantined accounts stay disabled across
both steps and across a restart: the plugin's file is written with them disabled.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from sensorpipe.gateway.brokeradmin import (
    AdminCredentials,
    BrokerAdmin,
    SyncResult,
    admin_credentials,
)
from sensorpipe.gateway.mosquitto import (
    MAX_QUEUED_MESSAGES,
    BrokerFiles,
    broker_files,
    uses_dynsec,
    write_broker_files,
    write_security_files,
)
from sensorpipe.process import ManagedProcess, port_open
from sensorpipe.protocol.registry import Registry

# Mosquitto applies SIGHUP on its next loop iteration.
SIGHUP_SETTLE_S = 0.2


def mosquitto_binary() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    def __init__(
        self,
        directory: Path,
        registry: Registry,
        *,
        port: int,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        disabled: Iterable[str] = (),
    ) -> None:
        """Write the broker's files (`disabled`: quarantined accounts, refused at connect)."""
        self.directory = directory
        self.port = port
        directory.mkdir(parents=True, exist_ok=True)
        self.admin: AdminCredentials = admin_credentials(directory)
        self.files: BrokerFiles = write_broker_files(
            directory,
            registry,
            port=port,
            max_queued_messages=max_queued_messages,
            admin=self.admin,
            disabled=frozenset(disabled),
        )
        self.process = ManagedProcess(
            "mosquitto",
            [mosquitto_binary(), "-c", str(self.files.config)],
            directory / "mosquitto.log",
        )

    def start(self, *, detach: bool = False) -> None:
        self.process.start(lambda: port_open(self.port), timeout_s=15, detach=detach)

    def stop(self) -> None:
        self.process.stop()

    def admin_client(self, *, timeout_s: float = 10.0) -> BrokerAdmin:
        return BrokerAdmin("127.0.0.1", self.port, self.admin, timeout_s=timeout_s)

    def reload(self, registry: Registry, disabled: Iterable[str] = ()) -> SyncResult | None:
        """New devices or revoked ones: rewrite the password file, SIGHUP, and bring the
        plugin in line (None where the broker has no plugin: the acl_file is rewritten)."""
        if self.process.pid is None:
            write_security_files(self.files, registry, admin=self.admin, disabled=set(disabled))
            return None
        return reload_pid(self.process.pid, self.directory, registry, disabled, port=self.port)


def reload_pid(
    pid: int,
    directory: Path,
    registry: Registry,
    disabled: Iterable[str] = (),
    *,
    port: int | None = None,
) -> SyncResult | None:
    """Apply the registry to a broker started by another process (the stack) from its pid:
    the password file and SIGHUP, then (with the plugin, and `port` to reach it) `sync`.
    BrokerAdminError if the plugin could not be brought in line."""
    disabled = set(disabled)
    dynsec = uses_dynsec(directory / "mosquitto.conf")
    files = broker_files(directory, dynsec=dynsec)
    admin = admin_credentials(directory, create=False) if dynsec else None
    # The plugin owns its file while the broker runs: only the password file is written.
    write_security_files(files, registry, admin=admin, disabled=disabled, rules=not dynsec)
    os.kill(pid, signal.SIGHUP)
    time.sleep(SIGHUP_SETTLE_S)
    if admin is None or port is None:
        return None
    with BrokerAdmin("127.0.0.1", port, admin) as client:
        return client.sync(registry, disabled)
