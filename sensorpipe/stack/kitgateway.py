"""The local stack's kit gateway: one account, kept, and a gateway.toml that keeps what its
operator set (where kits reach it above all).

The gateway's account is made once and kept: its key signs kits' readings, and messages signed
with an earlier key would no longer verify, so a new account comes only where the registry or
the private key and password files lack it. gateway.toml is written anew at every `stack up`
(new broker port), keeping what an operator set there (GATEWAY_KEPT: kit limits and The Things
Stack applications; GATEWAY_HTTP_KEPT: where kits reach it, its TLS and its bounds) and its
port, which kits have typed in. A gateway.toml that cannot be read is an error naming it,
never silently replaced.

A collaborator of `LocalStack` that holds paths only: it reads and writes files and starts
nothing (`LocalStack.start_gateway` starts the process and waits with `answers_at`), so it can
be read and tested without a broker.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from sensorpipe.gateway.kits.provision import GatewayCredentials, add_gateway
from sensorpipe.gateway.mosquitto import is_loopback
from sensorpipe.process import port_open
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import Registry
from sensorpipe.stack.configs import written_before
from sensorpipe.stack.ports import GATEWAY_PORT, answers, first_kits_port, port_of

# The stack's kit gateway (airrohr kits post to it) and what an operator may set in its
# gateway.toml that `stack up` keeps: where kits reach it (the port is kept from run to run, as
# kits have it typed into their config page), its limits and The Things Stack applications.
STACK_GATEWAY_ID = "local-gateway"
GATEWAY_KEPT = ("airrohr", "ttn")
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


@dataclass(frozen=True)
class StackGateway:
    """The kit gateway of the stack in `directory`: its files under gateway/, the registry it
    reads, the quarantine book it consults and the ingest's dead-letter store it shares."""

    directory: Path
    registry_path: Path
    quarantine_path: Path

    @property
    def config_path(self) -> Path:
        return self.directory / "gateway" / "gateway.toml"

    @property
    def key_path(self) -> Path:
        return self.directory / "gateway" / f"{STACK_GATEWAY_ID}.key"

    @property
    def password_path(self) -> Path:
        return self.directory / "gateway" / f"{STACK_GATEWAY_ID}.password"

    def ensure_account(self, registry: Registry) -> GatewayCredentials | None:
        """Give the gateway its account, once (None: it has one). The caller saves the
        registry."""
        have_files = self.key_path.is_file() and self.password_path.is_file()
        if STACK_GATEWAY_ID in registry.gateways and have_files:
            return None
        credentials = add_gateway(registry, STACK_GATEWAY_ID, rotate=True)
        write_private(self.key_path, credentials.private_key + "\n")
        write_private(self.password_path, credentials.password + "\n")
        return credentials

    def settings(self) -> dict[str, Any]:
        """What the operator set in gateway.toml that is kept (GATEWAY_KEPT, and its [http]
        section's GATEWAY_HTTP_KEPT); {} before the first run."""
        old = written_before(self.config_path)
        kept: dict[str, Any] = {k: old[k] for k in GATEWAY_KEPT if k in old}
        http = old.get("http")
        if isinstance(http, dict):
            kept["http"] = {k: http[k] for k in GATEWAY_HTTP_KEPT if k in http}
        return kept

    def _quarantine(self) -> dict[str, Any]:
        """The quarantine book's key, where the gateway's configuration has it (a gateway that
        does not know it would refuse its configuration)."""
        from sensorpipe.gateway.kits.config import GatewayConfig

        if "quarantine_path" not in GatewayConfig.model_fields:
            return {}
        return {"quarantine_path": str(self.quarantine_path)}

    def write_config(self, broker_port: int, port: int) -> tuple[Path, str]:
        """gateway.toml for this run, and the gateway's URL. Its port (`ports.plan`) stays
        that of the last run: kits have it typed in."""
        kept = self.settings()
        http: dict[str, Any] = {"bind": "127.0.0.1", **kept.pop("http", {})}
        bind = str(http["bind"])
        http["port"] = port
        config = {
            "gateway_id": STACK_GATEWAY_ID,
            "private_key_file": self.key_path.name,
            "registry_path": str(self.registry_path),
            # The ingest's store: `sensorpipe ingest rejects` shows kits' rejected posts too.
            "deadletter_path": str(self.directory / "ingest" / "deadletter.sqlite"),
            "seq_path": "kit-seq.sqlite",
            **self._quarantine(),
            **kept,
            "broker": {
                "host": "127.0.0.1",
                "port": broker_port,
                "password_file": self.password_path.name,
            },
            "http": http,
        }
        write_private(self.config_path, tomli_w.dumps(config))
        scheme = "https" if http.get("tls_cert") else "http"
        return self.config_path, f"{scheme}://{_connect_host(bind)}:{port}/"

    def kit_setup(self, kits_url: str | None) -> dict[str, Any]:
        """What to type into an airrohr kit's config page to reach the gateway (whose URL is
        `kits_url` while the stack runs), and a note when kits cannot reach it as it is set
        up."""
        from sensorpipe.gateway.kits.app import AIRROHR_PATH

        settings = self.settings().get("http", {})
        bind = str(settings.get("bind", "127.0.0.1"))
        port = settings.get("port")
        if kits_url:
            port = port_of(kits_url)
        note = None
        if is_loopback(bind):
            server = "127.0.0.1"
            note = (
                f"the gateway listens on {bind} only, where no kit can reach it: set "
                f'[http] bind = "0.0.0.0" and allow_plaintext = true (or tls_cert and tls_key) '
                f"in {self.config_path}, then `sensorpipe stack down` and `stack up`"
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


def gateway_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "sensorpipe", "gateway", "run", "--config", str(config)]


def gateway_answers(url: str) -> bool:
    """Whether the gateway at `url` is up: its /health answers over HTTP; over TLS (no
    certificate to check it with here), its port is open."""
    if url.startswith("https://"):
        host, port = url.removeprefix("https://").rstrip("/").rsplit(":", 1)
        return port_open(int(port), host.strip("[]"))
    return answers(f"{url}health")


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
