"""The Things Stack v3 (The Things Network and private instances) in the kit gateway.

Each `[[ttn]]` application of the gateway's configuration (ttn_config) gets a TtnReceiver
(ttn_receiver: uplink JSON to signed air messages and dead letters), an MQTT bridge when it
names a `server` (ttn_bridge: subscription, acknowledgement after publishing, gap filling from
the Storage Integration) and the webhook endpoint when it has `webhook_token_hashes`
(ttn_webhook). The bridges and the webhook of one gateway share the receivers and the state
(ttn_state: sequence numbers across LoRaWAN sessions, progress), kept in a SQLite file.

The gateway process (gateway.kits.service) calls the two hooks below: `webhook_router` when it
builds its HTTP app, `start_bridges` when it starts; stopping what `start_bridges` returned
stops the bridges and closes the state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter

from sensorpipe.gateway.kits.context import KitContext
from sensorpipe.gateway.kits.ttn_bridge import StorageIntegration, TtnBridge
from sensorpipe.gateway.kits.ttn_config import TtnApplication
from sensorpipe.gateway.kits.ttn_receiver import KitLetter, TtnReceiver
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.gateway.kits.ttn_webhook import webhook_router as _router
from sensorpipe.protocol.configfile import ConfigError

log = logging.getLogger(__name__)

STATE_FILE = "ttn-state.sqlite"


class TtnService:
    """The receivers, bridges and state of a gateway's applications."""

    def __init__(
        self, apps: Sequence[TtnApplication], ctx: KitContext, *, state_path: Path
    ) -> None:
        self.ctx = ctx
        self._keys = {app.application: _api_key(app) for app in apps if app.api_key_file}
        self.state = TtnState(state_path)
        self.receivers: dict[str, TtnReceiver] = {
            app.application: TtnReceiver(
                app,
                publisher=ctx.publisher,
                registry=ctx.registry.current,
                letters=self._keep,
                state=self.state,
                counters=ctx.counters,
                publish_timeout_s=ctx.publish_timeout_s,
                quarantine=ctx.quarantine,
            )
            for app in apps
        }
        self.bridges: list[TtnBridge] = []
        self._started = False
        self._closed = False

    def _keep(self, letters: Sequence[KitLetter]) -> None:
        for letter in letters:  # LetterNotKept propagates: the uplink comes again
            self.ctx.deadletters.keep(
                letter.topic,
                letter.payload,
                letter.code,
                letter.detail,
                device_id=letter.device_id,
            )

    def router(self) -> APIRouter:
        return _router(self.receivers, counters=self.ctx.counters)

    def start(self) -> None:
        """Connect a bridge for each application with an MQTT server."""
        if self._started:
            return
        self._started = True
        for receiver in self.receivers.values():
            app = receiver.app
            if app.server is None:
                continue
            key = self._keys[app.application]
            storage = StorageIntegration(app, key) if app.storage_url else None
            bridge = TtnBridge(
                app,
                receiver,
                state=self.state,
                # Stable per gateway and application: the server keeps its session by it.
                client_id=f"sensorpipe-{self.ctx.gateway_id}-{app.application_id}-{app.tenant}",
                api_key=key,
                storage=storage,
                counters=self.ctx.counters,
            )
            bridge.start()
            self.bridges.append(bridge)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        for bridge in self.bridges:
            try:
                bridge.stop()
            except Exception:  # one bridge failing to stop must not keep the others running
                log.exception("stopping the bridge of %s failed", bridge.app.application)
        self.bridges = []
        self.state.close()
        with _lock:
            _services.pop(id(self.ctx), None)


def _api_key(app: TtnApplication) -> str:
    """The application's API key, or a ConfigError naming its file."""
    assert app.api_key_file is not None
    try:
        return app.api_key()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            app.api_key_file, f"the API key of {app.application} cannot be used: {exc}"
        ) from None


# One service per gateway (its context): the webhook and the bridges share the receivers.
_services: dict[int, TtnService] = {}
_lock = threading.Lock()


def _service(apps: Sequence[TtnApplication], ctx: KitContext, state_path: Path) -> TtnService:
    with _lock:
        service = _services.get(id(ctx))
        if service is None or service._closed:
            service = _services[id(ctx)] = TtnService(apps, ctx, state_path=state_path)
        return service


def webhook_router(
    apps: list[TtnApplication], ctx: KitContext, *, state_path: Path | None = None
) -> APIRouter:
    """The webhook endpoint for `apps` (hook of gateway.kits.service). `state_path`: the
    SQLite file of the sequence state (default: ttn-state.sqlite in the working folder)."""
    return _service(apps, ctx, state_path or Path(STATE_FILE)).router()


def start_bridges(
    apps: list[TtnApplication], ctx: KitContext, *, state_path: Path | None = None
) -> list[TtnService]:
    """Start the MQTT bridges of `apps` (hook of gateway.kits.service); `stop()` on what it
    returns stops them and closes the state."""
    service = _service(apps, ctx, state_path or Path(STATE_FILE))
    service.start()
    return [service]
