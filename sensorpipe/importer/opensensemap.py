"""openSenseMap measurement downloads (api.opensensemap.org), CSV and JSON.

- One sensor, `GET /boxes/{boxId}/data/{sensorId}?format=csv` (saved as `{sensorId}.csv`):
  header `createdAt,value` (or `;`-separated with `delimiter=semicolon`). With `format=json`
  (saved as `{sensorId}.json`): an array of `{"location": [lon, lat], "createdAt":
  "2023-09-29T08:06:13.254Z", "value": "6.38"}`; the value is a string.
- Several boxes, `GET /boxes/data?boxId=...&phenomenon=...`: CSV with the columns asked for,
  by default `sensorId,createdAt,value,lat,lon`, any of `createdAt, value, lat, lon, height,
  boxId, boxName, exposure, sensorId, phenomenon, unit, sensorType`; JSON: objects with those
  keys.

What a value measures comes from the `phenomenon` (and `unit`) columns: openSenseMap's German
and English names (`PM2.5`, `Temperatur`, `rel. Luftfeuchte`, `Luftdruck`, ...) map to
sensorpipe's quantities, Pa to hPa; a sensor of type SPS30 titled as openSenseMap's airrohr
decoder matches its number concentrations (`NC0.5` .. `NC10`, `N0.5` .. `N10`) stores them as
`number_pm0_5` .. `number_pm10`. A per-sensor download does not say: `--quantity` names it.
The device is the senseBox (`osm-<boxId>`, from the column or `--box`), else the sensor
(`osm-<sensorId>`, from the column or the file's name); the sensor model is the `sensorType`
column (`SDS 011` -> `sds011`) or `--sensor`. A box of exposure `mobile` (or `--mobile`) keeps
each reading's own position as fields `lat`/`lon`; a stationary box's first position becomes
its registered location.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target
from sensorpipe.importer.fields import (
    Columns,
    RowSource,
    compact,
    json_text,
    location,
    quantity_named,
    sensor_model,
    unit_divisor,
)
from sensorpipe.importer.files import FileProblem, Header
from sensorpipe.importer.reader import ColumnRow, ColumnsReader, found
from sensorpipe.protocol.quantities import QUANTITIES, plausibility_error

# The columns read, in this order, from CSV and JSON alike.
KEYS = (
    "createdAt", "value", "lat", "lon", "boxId", "sensorId", "phenomenon", "unit", "sensorType",
    "exposure",
)  # fmt: skip
CREATED, VALUE, LAT, LON, BOX, SENSOR, PHENOMENON, UNIT, SENSOR_TYPE, EXPOSURE = range(len(KEYS))
COLUMNS = Columns(KEYS)  # height, boxName and any other column are not read
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
ID = re.compile(r"^[A-Za-z0-9]{1,59}$")
# The SPS30's number concentrations, by `compact` name: the sensor titles openSenseMap's airrohr
# decoder (luftdatenHandler) matches to SPS30_N05 .. SPS30_N10. Of a sensor of type SPS30 only:
# another sensor's `N1` or `NC1` counts other particles, in other units (the NextPM: per litre).
SPS30_PHENOMENA: dict[str, str] = {
    name: quantity
    for quantity, names in (
        ("number_pm0_5", ("nc0p5", "nc05", "n0p5", "n05")),
        ("number_pm1", ("nc1p0", "nc1", "n1p0", "n1")),
        ("number_pm2_5", ("nc2p5", "nc25", "n2p5", "n25")),
        ("number_pm4", ("nc4p0", "nc4", "n4p0", "n4")),
        ("number_pm10", ("nc10p0", "nc10", "n10p0", "n10")),
    )
    for name in names
}


def phenomenon_quantity(phenomenon: str, sensor: str) -> str | None:
    """The quantity a `phenomenon` of a sensor of model `sensor` measures, if sensorpipe has
    one."""
    named = quantity_named(phenomenon)
    if named is None and sensor == "sps30":
        return SPS30_PHENOMENA.get(compact(phenomenon))
    return named


def no_quantity(phenomenon: str, sensor: str) -> str:
    """Why `phenomenon` of a `sensor` is stored as no quantity."""
    if compact(phenomenon) in SPS30_PHENOMENA:
        return (
            f"phenomenon {phenomenon[:60]!r} of a {sensor} sensor is no quantity sensorpipe "
            f"stores (number concentrations: of an SPS30 only)"
        )
    return f"phenomenon {phenomenon[:60]!r} is no quantity sensorpipe stores"


class OpenSenseMap(ColumnsReader):
    name = "opensensemap"
    title = "an openSenseMap measurement download"
    device_prefix = "osm-"
    columns = COLUMNS
    json_shape = (
        'a JSON array of measurements like [{"location": [7.6, 51.9], "createdAt": '
        '"2023-09-29T08:06:13.254Z", "value": "6.38"}]'
    )

    def prepare(self) -> None:
        columns, first = self.peek()
        o = self.options
        if o.quantity is None and "phenomenon" not in columns:
            raise self.problem(
                f"does not say what it measures (a per-sensor download has "
                f"no phenomenon column): give --quantity, one of {', '.join(QUANTITIES)}"
            )
        if o.quantity is None and first is not None:
            phenomenon = first[PHENOMENON]
            unit = first[UNIT]
            sensor = o.sensor or sensor_model(first[SENSOR_TYPE], "opensensemap")
            quantity = phenomenon_quantity(phenomenon, sensor)
            if quantity is None:
                raise self.problem(
                    f"{no_quantity(phenomenon, sensor)}: give --quantity if it is one of "
                    f"{', '.join(QUANTITIES)}"
                )
            if unit and unit_divisor(quantity, unit) is None:
                raise self.problem(
                    f"{phenomenon} in {unit!r}: sensorpipe stores {quantity} "
                    f"in {QUANTITIES[quantity].unit}"
                )
        names_device = {"boxId", "sensorId"} & columns or o.box or o.device
        if not names_device and not OBJECT_ID.match(self.file.path.name.split(".")[0]):
            raise self.problem(
                "names no senseBox or sensor (no boxId or sensorId column, "
                "and its name is not an openSenseMap sensor id): give --box BOXID or --device ID"
            )
        if o.box is not None and not ID.match(o.box):
            raise FileProblem(f"--box {o.box!r}: an openSenseMap box id is letters and digits")

    def check_header(self, head: Header | None) -> Header:
        if head is None or "createdAt" not in head[3] or "value" not in head[3]:
            raise self.not_format(
                f"expected a CSV header with createdAt and value (createdAt,value or "
                f"sensorId,createdAt,value,lat,lon) or a JSON array of measurements, "
                f"found {found(head)}"
            )
        return head

    def check_item(self, item: Any) -> None:
        if not (isinstance(item, dict) and {"createdAt", "value"} <= set(item)):
            raise self.not_format(f"expected {self.json_shape}")

    def json_row(self, item: dict[str, Any]) -> list[str]:
        return _located(COLUMNS.json_row(item), item)

    def json_rows(self, ctx: ImportContext, items: Iterator[tuple[int, Any]]) -> RowSource:
        """As Columns.json_rows, with the measurement's `location` ([lon, lat] or {lat, lng})."""
        for n, item in items:
            for _, raw, row, whole in COLUMNS.json_rows([(n, item)]):
                if whole:
                    _located(row, item)
                yield n, raw, row, whole

    def read(self, ctx: ImportContext, source: Iterator[ColumnRow]) -> None:
        o = self.options
        quantities: dict[tuple[str, str, str], tuple[str, float] | str] = {}
        targets: dict[str, Target] = {}
        prefixes: dict[tuple[str, str], str | None] = {}
        stem = self.file.path.name.split(".")[0]
        file_sensor = stem if OBJECT_ID.match(stem) else ""  # the API names a download so
        for n, raw, r in source:
            key = r[BOX] or o.box or r[SENSOR] or file_sensor
            if o.device is None and not ID.match(key):
                why = f"{key[:40]!r} is no openSenseMap id" if key else "names no box or sensor"
                ctx.reject(n, raw, "bad_row", why)
                continue
            sensor = o.sensor or sensor_model(r[SENSOR_TYPE], "opensensemap")
            # A device is registered by its first row that is stored, with that row's sensor.
            target = targets.get(key)
            t = ctx.observed_at(n, raw, "createdAt", r[CREATED], target)
            if t is None:
                continue
            meaning = quantities.get((r[PHENOMENON], r[UNIT], sensor))
            if meaning is None:
                meaning = _meaning(o.quantity, r[PHENOMENON], r[UNIT], sensor)
                quantities[(r[PHENOMENON], r[UNIT], sensor)] = meaning
            if isinstance(meaning, str):
                ctx.reject(n, raw, "unknown_phenomenon", meaning, target)
                continue
            quantity, divisor = meaning
            if not r[VALUE]:
                ctx.reject(n, raw, "bad_row", "no value", target)
                continue
            try:
                v = float(r[VALUE])
            except ValueError:
                ctx.reject(n, raw, "bad_value", f"value {r[VALUE][:40]!r} is not a number", target)
                continue
            if divisor != 1.0:
                v = round(v / divisor, 6)
            problem = plausibility_error(quantity, v)
            if problem is not None:
                ctx.reject(n, raw, "bad_value", problem, target)
                continue
            field = f"{quantity}={v!r}"
            position_fields = ""
            if o.mobile or r[EXPOSURE] == "mobile":
                position = location(r[LAT], r[LON])
                if position is None:
                    ctx.reject(
                        n, raw, "no_position", "a mobile box's reading without lat/lon", target
                    )
                    continue
                position_fields = f",lat={position[0]!r},lon={position[1]!r}"
            if target is None:
                target = ctx.target(self._spec(key, sensor, r))
                targets[key] = target
            if (key, sensor) not in prefixes:
                prefixes[(key, sensor)] = ctx.air_prefix(target, sensor)
            prefix = prefixes[(key, sensor)]
            if ctx.declared(n, raw, prefix, target, sensor):
                qc = ctx.quality_fields(target, sensor, t, [(quantity, v)])
                ctx.store(n, f"{prefix}{field}{qc}{position_fields} {t}", target)

    def _spec(self, key: str, sensor: str, r: list[str]) -> DeviceSpec:
        # The key is the box (column, --box) or else the sensor (column, the file's name).
        box = r[BOX] or self.options.box or ""
        what = f"openSenseMap senseBox {box}" if box else f"openSenseMap sensor {key}"
        device_id = f"osm-{key.lower()}"
        mobile = self.options.mobile or r[EXPOSURE] == "mobile"
        return DeviceSpec(
            device_id=device_id,
            purpose=f"{what}; measurements imported from openSenseMap downloads",
            sensors=(sensor,),
            location=None if mobile else location(r[LAT], r[LON]),
        )


def _meaning(
    quantity: str | None, phenomenon: str, unit: str, sensor: str
) -> tuple[str, float] | str:
    """The quantity and divisor of a (phenomenon, unit) of a `sensor`, or why there is none."""
    if quantity is None:
        named = phenomenon_quantity(phenomenon, sensor)
        if named is None:
            return no_quantity(phenomenon, sensor)
        quantity = named
    if not unit:
        return quantity, 1.0
    divisor = unit_divisor(quantity, unit)
    if divisor is None:
        return f"{quantity} in {unit[:20]!r}: sensorpipe stores it in {QUANTITIES[quantity].unit}"
    return quantity, divisor


def _located(row: list[str], item: dict[str, Any]) -> list[str]:
    where = item.get("location")
    if isinstance(where, list) and len(where) >= 2:
        row[LON], row[LAT] = json_text(where[0]), json_text(where[1])
    elif isinstance(where, dict):
        row[LAT], row[LON] = (
            json_text(where.get("lat")),
            json_text(where.get("lng", where.get("lon"))),
        )
    return row
