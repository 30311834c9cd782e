"""InfluxDB line protocol serialisation (the 1.x `/write` format, also accepted by 2.x and 3.x).

Escaping rules: measurement names escape commas and spaces; tag keys, tag values and field keys
escape commas, equals signs and spaces; string field values are double-quoted with `"` and `\\`
escaped. Line protocol has no way to carry a newline in a name or tag, and a trailing backslash
would escape the separator after it, so those are refused rather than mangled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FieldValue = float | int | bool | str

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


class LineProtocolError(ValueError):
    """A point that cannot be written as line protocol."""


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ms: int


def _check_name(kind: str, name: str) -> None:
    if not name:
        raise LineProtocolError(f"empty {kind}")
    if any(c in name for c in "\n\r\t\x00"):
        raise LineProtocolError(f"{kind} {name!r} contains a control character")
    if name.endswith("\\"):
        raise LineProtocolError(f"{kind} {name!r} ends with a backslash")


def _field_value(key: str, value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field {key!r} is {value}: InfluxDB stores finite floats only")
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise LineProtocolError(f"field {key!r} contains a newline")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LineProtocolError(f"field {key!r} has unsupported type {type(value).__name__}")


def to_line(point: Point) -> str:
    _check_name("measurement", point.measurement)
    parts = [point.measurement.translate(_MEASUREMENT)]
    for key in sorted(point.tags):  # sorted tags: InfluxDB's fastest path
        tag = point.tags[key]
        if tag == "":
            continue  # an empty tag value means "no tag" in InfluxDB
        _check_name("tag key", key)
        _check_name("tag value", tag)
        parts.append(f"{key.translate(_KEY)}={tag.translate(_KEY)}")
    if not point.fields:
        raise LineProtocolError(f"point in {point.measurement!r} has no fields")
    fields = []
    for key, value in point.fields.items():
        _check_name("field key", key)
        if key == "time":
            raise LineProtocolError("'time' cannot be a field key in InfluxDB")
        fields.append(f"{key.translate(_KEY)}={_field_value(key, value)}")
    return f"{','.join(parts)} {','.join(fields)} {int(point.time_ms)}"
