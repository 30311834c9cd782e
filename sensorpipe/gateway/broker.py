"""Mosquitto as a managed child process, configured from the device registry."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from sensorpipe.gateway.mosquitto import (
    MAX_QUEUED_MESSAGES,
    BrokerFiles,
    write_broker_files,
    write_security_files,
)
from sensorpipe.protocol.registry import Registry
from sensorpipe.stack.process import ManagedProcess, port_open


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
    ) -> None:
        self.directory = directory
        self.port = port
        self.files: BrokerFiles = write_broker_files(
            directory, registry, port=port, max_queued_messages=max_queued_messages
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

    def reload(self, registry: Registry) -> None:
        """New devices or revoked ones: rewrite password file and ACL, then SIGHUP."""
        write_security_files(self.files, registry)
        if self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGHUP)


def reload_pid(pid: int, directory: Path, registry: Registry) -> None:
    """Reload a broker started by another process (the stack) from its pid."""
    files = BrokerFiles(
        config=directory / "mosquitto.conf",
        passwords=directory / "passwd",
        acl=directory / "acl",
        data_dir=directory / "data",
    )
    write_security_files(files, registry)
    os.kill(pid, signal.SIGHUP)
