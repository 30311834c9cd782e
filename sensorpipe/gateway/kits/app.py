"""The kit gateway's HTTP side (FastAPI): the airrohr endpoint, /health and /metrics, and the
routers other kit adapters bring (The Things Stack's webhook).

The airrohr endpoint takes the kit's quarantine, credentials and rate limit before it reads a
byte of the body, and reads the body only up to the limit: a post announcing more
(Content-Length) is refused at once, one sending more without saying so is cut off there (413).
/health and /metrics, both anonymous, show how many kits of this gateway are quarantined and
what the gateway counted (posts by status, quarantines it made, posts refused and uplinks
dropped for one): counts and states only, no free text, names or addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from sensorpipe import __version__
from sensorpipe.gateway.kits.context import KitContext
from sensorpipe.gateway.kits.intake import Admitted, AirrohrIntake, Answer
from sensorpipe.http_server import body_up_to
from sensorpipe.protocol.quarantine import Quarantine

# What a group types into the kit's "Path" field. The firmware posts to it as typed.
AIRROHR_PATH = "/airrohr/v1/push"


# The kit context's counters by what they count: the label of their key, and the metric's help.
# Each is exported as sensorpipe_gateway_<what>, labelled by kit and that key.
_COUNTERS = {
    "posts": ("status", "Posts and uplinks answered, by kit adapter and HTTP status."),
    "values": (
        "outcome",
        "Values in kits' posts: stored, not stored (known, no quantity), or dead-lettered "
        "by reason.",
    ),
    "deadletters": ("reason", "Dead letters kept by reason (not_kept: the store could not write)."),
    "logins": (
        "outcome",
        "Logins refused without a password check: the budget of password checks is spent.",
    ),
    "uplinks": (
        "outcome",
        "The Things Stack uplinks: published, not published (all dead-lettered), "
        "duplicate, dropped over the node's rate limit or while it is quarantined.",
    ),
    "quarantine": (
        "event",
        "Kits quarantined by this gateway for exceeding their rate limit, posts and "
        "uplinks refused because their kit is quarantined, quarantines not recorded.",
    ),
}


class _CountersCollector(Collector):
    def __init__(self, ctx: KitContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families = {
            what: CounterMetricFamily(f"sensorpipe_gateway_{what}", help_text, labels=["kit", key])
            for what, (key, help_text) in _COUNTERS.items()
        }
        for (kit, what, key), n in self._ctx.counters.items():
            family = families.get(what)
            if family is not None:
                family.add_metric([kit, key], n)
        yield from families.values()
        yield GaugeMetricFamily(
            "sensorpipe_gateway_broker_connected",
            "1 while the gateway is connected to the broker.",
            value=int(self._ctx.publisher.connected),
        )
        yield GaugeMetricFamily(
            "sensorpipe_gateway_quarantined_kits",
            "This gateway's kits that are quarantined now (by anyone).",
            value=len(quarantined_kits(self._ctx)),
        )


def quarantined_kits(ctx: KitContext) -> list[Quarantine]:
    """The quarantines of kits received by this gateway, from the book now."""
    if ctx.quarantine is None:
        return []
    devices = ctx.registry.current().devices
    mine = [d for d, entry in devices.items() if entry.gateway == ctx.gateway_id]
    return ctx.quarantine.active(mine)


def _response(answer: Answer) -> Response:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


def create_app(
    ctx: KitContext,
    intake: AirrohrIntake,
    *,
    max_body_bytes: int,
    routers: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="sensorpipe kit gateway",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    metrics = CollectorRegistry()
    metrics.register(_CountersCollector(ctx))

    async def airrohr_push(request: Request) -> Response:
        received_at = datetime.now(UTC)
        client = request.client.host if request.client else None
        admitted = await run_in_threadpool(
            intake.admit, request.headers.get("authorization"), client
        )
        if isinstance(admitted, Answer):
            return _response(admitted)
        body = await body_up_to(request, max_body_bytes)
        if body is None:
            return _response(intake.answer(413, {"error": f"body over {max_body_bytes} bytes"}))
        answer = await run_in_threadpool(
            _take, intake, admitted, body, request.headers.get("x-sensor"), received_at
        )
        return _response(answer)

    for path in (AIRROHR_PATH, AIRROHR_PATH + "/"):
        app.add_api_route(path, airrohr_push, methods=["POST"], include_in_schema=False)

    @app.get("/health")
    def health() -> dict[str, Any]:
        # Anonymous, and the gateway faces the internet: the status and counts only. Which
        # kits are quarantined, why and by whom, and the broker's or the book's problem (with
        # addresses and paths) are in the gateway's log, `sensorpipe devices list` and
        # `sensorpipe stack status`.
        quarantine = ctx.quarantine
        enabled = quarantine is not None and quarantine.book is not None
        book_readable = quarantine is None or quarantine.problem is None
        connected = bool(ctx.publisher.connected)
        return {
            "status": "ok" if connected and book_readable else "degraded",
            "broker": {"connected": connected},
            "kits": ctx.counters.as_dict(),
            "quarantine": {
                "enabled": enabled,
                "quarantine_after_s": None if quarantine is None else quarantine.after_s,
                "quarantined_kits": len(quarantined_kits(ctx)),
                "book_readable": book_readable,
            },
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type="text/plain; version=0.0.4")

    for router in routers:
        app.include_router(router)
    return app


def _take(
    intake: AirrohrIntake, kit: Admitted, body: bytes, x_sensor: str | None, at: datetime
) -> Answer:
    return intake.take(kit, body, x_sensor=x_sensor, received_at=at)
