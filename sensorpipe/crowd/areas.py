"""Which devices and directions make an area (protocol.registry's `AreaEntry`).

An area with counting lines has those devices, each with the directions that go in and out
(a street's line without directions counts all of them). An area with a polygon has every
counting device whose published location (rounded as the public register shows it, like the
API's bbox) lies inside the ring; it counts all their directions as flow, and says nothing of
in and out. A device that only measures air (its declared sensors hold no camera and it has no
count classes) is in no area: it would count as a counter that never ran.
"""

from __future__ import annotations

from collections.abc import Sequence

from sensorpipe.protocol.registry import AreaEntry, AreaLine, Registry


def point_in_polygon(lon: float, lat: float, ring: Sequence[tuple[float, float]]) -> bool:
    """Whether (lon, lat) lies inside the ring (even-odd rule; a point on an edge is
    inside). Degrees as plane coordinates: fine for areas of a city, not across the
    antimeridian."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if _on_segment(lon, lat, x1, y1, x2, y2):
            return True
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x - x1) * (y2 - y1) - (y - y1) * (x2 - x1)
    if abs(cross) > 1e-12:
        return False
    return min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)


def devices_in_polygon(registry: Registry, ring: Sequence[tuple[float, float]]) -> list[str]:
    """Counting devices whose published (rounded) location lies in the ring (a device that
    declares sensors, none of them a camera, and no count classes measures air only)."""
    from sensorpipe.protocol.register import counts_passers_by

    inside = []
    for device_id, entry in registry.devices.items():
        if entry.location is None:
            continue
        if entry.sensors and not counts_passers_by(entry):
            continue
        n = entry.location_precision_decimals
        lat, lon = round(entry.location.lat, n), round(entry.location.lon, n)
        if point_in_polygon(lon, lat, ring):
            inside.append(device_id)
    return sorted(inside)


def area_lines(registry: Registry, area: AreaEntry) -> list[AreaLine]:
    """The area's counting lines: its own, or one per device inside its polygon (all
    directions counted, none in or out)."""
    if area.lines:
        return list(area.lines)
    return [AreaLine(device=d) for d in devices_in_polygon(registry, area.polygon)]


def area_devices(registry: Registry, area: AreaEntry) -> list[str]:
    return [line.device for line in area_lines(registry, area)]


def areas_of_device(registry: Registry, device_id: str) -> list[str]:
    """The ids of the areas a device counts for."""
    return sorted(
        area_id
        for area_id, area in registry.areas.items()
        if device_id in area_devices(registry, area)
    )


def train_command(registry: Registry | None, kind: str, name: str) -> str:
    """The `crowd train` command that trains `name`'s model from now, in backticks: an area's
    place is the registry's; a device's is its first area's, else --timezone and --country
    to fill in (said after the command)."""
    command = f"sensorpipe crowd train --{kind} {name} --train-until now"
    if kind == "area":
        return f"`{command}`"
    mine = [] if registry is None else areas_of_device(registry, name)
    if registry is None or not mine:
        return (
            f"`{command} --timezone ZONE --country CC` (ZONE and CC: where it counts, e.g. "
            "Europe/Amsterdam and NL)"
        )
    area = registry.areas[mine[0]]
    return f"`{command} --timezone {area.timezone} --country {area.country}`"
