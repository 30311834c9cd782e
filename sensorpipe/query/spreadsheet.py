"""CSV that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@`
(and, after a tab or carriage return, whatever follows) as a formula: a register field such
as an owner's name `=HYPERLINK("http://...","click")` or `+cmd|' /C calc'!A0` would run when
a municipality's analyst opens the export. Every text cell that starts with one of those
characters is written with a leading apostrophe, which spreadsheets show as text (OWASP's
advice for CSV injection); numbers are written as they are, so a negative reading stays a
number. Every CSV sensorpipe writes (the register, query results, the API's CSV answers)
goes through `csv_row`.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` for a CSV cell: None as empty, text that a spreadsheet would take for a formula
    prefixed with an apostrophe, anything else as it is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def to_csv_text(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    """A header and rows as CSV text, rows ended by LF, each cell made safe. A cell with a
    carriage return is quoted too (Python 3.11's csv quotes only the characters of its own
    line end), so no spreadsheet or reader splits a row at it."""
    buf = io.StringIO()
    # The CRLF terminator makes the writer quote cells with a CR or LF; each row's own CRLF is
    # then replaced by the LF this project's CSV has always ended rows with.
    writer = csv.writer(buf, lineterminator="\r\n")
    out = []
    for row in itertools.chain([header], rows):
        writer.writerow(csv_row(row))
        out.append(buf.getvalue()[:-2] + "\n")
        buf.seek(0)
        buf.truncate()
    return "".join(out)
