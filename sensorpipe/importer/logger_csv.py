"""Any logger's CSV export (`sensorpipe import csv`): the person importing names the columns.

    sensorpipe import csv FILE... --device ID --time COLUMN [--time-format FMT]
        [--timezone ZONE|±HH:MM] --column 'HEADER=QUANTITY[:UNIT]' ...

Loggers write a preamble (serial number, export date, averaging period) above the header row:
the header row is the first row, within MAX_PREAMBLE_LINES lines, that holds the `--time`
column and every `--column` header (delimiter `,`, `;` or tab); what comes before it is
skipped. A byte-order mark is dropped (files.inspect). Each `--column` maps a header to a
quantity, in the quantity's canonical unit or in `UNIT` where given (converted where
fields.unit_divisor knows the unit; the command refuses any other with one line). Times are
read with `--time-format` (a `strptime` format; default ISO 8601) in `--timezone` where they
carry no offset (default UTC; a zone name handles daylight saving: timeparse.LocalTimes).
Empty cells are skipped; a row with no value in any mapped column is a `bad_row`. Columns not
mapped are counted as not imported.

All rows go to `--device`, which must be registered with source `import` (`--register` makes
it so): a logger's file seldom names the logger in a form that could be its device id.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext, ValueColumn, value_column
from sensorpipe.importer.counts_csv import CountRows
from sensorpipe.importer.fields import unit_divisor
from sensorpipe.importer.files import lines, overlong, rows
from sensorpipe.importer.reader import Reader
from sensorpipe.importer.timeparse import LocalTimes, TimestampError
from sensorpipe.protocol.quantities import QUANTITIES, spellings_of

MAX_PREAMBLE_LINES = 200
DELIMITERS = ",;\t"
DEFAULT_SENSOR = "logger"
_CHECKED_ROWS = 5  # first rows whose time must read, or the format is refused at once
# Between two rows of a logger's file, in time order: back by more than an hour (a clock set
# back, a DST hour) or on by more than a week (an outage) is a jump; many jumps are a format
# that reads the wrong fields (day and month swapped).
_BACK_MS = 3_600_000
_JUMP_MS = 7 * 86_400_000


class LoggerCsv(Reader):
    name = "csv"
    title = "a logger CSV"
    device_prefix = ""  # no devices of its own: --device

    def prepare(self) -> None:
        o = self.options
        if (
            (o.device is None and o.device_column is None)
            or o.time_column is None
            or not (o.columns or o.count_columns)
        ):
            raise self.problem("give --device, --time and at least one --column")
        wanted = [
            o.time_column,
            *(h for h, _, _ in o.columns),
            *(h for h, _, _ in o.count_columns),
            *([o.device_column] if o.device_column else []),
        ]
        best: tuple[int, int, list[str]] | None = None  # matches, line, fields
        with self.file.open_text() as (text, _):
            for line_no, line in enumerate(lines(text), start=1):
                if line_no > MAX_PREAMBLE_LINES:
                    break
                if overlong(line) or not line.strip():
                    continue
                for delimiter in DELIMITERS:
                    if delimiter not in line:  # the time and a column at least: two fields
                        continue
                    fields = _fields(line, delimiter)
                    matches = sum(1 for w in wanted if w in fields)
                    if matches == len(wanted):
                        self._head = (line_no, delimiter, fields)
                        self._check_times(line_no, delimiter, fields)
                        return
                    if best is None or matches > best[0]:
                        best = (matches, line_no, fields)
        missing = wanted if best is None else [w for w in wanted if w not in best[2]]
        source = {o.time_column: "--time"} | {h: "--column" for h, _, _ in o.columns}
        source |= {h: "--column" for h, _, _ in o.count_columns}
        if o.device_column:
            source[o.device_column] = "--device-column"
        closest = (
            ""
            if best is None or best[0] == 0
            else f"; line {best[1]} comes closest: {', '.join(best[2])[:200]}"
        )
        raise self.problem(
            f"no row in its first {MAX_PREAMBLE_LINES} lines holds "
            f"{', '.join(f'{m!r} (from {source[m]})' for m in missing)}{closest}: give "
            f"the header row's names exactly"
        )

    def _check_times(self, header_line: int, delimiter: str, names: list[str]) -> None:
        """Every row's time, read as asked, before anything is imported: a wrong --time-format
        is one line, not a dead letter per row. The first time that cannot be read ends it at
        once; a format that reads some rows but not the rest, or reads them into jumps of
        weeks (day and month swapped: 08/01 .. 08/12 read as 8 January .. 8 December), ends it
        too, where more than 1 % of the rows (and 3 at least) fail or jump: a logger writes
        its rows in time order, a minute or so apart."""
        o = self.options
        assert o.time_column is not None
        index = names.index(o.time_column)
        times = LocalTimes(o.time_format, o.timezone)
        fmt = "--time-format" if o.time_format else "ISO 8601 (no --time-format)"
        checked = failed = jumps = 0
        first_failed: tuple[int, str] | None = None
        first_jump: tuple[int, str] | None = None
        last: int | None = None
        with self.file.open_text() as (text, _):
            source = _after(text, header_line)
            for n, _, f in rows(source, delimiter, header_line + 1):
                value = f[index].strip() if index < len(f) else ""
                if not value:
                    continue
                checked += 1
                try:
                    t = times(value)
                except TimestampError as exc:
                    if checked <= _CHECKED_ROWS and failed == checked - 1:
                        raise self.problem(
                            f"line {n}: {o.time_column} {value[:40]!r} cannot be read as {fmt} "
                            f"({exc}): give --time-format, like '%m/%d/%Y %H:%M'"
                        ) from None
                    failed += 1
                    first_failed = first_failed or (n, value)
                    continue
                if last is not None and not -_BACK_MS <= t - last <= _JUMP_MS:
                    jumps += 1
                    first_jump = first_jump or (n, value)
                last = t
        bound = max(3, checked // 100)
        for count, first, what in (
            (failed, first_failed, f"cannot be read as {fmt}"),
            (jumps, first_jump, f"jump by more than a week from the row before, read as {fmt},"),
        ):
            if count > bound and first is not None:
                raise self.problem(
                    f"{count} of {checked} times {what} (the first at line {first[0]}: "
                    f"{first[1][:40]!r}): are day and month the other way round? correct "
                    f"--time-format; nothing was imported"
                )

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        o = self.options
        if o.count_columns:
            self._parse_counts(ctx, text)
            return
        assert o.device is not None and o.time_column is not None
        header_line, delimiter, names = self._head
        width = len(names)
        time_index = names.index(o.time_column)
        columns: list[ValueColumn] = [
            value_column(names.index(h), h, quantity, divisor) for h, quantity, divisor in o.columns
        ]
        used = {time_index, *(c[0] for c in columns)}
        unused = [(i, names[i]) for i in range(width) if i not in used and names[i]]
        counts = [0] * len(unused)
        sensor = o.sensor or DEFAULT_SENSOR
        target = ctx.target(
            DeviceSpec(
                device_id=o.device,
                purpose="logger history imported from its CSV exports",
                sensors=(sensor,),
            )
        )
        times = LocalTimes(o.time_format, o.timezone)
        prefix = ctx.air_prefix(target, sensor)
        for n, raw, f in rows(_after(text, header_line), delimiter, header_line + 1, ctx.bad_row):
            if len(f) > width:
                ctx.reject(n, raw, "bad_row", "more columns than the header", target)
                continue
            if len(f) < width:  # loggers leave trailing empty cells out
                f = f + [""] * (width - len(f))
            for k, (i, _) in enumerate(unused):
                if f[i].strip():
                    counts[k] += 1
            t = ctx.observed_at(
                n, raw, o.time_column, f[time_index], target, strip=True, parse=times
            )
            if t is None:
                continue
            fields = ctx.air_fields(n, raw, f, columns, target, strip=True, sensor=sensor, t=t)
            if fields is None or not ctx.declared(n, raw, prefix, target, sensor):
                continue
            ctx.store(n, f"{prefix}{fields} {t}", target)
        for k, (_, name) in enumerate(unused):
            if counts[k]:
                ctx.not_imported[name] = counts[k]

    def _parse_counts(self, ctx: ImportContext, text: IO[str]) -> None:
        """Counts of passers-by (counts_csv), each row's device from --device or
        --device-column."""
        o = self.options
        assert o.time_column is not None
        header_line, delimiter, names = self._head
        width = len(names)
        # The times read so far in this import are the context's: a reading that only finds
        # time spans (runner's overlap check) has a record of its own.
        counts = CountRows(
            ctx, names, o.time_column, LocalTimes(o.time_format, o.timezone), ctx.options.counted
        )
        unused = [(i, names[i]) for i in range(width) if i not in counts.used and names[i]]
        held = [0] * len(unused)
        for n, raw, f in rows(_after(text, header_line), delimiter, header_line + 1, ctx.bad_row):
            if len(f) > width:
                ctx.reject(n, raw, "bad_row", "more columns than the header")
                continue
            if len(f) < width:
                f = f + [""] * (width - len(f))
            for k, (i, _) in enumerate(unused):
                if f[i].strip():
                    held[k] += 1
            counts.row(n, raw, f)
        for k, (_, name) in enumerate(unused):
            if held[k]:
                ctx.not_imported[name] = held[k]
        note = counts.note()
        if note is not None:
            ctx.notes.append(note)


def _fields(line: str, delimiter: str) -> list[str]:
    """A line's fields, stripped (a line `lines` gave: at most MAX_LINE characters)."""
    text = line.rstrip("\n")
    try:
        fields = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration):
        fields = text.split(delimiter)
    return [f.strip() for f in fields]


def _after(text: IO[str], line_no: int) -> Iterator[str]:
    """The lines of `text` after its first `line_no` lines (the preamble and the header)."""
    it = lines(text)
    for _ in range(line_no):
        if next(it, None) is None:
            break
    return it


def column_spec(text: str) -> tuple[str, str, float]:
    """`--column 'HEADER=QUANTITY[:UNIT]'` as (header, quantity, divisor to the quantity's
    canonical unit); ValueError with the one line to show."""
    header, eq, target = text.rpartition("=")
    header = header.strip()
    if not eq or not header:
        raise ValueError(
            f"--column {text[:80]!r}: write HEADER=QUANTITY or HEADER=QUANTITY:UNIT, like "
            f"'PM2.5 (µg/m³)=pm2_5'"
        )
    quantity, _, unit = (part.strip() for part in target.partition(":"))
    if quantity not in QUANTITIES:
        from sensorpipe.protocol.counting import COUNT_CLASSES

        if quantity in COUNT_CLASSES:  # `count=pedestrian`: counts, said the other way
            raise ValueError(
                f"--column {text[:80]!r}: for counts of passers-by write "
                f"'{header[:40]}=count:{quantity}' (HEADER=count:CLASS)"
            )
        raise ValueError(
            f"--column {text[:80]!r}: {quantity[:40]!r} is no quantity; use one of "
            f"{', '.join(QUANTITIES)}, or HEADER=count:CLASS for counts"
        )
    canonical = QUANTITIES[quantity].unit
    divisor = unit_divisor(quantity, unit) if unit else 1.0
    if divisor is None:
        raise ValueError(
            f"--column {text[:80]!r}: unit {unit[:20]!r} cannot be converted to {quantity}'s "
            f"{canonical} (sensorpipe reads {' or '.join(spellings_of(canonical))} for it): "
            f"convert the column first, or give its unit as one of those"
        )
    return header, quantity, divisor
