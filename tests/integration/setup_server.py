"""A server as `sensorpipe server setup --root` writes it, run the way its units would run it:
Mosquitto from the written conf.d (included by a main configuration like Debian's), and the
units' ExecStart lines as processes. For the tests of a Pi joining a lasting server, from the
checkout (tests/integration/test_pi_on_a_network.py) and from an installed wheel
(tests/integration/test_installed_wheel.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.process import ManagedProcess, free_ports, port_open

PORT_NAMES = ("broker", "broker-tls", "kits", "api", "metrics")


def exec_start(unit: Path) -> list[str]:
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError(f"{unit}: no ExecStart")


@dataclass
class SetupServer:
    work: Path  # the test's directory: the root prefix, logs and Mosquitto's data go here
    command: list[str]  # how `sensorpipe` is run: the checkout's, or an installed one
    public_host: str
    influx_url: str
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.root = self.work / "root"
        self.etc = self.root / "etc" / "sensorpipe"
        logs = self.work / "logs"
        data = self.work / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        main_conf = self.work / "mosquitto.conf"  # as Debian's: persistence, then conf.d
        conf_d = self.root / "etc" / "mosquitto" / "conf.d"
        main_conf.write_text(
            f"persistence true\npersistence_location {data}/\ninclude_dir {conf_d}\n"
        )
        broker = [mosquitto_binary(), "-c", str(main_conf)]
        self.broker = ManagedProcess("mosquitto", broker, logs / "m")
        self.ingest: ManagedProcess | None = None
        self.gateway: ManagedProcess | None = None
        self.serve: ManagedProcess | None = None
        self.logs = logs

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout
        )

    def setup(self) -> subprocess.CompletedProcess[str]:
        """`server setup` with this server's ports; run again after `devices add`, as the
        docs say. The first run also makes the database, with the command it prints."""
        args = ["server", "setup", "--root", str(self.root), "--public-host", self.public_host]
        args += ["--influx-url", self.influx_url]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        done = self.cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        (create,) = [line.strip() for line in done.stdout.splitlines() if "CREATE DATABASE" in line]
        made = subprocess.run(create, shell=True, capture_output=True, text=True, timeout=30)
        assert made.returncode == 0 and '"error"' not in made.stdout, made.stdout + made.stderr
        return done

    def add_device(self, device_id: str, *options: str) -> dict[str, Any]:
        added = self.cli("devices", "add", "--dir", str(self.etc), device_id, *options, "--json")
        assert added.returncode == 0, added.stderr
        out: dict[str, Any] = json.loads(added.stdout)
        return out

    def unit(self, name: str) -> list[str]:
        return exec_start(self.root / "etc" / "systemd" / "system" / f"sensorpipe-{name}.service")

    def start(self, *, serve: bool = False, gateway: bool = False) -> None:
        """The broker, the ingest (until it is connected) and, with `serve` and `gateway`,
        the API and the kit gateway."""
        self.broker.start(
            lambda: port_open(self.ports["broker-tls"], self.public_host), timeout_s=15
        )
        stats = self.root / "var" / "lib" / "sensorpipe" / "ingest-stats.json"
        stats.unlink(missing_ok=True)
        self.ingest = self.ingest or ManagedProcess("ingest", self.unit("ingest"), self.logs / "i")
        self.ingest.start(lambda: stats.exists() and '"connected": true' in stats.read_text())
        if gateway:
            kits = ManagedProcess("kits", self.unit("gateway"), self.logs / "k")
            self.gateway = self.gateway or kits
            self.gateway.start(lambda: port_open(self.ports["kits"], "127.0.0.1"), timeout_s=30)
        if serve:
            self.serve = self.serve or ManagedProcess("serve", self.unit("serve"), self.logs / "s")
            self.serve.start(lambda: port_open(self.ports["api"], "127.0.0.1"), timeout_s=30)

    def stop(self) -> None:
        for process in (self.serve, self.gateway, self.ingest, self.broker):
            if process is not None:
                process.stop()
