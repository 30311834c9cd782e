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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sensorpipe.importer.base import (
    DeviceSpec,
    ImportContext,
    StationInfo,
    Target,
    ValueColumn,
    value_column,
)
from sensorpipe.importer.fields import location as position
from sensorpipe.importer.fields import unit_divisor
from sensorpipe.importer.files import Header, HistoryFile, Row, header, rows
from sensorpipe.protocol.provenance import REFERENCE
from sensorpipe.quality.config import REFERENCE_MODEL

SENSOR = REFERENCE_MODEL  # the sensor tag of a station's values (a second instrument: reference-2)
QC_INVALID = "qc_invalid"
DEVICE_PREFIX = "ref-"
MAX_STATION_JSON = 1024 * 1024
_NOT_IN_ID = re.compile(r"[^a-z0-9_-]+")
_NOT_IN_SITE = re.compile(r"[^a-z0-9]+")


def station_device(code: str) -> str:
    """The device id of the station `code` (`NL10404` -> `ref-nl10404`)."""
    return (DEVICE_PREFIX + _NOT_IN_ID.sub("-", code.casefold()).strip("-"))[:64]


def station_site(name: str) -> str:
    """The site a station registers at: its name as a site id (`Burdens Creek` ->
    `burdens-creek`, `Amsterdam-Vondelpark` -> `amsterdam-vondelpark`); "" for no usable name."""
    return _NOT_IN_SITE.sub("-", name.casefold()).strip("-")[:64].strip("-")


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
        site=station_site(name),
    )


def instrument(poc: str) -> str:
    """The sensor tag of a station's instrument: `reference` for the first (POC 1, or none
    named), `reference-2` for a second one measuring the same quantity beside it."""
    poc = poc.strip()
    if poc in ("", "1") or not poc.isascii() or not poc.isdigit() or len(poc) > 3:
        return SENSOR
    return f"{SENSOR}-{int(poc)}"


class Values:
    """Stores a station's hourly values, one per row: the row's unit converted to the
    quantity's (a unit it cannot convert is `bad_unit`), the value checked (`air_fields`),
    the instrument declared, the line written. Made once per file."""

    def __init__(self, index: int, name: str, unit_name: str) -> None:
        self._index = index
        self._name = name
        self._unit_name = unit_name
        self._columns: dict[tuple[str, float], list[ValueColumn]] = {}
        self._divisors: dict[tuple[str, str], float | None] = {}

    def store(
        self,
        ctx: ImportContext,
        row: tuple[int, str, list[str]],
        target: Target,
        quantity: str,
        unit: str,
        t: int,
        sensor: str = SENSOR,
    ) -> None:
        n, raw, f = row
        key = (quantity, unit)
        if key not in self._divisors:
            self._divisors[key] = unit_divisor(quantity, unit)
        divisor = self._divisors[key]
        if divisor is None:
            problem = f"{self._unit_name} {unit[:20]!r} cannot be converted to {quantity}'s unit"
            ctx.reject(n, raw, "bad_unit", problem, target)
            return
        columns = self._columns.get((quantity, divisor))
        if columns is None:
            columns = [value_column(self._index, self._name, quantity, divisor)]
            self._columns[(quantity, divisor)] = columns
        fields = ctx.air_fields(n, raw, f, columns, target, strip=True, sensor=sensor, t=t)
        if fields is None:
            return
        prefix = ctx.air_prefix(target, sensor)
        if ctx.declared(n, raw, prefix, target, sensor):
            ctx.store(n, f"{prefix}{fields} {t}", target)


def scan_methods(
    file: HistoryFile,
    station: str,
    label: str,
    method: str,
    imported: tuple[str, Callable[[str], bool]],
) -> dict[str, dict[str, str]]:
    """Per station (column `station`), the `method` column's first value for each `label`
    (parameter, pollutant) that is imported (`imported`: a column and whether its value is a
    parameter sensorpipe stores): what its registry entry says of how it measures what it
    holds. Reads the whole file once (a station's file is a few thousand rows a month); at
    most 20 labels a station."""
    out: dict[str, dict[str, str]] = {}
    with file.open_text() as (text, _):
        head = header(text, ",")
        if head is None:
            return out
        names = head[3]
        at = [names.index(c) for c in (station, label, method, imported[0])]
        for _, _, f in rows(text, ",", head[0] + 1):
            if len(f) != len(names) or not imported[1](f[at[3]]):
                continue
            methods = out.setdefault(f[at[0]].strip(), {})
            name = f[at[1]].strip()
            if name and name not in methods and len(methods) < 20:
                methods[name] = f[at[2]].strip()
    return out


def station_rows(
    ctx: ImportContext,
    text: IO[str],
    head: Header,
    station: int,
    spec: Callable[[str, list[str]], DeviceSpec],
) -> Iterator[tuple[Row, Target]]:
    """The rows under `head` with the target of their station (column `station`; `spec`
    describes a station from its code and first row); a row of another width, or without a
    station, is a `bad_row`."""
    width = len(head[3])
    targets: dict[str, Target] = {}
    for n, raw, f in rows(text, ",", head[0] + 1, ctx.bad_row):
        if len(f) != width:
            ctx.reject(n, raw, "bad_row", "its columns do not match the header")
            continue
        code = f[station].strip()
        target = targets.get(code)
        if target is None:
            if not code:
                ctx.reject(n, raw, "bad_row", f"{head[3][station]} is empty: no station")
                continue
            target = ctx.target(spec(code, f))
            targets[code] = target
        yield (n, raw, f), target


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
