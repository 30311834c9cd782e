"""Bounding boxes for `query air --bbox`: parsing, what lies inside, and the InfluxQL."""

from __future__ import annotations

import pytest

from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import DeviceEntry, Registry
from sensorpipe.query.bbox import BBox, BBoxError, bbox_condition, devices_inside, parse_bbox
from sensorpipe.query.influxql import AirQuery

BOX = BBox(4.89, 52.37, 4.90, 52.38)


def test_parse() -> None:
    assert parse_bbox("4.89,52.37,4.90,52.38") == BOX
    for bad, message in (
        ("4.89,52.37,4.90", "give minlon,minlat,maxlon,maxlat"),
        ("a,b,c,d", "give minlon,minlat,maxlon,maxlat"),
        ("4.90,52.37,4.89,52.38", "minlon <= maxlon"),
        ("4.89,95,4.90,96", "maxlat <= 90"),
    ):
        with pytest.raises(BBoxError, match=message):
            parse_bbox(bad)


def test_stationary_devices_count_by_their_published_location() -> None:
    registry = Registry()
    registry.devices["in"] = DeviceEntry(
        site="a", source="import", location=Location(lat=52.3751, lon=4.8949)
    )
    # 52.3804 is outside, but published at 3 decimals it is 52.380: inside
    registry.devices["edge"] = DeviceEntry(
        site="a", source="import", location=Location(lat=52.3804, lon=4.8951)
    )
    registry.devices["out"] = DeviceEntry(
        site="a", source="import", location=Location(lat=52.1, lon=5.1)
    )
    registry.devices["mobile"] = DeviceEntry(site="a", source="import")
    assert devices_inside(registry, BOX) == ["edge", "in"]


def test_readings_by_their_own_position_or_their_devices() -> None:
    assert bbox_condition(BOX, ["in"]) == (
        '(("lat" >= 52.37 AND "lat" <= 52.38 AND "lon" >= 4.89 AND "lon" <= 4.9) OR '
        "\"device_id\" = 'in')"
    )
    raw = AirQuery(quantities=["pm2_5"], bbox=BOX, bbox_devices=["in"]).to_influxql()
    assert raw.startswith('SELECT "pm2_5", "lat", "lon" FROM "air" WHERE ')
    assert '"lat" >= 52.37' in raw
    aggregated = AirQuery(quantities=["pm2_5"], bbox=BOX, every="5m").to_influxql()
    assert aggregated.startswith('SELECT mean("pm2_5") AS "pm2_5" FROM "air"')
    assert '"lon" <= 4.9' in aggregated
