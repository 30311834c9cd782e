"""Rows from InfluxDB series, and the three ways `sensorpipe query` prints them.

CSV (here and the API's CSV answers, `quantity_csv`) names each quantity's column with its
unit, `pm2_5_ugm3`, `temperature_degc`, `relative_humidity_pct` (`csv_column`), and writes its
values to the quantity's precision (protocol.quantities.DECIMALS): PM to 0.1 µg/m³,
temperature to 0.1 °C, relative humidity to 1 %; the counter's running_fraction to 0.001.
JSON keeps the values as stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sensorpipe.protocol.quantities import DECIMALS, QUANTITIES
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


LAST_COLUMNS = ("calibration", "calibration_note")  # what made the row's values, after them


def drop_empty_columns(rows: list[Row], keep: Sequence[str]) -> list[str]:
    """The columns of all rows (rows of different sensors hold different ones: a BME280's
    row has no PM uncertainty), in the order first seen, the calibration columns last; those
    empty in every row left out, except `keep`."""
    if not rows:
        return list(keep)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    columns = [c for c in columns if c not in LAST_COLUMNS] + [
        c for c in LAST_COLUMNS if c in columns
    ]
    return [c for c in columns if c in keep or any(r.get(c) is not None for r in rows)]


# A unit as a column name's suffix: letters and digits only.
UNIT_SUFFIX = {
    "ug/m3": "ugm3",
    "degC": "degc",
    "%": "pct",
    "hPa": "hpa",
    "ppm": "ppm",
    "dBA": "dba",
}


def csv_column(column: str) -> str:
    """A quantity's CSV column name with its unit (`pm2_5` -> `pm2_5_ugm3`); any other column
    as it is."""
    quantity = QUANTITIES.get(column)
    if quantity is None:
        return column
    return f"{column}_{UNIT_SUFFIX.get(quantity.unit, quantity.unit)}"


# Columns that are no quantity but a share, written to 0.1 % of it.
SHARE_DECIMALS = {"running_fraction": 3}


def csv_value(column: str, value: Any) -> Any:
    """A quantity's value rounded to its precision (a whole number without a decimal point
    where it has none), a share (running_fraction) to 3 decimals; anything else as it is."""
    decimals = DECIMALS.get(column, SHARE_DECIMALS.get(column))
    if decimals is None or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if decimals == 0:
        return round(value)
    # A number, not text: a negative value stays a number (query.spreadsheet); its shortest
    # repr has at most `decimals` decimals.
    return round(float(value), decimals)


def quantity_csv(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, units: bool = True
) -> str:
    """CSV of `rows` under `columns`, quantities with their units in the header and to their
    precision. `units=False` (values that are no quantity's, such as counts of readings): the
    header and values as they are."""
    if not units:
        return to_csv_text(columns, rows)
    return to_csv_text(
        [csv_column(c) for c in columns],
        ([csv_value(c, v) for c, v in zip(columns, row, strict=True)] for row in rows),
    )


def render(rows: list[Row], columns: Sequence[str], fmt: str, *, units: bool = True) -> str:
    """Rows as json, csv (`quantity_csv`; `units=False`: values that are no quantity's) or a
    table."""
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2)
    if fmt == "csv":
        return quantity_csv(columns, ([r.get(c) for c in columns] for r in rows), units=units)
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
