"""Bounding boxes: `minlon,minlat,maxlon,maxlat` in degrees (the order of the API's `bbox`
and of GeoJSON), and what lies in one.

Readings lie in a box by their own position (a mobile sensor's `lat`/`lon` fields, stored with
each reading of a ride) or by their device's registered location (a stationary sensor's
readings carry none), rounded as the register publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensorpipe.ingest.influx import identifier, string_literal
from sensorpipe.protocol.registry import Registry
from sensorpipe.query.literals import number_literal

EXAMPLE = "5.0,52.0,5.2,52.2"


class BBoxError(ValueError):
    """A bounding box that cannot be used; the message says what would work."""


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


def parse_bbox(text: str) -> BBox:
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise BBoxError(
            f"bbox {text[:80]!r}: give minlon,minlat,maxlon,maxlat in degrees, e.g. {EXAMPLE}"
        ) from None
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise BBoxError(
            f"bbox {text[:80]!r}: need -180 <= minlon <= maxlon <= 180 and "
            f"-90 <= minlat <= maxlat <= 90"
        )
    return BBox(min_lon, min_lat, max_lon, max_lat)


def devices_inside(registry: Registry, bbox: BBox) -> list[str]:
    """Devices whose published (rounded) location lies in the box."""
    inside = []
    for device_id, entry in registry.devices.items():
        if entry.location is None:
            continue
        n = entry.location_precision_decimals
        if bbox.contains(round(entry.location.lat, n), round(entry.location.lon, n)):
            inside.append(device_id)
    return sorted(inside)


def bbox_condition(bbox: BBox, devices: list[str] | tuple[str, ...] = ()) -> str:
    """InfluxQL: a reading whose own position lies in the box, or one of `devices`."""
    lat, lon = identifier("lat"), identifier("lon")
    n = number_literal  # plain decimals: InfluxQL cannot read 1e-05
    own = (
        f"{lat} >= {n(bbox.min_lat)} AND {lat} <= {n(bbox.max_lat)} AND "
        f"{lon} >= {n(bbox.min_lon)} AND {lon} <= {n(bbox.max_lon)}"
    )
    named = [f"{identifier('device_id')} = {string_literal(d)}" for d in devices]
    return "(" + " OR ".join([f"({own})", *named]) + ")"
