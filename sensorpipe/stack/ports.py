"""The local stack's addresses, kept from run to run.

Edge devices, kits and bookmarks have the stack's ports typed in, so `stack up` chooses each
port once and keeps it: the broker's, the API's and the metrics' in ports.json, the kit
gateway's in its gateway.toml (`[http] port`, where its operator sets it). A kept port that
something else holds is an error naming the holder, never a silent move. New ports come from
below the kernel's ephemeral range, where outgoing connections never take them. `port_of`
reads a port back from a component's URL, `answers` whether an HTTP service answers there.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorpipe.process import describe_holder, free_ports
from sensorpipe.stack.errors import StackError

# The stack's addresses, kept from run to run (ports.json; the kit gateway's in its
# gateway.toml): what each is, and who has it typed in.
PORTS_FILE = "ports.json"
PORT_ROLES = {
    "mqtt": ("the MQTT broker's", "every edge device (edge.toml [mqtt] port)"),
    "api": ("the dashboard's and API's", "whoever bookmarked the dashboard or calls the API"),
    "metrics": ("the ingest's metrics", "your metrics scraper"),
    "kits": ("the kit gateway's", "every airrohr kit (its config page)"),
}
GATEWAY_PORT = 8090  # the kit gateway's, where it is free
# Another first choice for the kit gateway's port of a new stack (0: any free port): for a
# second stack on one machine, and the test suite's workers, whose stacks come up at once.
KITS_PORT_ENV = "SENSORPIPE_KITS_PORT"


def first_kits_port() -> int | None:
    """The kit gateway's port to try first on a new stack: 8090, or SENSORPIPE_KITS_PORT
    (None for 0 or a value that is no port: any free port)."""
    value = os.environ.get(KITS_PORT_ENV, "").strip()
    if not value:
        return GATEWAY_PORT
    return int(value) if value.isdigit() and 1 <= int(value) <= 65535 else None


@dataclass
class StackPorts:
    """The ports of the stack in `directory`. `gateway_config`: the kit gateway's gateway.toml,
    `gateway_http` its [http] section (bind address and port, where set); `serve_config`: the
    API's serve.toml (a stack from before ports.json kept the API's port there)."""

    directory: Path
    gateway_config: Path
    serve_config: Path
    gateway_http: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / PORTS_FILE

    def kept(self) -> dict[str, int]:
        """The ports recorded by earlier runs: ports.json (the broker, the API, the metrics),
        the kit gateway's [http] port in gateway.toml (where its operator sets it), and, for
        a stack from before ports.json, the API's port in serve.toml."""
        kept: dict[str, int] = {}
        try:
            recorded = json.loads(self.path.read_text())
        except FileNotFoundError:
            recorded = {}
        except (OSError, ValueError) as exc:
            raise StackError(
                f"{self.path}: cannot read it ({exc}); correct it, or remove it to have "
                f"new ports chosen (edge devices and bookmarks then need the new ones)"
            ) from None
        if not isinstance(recorded, dict):
            recorded = {"": recorded}
        for name, value in recorded.items():
            if name not in PORT_ROLES or not isinstance(value, int) or isinstance(value, bool):
                raise StackError(
                    f"{self.path}: {name} = {value!r}: not a port of the stack (keys "
                    f"{', '.join(k for k in PORT_ROLES if k != 'kits')}, each a port number); "
                    f"correct it, or remove the file to have new ports chosen"
                )
            if not 1 <= value <= 65535:
                raise StackError(f"{self.path}: {name} = {value}: not a port (1-65535); correct it")
            kept[name] = value
        if "api" not in kept:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                serve = tomllib.loads(self.serve_config.read_text())
                if isinstance(serve["port"], int) and 1 <= serve["port"] <= 65535:
                    kept["api"] = serve["port"]
        port = self.gateway_http.get("port")
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            kept["kits"] = port
        return kept

    def plan(self, *, serve: bool, kits: bool) -> dict[str, int]:
        """The stack's addresses: each kept from the last run (edge devices, kits and bookmarks
        have them), chosen once (a free port below the ephemeral range; the kit gateway 8090 if
        free) and recorded otherwise. A kept port that something else holds now is a
        StackError naming the holder: never a silent move to another port."""
        kept = self.kept()
        used = {
            "mqtt": True,
            "metrics": True,
            "api": serve,
            "kits": kits,
        }
        bind = str(self.gateway_http.get("bind", "127.0.0.1"))
        seen: dict[int, str] = {}
        for name, port in kept.items():
            if port in seen:
                raise StackError(
                    f"port {port} is kept for both {PORT_ROLES[seen[port]][0]} and "
                    f"{PORT_ROLES[name][0]} address ({self.source(seen[port])}, "
                    f"{self.source(name)}): give one of them another port"
                )
            seen[port] = name
        for name, port in kept.items():
            if used[name] and not can_bind(bind if name == "kits" else "127.0.0.1", port):
                what, who = PORT_ROLES[name]
                raise StackError(
                    f"port {port} ({what} address, kept from earlier runs in "
                    f"{self.source(name)}) is taken by {describe_holder(port)}: stop "
                    f"that process and run `stack up` again; only if it must move, change it "
                    f"in {self.source(name)} and give {who} the new port (`stack up` "
                    f"never moves it by itself)"
                )
        ports = dict(kept)
        first = first_kits_port()
        if (
            "kits" not in ports
            and kits
            and first is not None
            and first not in ports.values()
            and can_bind(bind, first)
        ):
            ports["kits"] = first
        missing = [name for name in PORT_ROLES if name not in ports]
        fresh = lasting_ports(len(missing), exclude=set(ports.values()))
        ports.update(zip(missing, fresh, strict=True))
        recorded = {name: ports[name] for name in PORT_ROLES if name != "kits"}
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            old = None
        if old != recorded:
            self.path.write_text(json.dumps(recorded, indent=2) + "\n")
        return ports

    def source(self, name: str) -> str:
        """Where the port of `name` is kept, for an error message."""
        if name == "kits":
            return f"{self.gateway_config} [http] port"
        return f'{self.path} ("{name}")'


def fresh_ports(n: int, *, exclude: set[int]) -> list[int]:
    """`n` free loopback ports, none of them in `exclude` (ports kept for the stack, free now
    only because the stack is down)."""
    while True:
        ports = free_ports(n + len(exclude))
        chosen = [p for p in ports if p not in exclude][:n]
        if len(chosen) == n:
            return chosen


def lasting_ports(n: int, *, exclude: set[int]) -> list[int]:
    """`n` free loopback ports to keep for good: below the kernel's ephemeral range (where
    outgoing connections take their local ports, and could hold a kept port when the stack
    comes up again), from 20000 on; from that range only where there is no room below it."""
    low = ephemeral_low()
    candidates = list(range(20000, low)) if low > 21000 else []
    random.shuffle(candidates)
    chosen: list[int] = []
    for port in candidates:
        if len(chosen) == n:
            break
        if port not in exclude and port not in chosen and can_bind("127.0.0.1", port):
            chosen.append(port)
    if len(chosen) < n:
        chosen += fresh_ports(n - len(chosen), exclude=exclude | set(chosen))
    return chosen


def ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def can_bind(host: str, port: int) -> bool:
    """Whether a service could listen on `host`:`port` now (connections of an earlier run in
    TIME_WAIT do not count, as the services set SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def answers(url: str) -> bool:
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


def port_of(url: str | None) -> int | None:
    """The port of `http(s)://host:port/...`; None for no URL."""
    if not url:
        return None
    return int(url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1])
