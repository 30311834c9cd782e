"""The FastAPI application: the API, SensorThings and the dashboard over one context."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sensorpipe import __version__
from sensorpipe.api import alerts, crowding, dashboard, sta, v1
from sensorpipe.api.context import ApiContext
from sensorpipe.api.guard import Guard
from sensorpipe.api.problems import install_problem_handlers


def create_app(ctx: ApiContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        refresher = threading.Thread(
            target=ctx.keep_stats_fresh, args=(stop,), name="register-stats", daemon=True
        )
        refresher.start()
        yield
        stop.set()
        refresher.join(timeout=5)
        ctx.close()

    app = FastAPI(
        title="sensorpipe",
        version=__version__,
        description=(
            "Local environmental measurements: the public sensor register, air readings and "
            "counts of passers-by, read-only. Errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = ctx
    app.add_middleware(Guard, config=ctx.config)
    install_problem_handlers(app)
    app.include_router(v1.router)
    app.include_router(crowding.router)
    app.include_router(alerts.router)
    app.include_router(sta.router)
    app.include_router(dashboard.router)
    return app
