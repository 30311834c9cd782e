"""A sites file for an import of counts (`sensorpipe import csv --device-column HEADER
--locations FILE`): where each counter named in the counts stands.

The file is a CSV (delimiter `,`, `;` or tab; a byte-order mark is dropped) with a header row.
The names are in the column named as the counts' `--device-column` where it has one, else in
its first column; latitude and longitude are found by their headers, in any case: `lat` or
`latitude`, and `lon`, `lng`, `long` or `longitude` (decimal degrees, WGS 84). Auckland's
`locations.csv` (`Address,Latitude,Longitude`) reads as it is.

The whole file is read before anything is imported, and one bad row refuses it: a latitude or
longitude that is no number or out of range, an empty name or a name given twice is one line
naming the file and the line (`LocationsProblem`). How the runner uses what it read (new
devices registered there; an imported device without a location gets it; one with a location
keeps it) is in runner.py.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "lng", "long", "longitude")
DELIMITERS = ",;\t"
MAX_ROWS = 100_000  # sites; a bigger file is not a sites file
DISAGREE_M = 10.0  # a registered location this far from the file's is said so

Sites = dict[str, tuple[float, float]]  # name -> (lat, lon)


class LocationsProblem(ValueError):
    """The locations file cannot be used: the message is one line naming it."""


def read_locations(path: Path, name_column: str | None = None) -> Sites:
    """The sites of the file at `path`, by name: see the module's docstring."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            text = f.read(64 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise LocationsProblem(f"--locations {path}: no such file") from None
    except IsADirectoryError:
        raise LocationsProblem(f"--locations {path}: a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise LocationsProblem(f"--locations {path}: not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise LocationsProblem(f"--locations {path}: cannot be read ({exc.strerror})") from None
    if len(text) > 64 * 1024 * 1024:
        raise LocationsProblem(f"--locations {path}: over 64 MiB, not a sites file")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise LocationsProblem(
            f"--locations {path}: no header row: give a CSV like Address,Latitude,Longitude"
        )
    delimiter, header = _header(lines[0])
    lowered = [h.lower() for h in header]
    lat = _find(lowered, LAT_NAMES)
    lon = _find(lowered, LON_NAMES)
    if lat is None or lon is None:
        raise LocationsProblem(
            f"--locations {path}: no "
            + " and no ".join(
                w
                for w, i in (("latitude (lat)", lat), ("longitude (lon, lng, long)", lon))
                if i is None
            )
            + f" column among its headers {', '.join(header)[:200]}: name them Latitude and "
            f"Longitude"
        )
    name = _find(lowered, (name_column.lower(),)) if name_column else None
    name = 0 if name is None else name
    if name in (lat, lon):
        raise LocationsProblem(
            f"--locations {path}: its first column is {header[name]!r}: put the sites' names "
            f"first, or in a column named {name_column!r} as in the counts"
        )
    sites: Sites = {}
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    next(reader, None)  # the header
    end = reader.line_num
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise LocationsProblem(f"--locations {path} line {end + 1}: {exc}") from None
        if row is None:
            break
        n, end = end + 1, reader.line_num  # the line the row starts on
        if not any(c.strip() for c in row):
            continue
        if len(sites) >= MAX_ROWS:
            raise LocationsProblem(f"--locations {path}: more than {MAX_ROWS} sites")
        where = f"--locations {path} line {n}"
        cells = row + [""] * (len(header) - len(row))
        key = cells[name].strip()
        if not key:
            raise LocationsProblem(f"{where}: no name in {header[name]!r}: give every row one")
        if key in first_line:
            raise LocationsProblem(
                f"{where}: {key[:60]!r} given twice (line {first_line[key]} first): keep one row "
                f"per site"
            )
        first_line[key] = n
        sites[key] = (
            _degrees(where, header[lat], cells[lat], 90.0),
            _degrees(where, header[lon], cells[lon], 180.0),
        )
    if not sites:
        raise LocationsProblem(f"--locations {path}: no sites below its header row")
    return sites


def _header(line: str) -> tuple[str, list[str]]:
    """The delimiter whose fields hold a latitude column (`,` where none does) and the
    header's fields."""
    fallback: tuple[str, list[str]] | None = None
    for delimiter in DELIMITERS:
        fields = [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]
        if fallback is None:
            fallback = (delimiter, fields)
        if _find([f.lower() for f in fields], LAT_NAMES) is not None:
            return delimiter, fields
    assert fallback is not None
    return fallback


def _find(lowered: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _degrees(where: str, header: str, text: str, bound: float) -> float:
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        what = "is empty" if not s else f"{s[:40]!r} is not a number"
        raise LocationsProblem(f"{where}: {header} {what}: give decimal degrees, like -36.8485")
    if not -bound <= value <= bound:
        raise LocationsProblem(
            f"{where}: {header} {s[:40]} is out of range (-{bound:g} to {bound:g} degrees)"
            + (": are latitude and longitude the other way round?" if bound == 90.0 else "")
        )
    return value
