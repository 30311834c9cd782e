"""What a running local stack is: as stack.json records it (a record, never a proof), and as
its collaborators see it.

`StackInfo` is stack.json: the stack's endpoints (the broker, InfluxDB, the metrics, the API,
the kit gateway) and the process ids recorded as each component started. Those ids are a
record, never a proof: `LocalStack.running` finds the processes by their command lines.

`RunningStack` is the little of `LocalStack` that its collaborators (`registration`,
`quarantine`) use: its directory and files, its registry, its state and which of its
components run. They see the stack through it, not by importing `stack.local`, which holds
them: no import cycle, and what each collaborator may touch is written down here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sensorpipe.protocol.registry import Registry
from sensorpipe.stack.kitgateway import StackGateway
from sensorpipe.stack.ports import port_of


@dataclass
class StackInfo:
    """stack.json: a running stack's endpoints and the process ids recorded at its start."""

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
            port_of(d.get("metrics")),
            port_of(d.get("api")),
            d.get("kits") or None,
        )


class RunningStack(Protocol):
    """The local stack as its collaborators see it (LocalStack is one)."""

    directory: Path
    registry_path: Path
    quarantine_path: Path
    kit_gateway: StackGateway

    def registry(self) -> Registry: ...

    def info(self) -> StackInfo | None:
        """stack.json, None where no stack runs."""
        ...

    def running(self) -> dict[str, list[int]]:
        """For each component, the ids of the processes that run it now."""
        ...

    def quarantined(self) -> set[str]: ...

    def unknown_device(self, registry: Registry, device_id: str) -> str: ...
