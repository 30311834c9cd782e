"""Line protocol for bulk imports, built as strings without a `Point` per row.

A series' measurement and tags are escaped once, by `ingest.lineprotocol.to_line` itself, into
a prefix that ends where the fields begin; a format's parser then adds the fields and the time,
writing floats as `to_line` writes them (`repr`) and integers with an `i`. So the bytes are
those of `to_line(Point(...))` for the same point: tests/test_importer.py holds every format's
lines equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sensorpipe.ingest.lineprotocol import Point, to_line

_MARK = "f=true 0"


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,... ` (sorted tags, escaped, with the space before the fields)."""
    line = to_line(Point(measurement, tags, {"f": True}, 0))
    return line[: -len(_MARK)]
