"""The reader base: what every history format shares, so that a format holds only what is its
own (its columns, its devices, its units).

A format is a `Reader` (`HistoryFormat`, see `base.py`, for the runner) and provides:

- `name`, `title` ("a Telraam traffic export"), `device_prefix`;
- `prepare()`: the checks that tell its files from others, raising `problem(...)` or
  `not_format(...)`;
- for a CSV of its own header (`sensor_community`, `track`): `parse(ctx, text)`;
- for CSV or JSON with named columns, a `ColumnsReader` (`opensensemap`, `telraam`):
  `columns` (the keys it reads), `json_shape` (what its JSON looks like, for the message),
  `json_key` where the array sits under a key, and `read(ctx, source)`, which gets the rows
  as lists of strings in the order of `columns`, CSV and JSON alike; `prepare()` starts with
  `peek()`. It may override `check_header`, `check_item`, `json_row`, `json_rows` and
  `csv_rows` (to add values from elsewhere in an item, or count columns not imported).

What a format gets:

- header checks: `header()` (the first line of the file, for `prepare`), `problem` and
  `not_format` (the one-line `FileProblem` naming the file), `found(head)` (the header as
  messages show it); a `ColumnsReader` gets `peek()` (CSV or JSON, the columns and the first
  row) and `parse` (JSON items numbered as items, `bad_row` for rows past the bounds, a
  row whose columns do not match the header rejected);
- per row, from `ImportContext` (`base.py`), the checks every format makes with the same
  reason and words everywhere: `observed_at` (`bad_timestamp`, `future_timestamp`),
  `air_fields` (`bad_value`, `bad_row` with no value; columns from `value_column`),
  `declared` (`undeclared_sensor`), and `store` (the line written, the device's count, the
  batch handed on when full); any other reject is `ctx.reject` with the format's reason.
  They sit on the context, beside `reject` and the batch they fill, rather than here: a
  format's row loop then talks to one object, and the runner's test doubles get them too.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from sensorpipe.importer import jsonstream
from sensorpipe.importer.base import HistoryFormat, ImportContext
from sensorpipe.importer.fields import Columns, RowSource
from sensorpipe.importer.files import FileProblem, Header, Row, first_char, header, rows
from sensorpipe.importer.jsonstream import BadItem

# CSV delimiters of the formats with named columns (exports are `,`; some APIs offer `;`).
COLUMN_DELIMITERS = ",;"
# A row the reader numbers, with its text and values in the order of `columns` (whole only).
ColumnRow = tuple[int, str, list[str]]


def found(head: Header | None) -> str:
    """A file's first line as a message shows it."""
    return "nothing" if head is None else repr(head[1][:80])


class Reader(HistoryFormat):
    """A history format, with the helpers every format's `prepare` uses."""

    def header(self, delimiters: str) -> Header | None:
        """The file's header (its first line that is not blank), None for an empty file."""
        with self.file.open_text() as (text, _):
            return header(text, delimiters)

    def problem(self, what: str) -> FileProblem:
        """`<file>: <what>`: a file that cannot be imported, with what to do."""
        return FileProblem(f"{self.file.path}: {what}")

    def not_format(self, what: str) -> FileProblem:
        """`<file>: not <title>: <what>`: a file of another format; `what` names what was
        expected and found."""
        return self.problem(f"not {self.title}: {what}")


class ColumnsReader(Reader):
    """A format whose rows are CSV rows under a header of named columns or the objects of a
    JSON array; either way the format reads `columns` (see the module's docstring)."""

    columns: ClassVar[Columns]
    json_shape: ClassVar[str]  # "a JSON array of measurements like [...]"
    json_key: ClassVar[str | None] = None  # the top-level object's key holding the array

    @abstractmethod
    def read(self, ctx: ImportContext, source: Iterator[ColumnRow]) -> None:
        """Every row of the file into `ctx`."""

    def peek(self) -> tuple[set[str], list[str] | None]:
        """The file's columns (a JSON file's: its first item's keys) and its first row in
        the order of `columns` (None for a file without rows); sets `is_json`."""
        with self.file.open_text() as (text, _):
            self.is_json = first_char(text) in "[{"
        with self.file.open_text() as (text, _):
            if self.is_json:
                first = next(self.json_items(text), None)
                if first is None:
                    return set(), None
                item = first[1]
                self.check_item(item)
                if not isinstance(item, dict):
                    return set(), None
                return set(item), self.json_row(item)
            head = self.check_header(header(text, COLUMN_DELIMITERS))
            index = self.columns.index(head[3])
            first_row = next(
                (self.columns.csv_row(f, index) for _, _, f in rows(text, head[2])), None
            )
            return set(head[3]), first_row

    def check_header(self, head: Header | None) -> Header:
        """The CSV header, when it can be this format's; else raises `not_format`."""
        if head is None:
            raise self.not_format("it holds no line")
        return head

    def check_item(self, item: Any) -> None:
        """Raises `not_format` where a JSON file's first item shows it is of another format."""

    def json_items(
        self, text: IO[str], bad_item: BadItem | None = None
    ) -> Iterator[tuple[int, Any]]:
        """The JSON document's items, numbered; a document of another shape is `not_format`."""
        try:
            yield from jsonstream.items(text, self.json_key, bad_item)
        except jsonstream.NotTheShape:
            raise self.not_format(f"expected {self.json_shape}") from None

    def json_row(self, item: dict[str, Any]) -> list[str]:
        """A JSON item as a row (for `peek`)."""
        return self.columns.json_row(item)

    def json_rows(self, ctx: ImportContext, items: Iterator[tuple[int, Any]]) -> RowSource:
        """A JSON file's items as rows (for `parse`)."""
        return self.columns.json_rows(items)

    def csv_rows(self, ctx: ImportContext, source: Iterator[Row], names: list[str]) -> RowSource:
        """A CSV file's rows under the header `names` as rows (for `parse`)."""
        return self.columns.csv_rows(source, names)

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        if self.is_json:
            ctx.row_word = "item"
            source = self.json_rows(ctx, self.json_items(text, ctx.bad_row))
        else:
            head = header(text, COLUMN_DELIMITERS)
            assert head is not None  # prepare() saw it
            source = self.csv_rows(ctx, rows(text, head[2], head[0] + 1, ctx.bad_row), head[3])
        self.read(ctx, _whole(ctx, source))


def _whole(ctx: ImportContext, source: RowSource) -> Iterator[ColumnRow]:
    """The rows whose columns match the header (a JSON item: an object); the others rejected."""
    for n, raw, r, whole in source:
        if whole:
            yield n, raw, r
        else:
            ctx.reject(n, raw, "bad_row", "its columns do not match the header")
