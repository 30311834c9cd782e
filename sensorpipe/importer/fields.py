"""Values that several history formats carry: positions, sensor models, column names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from sensorpipe.importer.files import Row
from sensorpipe.protocol.messages import SENSOR_PATTERN
from sensorpipe.protocol.quantities import QUANTITIES, UG_M3_PER_PPB, canonical_unit

_SENSOR = re.compile(SENSOR_PATTERN)
_NOT_IN_MODEL = re.compile(r"[^a-z0-9._-]")


def sensor_model(name: str, default: str = "unknown") -> str:
    """A sensor type as the files write it, as a sensor model name (a tag): `SDS011` ->
    `sds011`, `SDS 011` -> `sds011`; `default` when nothing usable is left."""
    model = _NOT_IN_MODEL.sub("", name.casefold())
    return model if _SENSOR.match(model) else default


def location(lat: str, lon: str) -> tuple[float, float] | None:
    """A position from two values, when both are numbers on the globe and not 0, 0 (what
    GPS modules and archives write for "no position")."""
    try:
        la, lo = float(lat), float(lon)
    except ValueError:
        return None
    if not (-90 <= la <= 90 and -180 <= lo <= 180) or (la == 0 and lo == 0):
        return None
    return la, lo


_DECIMAL = re.compile(r"(?<=\d)[._,](?=\d)")


def compact(name: str) -> str:
    """A column or phenomenon name reduced to lower-case letters and digits, for matching
    the spellings people use (`rel. Luftfeuchte`, `PM2.5`, `pm2_5`). A decimal point between
    digits becomes `p`, so PM1.0 (`pm1p0`) stays apart from PM10 (`pm10`)."""
    text = _DECIMAL.sub("p", name.casefold())
    return "".join(c for c in text if c.isalnum())


# How files name what they measure (openSenseMap phenomena in German and English, column names
# of track exports), by `compact` name.
_QUANTITY_NAMES: dict[str, tuple[str, ...]] = {
    "pm1": ("pm1", "pm1p0"),
    "pm2_5": ("pm2p5", "pm25"),
    "pm4": ("pm4", "pm4p0"),
    "pm10": ("pm10", "pm10p0"),
    "temperature": ("temperature", "temp", "temperatur", "lufttemperatur", "airtemperature"),
    "relative_humidity": (
        "relativehumidity", "humidity", "rh", "relhumidity", "luftfeuchte", "luftfeuchtigkeit",
        "relluftfeuchte", "relluftfeuchtigkeit", "relativeluftfeuchte",
        "relativeluftfeuchtigkeit",
    ),
    "pressure": ("pressure", "luftdruck", "atmluftdruck", "airpressure", "barometricpressure"),
    "co2": ("co2", "kohlendioxid", "kohlenstoffdioxid"),
    "no2": ("no2", "stickstoffdioxid"),
    "noise": ("noise", "lautstärke", "lautstaerke", "schallpegel", "soundlevel"),
    "soil_moisture": ("soilmoisture", "bodenfeuchte", "bodenfeuchtigkeit"),
    "soil_temperature": ("soiltemperature", "soiltemp", "bodentemperatur", "bodemtemperatuur"),
}  # fmt: skip
QUANTITY_NAMES: dict[str, str] = {
    alias: quantity for quantity, aliases in _QUANTITY_NAMES.items() for alias in aliases
}


def quantity_named(name: str) -> str | None:
    """The quantity a phenomenon or column name means (`PM2.5`, `rel. Luftfeuchte`)."""
    key = compact(name)
    for prefix in ("feinstaub", "particulatematter"):
        if key.startswith(prefix) and key != prefix:
            key = key[len(prefix) :]
    return QUANTITY_NAMES.get(key)


def unit_divisor(quantity: str, unit: str) -> float | None:
    """What to divide a value in `unit` by for `quantity`'s canonical unit; None for a unit
    that is not one of its spellings (nor Pa or kPa for pressure, nor ppb or ppm for a gas
    with a factor in `UG_M3_PER_PPB`)."""
    canonical = canonical_unit(unit)
    if canonical == QUANTITIES[quantity].unit:
        return 1.0
    key = canonical.strip().casefold()
    if quantity == "pressure":
        return {"pa": 100.0, "kpa": 0.1}.get(key)
    factor = UG_M3_PER_PPB.get(quantity)
    if factor is not None and key in ("ppb", "ppm"):
        return 1.0 / factor if key == "ppb" else 0.001 / factor
    return None


RowSource = Iterator[tuple[int, str, list[str], bool]]  # number, raw text, values, whole


class Columns:
    """The columns a format reads, by name, from CSV rows and JSON objects alike: each row
    becomes a list of strings in the order of `keys` ("" where a row has no such value)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def index(self, names: list[str]) -> list[int | None]:
        """Where each key is among a CSV header's `names`."""
        return [names.index(k) if k in names else None for k in self.keys]

    def csv_row(self, fields: list[str], index: list[int | None]) -> list[str]:
        n = len(fields)
        return [fields[i].strip() if i is not None and i < n else "" for i in index]

    def json_row(self, item: dict[str, Any]) -> list[str]:
        return [json_text(item.get(k)) for k in self.keys]

    def csv_rows(self, source: Iterator[Row], names: list[str]) -> RowSource:
        index = self.index(names)
        width = len(names)
        for n, raw, f in source:
            yield n, raw, self.csv_row(f, index), len(f) == width

    def json_rows(self, items: Iterable[tuple[int, Any]]) -> RowSource:
        """Each numbered item with its compact JSON text (the dead letter's payload); an item
        that is not an object comes as not whole."""
        for n, item in items:
            raw = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            if isinstance(item, dict):
                yield n, raw, self.json_row(item), True
            else:
                yield n, raw, [""] * len(self.keys), False


def json_text(value: Any) -> str:
    """A JSON value as a CSV file would hold it. What is neither a string nor a number (an
    object, true) becomes a text no number parses, so it is refused as not a number; so is an
    integer too long to be one (jsonstream.LongNumber, already such a text)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return "<" + type(value).__name__ + ">"
    return value if isinstance(value, str) else repr(value)
