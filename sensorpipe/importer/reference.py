"""What the reference stations' formats (`airnowtech`, `luchtmeetnet`, `eea`) share.

A reference station is a device of source `reference` (protocol.provenance): its points carry
`source=reference:<format>` and `vouch=reference`, its registry entry its station code, who
runs it and how it measures. A station the files name that is not registered yet is
registered by the import, with what the files (and, for Luchtmeetnet, the station's own JSON)
say about it: a municipality's analyst downloads a station's data to compare sensors with, and
the file already names the station; making them register it by hand first would ask them to
type what the file holds, and mistype it. A station registered before keeps its entry.

Every hourly value is stored at the start of its hour, the convention of the hourly means
sensorpipe computes itself (`GROUP BY time(1h)` labels an interval by its start, see
query/series.py), so a reference hour and a sensor's hourly mean of the same hour share a
timestamp. The agency's own verdict on a value is kept: a value its QC code or validity marks
invalid is not stored but kept as a dead letter with reason `qc_invalid`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sensorpipe.importer.base import DeviceSpec, StationInfo, ValueColumn, value_column
from sensorpipe.importer.fields import location as position
from sensorpipe.protocol.provenance import REFERENCE

SENSOR = "reference"  # the sensor tag of a station's values (a second instrument: reference-2)
QC_INVALID = "qc_invalid"
DEVICE_PREFIX = "ref-"
MAX_STATION_JSON = 1024 * 1024
_NOT_IN_ID = re.compile(r"[^a-z0-9_-]+")


def station_device(code: str) -> str:
    """The device id of the station `code` (`NL10404` -> `ref-nl10404`)."""
    return (DEVICE_PREFIX + _NOT_IN_ID.sub("-", code.casefold()).strip("-"))[:64]


def station_spec(
    code: str,
    *,
    network: str,
    name: str = "",
    operator: str = "",
    method: str = "",
    location: tuple[float, float] | None = None,
    sensors: tuple[str, ...] = (SENSOR,),
) -> DeviceSpec:
    what = f"{name} ({code})" if name else code
    by = f", run by {operator}" if operator else ""
    return DeviceSpec(
        device_id=station_device(code),
        purpose=f"reference station {what}{by}: official hourly values from {network}, "
        f"to check and calibrate low-cost sensors against",
        sensors=sensors,
        location=location,
        personal_data=False,
        source=REFERENCE,
        station_code=code[:100],
        operator=operator[:200],
        method=method[:300],
    )


def instrument(poc: str) -> str:
    """The sensor tag of a station's instrument: `reference` for the first (POC 1, or none
    named), `reference-2` for a second one measuring the same quantity beside it."""
    poc = poc.strip()
    if poc in ("", "1") or not poc.isascii() or not poc.isdigit() or len(poc) > 3:
        return SENSOR
    return f"{SENSOR}-{int(poc)}"


class Columns:
    """`ValueColumn`s by (quantity, divisor), made once."""

    def __init__(self, index: int, name: str) -> None:
        self._index = index
        self._name = name
        self._made: dict[tuple[str, float], list[ValueColumn]] = {}

    def __call__(self, quantity: str, divisor: float) -> list[ValueColumn]:
        key = (quantity, divisor)
        made = self._made.get(key)
        if made is None:
            made = [value_column(self._index, self._name, quantity, divisor)]
            self._made[key] = made
        return made


def read_station(path: Path) -> tuple[str, StationInfo]:
    """A Luchtmeetnet `/stations/{number}` answer saved as a file, named after the station
    (`NL10404.json`, `station-NL10404.json`): the station number and what it says. ValueError
    with one line (naming the file) when it is not such a file."""
    number = re.search(r"NL[0-9]{5}", path.name.upper())
    if number is None:
        raise ValueError(
            f"{path}: name the file after the station number it describes, like NL10404.json "
            f"(a /stations/{{number}} answer does not repeat the number)"
        )
    try:
        size = path.stat().st_size
        if size > MAX_STATION_JSON:
            raise ValueError(f"{path}: {size} bytes is too large for a /stations/{{number}} answer")
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        raise ValueError(
            f'{path}: not a Luchtmeetnet /stations/{{number}} answer: expected {{"data": '
            f'{{"location": ..., "geometry": ..., "organisation": ...}}}}'
        )
    where = None
    geometry = data.get("geometry")
    if isinstance(geometry, dict):
        coordinates = geometry.get("coordinates")
        if isinstance(coordinates, list) and len(coordinates) == 2:
            # GeoJSON order: [lon, lat]
            where = position(str(coordinates[1]), str(coordinates[0]))
    name = data.get("location")
    operator = data.get("organisation")
    return number.group(0), StationInfo(
        name=name[:120] if isinstance(name, str) else "",
        operator=operator[:200] if isinstance(operator, str) else "",
        location=where,
    )
