"""/api/v1 crowding: the areas (`/areas`), each area's observed level per interval
(`/areas/{id}/crowding`) and each counting device's flow (`/devices/{id}/crowding`), with the
counters' running fraction and the thresholds, and `forecast`: the saved models' forecast
(crowd.saved, crowd.live) made at the end of the last whole hour, null with `forecast_note`
where there is none (no model trained, the `forecast` extra missing, no counts to start from).

Its own router, included by the application beside /api/v1's (`v1.py`), with the same checks
(unknown parameters refused, errors as problem details). Levels come from sensorpipe.crowd.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StringConstraints

from sensorpipe.api.context import ApiContext, context_dependency
from sensorpipe.api.problems import PROBLEM_RESPONSES, ApiProblem, problem_responses
from sensorpipe.api.v1 import DeviceId, TimeParam, _known_parameters_only, _storage_call
from sensorpipe.crowd.areas import area_lines, areas_of_device, train_command
from sensorpipe.crowd.levels import Level
from sensorpipe.crowd.observed import DEVICE_EVERY, Crowding, area_crowding, device_crowding
from sensorpipe.protocol.registry import AREA_ID_PATTERN


def crowding_router() -> APIRouter:
    """A router under /api/v1 with its checks (unknown parameters refused), tagged crowding:
    this module's, and /alerts' (`api.alerts`)."""
    return APIRouter(
        prefix="/api/v1",
        responses=PROBLEM_RESPONSES,
        dependencies=[Depends(_known_parameters_only)],
        tags=["crowding"],
    )


router = crowding_router()
Ctx = Annotated[ApiContext, Depends(context_dependency)]
AreaId = Annotated[str, StringConstraints(pattern=AREA_ID_PATTERN)]
FORECAST_NOTE = (
    "the forecast made at the end of the last whole hour from the saved models "
    "(`sensorpipe crowd train`), each horizon's flow with its 80 % interval; null: see "
    "forecast_note"
)


class ForecastPointOut(BaseModel):
    horizon: str = Field(description="hours ahead of made_at's origin, e.g. 1h")
    time: str = Field(description="start of the hour forecast (UTC)")
    flow: float = Field(description="passers-by forecast in that hour")
    low: float = Field(description="the 80 % prediction interval's low end")
    high: float = Field(description="its high end")
    level: float | None = Field(description="flow ÷ capacity (a street area); else null")
    level_low: float | None
    level_high: float | None
    interval: str = Field(
        description="which interval low/high are: 'rolling 28 days (n=...)' (the scaled errors "
        "of this forecast's kept forecasts of the last 28 days) or 'from training'"
    )


class ForecastOut(BaseModel):
    made_at: str = Field(description="the origin: end of the last whole interval (UTC)")
    trained_until: str = Field(description="end of the counts the models were trained on")
    points: list[ForecastPointOut]


class AreaLineOut(BaseModel):
    device: str
    inward: list[str] = Field(description="its directions that go into the area")
    outward: list[str] = Field(description="its directions that go out of it")


class AreaOut(BaseModel):
    id: str
    name: str
    kind: Literal["enclosed", "street"] = Field(
        description="enclosed: capacity is persons at once (occupancy from ins minus outs); "
        "street: passers-by per interval"
    )
    capacity: int
    interval: str = Field(description="the interval its levels are given per")
    devices: list[str] = Field(description="the counting devices it is measured with")
    lines: list[AreaLineOut]
    polygon: list[tuple[float, float]] | None = Field(
        description="its ring of [lon, lat] (GeoJSON order); null: given by its lines"
    )
    classes: list[str] = Field(description="the classes of passers-by that count")
    thresholds: list[float] = Field(description="levels (fractions of capacity) that alert")
    country: str
    subdivision: str
    timezone: str
    quiet_hour: int | None = Field(
        description="enclosed: the local hour its occupancy is reset to zero each day"
    )
    min_running_fraction: float


class IntervalOut(BaseModel):
    time: str = Field(description="start of the interval (UTC)")
    running_fraction: float = Field(
        description="share of the interval its counters ran (their mean; a silent one is 0)"
    )
    flow: float | None = Field(description="passers-by counted, scaled up by the running fraction")
    level: float | None = Field(
        description="fraction of the capacity (0.7 is 70 %); null: see reason"
    )
    reached: float | None = Field(description="the highest threshold the level is at or above")
    reason: str | None = Field(description="why there is no level")
    inward: float | None = None
    outward: float | None = None
    occupancy: float | None = Field(
        default=None, description="enclosed: persons in the area at the interval's end"
    )
    corrected: float | None = Field(
        default=None,
        description="enclosed: outs beyond the occupancy, dropped so it never goes below zero",
    )
    reset_from: float | None = Field(
        default=None, description="enclosed: the occupancy the quiet-hour reset set to zero"
    )


class CrowdingOut(BaseModel):
    area: str | None = None
    device: str | None = None
    areas: list[str] | None = Field(default=None, description="a device's areas")
    kind: str | None = None
    capacity: int | None = None
    thresholds: list[float]
    from_: str = Field(alias="from")
    to: str = Field(description="end of the last whole interval (the one running is left out)")
    every: str
    observed: list[IntervalOut]
    forecast: ForecastOut | None = Field(default=None, description=FORECAST_NOTE)
    forecast_note: str | None = Field(default=None, description="why there is no forecast")

    model_config = {"populate_by_name": True}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _at(now_s: float) -> datetime:
    return datetime.fromtimestamp(now_s, UTC)


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def interval_out(lv: Level, enclosed: bool) -> IntervalOut:
    extra: dict[str, Any] = {}
    if enclosed:
        extra = {
            "inward": _r(lv.inward, 1),
            "outward": _r(lv.outward, 1),
            "occupancy": _r(lv.occupancy, 1),
            "corrected": _r(lv.corrected, 1),
            "reset_from": _r(lv.reset_from, 1),
        }
    return IntervalOut(
        time=_iso(lv.start_ms),
        running_fraction=round(lv.running_fraction, 4),
        flow=_r(lv.flow, 1),
        level=_r(lv.level),
        reached=lv.reached,
        reason=lv.reason,
        **extra,
    )


@router.get("/areas", response_model=list[AreaOut], summary="The areas whose crowding is measured")
def areas(ctx: Ctx) -> list[AreaOut]:
    registry = ctx.registry()
    out = []
    for area_id, a in sorted(registry.areas.items()):
        lines = area_lines(registry, a)
        out.append(
            AreaOut(
                id=area_id,
                name=a.name,
                kind=a.kind,
                capacity=a.capacity,
                interval=a.interval,
                devices=[line.device for line in lines],
                lines=[AreaLineOut(**line.model_dump()) for line in lines],
                polygon=a.polygon or None,
                classes=a.classes,
                thresholds=a.thresholds,
                country=a.country,
                subdivision=a.subdivision,
                timezone=a.timezone,
                quiet_hour=a.quiet_hour if a.kind == "enclosed" else None,
                min_running_fraction=a.min_running_fraction,
            )
        )
    return out


def _answer(c: Crowding, enclosed: bool, **fields: Any) -> CrowdingOut:
    return CrowdingOut.model_validate(
        {
            **fields,
            "from": _iso(c.start_ms),
            "to": _iso(c.end_ms),
            "every": c.every,
            "observed": [interval_out(lv, enclosed) for lv in c.levels],
        }
    )


def _forecast(
    ctx: ApiContext, kind: str, name: str, area: Any = None, now_s: float | None = None
) -> dict[str, Any]:
    """The `forecast` and `forecast_note` fields of a device or an area, made at `now_s`
    (default: the context's clock's now)."""

    def compute(models: Any, origin: int) -> tuple[Any, str | None]:
        return _compute_forecast(ctx, models, origin, kind, name, area)

    forecast, note = ctx.forecast(kind, name, compute, now_s)
    return {"forecast": forecast, "forecast_note": note}


def _compute_forecast(
    ctx: ApiContext, models: Any, origin: int, kind: str, name: str, area: Any
) -> tuple[Any, str | None]:
    import importlib.util

    from sensorpipe.crowd import live
    from sensorpipe.crowd.forecaststore import rolling_from_store
    from sensorpipe.crowd.saved import ModelsError
    from sensorpipe.crowd.series import CountsInputError
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable

    if any(importlib.util.find_spec(m) is None for m in ("lightgbm", "holidays")):
        return None, "the forecast extra is not installed: pip install 'sensorpipe[forecast]'"
    try:
        found = models.get(kind, name)
    except ModelsError as exc:
        return None, str(exc)
    if found is None:
        command = train_command(ctx.registry(), kind, name)
        return None, f"no model trained for this {kind}: run {command}"
    saved, fc = found
    t0 = live.history_start(origin)
    try:
        if kind == "area":
            counts = live.area_counts(ctx.influx, ctx.registry(), saved.names, t0, origin + 3600)
        else:
            counts = live.device_counts(ctx.influx, saved.names, t0, origin + 3600)
        rolling = rolling_from_store(ctx.influx, kind, name, counts, origin)
        answer = live.forecast_points(fc, counts, name, origin, area, rolling)
    except live.StaleCounts as exc:
        return None, f"no forecast: {exc}"
    except (CountsInputError, QueryError, StorageUnavailable, KeyError) as exc:
        return None, f"no forecast: the counts to start from cannot be read ({exc})"
    enclosed = area is not None and area.kind == "enclosed"
    return answer, live.ENCLOSED_NOTE if enclosed else None


def _window(
    from_: Annotated[TimeParam, Query(alias="from")] = "-24h", to: TimeParam = "now"
) -> tuple[str, str]:
    """`from` and `to`: moved to whole intervals, the one running left out."""
    return from_, to


Window = Annotated[tuple[str, str], Depends(_window)]


def _crowding_route(path: str, summary: str) -> Any:
    return router.get(
        path,
        response_model=CrowdingOut,
        response_model_by_alias=True,
        responses=problem_responses(404, 503),
        summary=summary,
    )


@_crowding_route(
    "/areas/{area_id}/crowding",
    "An area's observed level per interval, with running fraction and thresholds",
)
def area_crowding_(area_id: AreaId, ctx: Ctx, window: Window) -> CrowdingOut:
    """Per interval of the area: the flow (scaled up by the counters' running fraction), for
    an enclosed area the occupancy (ins minus outs, never below zero, reset at its quiet
    hour), and the level (÷ capacity) with the highest threshold it reached. An interval
    whose counters ran less than the area's floor has no level, and says why."""
    registry = ctx.registry()
    area = registry.areas.get(area_id)
    if area is None:
        raise ApiProblem(404, f"no area {area_id!r} in the register")
    # One moment for the whole answer: its last observed interval is the one before the
    # forecast's first, also when an hour ends while the answer is made.
    now_s = ctx.clock()
    c = _storage_call(
        lambda: area_crowding(
            ctx.influx, registry, area, *window, max_points=ctx.config.max_points, now=_at(now_s)
        )
    )
    return _answer(
        c,
        area.kind == "enclosed",
        area=area_id,
        kind=area.kind,
        capacity=area.capacity,
        thresholds=area.thresholds,
        **_forecast(ctx, "area", area_id, area, now_s),
    )


@_crowding_route(
    "/devices/{device_id}/crowding",
    "A counting device's flow per hour, with running fraction and its areas",
)
def device_crowding_(device_id: DeviceId, ctx: Ctx, window: Window) -> CrowdingOut:
    """Passers-by per hour (pedestrians, scaled up by the running fraction). A device has
    no capacity of its own: `level` is null, and `areas` names the areas it counts for
    (their levels are at /areas/{id}/crowding); the thresholds are those of its first area."""
    registry = ctx.registry()
    if device_id not in registry.devices:
        raise ApiProblem(404, f"no device {device_id!r} in the register")
    mine = areas_of_device(registry, device_id)
    now_s = ctx.clock()
    c = _storage_call(
        lambda: device_crowding(
            ctx.influx,
            device_id,
            *window,
            every=DEVICE_EVERY,
            max_points=ctx.config.max_points,
            now=_at(now_s),
        )
    )
    thresholds = registry.areas[mine[0]].thresholds if mine else []
    return _answer(
        c,
        False,
        device=device_id,
        areas=mine,
        thresholds=thresholds,
        **_forecast(ctx, "device", device_id, now_s=now_s),
    )
