"""/api/v1: the public register, air readings, counts of passers-by, health, the algorithms
in the Dutch algorithm register's terms, and (with a token) per-message link metadata.

Public: the register with rounded locations, aggregated readings and counts. Behind a bearer
token listed in the config: exact locations (`/devices?exact=true`) and `/link`.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from sensorpipe.api.answers import (
    AirOut,
    CalibrationOut,
    Check,
    CountsOut,
    DeviceInfo,
    DevicesOut,
    FlagsOut,
    HealthOut,
    NetworkOut,
    SensorHealthOut,
)
from sensorpipe.api.context import ApiContext, context_dependency, public_base
from sensorpipe.api.problems import (
    PROBLEM_RESPONSES,
    ApiProblem,
    bad_request,
    problem_responses,
)
from sensorpipe.ingest.errors import QueryError, StorageUnavailable
from sensorpipe.ingest.influx import identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.counting import COUNT_CLASSES
from sensorpipe.protocol.provenance import all_sources
from sensorpipe.protocol.register import register_entry, register_geojson
from sensorpipe.protocol.registry import DEFAULT_DIRECTIONS, TAG_PATTERN, Registry
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN
from sensorpipe.quality.flags import COUNT_FLAGS
from sensorpipe.query.algorithms import AlgorithmEntry, algorithm_entries
from sensorpipe.query.bbox import BBox, BBoxError, devices_inside, parse_bbox
from sensorpipe.query.flagged import FlagFilter, check_flag_name, flag_reasons
from sensorpipe.query.health import NO_DATA_YET, iso, not_ok_notes
from sensorpipe.query.influxql import QueryInputError
from sensorpipe.query.output import quantity_csv
from sensorpipe.query.register import RegisterStats
from sensorpipe.query.series import (
    SERIES_AGGREGATES,
    AirSeriesRequest,
    CountSeriesRequest,
    air_series,
    as_rows,
    count_series,
    parse_every,
)


async def _known_parameters_only(request: Request) -> None:
    """A parameter the route does not take is refused, not ignored: `?devcie=x` would
    otherwise answer for every device."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    known: set[str] = set()
    pending = [route.dependant]
    while pending:  # the route's own parameters and those of its dependencies
        dependant = pending.pop()
        known.update(p.alias for p in dependant.query_params)
        pending.extend(dependant.dependencies)
    for name in request.query_params:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(sorted(known)) or "none"
            raise bad_request(
                f"unknown parameter {name[:40]!r}{hint} (this resource takes: {listed})", name[:40]
            )


router = APIRouter(
    prefix="/api/v1",
    responses=PROBLEM_RESPONSES,
    dependencies=[Depends(_known_parameters_only)],
)

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Site = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z]+(:[a-z-]{1,32})?$")]
TimeParam = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Every = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,4}[mhd]$")]
# Quality flags of /counts: every count, or without or only the flagged; which flags count.
CountFlags = Annotated[
    Literal["include", "exclude", "only"],
    Query(description="every count (flagged ones counted), or without or only flagged"),
]
FlagNames = Annotated[
    list[Name], Query(max_length=20, description="only these flags count as flagged")
]
# The filters /air and /counts share (repeatable: ?device=a&device=b).
Devices = Annotated[list[DeviceId], Query(max_length=100)]
Sites = Annotated[list[Site], Query(max_length=100)]
Sources = Annotated[
    list[Source],
    Query(
        max_length=10,
        description="provenance: edge, airrohr, ttn, import:<format>, reference:<format>",
    ),
]
INGEST_FRESH_S = 30.0
# How long /health waits for InfluxDB: monitors give up after a few seconds.
HEALTH_TIMEOUT_S = 3.0


# --- helpers --------------------------------------------------------------------------------
def _storage_call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except QueryInputError as exc:
        raise bad_request(str(exc)) from None
    except StorageUnavailable as exc:
        raise ApiProblem(503, f"the time series store does not answer: {exc}") from None
    except QueryError as exc:
        raise bad_request(f"InfluxDB could not run this query: {exc}") from None


def _wants(request: Request, fmt: str | None, allowed: tuple[str, ...]) -> str:
    if fmt is not None:
        return fmt
    accept = request.headers.get("accept", "")
    if "text/csv" in accept and "csv" in allowed:
        return "csv"
    if "application/geo+json" in accept and "geojson" in allowed:
        return "geojson"
    return "json"


def mark_partial(answer: dict[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    """`answer` (of air_series or count_series) with `partial`: the times of its intervals
    that end after `to` or after now (`now_ms`, default the clock), whose values cover only
    part of the interval."""
    every_ms = parse_every(answer["every"]) * 1000
    to_ms = _epoch_ms(answer["to"])
    cutoff = min(to_ms, now_ms if now_ms is not None else int(time.time() * 1000))
    times = {t for s in answer["series"] for t in s["time"]}
    answer["partial"] = sorted(t for t in times if _epoch_ms(t) + every_ms > cutoff)
    return answer


def _epoch_ms(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


def _csv(
    header: list[str], rows: list[list[Any]], filename: str, *, units: bool = True
) -> Response:
    """CSV as `sensorpipe query` writes it: quantities with their unit in the header and to
    their precision (query.output.quantity_csv)."""
    return Response(
        quantity_csv(header, rows, units=units),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


def device_infos(
    registry: Registry,
    stats: RegisterStats,
    *,
    exact: bool = False,
    calibration: dict[str, Any] | None = None,
) -> list[DeviceInfo]:
    from sensorpipe.calibration.status import describe

    out = []
    for device_id, entry in sorted(registry.devices.items()):
        s = stats.of(device_id)
        public = register_entry(
            device_id,
            entry,
            registry.network,
            seen_sensors=s.sensors,
            seen_counting=s.counting,
        )
        exact_location = None
        if exact and entry.location is not None:
            exact_location = {"lat": entry.location.lat, "lon": entry.location.lon}
        out.append(
            DeviceInfo(
                **public.model_dump(),
                state=NO_DATA_YET if s.first_seen_ms is None else None,
                sensor_health=[SensorHealthOut(**h.as_json()) for _, h in sorted(s.health.items())],
                notes=not_ok_notes(s.health),
                **s.activity(),
                latest_pm2_5=s.latest_pm2_5,
                latest_pm2_5_time=iso(s.latest_pm2_5_ms),
                exact_location=exact_location,
                calibration={
                    q: CalibrationOut(**c)
                    for q, c in describe(
                        public.quantities, public.source, (calibration or {}).get(device_id)
                    ).items()
                },
            )
        )
    return out


def geojson(devices: list[DeviceInfo], network: NetworkOut) -> dict[str, Any]:
    """The register as a GeoJSON FeatureCollection (RFC 7946: coordinates are [lon, lat])."""
    return register_geojson([d.model_dump() for d in devices], network.name)


def _bbox_candidates(registry: Registry, text: str) -> tuple[BBox, list[str], list[str]]:
    """The box, the devices whose published (rounded) location lies in it, and the devices
    whose readings can lie in it: those, and devices without a registered location (mobile
    sensors: each of their readings carries its own position)."""
    try:
        box = parse_bbox(text)
    except BBoxError as exc:
        raise bad_request(str(exc), "bbox") from None
    inside = devices_inside(registry, box)
    mobile = [d for d, e in registry.devices.items() if e.location is None]
    return box, inside, sorted(set(inside) | set(mobile))


def _known(registry: Registry, devices: list[str], sites: list[str]) -> None:
    """Unknown devices and sites are a 404 that lists what exists, not an empty answer."""
    unknown = [d for d in devices if d not in registry.devices]
    if unknown:
        raise ApiProblem(
            404,
            f"no device {unknown[0]!r} in the register; /api/v1/devices lists the devices",
        )
    known_sites = {e.site for e in registry.devices.values()}
    missing = [s for s in sites if s not in known_sites]
    if missing:
        raise ApiProblem(
            404,
            f"no site {missing[0]!r} in the register (sites: "
            f"{', '.join(sorted(known_sites)[:20]) or 'none'})",
        )


def _known_names(
    parameter: str, given: list[str], known: list[str], what: str = "is not counted"
) -> None:
    """A class or direction nothing is counted as is a 400 with the names there are, not an
    empty answer that reads as "nobody passed"."""
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise bad_request(
                f"{parameter} {name!r} {what}: {hint}(known: {', '.join(known)})",
                parameter,
            )


Ctx = Annotated[ApiContext, Depends(context_dependency)]
Fmt = Literal["json", "csv"]


# --- routes ---------------------------------------------------------------------------------
@router.get(
    "/devices",
    response_model=DevicesOut,
    responses={
        200: {"content": {"application/geo+json": {}}},
        **problem_responses(401, 503),
    },
    summary="The public sensor register, with uptime, gaps and latency",
)
def devices(
    request: Request,
    ctx: Ctx,
    format: Literal["json", "geojson"] | None = None,
    exact: bool = Query(False, description="exact locations; needs a bearer token"),
) -> Any:
    """One entry per device: what it measures, who runs it and why, whether it processes
    personal data, its rounded location, and how well it delivers (first and last seen,
    uptime over 24 h and 7 days, messages missing by sequence gaps, median latency)."""
    if exact:
        ctx.require_token(request, "exact locations")
    registry = ctx.registry()
    stats = _storage_call(ctx.stats)
    calibration = ctx.calibrations_now(list(registry.devices))
    infos = device_infos(registry, stats, exact=exact, calibration=calibration)
    n = registry.network
    network = NetworkOut(
        name=n.name,
        operator=n.operator,
        contact=n.contact,
        licence=n.licence,
        privacy_url=n.privacy_url,
    )
    if _wants(request, format, ("json", "geojson")) == "geojson":
        return Response(json.dumps(geojson(infos, network)), media_type="application/geo+json")
    return DevicesOut(
        network=network, stats_computed_at=iso(stats.computed_at_ms) or "", devices=infos
    )


@router.get(
    "/algorithms",
    response_model=list[AlgorithmEntry],
    summary="The algorithms in the Dutch algorithm register's terms (publication standard 1.0)",
)
def algorithms(ctx: Ctx) -> list[AlgorithmEntry]:
    """One entry for the on-device counting model and one per calibration method, in the field
    names of the Algoritmeregister's publication standard 1.0 (in Dutch, as the register
    publishes). The organisation, contact and legal basis are the register's network settings;
    where these are not set, the fields are empty. A calibration method is "In gebruik" (in
    use) where a calibration of it is assigned to a device."""
    return algorithm_entries(ctx.registry(), calibrations_in_use=ctx.calibration_methods_in_use())


@router.get(
    "/devices/{device_id}",
    response_model=DeviceInfo,
    responses=problem_responses(404, 503),
    summary="One device's entry",
)
def device(device_id: DeviceId, ctx: Ctx) -> DeviceInfo:
    registry = ctx.registry()
    if device_id not in registry.devices:
        raise ApiProblem(404, f"no device {device_id!r} in the register")
    stats = _storage_call(ctx.stats)
    (info,) = device_infos(
        Registry(network=registry.network, devices={device_id: registry.devices[device_id]}),
        stats,
        calibration=ctx.calibrations_now([device_id]),
    )
    return info


@router.get(
    "/air",
    response_model=AirOut,
    response_model_by_alias=True,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404, 503)},
    summary="Air readings aggregated per interval; empty intervals are null",
)
def air(
    request: Request,
    ctx: Ctx,
    device: Devices = [],  # noqa: B006
    site: Sites = [],  # noqa: B006
    quantity: Annotated[list[Name], Query(max_length=20)] = [],  # noqa: B006
    source: Sources = [],  # noqa: B006
    bbox: Annotated[
        str | None, Query(max_length=100, description="minlon,minlat,maxlon,maxlat")
    ] = None,
    from_: Annotated[
        TimeParam, Query(alias="from", description="-24h, a date, or ISO 8601")
    ] = "-24h",
    to: TimeParam = "now",
    every: Annotated[Every, Query(description="1m to 1d")] = "1h",
    agg: Literal["mean", "median", "min", "max", "last", "count"] = "mean",
    group: Literal["device", "site"] = "device",
    flags: Annotated[
        Literal["include", "exclude", "only"],
        Query(description="every reading (flagged ones counted), or without or only flagged"),
    ] = "include",
    flag: Annotated[
        list[Name], Query(max_length=20, description="only these flags count as flagged")
    ] = [],  # noqa: B006
    values: Annotated[
        Literal["calibrated", "raw"],
        Query(
            description="calibrated: with the calibration assigned to the device for that time "
            "(`sensorpipe calibrate apply`), computed now from the raw values, where one "
            "applies; raw: as stored"
        ),
    ] = "calibrated",
    format: Fmt | None = None,
) -> Any:
    """Readings of the chosen quantities, aggregated over `every`, per device and sensor
    (`group=device`) or per site. Every interval from `from` to `to` is listed: one without
    readings is null, so gaps stay visible. Per quantity, how many readings of each interval
    carry a quality flag and which (`flags=exclude` leaves them out of the means and counts,
    `flags=only` shows them alone; `flag=fog` counts that flag alone).

    Values are calibrated (`values=calibrated`, the default) where a calibration is assigned
    to the device for that time and the aggregate is mean, median, min, max or last; each value
    names its calibration or `raw`, and carries its uncertainty (±, in the quantity's unit)
    and the rule it comes from (a calibration's RMSE, else RIVM Samen Meten's defaults for
    PM: ±5.3 µg/m³ PM2.5, ±8.5 µg/m³ PM10 or 20 % of the value where larger, else a data
    sheet's accuracy), explained in one sentence per rule in `uncertainty_basis`. A low-cost
    sensor's value that no calibration made is `indicative`; a reference station's value has
    no uncertainty and is not indicative. CSV: the columns `<q>_calibration`,
    `<q>_uncertainty_<unit>` and `<q>_indicative` beside each quantity."""
    assert set(SERIES_AGGREGATES) >= {agg}
    for name in flag:  # a bad parameter is a 400 problem, as everywhere in /api/v1
        try:
            check_flag_name(name)
        except QueryInputError as exc:
            raise bad_request(str(exc), "flag") from None
    registry = ctx.registry()
    _known(registry, list(device), list(site))
    _known_names("source", list(source), all_sources(), "is no source of data")
    devices_ = list(device)
    if bbox is not None:
        box, inside, candidates = _bbox_candidates(registry, bbox)
        devices_ = [d for d in devices_ if d in candidates] if devices_ else candidates
    req = AirSeriesRequest(
        devices=devices_,
        sites=list(site),
        quantities=list(quantity),
        sources=list(source),
        start=from_,
        end=to,
        every=every,
        aggregate=agg,
        group=group,
        max_points=ctx.config.max_points,
        bbox=box if bbox is not None else None,
        bbox_devices=inside if bbox is not None else (),
        flags=FlagFilter(flags, tuple(flag)),
    )
    calibrations = ctx.calibrations(devices_) if values == "calibrated" else None
    read_also = _read_to_calibrate(req, calibrations)
    if bbox is not None and not devices_:
        req.check()  # the other parameters are still checked
        answer = _storage_call(air_series, ctx.influx, req, True)
    else:
        answer = _storage_call(air_series, ctx.influx, req)
    answer = _storage_call(_calibrated, ctx, answer, calibrations, values, read_also)
    mark_partial(answer)
    if _wants(request, format, ("json", "csv")) == "csv":
        header, rows = calibrated_rows(answer)
        return _csv(header, rows, "air.csv", units=agg != "count")
    return JSONResponse(answer)


def _read_to_calibrate(req: AirSeriesRequest, calibrations: Any) -> list[str]:
    """The quantities a calibration of those asked for needs and that were not asked for
    (relative humidity, for a method with humidity): added to the request, read, used and
    left out of the answer."""
    if calibrations is None or not req.quantities:
        return []
    extra = sorted(calibrations.needs(req.quantities) - set(req.quantities))
    req.quantities = [*req.quantities, *extra]
    return extra


def _calibrated(
    ctx: ApiContext,
    answer: dict[str, Any],
    calibrations: Any,
    values: str,
    read_also: list[str],
) -> dict[str, Any]:
    """The answer calibrated (query.calibrated), with its uncertainty and indicative labels,
    without the quantities read only to calibrate with."""
    from sensorpipe.query.calibrated import calibrate_answer, references_of

    out = calibrate_answer(
        answer, calibrations, references_of(ctx.registry()), values=values, client=ctx.influx
    )
    for q in read_also:
        out["units"].pop(q, None)
        for series in out["series"]:
            for key in ("values", "flags", "calibration", "uncertainty"):
                series[key].pop(q, None)
            series["uncertainty_basis"].pop(q, None)
            series["indicative"].pop(q, None)
    if read_also:
        out["series"] = [s for s in out["series"] if s["values"] or s["flags"]]
        used = {k for s in out["series"] for ks in s["uncertainty_basis"].values() for k in ks}
        out["uncertainty_basis"] = {k: v for k, v in out["uncertainty_basis"].items() if k in used}
    return out


def calibrated_rows(answer: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The air answer's CSV rows (`as_rows`) with, after the flag columns, per quantity
    `<q>_calibration`, `<q>_uncertainty_<unit>` and `<q>_indicative`."""
    from sensorpipe.query.calibrated import csv_bool, uncertainty_column

    header, rows = as_rows(answer, "air")
    quantities = list(answer["units"])
    header += [
        name
        for q in quantities
        for name in (f"{q}_calibration", uncertainty_column(q), f"{q}_indicative")
    ]
    i = 0
    for s in answer["series"]:
        for t in range(len(s["time"])):
            extra: list[Any] = []
            for q in quantities:
                if q in s["values"]:
                    extra += [
                        s["calibration"][q][t],
                        s["uncertainty"][q][t],
                        csv_bool(s["indicative"][q][t]),
                    ]
                else:
                    extra += [None, None, None]
            rows[i] = [*rows[i], *extra]
            i += 1
    return header, rows


@router.get("/flags", response_model=FlagsOut, summary="The quality flags, each in one sentence")
def flags_() -> FlagsOut:
    """The quality flags a reading can carry (`flags` of /api/v1/air), each with the sentence
    that explains it: the dashboard's legend."""
    from sensorpipe.quality.flags import QC_VERSION

    return FlagsOut(version=QC_VERSION, flags=flag_reasons())


@router.get(
    "/counts",
    response_model=CountsOut,
    response_model_by_alias=True,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404, 503)},
    summary="Passers-by per class and direction, with the share of time the counter ran",
)
def counts(
    request: Request,
    ctx: Ctx,
    device: Devices = [],  # noqa: B006
    site: Sites = [],  # noqa: B006
    source: Sources = [],  # noqa: B006
    class_: Annotated[list[Name], Query(alias="class", max_length=20)] = [],  # noqa: B006
    direction: Annotated[list[Name], Query(max_length=8)] = [],  # noqa: B006
    from_: Annotated[TimeParam, Query(alias="from")] = "-24h",
    to: TimeParam = "now",
    every: Every = "1h",
    flags: CountFlags = "include",
    flag: FlagNames = [],  # noqa: B006
    format: Fmt | None = None,
) -> Any:
    """Counts summed over `every`. `running_fraction` is the share of each interval the
    counter processed frames: a half-hour outage shows as 0.5, not as an empty street, and
    an interval without any report has null counts. Where counts carry a quality flag (a
    counter stuck at 0), each class and direction has `flagged` (per interval, how many of
    its counts were flagged) and `flags` (which), CSV `count_flagged` and `count_flags`;
    `flags=exclude` leaves flagged counts out of the sums, `flags=only` sums them alone."""
    flt = FlagFilter(flags, tuple(flag))
    try:
        flt.check(COUNT_FLAGS)
    except QueryInputError as exc:  # a bad parameter is a 400 problem, as everywhere
        raise bad_request(str(exc), "flag") from None
    registry = ctx.registry()
    _known(registry, list(device), list(site))
    _known_names("source", list(source), all_sources(), "is no source of data")
    _known_names("class", list(class_), list(COUNT_CLASSES))
    directions = set(DEFAULT_DIRECTIONS)
    for entry in registry.devices.values():
        directions.update(entry.directions)
    _known_names("direction", list(direction), sorted(directions))
    req = CountSeriesRequest(
        devices=list(device),
        sites=list(site),
        sources=list(source),
        classes=list(class_),
        directions=list(direction),
        start=from_,
        end=to,
        every=every,
        max_points=ctx.config.max_points,
        flags=flt,
    )
    answer = mark_partial(_storage_call(count_series, ctx.influx, req))
    if _wants(request, format, ("json", "csv")) == "csv":
        header, rows = as_rows(answer, "counts")
        return _csv(header, rows, "counts.csv")
    return JSONResponse(answer)


@router.get(
    "/link",
    summary="Per-message communication metadata of one device (needs a bearer token)",
    responses=problem_responses(401, 404, 503),
)
def link(
    request: Request,
    ctx: Ctx,
    device: DeviceId,
    from_: Annotated[TimeParam, Query(alias="from")] = "-1h",
    to: TimeParam = "now",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """Each stored message's link record: sequence number, gaps, latency, reconnects,
    outbox depth, signal strength, gateway. Not public: it tells when a host is home."""
    ctx.require_token(request, "per-message link metadata")
    registry = ctx.registry()
    _known(registry, [device], [])
    from sensorpipe.query.series import _range

    try:
        t0, t1 = _range(from_, to)
    except QueryInputError as exc:
        raise bad_request(str(exc)) from None
    q = (
        f"SELECT * FROM {identifier(storage.LINK)} WHERE {identifier('device_id')} = "
        f"{string_literal(device)} AND time >= {int(t0.timestamp() * 1000)}ms AND "
        f"time < {int(t1.timestamp() * 1000)}ms LIMIT {limit + 1}"
    )
    series = _storage_call(ctx.influx.query, q)
    rows: list[dict[str, Any]] = []
    for s in series:
        for values in s.get("values") or []:
            rows.append(dict(zip(s["columns"], values, strict=True)))
    truncated = len(rows) > limit
    rows = rows[:limit]
    following = None
    if truncated:  # the next page starts after the last message given
        # From the public address, never from the request's Host header.
        query = request.url.include_query_params(**{"from": iso(int(rows[-1]["time"]) + 1)})
        following = f"{public_base(request)}{router.prefix}/link?{query.query}"
    for row in rows:
        row["time"] = iso(row["time"])
    return {
        "device_id": device,
        "from": iso(int(t0.timestamp() * 1000)),
        "to": iso(int(t1.timestamp() * 1000)),
        "truncated": truncated,
        "next": following,
        "messages": rows,
    }


# /health's checks run on threads of their own: never queued behind the threads that heavy
# requests hold, so a monitor gets its answer while the service is busy.
_HEALTH_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "something is down"}},
    summary="For monitoring: ok or degraded; with a bearer token, each part and the last write",
)
async def health(request: Request, ctx: Ctx) -> Any:
    """`ok` when InfluxDB answers, the broker accepts connections and the ingest is alive
    (each where configured), else `degraded` with a 503. The parts and the time of the last
    write only with a bearer token: they name internal addresses."""
    detailed = ctx.authorised(request)
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(_HEALTH_THREADS, _health, ctx, detailed)
    ok = body.status == "ok"
    shown = body.model_dump() if detailed else {"status": body.status}
    return JSONResponse(shown, status_code=200 if ok else 503)


def _health(ctx: ApiContext, detailed: bool) -> HealthOut:
    influx, broker, ingest = _parts(ctx)
    last_write = None
    if influx.ok and detailed:
        try:
            series = ctx.influx.query(f"SELECT last(seq) FROM {identifier(storage.LINK)}")
            if series and series[0].get("values"):
                last_write = iso(int(series[0]["values"][0][0]))
        except (QueryError, StorageUnavailable):
            pass
    ok = all(c.ok is not False for c in (influx, broker, ingest))
    return HealthOut(
        status="ok" if ok else "degraded",
        influxdb=influx,
        broker=broker,
        ingest=ingest,
        last_write=last_write,
    )


def _parts(ctx: ApiContext) -> tuple[Check, Check, Check]:
    """InfluxDB, the broker and the ingest, checked at most once per `health_cache_s`: a
    flood of /health calls (anonymous ones too) costs one check per period, not a connection
    to the broker (and a line in its log) each. Calls while a check runs wait for it."""
    with ctx.health_lock:
        checked = ctx.health_checked
        now = time.monotonic()
        if checked is not None and now - checked[0] < ctx.config.health_cache_s:
            parts: tuple[Check, Check, Check] = checked[1]
            return parts
        parts = _check_parts(ctx)
        ctx.health_checked = (time.monotonic(), parts)
        return parts


def _check_parts(ctx: ApiContext) -> tuple[Check, Check, Check]:
    influx_ok = ctx.influx.ping(timeout_s=HEALTH_TIMEOUT_S)  # a hung InfluxDB is down too
    influx = Check(
        ok=influx_ok,
        detail=f"{ctx.config.influx.url} answers"
        if influx_ok
        else f"{ctx.config.influx.url} does not answer",
    )
    broker = Check(ok=None, detail="no broker configured")
    if ctx.config.broker is not None:
        b = ctx.config.broker
        try:
            with socket.create_connection((b.host, b.port), timeout=2):
                broker = Check(ok=True, detail=f"{b.host}:{b.port} accepts connections")
        except OSError as exc:
            broker = Check(ok=False, detail=f"{b.host}:{b.port}: {exc.strerror or exc}")
    ingest = Check(ok=None, detail="no ingest stats file configured")
    if ctx.config.ingest_stats_path:
        path = Path(ctx.config.ingest_stats_path)
        try:
            age = time.time() - path.stat().st_mtime
            connected = json.loads(path.read_text()).get("connected", False)
        except (OSError, ValueError):
            ingest = Check(ok=False, detail=f"{path}: not written (is the ingest running?)")
        else:
            fresh = age < INGEST_FRESH_S
            ingest = Check(
                ok=fresh and bool(connected),
                detail=f"heartbeat {age:.0f} s ago, "
                + ("connected to the broker" if connected else "not connected to the broker"),
            )
    return influx, broker, ingest
