"""The kit gateway process (`sensorpipe gateway run`): the airrohr HTTP endpoint and The Things
Stack bridges and webhook, one publisher to the broker signed as this gateway.

Delivery: a kit's reading is answered 2xx only after the broker acknowledged the message that
carries it (QoS 1). From there the ingest's persistent session holds it, and the ingest stores
it or dead-letters it as it does every device's messages.

The Things Stack adapter lives in gateway/kits/ttn.py. This module looks for two functions
there and uses them when the configuration has `[[ttn]]` applications:
- `webhook_router(apps: list[TtnApplication], ctx: KitContext, *, state_path) -> APIRouter`
- `start_bridges(apps: list[TtnApplication], ctx: KitContext, *, state_path)
  -> list[<object with stop()>]`
`state_path` is the SQLite file of the nodes' sequence numbers across LoRaWAN sessions
(ttn-state.sqlite beside seq_path).

Quarantine: with `quarantine_path` the gateway reads the book the ingest and the CLI share
(gateway.kits.quarantine): quarantined kits are refused, and a kit that keeps exceeding its
rate limit is quarantined by this gateway.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI

from sensorpipe.gateway.kits.app import create_app
from sensorpipe.gateway.kits.auth import KitAuthenticator
from sensorpipe.gateway.kits.config import GatewayConfig, GatewaySecrets
from sensorpipe.gateway.kits.context import (
    Counters,
    DeadLetterSink,
    KitContext,
    Publisher,
    RegistryFile,
)
from sensorpipe.gateway.kits.intake import AirrohrIntake
from sensorpipe.gateway.kits.limits import RateLimiter
from sensorpipe.gateway.kits.publish import KitPublisher
from sensorpipe.gateway.kits.quarantine import KitQuarantine
from sensorpipe.gateway.kits.seq import SeqStore
from sensorpipe.http_server import allow_open_files, uvicorn_config
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.quarantine import QuarantineBook
from sensorpipe.protocol.signing import Signer, Verifier

log = logging.getLogger(__name__)
TTN_MODULE = "sensorpipe.gateway.kits.ttn"
TTN_HOOKS = ("webhook_router", "start_bridges")
# Connections (and requests) at once, beyond which uvicorn answers 503.
LIMIT_CONCURRENCY = 1024


def ttn_module() -> ModuleType | None:
    """The Things Stack adapter, when this sensorpipe has one with both hooks."""
    try:
        module = importlib.import_module(TTN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != TTN_MODULE:
            raise
        return None
    return module if all(hasattr(module, hook) for hook in TTN_HOOKS) else None


def check_registered(config: GatewayConfig, secrets: GatewaySecrets, source: str) -> None:
    """The gateway must be in the registry with the public key of its private key: otherwise
    the broker refuses it or the ingest rejects every message it signs."""
    registry = RegistryFile(config.registry_path).current()
    account = registry.gateways.get(config.gateway_id)
    if account is None:
        raise ConfigError(
            source,
            f"gateway_id {config.gateway_id!r} is not registered in {config.registry_path}: "
            f"`sensorpipe devices add-gateway {config.gateway_id}` registers it",
        )
    probe = b"sensorpipe gateway key check"
    try:
        signature = Signer(secrets.private_key).sign(probe)
        matches = Verifier(account.public_key).verify(probe, signature)
    except ValueError:
        matches = False
    if not matches:
        raise ConfigError(
            source,
            f"private_key_file {config.private_key_file} is not the key registered for gateway "
            f"{config.gateway_id!r}: the ingest would reject every reading it signs",
        )


def check_ttn(config: GatewayConfig, source: str) -> None:
    if config.ttn and ttn_module() is None:
        raise ConfigError(
            source,
            "ttn: this sensorpipe has no The Things Stack adapter (gateway.kits.ttn) yet; "
            "remove the [[ttn]] sections",
        )


def open_book(config: GatewayConfig) -> QuarantineBook | None:
    """The quarantine book of `quarantine_path` (None when unset); ConfigError when it cannot
    be opened."""
    if config.quarantine_path is None:
        return None
    try:
        return QuarantineBook(config.quarantine_path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            config.quarantine_path,
            f"quarantine_path: cannot open the quarantine book ({exc}); check the folder "
            f"exists and is writable by the gateway's user",
        ) from None


class KitGateway:
    def __init__(
        self,
        config: GatewayConfig,
        secrets: GatewaySecrets,
        deadletters: DeadLetterSink,
        *,
        publisher: Publisher | None = None,
    ) -> None:
        self.config = config
        if publisher is None:
            publisher = KitPublisher(
                gateway_id=config.gateway_id,
                private_key=secrets.private_key,
                host=config.broker.host,
                port=config.broker.port,
                password=secrets.broker_password,
                tls=config.broker.tls,
                ca_file=Path(config.broker.ca_file) if config.broker.ca_file else None,
            )
        self.publisher = publisher
        self.registry = RegistryFile(config.registry_path)
        counters = Counters()
        self.quarantine = KitQuarantine(
            open_book(config),
            gateway_id=config.gateway_id,
            counters=counters,
            after_s=config.quarantine_after_s,
        )
        self.ctx = KitContext(
            gateway_id=config.gateway_id,
            publisher=publisher,
            registry=self.registry,
            deadletters=deadletters,
            counters=counters,
            publish_timeout_s=config.broker.publish_timeout_s,
            quarantine=self.quarantine,
        )
        self.seq = SeqStore(config.seq_path)
        self.intake = AirrohrIntake(
            self.ctx,
            next_seq=self.seq.next,
            limiter=RateLimiter(burst=config.airrohr.burst, refill_s=config.airrohr.refill_s),
            authenticator=KitAuthenticator(
                self.registry.current,
                client_checks_burst=config.airrohr.client_checks_burst,
                client_check_refill_s=config.airrohr.client_check_refill_s,
            ),
        )
        self._ttn = ttn_module() if config.ttn else None
        self._ttn_state = Path(config.seq_path).with_name("ttn-state.sqlite")
        self._bridges: list[Any] = []

    def app(self) -> FastAPI:
        routers = []
        if self._ttn is not None:
            routers.append(
                self._ttn.webhook_router(self.config.ttn, self.ctx, state_path=self._ttn_state)
            )

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            self.start()
            try:
                yield
            finally:
                self.stop()

        return create_app(
            self.ctx,
            self.intake,
            max_body_bytes=self.config.http.max_body_bytes,
            routers=routers,
            lifespan=lifespan,
        )

    def start(self) -> None:
        start = getattr(self.publisher, "start", None)
        if start is not None:
            start()
        if self._ttn is not None:
            self._bridges = list(
                self._ttn.start_bridges(self.config.ttn, self.ctx, state_path=self._ttn_state)
            )

    def stop(self) -> None:
        for bridge in self._bridges:
            try:
                bridge.stop()
            except Exception:  # one bridge failing to stop must not keep the others running
                log.exception("stopping a The Things Stack bridge failed")
        self._bridges = []
        stop = getattr(self.publisher, "stop", None)
        if stop is not None:
            stop()
        self.seq.close()
        self.quarantine.close()


def serve(gateway: KitGateway, sock: socket.socket) -> None:
    """Run the HTTP side on the listening socket `sock` until SIGINT/SIGTERM."""
    import uvicorn

    http = gateway.config.http
    allow_open_files(LIMIT_CONCURRENCY)
    server = uvicorn.Server(
        uvicorn_config(
            gateway.app(),
            tls_cert=http.tls_cert,
            tls_key=http.tls_key,
            request_timeout_s=http.request_timeout_s,
            max_connections_per_client=http.max_connections_per_client,
            server_header=False,
            # Kits post every few minutes and close. Every connection is closed at the request
            # deadline or after 5 s idle, and one address holds at most
            # max_connections_per_client: past this many at once, requests are answered 503.
            limit_concurrency=LIMIT_CONCURRENCY,
            timeout_keep_alive=5,
        )
    )
    server.run(sockets=[sock])
