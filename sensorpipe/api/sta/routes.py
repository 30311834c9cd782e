"""The SensorThings resource paths: the service root, entity sets, entities by id, navigation
(`Things(1)/Datastreams`, `Datastreams(5)/Observations`, `Datastreams(5)/Thing`, ...),
properties (`Things(1)/name`, `.../name/$value`), with the query options of odata.py.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import sensorpipe.api.sta.observations as observations
from sensorpipe.api.context import ApiContext, context, public_base
from sensorpipe.api.problems import PROBLEM_RESPONSES, ApiProblem, bad_request, problem_responses
from sensorpipe.api.sta.catalog import (
    ENTITY_SETS,
    NAVIGATION,
    PROPERTIES,
    SET_OF,
    Catalog,
    Entity,
    catalog,
)
from sensorpipe.api.sta.ids import observation_id, parse_observation_id
from sensorpipe.api.sta.observations import (
    DATASTREAM_ID_PATHS,
    MAX_TIME_MS,
    MIN_TIME_MS,
    ObservationRow,
)
from sensorpipe.api.sta.odata import (
    Comparison,
    DateTime,
    Expand,
    Literal,
    QueryOptions,
    parse_options,
)
from sensorpipe.ingest.errors import QueryError, StorageUnavailable

PREFIX = "/sta/v1.1"
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
MAX_SEGMENTS = 6
MAX_SEGMENT_CHARS = 200
_SEGMENT = re.compile(r"([A-Za-z]{1,40})(?:\((.*)\))?", re.DOTALL)
# What a resource path keeps unquoted in a link: Datastreams(5)/Observations('1-2-edge').
_PATH_SAFE = "/()',:$@"
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}

router = APIRouter(prefix=PREFIX, tags=["SensorThings"], responses=PROBLEM_RESPONSES)


# --- what a path names ------------------------------------------------------------------------
@dataclass
class Collection:
    type: str
    url: str  # relative to the service root
    members: list[int] | None = None  # None: the whole entity set
    datastream: Entity | None = None  # Observations: the datastream they belong to


@dataclass
class One:
    type: str
    entity: Entity  # for an Observation: its datastream
    row: ObservationRow | None = None  # Observations only


@dataclass
class Property:
    name: str
    value: Any
    raw: bool = False  # `/$value`: the bare value


Resolved = Collection | One | Property


def _not_found(detail: str) -> ApiProblem:
    return ApiProblem(404, detail)


def _segment(text: str) -> tuple[str, str | None]:
    m = _SEGMENT.fullmatch(text) if len(text) <= MAX_SEGMENT_CHARS else None
    if m is None:
        raise _not_found(f"no resource {text[:60]!r}: expected e.g. Things, Things(1), Datastreams")
    return m.group(1), m.group(2)


class _Resolver:
    def __init__(self, ctx: ApiContext, cat: Catalog) -> None:
        self.ctx = ctx
        self.cat = cat

    def resolve(self, path: str) -> Resolved:
        segments = path.split("/")
        if len(segments) > MAX_SEGMENTS:
            raise _not_found("the path is longer than any SensorThings resource path here")
        name, key = _segment(segments[0])
        if name not in ENTITY_SETS:
            raise _not_found(f"no entity set {name!r}: there are {', '.join(ENTITY_SETS)}")
        entity_set = Collection(ENTITY_SETS[name], name)
        current: Resolved = entity_set if key is None else self.member(entity_set, key)
        for i, text in enumerate(segments[1:], start=1):
            last = i == len(segments) - 1
            if isinstance(current, Property):
                if text == "$value" and last and not current.raw:
                    current.raw = True
                    continue
                raise _not_found(f"{current.name} has no {text[:60]!r}")
            if isinstance(current, Collection):
                raise _not_found(
                    f"{current.url} is a collection: name one of its entities by id first, "
                    f"e.g. {current.url}(<id>)/{text[:40]}"
                )
            current = self.step(current, text)
        return current

    def step(self, one: One, text: str) -> Resolved:
        name, key = _segment(text)
        nav = NAVIGATION[one.type].get(name)
        if nav is None:
            if key is None and name in PROPERTIES[one.type]:
                props = self.properties(one)
                return Property(name, props.get(name))
            raise _not_found(f"a {one.type} has no property or navigation property {name!r}")
        if not nav.many:
            if key is not None:
                raise _not_found(f"{name} is one entity: it takes no id")
            if one.type == "Observation":
                return One("Datastream", one.entity)
            related = self.cat.get(nav.target, one.entity.links[name][0])
            if related is None:
                raise _not_found(f"the {name} of this {one.type} is gone")
            return One(nav.target, related)
        url = f"{SET_OF[one.type]}({one.entity.id})/{name}"
        if nav.target == "Observation":
            coll = Collection("Observation", url, datastream=one.entity)
        else:
            coll = Collection(nav.target, url, members=list(one.entity.links[name]))
        return coll if key is None else self.member(coll, key)

    def member(self, coll: Collection, key: str) -> One:
        """The entity of `coll` with id `key` (as the path writes it)."""
        if coll.type == "Observation":
            return self.observation(coll, key)
        if not re.fullmatch(r"[1-9][0-9]{0,15}", key):
            raise bad_request(
                f"{SET_OF[coll.type]} ids are whole numbers, e.g. {SET_OF[coll.type]}(123); "
                f"not {key[:40]!r}"
            )
        entity = self.cat.get(coll.type, int(key))
        if entity is None or (coll.members is not None and entity.id not in coll.members):
            raise _not_found(f"no {coll.type} with id {key} in {coll.url}")
        return One(coll.type, entity)

    def observation(self, coll: Collection, key: str) -> One:
        if not (len(key) >= 2 and key[0] == key[-1] == "'"):
            raise bad_request(
                "Observation ids are quoted strings '<datastream id>-<epoch ms>-<source>', "
                "e.g. Observations('123-1714521600000-edge')"
            )
        parsed = parse_observation_id(key[1:-1])
        # Only times InfluxDB can look up (beyond them `time = ...ms` does not parse).
        if parsed is None or not MIN_TIME_MS <= parsed[1] <= MAX_TIME_MS:
            raise _not_found(f"no Observation with id {key[:60]}")
        ds = self.cat.get("Datastream", parsed[0])
        if (
            ds is None
            or ds.source is None
            or (coll.datastream is not None and coll.datastream.id != ds.id)
        ):
            raise _not_found(f"no Observation with id {key[:60]} in {coll.url}")
        row = observations.one(self.ctx.influx, ds.source, parsed[1], parsed[2])
        if row is None:
            raise _not_found(f"no Observation with id {key[:60]}")
        return One("Observation", ds, row)

    @staticmethod
    def properties(one: One) -> dict[str, Any]:
        if one.row is not None and one.entity.source is not None:
            return observations.render(one.row, one.entity.source)
        return one.entity.props


# --- $filter and $orderby over the catalog's entities ------------------------------------------
def _check_path(entity_type: str, path: tuple[str, ...], option: str) -> None:
    """Refuse a path that names nothing on `entity_type` (whatever the entities hold)."""
    head, rest = path[0], path[1:]
    if head in ("id", "@iot.id") and not rest:
        return
    if head in PROPERTIES[entity_type]:
        if rest and head not in ("properties", "unitOfMeasurement", "location"):
            raise bad_request(f"{option}: {head} of a {entity_type} has no parts", option)
        return
    nav = NAVIGATION[entity_type].get(head)
    if nav is not None and not nav.many and rest:
        _check_path(nav.target, rest, option)
        return
    shown = "/".join(path)[:80]
    raise bad_request(
        f"{option}: a {entity_type} has no property {shown!r}; it has id, "
        f"{', '.join(PROPERTIES[entity_type])}",
        option,
    )


def _value_of(cat: Catalog, entity: Entity, path: tuple[str, ...]) -> Any:
    head, rest = path[0], path[1:]
    if head in ("id", "@iot.id") and not rest:
        return entity.id
    nav = NAVIGATION[entity.type].get(head)
    if nav is not None:
        related = cat.get(nav.target, entity.links[head][0]) if entity.links[head] else None
        return _value_of(cat, related, rest) if related is not None else None
    value = entity.props.get(head)
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _holds(value: Any, op: str, literal: Literal) -> bool:
    if isinstance(literal, DateTime):
        return False  # no date-time properties on these entities
    if op in ("eq", "ne"):
        if isinstance(value, bool) or isinstance(literal, bool):
            same = isinstance(value, bool) and isinstance(literal, bool) and value == literal
        else:
            same = value == literal
        return same if op == "eq" else not same
    if (_is_number(value) and _is_number(literal)) or (
        isinstance(value, str) and isinstance(literal, str)
    ):
        return _COMPARE[op](value, literal)
    return False


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if _is_number(value):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, str(value))


def _select_entities(
    cat: Catalog, entity_type: str, entities: list[Entity], options: QueryOptions
) -> tuple[list[Entity], int, bool]:
    """The page of `entities` the options ask for, how many match in all, and whether more
    follow the page."""
    for c in options.filter:
        _check_path(entity_type, c.path, "$filter")
    for o in options.orderby:
        _check_path(entity_type, o.path, "$orderby")
    matching = [
        e
        for e in entities
        if all(_holds(_value_of(cat, e, c.path), c.op, c.value) for c in options.filter)
    ]
    matching.sort(key=lambda e: e.id)
    for o in reversed(options.orderby):

        def key(e: Entity, path: tuple[str, ...] = o.path) -> tuple[int, Any]:
            return _sort_key(_value_of(cat, e, path))

        matching.sort(key=key, reverse=o.descending)
    end = options.skip + options.top
    return matching[options.skip : end], len(matching), end < len(matching)


def _check_select_expand(entity_type: str, options: QueryOptions) -> None:
    """Refuse $select and $expand names the entity type does not have."""
    navs = NAVIGATION[entity_type]
    if options.select is not None:
        known = {"id", "@iot.id", "@iot.selfLink", *PROPERTIES[entity_type], *navs}
        for name in options.select:
            if name not in known:
                raise bad_request(
                    f"$select: a {entity_type} has no property {name!r}; it has id, "
                    f"{', '.join((*PROPERTIES[entity_type], *navs))}",
                    "$select",
                )
    for e in options.expand:
        if e.name not in navs:
            raise bad_request(
                f"$expand: a {entity_type} has no navigation property {e.name!r}; it has "
                f"{', '.join(navs)}",
                "$expand",
            )
        _check_select_expand(navs[e.name].target, e.options)


# --- writing entities ------------------------------------------------------------------------
def _link_query(options: QueryOptions, skip: int) -> str:
    params = [(k, v) for k, v in options.raw if k != "$skip"] + [("$skip", str(skip))]
    if not any(k == "$top" for k, _ in params):
        params.append(("$top", str(options.top)))
    return urlencode(params, quote_via=quote, safe="$,'()/:")


class _Writer:
    def __init__(self, request: Request, ctx: ApiContext, cat: Catalog) -> None:
        self.base = _base(request)
        self.ctx = ctx
        self.cat = cat

    def self_link(self, one: One) -> str:
        if one.row is not None:
            key = observation_id(one.entity.id, one.row.time_ms, one.row.source)
            return f"{self.base}/Observations('{key}')"
        return f"{self.base}/{SET_OF[one.type]}({one.entity.id})"

    def entity(self, one: One, options: QueryOptions) -> dict[str, Any]:
        """One entity as SensorThings writes it, with what $select keeps and $expand adds."""
        entity_type = one.type
        select = options.select
        navs = NAVIGATION[entity_type]
        _check_select_expand(entity_type, options)
        link = self.self_link(one)
        out: dict[str, Any] = {}
        if select is None or {"id", "@iot.id"} & set(select):
            out["@iot.id"] = (
                observation_id(one.entity.id, one.row.time_ms, one.row.source)
                if one.row
                else one.entity.id
            )
        if select is None or {"id", "@iot.id", "@iot.selfLink"} & set(select):
            out["@iot.selfLink"] = link
        props = _Resolver.properties(one)
        for name in PROPERTIES[entity_type]:
            if name in props and (select is None or name in select):
                out[name] = props[name]
        for name in navs:
            if select is None or name in select:
                out[f"{name}@iot.navigationLink"] = f"{link}/{name}"
        for e in options.expand:
            out.update(self.expansion(one, e, link))
        return out

    def expansion(self, one: One, e: Expand, link: str) -> dict[str, Any]:
        nav = NAVIGATION[one.type][e.name]
        if not nav.many:
            if one.row is not None:
                return {e.name: self.entity(One("Datastream", one.entity), e.options)}
            related = self.cat.get(nav.target, one.entity.links[e.name][0])
            return {e.name: self.entity(One(nav.target, related), e.options) if related else None}
        if nav.target == "Observation":
            coll = Collection("Observation", "", datastream=one.entity)
        else:
            coll = Collection(nav.target, "", members=list(one.entity.links[e.name]))
        value, total, more = self.collection_page(coll, e.options)
        out: dict[str, Any] = {e.name: value}
        if total is not None:
            out[f"{e.name}@iot.count"] = total
        if more:
            out[f"{e.name}@iot.nextLink"] = (
                f"{link}/{e.name}?{_link_query(e.options, e.options.skip + e.options.top)}"
            )
        return out

    def collection_page(
        self, coll: Collection, options: QueryOptions
    ) -> tuple[list[dict[str, Any]], int | None, bool]:
        """The written entities of one page of `coll`, the count if asked, and whether more
        follow."""
        _check_select_expand(coll.type, options)
        if coll.type == "Observation":
            return self.observation_page(coll, options)
        entities = self.cat.all(coll.type)
        if coll.members is not None:
            wanted = set(coll.members)
            entities = [e for e in entities if e.id in wanted]
        page, total, more = _select_entities(self.cat, coll.type, entities, options)
        self._check_expansion_size(len(page), options)
        written = [self.entity(One(coll.type, e), options) for e in page]
        return written, (total if options.count else None), more

    def _check_expansion_size(self, n: int, options: QueryOptions) -> None:
        """Refuse a page whose expanded observations would exceed the answer size limit."""
        for e in options.expand:
            if e.name == "Observations" and n * e.options.top > self.ctx.config.max_points:
                raise bad_request(
                    f"{n} entities with up to {e.options.top} expanded Observations each is "
                    f"more than {self.ctx.config.max_points} values: lower $top, or "
                    f"$expand=Observations($top=...)",
                    "$expand",
                )

    def observation_page(
        self, coll: Collection, options: QueryOptions
    ) -> tuple[list[dict[str, Any]], int | None, bool]:
        ds, conditions = self._observation_scope(coll, options.filter)
        if ds is None or ds.source is None:
            observations.check_conditions(conditions)
            observations.descending(options.orderby)
            return [], (0 if options.count else None), False
        rows, more = observations.page(
            self.ctx.influx,
            ds.source,
            conditions,
            options.orderby,
            options.top,
            options.skip,
            counter_limit=self.ctx.config.max_points,
        )
        total = (
            observations.count(self.ctx.influx, ds.source, conditions) if options.count else None
        )
        written = [self.entity(One("Observation", ds, row), options) for row in rows]
        return written, total, more

    def _observation_scope(
        self, coll: Collection, conditions: list[Comparison]
    ) -> tuple[Entity | None, list[Comparison]]:
        """The datastream whose observations are listed (None: no datastream matches), and
        the conditions left once those on the datastream's id are taken out."""
        ids: set[int] = set()
        rest = []
        for c in conditions:
            if c.path in DATASTREAM_ID_PATHS:
                if c.op != "eq" or not isinstance(c.value, int) or isinstance(c.value, bool):
                    raise bad_request(
                        "$filter: Datastream/@iot.id is compared with eq and a whole number",
                        "$filter",
                    )
                ids.add(c.value)
            else:
                rest.append(c)
        if coll.datastream is not None:
            ds: Entity | None = coll.datastream
            if ids and ids != {coll.datastream.id}:
                ds = None
            return ds, rest
        if not ids:
            raise bad_request(
                "Observations are listed one datastream at a time: ask "
                "Datastreams(<id>)/Observations, or add $filter=Datastream/@iot.id eq <id>",
                "$filter",
            )
        if len(ids) > 1:
            return None, rest
        return self.cat.get("Datastream", ids.pop()), rest


def _raw_value(value: Any) -> Response:
    """A property's `/$value`: a primitive as plain text (null as nothing, booleans as OData
    writes them), an object or array (properties, unitOfMeasurement, location, parameters) as
    its JSON text. OData's $value is defined for primitives; SensorThings servers such as
    FROST answer JSON for complex properties, and that is more use than a 400."""
    if value is None:
        return PlainTextResponse("")
    if isinstance(value, bool):
        return PlainTextResponse("true" if value else "false")
    if isinstance(value, str):
        return PlainTextResponse(value)
    if isinstance(value, int | float):
        return PlainTextResponse(json.dumps(value))
    return JSONResponse(value)


def _base(request: Request) -> str:
    """Where links in answers start: the public address (never the Host header)."""
    return public_base(request) + PREFIX


def _root(request: Request) -> dict[str, Any]:
    base = _base(request)
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }


@router.get("", summary="SensorThings service root: entity sets and conformance")
def service_root(request: Request) -> dict[str, Any]:
    return _root(request)


@router.get(
    "/{resource:path}",
    responses=problem_responses(404, 503),
    summary="SensorThings entity sets, entities, navigation and properties",
    description=(
        "Things, Locations, Sensors, ObservedProperties, Datastreams and Observations, read "
        "only, with $top (at most 1000, 100 by default), $skip, $count, $orderby, $select, "
        "$expand (one level) and $filter (comparisons joined by 'and'; on Observations: "
        "phenomenonTime and result)."
    ),
)
def resource(resource: str, request: Request) -> Response:
    if resource == "":
        return JSONResponse(_root(request))
    ctx = context(request)
    options = parse_options(request.query_params.multi_items())
    try:
        cat = catalog(ctx)
        target = _Resolver(ctx, cat).resolve(resource)
        writer = _Writer(request, ctx, cat)
        if isinstance(target, Property):
            if target.raw:
                return _raw_value(target.value)
            return JSONResponse({target.name: target.value})
        if isinstance(target, One):
            return JSONResponse(writer.entity(target, options))
        value, total, more = writer.collection_page(target, options)
    except StorageUnavailable as exc:
        raise ApiProblem(503, f"the time series store does not answer: {exc}") from None
    except QueryError as exc:
        raise bad_request(f"InfluxDB could not run this query: {exc}") from None
    body: dict[str, Any] = {}
    if total is not None:
        body["@iot.count"] = total
    body["value"] = value
    if more:
        body["@iot.nextLink"] = (
            f"{_base(request)}/{quote(resource, safe=_PATH_SAFE)}?"
            f"{_link_query(options, options.skip + options.top)}"
        )
    return JSONResponse(body)
