"""The SensorThings entities other than Observations, built from the registry and from which
series InfluxDB holds.

- Thing: a registered device, with its public register entry as properties.
- Location: where a Thing stands, rounded as its host chose (the exact place is not public).
- Sensor: a sensor model (sds011, bme280, camera, ...).
- ObservedProperty: a quantity (pm2_5, temperature, ...) or a class of passers-by counted.
- Datastream: a device's sensor measuring one quantity (air), or a device's count of one class
  in one direction (counts). It exists when the device declares a sensor model that measures
  the quantity (or counts), or when InfluxDB holds its series. Beside an air Datastream whose
  quantity has a calibration of its sensor model assigned (`sensorpipe calibrate apply`), a
  second one, "<name> (calibrated)": the same readings calibrated when read (observations.py),
  its properties naming the calibrations; the raw Datastream and its id stay as they were.

The catalog is small (a handful of entities per device) and is rebuilt when the registry
changes or it is older than the register cache time; Observations are read from InfluxDB per
request (see observations.py).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sensorpipe.api.context import ApiContext
from sensorpipe.api.sta.ids import stable_id
from sensorpipe.calibration.status import Applied, applied_dict, applying, describe, of_quantity
from sensorpipe.calibration.store import Assignment
from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.counting import COUNT_CLASSES
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.register import CAMERA_SENSORS, SENSOR_QUANTITIES, register_entry
from sensorpipe.protocol.registry import Registry, sensor_model
from sensorpipe.query.health import NO_DATA_YET, ONE_OF_QUANTITIES, SensorState, not_ok_notes
from sensorpipe.query.register import RegisterStats, _series_tags

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
MEASUREMENT = OM + "OM_Measurement"
COUNT_OBSERVATION = OM + "OM_CountObservation"
UCUM = "http://unitsofmeasure.org/ucum.html"
# The canonical units of protocol.quantities as UCUM symbols.
_UCUM_UNITS: dict[str, tuple[str, str]] = {
    "ug/m3": ("microgram per cubic metre", "µg/m3"),
    "degC": ("degree Celsius", "Cel"),
    "%": ("percent", "%"),
    "hPa": ("hectopascal", "hPa"),
    "ppm": ("parts per million", "ppm"),
    "dBA": ("A-weighted decibel", "dB(A)"),
    "1/cm3": ("per cubic centimetre", "/cm3"),
    "um": ("micrometre", "um"),
    "V": ("volt", "V"),
}
COUNT_UNIT = {
    "name": "count",
    "symbol": "{count}",
    "definition": UCUM + "#para-curly",
}

# Entity set name -> entity type name, in the order the service root lists them.
ENTITY_SETS: dict[str, str] = {
    "Things": "Thing",
    "Locations": "Location",
    "Sensors": "Sensor",
    "ObservedProperties": "ObservedProperty",
    "Datastreams": "Datastream",
    "Observations": "Observation",
}
SET_OF = {entity_type: name for name, entity_type in ENTITY_SETS.items()}


@dataclass(frozen=True)
class Navigation:
    target: str  # entity type
    many: bool


# Entity type -> navigation property -> where it leads.
NAVIGATION: dict[str, dict[str, Navigation]] = {
    "Thing": {
        "Locations": Navigation("Location", True),
        "Datastreams": Navigation("Datastream", True),
    },
    "Location": {"Things": Navigation("Thing", True)},
    "Sensor": {"Datastreams": Navigation("Datastream", True)},
    "ObservedProperty": {"Datastreams": Navigation("Datastream", True)},
    "Datastream": {
        "Thing": Navigation("Thing", False),
        "Sensor": Navigation("Sensor", False),
        "ObservedProperty": Navigation("ObservedProperty", False),
        "Observations": Navigation("Observation", True),
    },
    "Observation": {"Datastream": Navigation("Datastream", False)},
}
# Entity type -> its properties (besides id and links), in the order they are written.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "Thing": ("name", "description", "properties"),
    "Location": ("name", "description", "encodingType", "location", "properties"),
    "Sensor": ("name", "description", "encodingType", "metadata", "properties"),
    "ObservedProperty": ("name", "definition", "description", "properties"),
    "Datastream": (
        "name",
        "description",
        "observationType",
        "unitOfMeasurement",
        "properties",
    ),
    "Observation": ("phenomenonTime", "resultTime", "result", "resultQuality", "parameters"),
}


@dataclass(frozen=True)
class AirSource:
    """An air datastream's values: field `quantity` of `air` points of this device and sensor."""

    device_id: str
    sensor: str
    quantity: str


@dataclass(frozen=True)
class CountSource:
    """A count datastream's values: field `count` of `traffic` points of this device, class
    and direction."""

    device_id: str
    count_class: str
    direction: str


@dataclass(frozen=True)
class CalibratedSource(AirSource):
    """A calibrated air datastream's values: those of its AirSource, calibrated when read by
    the calibrations of its quantity and sensor model assigned to its device (oldest first;
    where several cover a reading, the latest made applies)."""

    assignments: tuple[Assignment, ...] = ()
    records: Mapping[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)
    raw_datastream_id: int = 0


Source = AirSource | CountSource
log = logging.getLogger(__name__)
# The calibration book's assignments (oldest first) and the calibrations they name.
BookContents = tuple[Sequence[Assignment], Mapping[str, dict[str, Any]]]


@dataclass
class Entity:
    type: str
    id: int
    props: dict[str, Any]
    # navigation property -> ids of the related entities
    links: dict[str, list[int]] = field(default_factory=dict)
    source: Source | None = None  # Datastreams only


@dataclass
class Catalog:
    entities: dict[str, dict[int, Entity]]

    def get(self, entity_type: str, entity_id: int) -> Entity | None:
        return self.entities.get(entity_type, {}).get(entity_id)

    def all(self, entity_type: str) -> list[Entity]:
        return list(self.entities.get(entity_type, {}).values())


def unit_of_measurement(quantity: str) -> dict[str, str]:
    unit = QUANTITIES[quantity].unit
    name, symbol = _UCUM_UNITS.get(unit, (unit, unit))
    return {"name": name, "symbol": symbol, "definition": UCUM}


def _seen_series(influx: InfluxClient, measurement: str) -> list[dict[str, str]]:
    """The tags of every series of `measurement`."""
    out = []
    for s in influx.query(f"SHOW SERIES FROM {identifier(measurement)}"):
        for row in s.get("values") or []:
            out.append(_series_tags(str(row[0])))
    return out


def _quantities_in_data(influx: InfluxClient, device_id: str, sensor: str) -> set[str]:
    """The quantities in the latest point of a sensor model sensorpipe has no table for."""
    series = influx.query(
        f"SELECT * FROM {identifier(storage.AIR)} WHERE "
        f"{identifier('device_id')} = {string_literal(device_id)} AND "
        f"{identifier('sensor')} = {string_literal(sensor)} ORDER BY time DESC LIMIT 1"
    )
    out: set[str] = set()
    for s in series:
        for row in s.get("values") or []:
            out |= {
                c
                for c, v in zip(s["columns"], row, strict=False)
                if c in QUANTITIES and v is not None
            }
    return out


class _Builder:
    def __init__(self) -> None:
        self.entities: dict[str, dict[int, Entity]] = {t: {} for t in NAVIGATION}

    def add(self, entity_type: str, names: tuple[str, ...], props: dict[str, Any]) -> Entity:
        entity_id = stable_id(entity_type, *names)
        existing = self.entities[entity_type].get(entity_id)
        if existing is not None:
            return existing
        entity = Entity(entity_type, entity_id, props, {n: [] for n in NAVIGATION[entity_type]})
        self.entities[entity_type][entity_id] = entity
        return entity

    def link(self, a: Entity, nav_a: str, b: Entity, nav_b: str) -> None:
        """Relate a and b: b is in a's `nav_a`, a in b's `nav_b`."""
        if b.id not in a.links[nav_a]:
            a.links[nav_a].append(b.id)
        if a.id not in b.links[nav_b]:
            b.links[nav_b].append(a.id)

    def sensor(self, model: str) -> Entity:
        if model in CAMERA_SENSORS:
            text = (
                "counting camera: detects passers-by on the device; images are neither stored "
                "nor sent, only counts per class and direction leave it"
            )
        else:
            measures = ", ".join(SENSOR_QUANTITIES.get(sensor_model(model), ())) or "air quantities"
            text = f"{model}: measures {measures}"
        return self.add(
            "Sensor",
            (model,),
            {
                "name": model,
                "description": text,
                "encodingType": "text/plain",
                "metadata": text,
                "properties": {"model": model},
            },
        )

    def quantity(self, quantity: str) -> Entity:
        q = QUANTITIES[quantity]
        return self.add(
            "ObservedProperty",
            ("quantity", quantity),
            {
                "name": quantity,
                "definition": f"urn:sensorpipe:quantity:{quantity}",
                "description": q.description,
                "properties": {"unit": q.unit},
            },
        )

    def count_class(self, count_class: str) -> Entity:
        what = COUNT_CLASSES.get(count_class, f"a passer-by of class {count_class}")
        return self.add(
            "ObservedProperty",
            ("count", count_class),
            {
                "name": f"{count_class} count",
                "definition": f"urn:sensorpipe:count:{count_class}",
                "description": f"passers-by counted per interval, each {what}",
                "properties": {"class": count_class},
            },
        )


def build_catalog(
    registry: Registry,
    influx: InfluxClient,
    stats: RegisterStats | None = None,
    calibration: BookContents | None = None,
) -> Catalog:
    """Every Thing, Location, Sensor, ObservedProperty and Datastream there is now. With
    `stats`, each Thing's properties hold its sensors' health (`sensor_health`, `notes`,
    `state`) and each air Datastream's properties its sensor's (`health`). With
    `calibration` (the book's assignments and calibrations), a calibrated Datastream beside
    each air Datastream that a calibration is assigned to."""
    air_seen: dict[str, set[str]] = {}
    for tags in _seen_series(influx, storage.AIR):
        if "device_id" in tags and "sensor" in tags:
            air_seen.setdefault(tags["device_id"], set()).add(tags["sensor"])
    counts_seen: dict[str, set[tuple[str, str]]] = {}
    for tags in _seen_series(influx, storage.TRAFFIC):
        if {"device_id", "class", "direction"} <= tags.keys():
            counts_seen.setdefault(tags["device_id"], set()).add((tags["class"], tags["direction"]))

    b = _Builder()
    for device_id, device in sorted(registry.devices.items()):
        seen_pairs = counts_seen.get(device_id, set())
        entry = register_entry(
            device_id,
            device,
            registry.network,
            seen_sensors=air_seen.get(device_id, set()),
            seen_counting=bool(seen_pairs),
        )
        props = entry.model_dump(mode="json", exclude={"device_id", "location"})
        health: dict[str, SensorState] = {}
        if stats is not None:
            of = stats.of(device_id)
            health = of.health
            props["state"] = NO_DATA_YET if of.first_seen_ms is None else None
            props["sensor_health"] = [h.as_json() for _, h in sorted(health.items())]
            props["notes"] = not_ok_notes(health)
        if calibration is not None:  # as /api/v1/devices says it: per quantity, now
            props["calibration"] = _calibrated_now(
                device_id, entry.quantities, entry.source, calibration
            )
        thing = b.add(
            "Thing",
            (device_id,),
            {
                "name": device_id,
                "description": entry.purpose or f"sensorpipe device at {entry.site}",
                "properties": props,
            },
        )
        if entry.location is not None:
            loc = entry.location
            location = b.add(
                "Location",
                (device_id,),
                {
                    "name": f"{device_id} at {entry.site}",
                    "description": (
                        f"where {device_id} stands, rounded to {loc.precision_decimals} "
                        f"decimals; the exact place is not public"
                    ),
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [loc.lon, loc.lat]},
                    "properties": {"precision_decimals": loc.precision_decimals},
                },
            )
            b.link(thing, "Locations", location, "Things")

        for model in entry.sensors:
            if model in CAMERA_SENSORS:
                continue
            kind = sensor_model(model)  # a second probe's tag (ds18b20.deep): its model's
            quantities = set(SENSOR_QUANTITIES.get(kind, ()))
            if not quantities and model in air_seen.get(device_id, set()):
                quantities = _quantities_in_data(influx, device_id, model)
            elif kind in ONE_OF_QUANTITIES and model in air_seen.get(device_id, set()):
                # a DS18B20 in the soil or in the air: the quantity its readings carry
                quantities &= _quantities_in_data(influx, device_id, model)
            for quantity in (q for q in QUANTITIES if q in quantities):
                sensor, prop = b.sensor(model), b.quantity(quantity)
                q = QUANTITIES[quantity]
                ds = b.add(
                    "Datastream",
                    ("air", device_id, model, quantity),
                    {
                        "name": f"{device_id} {quantity} ({model})",
                        "description": (
                            f"{q.description}, measured by the {model} of {device_id} "
                            f"at {entry.site}: every stored reading"
                        ),
                        "observationType": MEASUREMENT,
                        "unitOfMeasurement": unit_of_measurement(quantity),
                        "properties": {
                            "device_id": device_id,
                            "sensor": model,
                            "quantity": quantity,
                            **({"health": health[model].as_json()} if model in health else {}),
                        },
                    },
                )
                ds.source = AirSource(device_id, model, quantity)
                _relate_datastream(b, ds, thing, sensor, prop)
                if calibration is not None:
                    calibrated = _calibrated_datastream(b, ds, calibration)
                    if calibrated is not None:
                        _relate_datastream(b, calibrated, thing, sensor, prop)

        pairs = set(seen_pairs)
        if entry.counts:
            pairs |= {(c, d) for c in entry.count_classes for d in entry.directions}
        for count_class, direction in sorted(pairs):
            way = direction.replace("_", " ")
            sensor, prop = b.sensor("camera"), b.count_class(count_class)
            ds = b.add(
                "Datastream",
                ("count", device_id, count_class, direction),
                {
                    "name": f"{device_id} {count_class} {direction}",
                    "description": (
                        f"{count_class} passing {device_id} at {entry.site} {way}, "
                        f"counted per interval (phenomenonTime is the interval)"
                    ),
                    "observationType": COUNT_OBSERVATION,
                    "unitOfMeasurement": COUNT_UNIT,
                    "properties": {
                        "device_id": device_id,
                        "class": count_class,
                        "direction": direction,
                    },
                },
            )
            ds.source = CountSource(device_id, count_class, direction)
            _relate_datastream(b, ds, thing, sensor, prop)
    return Catalog(b.entities)


def _calibrated_now(
    device_id: str, quantities: list[str], source: str, book: BookContents
) -> dict[str, dict[str, Any]]:
    """Per quantity of the device, the calibration that applies now, or its status."""
    now_ms = int(time.time() * 1000)
    applied = {
        q: found
        for q in quantities
        if (found := applying(book[0], book[1], device_id, q, now_ms)) is not None
    }
    return describe(quantities, source, applied)


def _calibrated_datastream(b: _Builder, raw: Entity, book: BookContents) -> Entity | None:
    """The calibrated Datastream beside `raw` (an air Datastream), where calibrations of its
    quantity and sensor model are assigned to its device; None where none is."""
    assert isinstance(raw.source, AirSource)
    device_id, model, quantity = raw.source.device_id, raw.source.sensor, raw.source.quantity
    assignments, records = book
    mine = tuple(
        a
        for a in of_quantity(assignments, records, quantity)
        if a.device_id == device_id and records[a.calibration_id].get("sensor_model") == model
    )
    if not mine:
        return None
    listed = []
    for a in mine:
        d = applied_dict(Applied(a, records[a.calibration_id]))
        listed.append({k: v for k, v in d.items() if k != "status"})
    description = raw.props["description"].removesuffix(": every stored reading")
    properties = {**raw.props["properties"], "calibrated": True, "raw_datastream": raw.id}
    ds = b.add(
        "Datastream",
        ("air-calibrated", device_id, model, quantity),
        raw.props
        | {
            "name": f"{raw.props['name']} (calibrated)",
            "description": (
                f"{description}, calibrated when read: each reading a calibration's validity "
                f"period covers, calibrated by the latest assigned (never stored; Datastream "
                f"{raw.id} has the raw readings); each Observation's parameters name its "
                f"calibration and uncertainty"
            ),
            "properties": properties | {"calibrations": listed},
        },
    )
    ds.source = CalibratedSource(
        device_id, model, quantity, assignments=mine, records=records, raw_datastream_id=raw.id
    )
    raw.props["properties"]["calibrated_datastream"] = ds.id
    return ds


def _relate_datastream(
    b: _Builder, ds: Entity, thing: Entity, sensor: Entity, prop: Entity
) -> None:
    b.link(ds, "Thing", thing, "Datastreams")
    b.link(ds, "Sensor", sensor, "Datastreams")
    b.link(ds, "ObservedProperty", prop, "Datastreams")


@dataclass
class _Cached:
    catalog: Catalog
    registry: Registry
    built_at: float


class _CatalogCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cached: _Cached | None = None


_CACHES: weakref.WeakKeyDictionary[ApiContext, _CatalogCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def catalog(ctx: ApiContext) -> Catalog:
    """The catalog of this service: reused while the registry is unchanged and it is younger
    than the register cache time, built again otherwise."""
    with _CACHES_LOCK:
        cache = _CACHES.setdefault(ctx, _CatalogCache())
    registry = ctx.registry()
    with cache.lock:
        c = cache.cached
        fresh = (
            c is not None
            and c.registry is registry
            and time.monotonic() - c.built_at < ctx.config.register_cache_s
        )
        if c is None or not fresh:
            c = _Cached(
                build_catalog(registry, ctx.influx, _stats_or_none(ctx), _book_or_none(ctx)),
                registry,
                time.monotonic(),
            )
            cache.cached = c
        return c.catalog


def _book_or_none(ctx: ApiContext) -> BookContents | None:
    """The calibration book's assignments and calibrations ((), {} where there is no book), or
    None where it cannot be read: the catalog then has no calibrated Datastreams."""
    from sensorpipe.api.problems import ApiProblem
    from sensorpipe.calibration.status import read_book

    try:
        contents: BookContents = ctx.with_calibration_book(read_book)
    except ApiProblem:
        log.warning("calibration book not read: no calibrated Datastreams", exc_info=True)
        return None
    return contents


def _stats_or_none(ctx: ApiContext) -> RegisterStats | None:
    """The register's statistics (the sensors' health), or None where InfluxDB cannot give
    them: the catalog is then built without health, as before."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable

    try:
        return ctx.stats()
    except (StorageUnavailable, QueryError):
        return None
