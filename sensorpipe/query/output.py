"""Rows from InfluxDB series, and the three ways `sensorpipe query` prints them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sensorpipe.query.spreadsheet import to_csv_text

Row = dict[str, Any]


def rows_from_series(series: Sequence[dict[str, Any]], tag_names: Sequence[str]) -> list[Row]:
    """Flattens InfluxDB's series into rows: time (ISO, UTC), the tags, then the columns.

    Rows where every value column is empty (a sensor that does not measure the quantity asked
    for) are left out.
    """
    rows: list[Row] = []
    for s in series:
        tags = s.get("tags", {}) or {}
        columns = s["columns"]
        for values in s["values"]:
            record = dict(zip(columns, values, strict=True))
            measured = {k: v for k, v in record.items() if k != "time"}
            if all(v is None for v in measured.values()):
                continue
            row: Row = {"time": _iso(record["time"])}
            row.update({t: tags.get(t, "") for t in tag_names})
            row.update(measured)
            rows.append(row)
    rows.sort(key=lambda r: (r["time"], *(r[t] for t in tag_names)))
    return rows


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def drop_empty_columns(rows: list[Row], keep: Sequence[str]) -> list[str]:
    if not rows:
        return list(keep)
    columns = list(rows[0])
    return [c for c in columns if c in keep or any(r.get(c) is not None for r in rows)]


def render(rows: list[Row], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2)
    if fmt == "csv":
        return to_csv_text(columns, ([r.get(c) for c in columns] for r in rows))
    return _table(rows, columns)


def _cell(value: Any, decimals: bool) -> str:
    if value is None:
        return ""
    if decimals and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}"  # InfluxDB's JSON writes 33.0 as 33: keep the column uniform
    return str(value)


def _table(rows: list[Row], columns: Sequence[str]) -> str:
    if not rows:
        return "(no data)"
    decimal_columns = {c for c in columns if any(isinstance(r.get(c), float) for r in rows)}
    cells = [[_cell(r.get(c), c in decimal_columns) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(lines)
