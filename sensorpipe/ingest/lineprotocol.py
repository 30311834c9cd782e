"""InfluxDB line protocol serialisation (the 1.x `/write` format, also accepted by 2.x and 3.x).

Escaping rules: measurement names escape commas and spaces; tag keys, tag values and field keys
escape commas, equals signs and spaces; string field values are double-quoted with `"` and `\\`
escaped. Line protocol has no way to carry a newline in a name or tag, and a trailing backslash
would escape the separator after it, so those are refused rather than mangled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

FieldValue = float | int | bool | str

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_CONTROL = re.compile("[\n\r\t\x00]")


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
    if _CONTROL.search(name):
        raise LineProtocolError(f"{kind} {name!r} contains a control character")
    if name.endswith("\\"):
        raise LineProtocolError(f"{kind} {name!r} ends with a backslash")


# Names repeat from point to point (tag values are limited to what the registry declares), so
# each is checked and escaped once. A refused name raises and is not cached.
@lru_cache(maxsize=4096)
def _measurement(name: str) -> str:
    _check_name("measurement", name)
    return name.translate(_MEASUREMENT)


@lru_cache(maxsize=4096)
def _tag(key: str, value: str) -> str:
    _check_name("tag key", key)
    _check_name("tag value", value)
    return f"{key.translate(_KEY)}={value.translate(_KEY)}"


@lru_cache(maxsize=4096)
def _field_key(key: str) -> str:
    _check_name("field key", key)
    if key == "time":
        raise LineProtocolError("'time' cannot be a field key in InfluxDB")
    return key.translate(_KEY)


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
    parts = [_measurement(point.measurement)]
    tags = point.tags
    for key in sorted(tags):  # sorted tags: InfluxDB's fastest path
        value = tags[key]
        if value != "":  # an empty tag value means "no tag" in InfluxDB
            parts.append(_tag(key, value))
    if not point.fields:
        raise LineProtocolError(f"point in {point.measurement!r} has no fields")
    fields = ",".join(
        f"{_field_key(key)}={_field_value(key, value)}" for key, value in point.fields.items()
    )
    return f"{','.join(parts)} {fields} {int(point.time_ms)}"
