"""/api/v1/alerts: the crowding alerts raised (sensorpipe.crowd.alerts), read from the alert
store the ingest writes (serve.toml `alerts_path`; the stack's ingest/alerts.sqlite), oldest
first. Its own router, with /api/v1's checks (`crowding.crowding_router`: unknown parameters
refused, problem details)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, Field, StringConstraints

from sensorpipe.api.crowding import Ctx, crowding_router
from sensorpipe.api.problems import ApiProblem, bad_request, problem_responses
from sensorpipe.api.v1 import TimeParam
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.protocol.registry import AREA_ID_PATTERN
from sensorpipe.query.influxql import QueryInputError, parse_time

router = crowding_router()


class AlertOut(BaseModel):
    id: str = Field(description="stable: area, kind, threshold and time")
    area: str
    kind: Literal["observed", "forecast"] = Field(
        description="observed: the level passed it; forecast: it is expected to"
    )
    threshold: float = Field(description="the threshold passed (fraction of capacity)")
    level: float = Field(description="the level that passed it (observed or forecast)")
    time: str = Field(description="the interval it passed in, or is expected to (UTC)")
    made: str | None = Field(description="forecast: when the forecast was made")
    horizon_s: int | None = Field(description="forecast: how far ahead, in seconds")
    message: str
    raised: str = Field(description="when the alert was raised (UTC)")


@router.get(
    "/alerts",
    response_model=list[AlertOut],
    responses=problem_responses(400, 404, 503),
    summary="The crowding alerts raised, oldest first",
)
def alerts_(
    ctx: Ctx,
    area: Annotated[str | None, StringConstraints(pattern=AREA_ID_PATTERN)] = None,
    from_: Annotated[TimeParam, Query(alias="from")] = "-7d",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AlertOut]:
    """Each alert an area's level raised crossing one of its thresholds going up, at or after
    `from`, of `area` if given, oldest first: the newest `limit` where there are more
    (docs/crowding.md, "Alerts"). An `area` the registry does not hold, with no alerts: 404."""
    if not ctx.config.alerts_path:
        # No alerts here, not a failure of the service: 404, not 503.
        raise ApiProblem(404, "this service keeps no alerts: set alerts_path in serve.toml")
    try:
        from_ms = int(parse_time(from_).timestamp() * 1000)
    except QueryInputError as exc:
        raise bad_request(str(exc), "from") from None
    path = Path(ctx.config.alerts_path)
    if not path.is_file():
        return []  # the ingest has raised none yet
    try:
        store = AlertStore(path, read_only=True)
        try:
            rows = store.alerts(area=area, from_ms=from_ms, limit=limit)
        finally:
            store.close()
    except sqlite3.Error as exc:
        raise ApiProblem(503, f"the alert store cannot be read: {exc}") from None
    if area is not None and not rows and area not in ctx.registry().areas:
        raise ApiProblem(404, f"no area {area!r} (GET /api/v1/areas lists them)")
    return [AlertOut.model_validate(r) for r in rows]
