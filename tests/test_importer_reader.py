"""The reader base every history format shares (importer/reader.py and the row checks of
ImportContext): the same reasons and words for the same fault in every format, a format of
named columns that reads CSV and JSON alike, and track firmware versions read by threshold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.importer.base import ImportContext, ImportOptions, Target, value_column
from sensorpipe.importer.fields import Columns
from sensorpipe.importer.files import FileProblem, inspect
from sensorpipe.importer.reader import ColumnRow, ColumnsReader
from sensorpipe.importer.track import _plan
from sensorpipe.protocol.quantities import plausibility_error

NOW_MS = 1_800_000_000_000  # 2027


def context(path: Path, batch_size: int = 1000) -> tuple[ImportContext, list[list[str]]]:
    batches: list[list[str]] = []

    def flush(ctx: ImportContext) -> None:
        if ctx.lines:
            batches.append(list(ctx.lines))
        ctx.lines.clear()
        ctx.line_nos.clear()

    ctx = ImportContext(
        "track",
        inspect(path),
        ImportOptions(user="t", batch_size=batch_size),
        resolve=lambda s: Target(s.device_id, "s", frozenset(s.sensors), frozenset(), True),
        declare=lambda *_: True,
        flush=flush,
        now_ms=NOW_MS,
    )
    return ctx, batches


@pytest.fixture
def ctx(tmp_path: Path) -> ImportContext:
    path = tmp_path / "any.csv"
    path.write_text("time,lat,lon,pm10\n")
    return context(path)[0]


def letters(ctx: ImportContext) -> list[tuple[str, str]]:
    return [(reason, detail) for _, _, reason, detail, _ in ctx.letters]


def test_observed_at_rejects_a_damaged_and_a_future_time(ctx: ImportContext) -> None:
    target = Target("d", "s", frozenset(), frozenset(), True)
    assert ctx.observed_at(1, "r", "time", "2024-01-01T00:00:00", target) == 1_704_067_200_000
    assert ctx.observed_at(2, "r", "time", " 2024-01-01T00:00:00 ", target, strip=True) is not None
    assert ctx.observed_at(3, "r", "date", "2024-01-01 25:00:00", target) is None
    assert ctx.observed_at(4, "r", "createdAt", " 2099-01-01T00:00:00", target, strip=True) is None
    (bad, bad_detail), future = letters(ctx)
    assert bad == "bad_timestamp" and bad_detail.startswith("date: ")
    assert future == ("future_timestamp", " 2099-01-01T00:00:00 is in the future")
    assert target.rejected == 2 and ctx.rejected_by_reason["future_timestamp"] == 1


def test_air_fields_names_the_first_bad_column(ctx: ImportContext) -> None:
    target = Target("d", "s", frozenset(), frozenset(), True)
    columns = [value_column(0, "P1", "pm10"), value_column(1, "pressure", "pressure", 100.0)]
    assert ctx.air_fields(1, "r", ["12.5", "100012.34567"], columns, target) == (
        "pm10=12.5,pressure=1000.123457"
    )
    unrounded = ctx.air_fields(1, "r", ["", "100012.34567"], columns, target, rounded=False)
    assert unrounded == f"pressure={100012.34567 / 100.0!r}"
    assert ctx.air_fields(1, "r", [" 3 ", ""], columns, target, strip=True) == "pm10=3.0"
    assert ctx.air_fields(2, "r", ["x", "1"], columns, target) is None
    assert ctx.air_fields(3, "r", ["5000", "x"], columns, target) is None
    assert ctx.air_fields(4, "r", ["", ""], columns, target) is None
    assert ctx.air_fields(5, "r", [" ", ""], columns, target) is None  # white space: no number
    assert ctx.air_fields(6, "r", [" ", ""], columns, target, strip=True) is None  # empty
    assert letters(ctx) == [
        ("bad_value", "P1 'x' is not a number"),
        ("bad_value", f"P1: {plausibility_error('pm10', 5000.0)}"),
        ("bad_row", "no value in any column"),
        ("bad_value", "P1 ' ' is not a number"),
        ("bad_row", "no value in any column"),
    ]


def test_declared_and_store_count_and_hand_on_full_batches(tmp_path: Path) -> None:
    path = tmp_path / "any.csv"
    path.write_text("time,lat,lon,pm10\n")
    ctx, batches = context(path, batch_size=2)
    target = Target("d", "s", frozenset(), frozenset(), True)
    assert not ctx.declared(1, "r", None, target, "SDS011")
    assert letters(ctx) == [("undeclared_sensor", "device d does not declare sensor 'SDS011'")]
    assert ctx.declared(2, "r", "air,", target, "sds011")
    for n in range(3):
        ctx.store(n, f"line {n}", target)
    assert batches == [["line 0", "line 1"]]
    assert ctx.lines == ["line 2"] and ctx.line_nos == [2]
    assert target.stored == 3 and target.rejected == 1


class Counts(ColumnsReader):
    name = "counts"
    title = "a counts file"
    device_prefix = "c-"
    columns = Columns(("when", "count"))
    json_key = "counts"
    json_shape = '{"counts": [{"when": ..., "count": ...}]}'

    def prepare(self) -> None:
        self.peek()

    def read(self, ctx: ImportContext, source: Iterator[ColumnRow]) -> None:
        self.rows = list(source)


@pytest.mark.parametrize(
    ("name", "content", "word"),
    [
        ("c.csv", "when;count;other\n1;2;3\n4;5\n", "line"),
        ("c.json", '{"counts": [{"when": 1, "count": 2, "other": 3}, [4, 5]]}', "item"),
    ],
)
def test_a_columns_reader_reads_csv_and_json_alike(
    tmp_path: Path, name: str, content: str, word: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    ctx, _ = context(path)
    reader = Counts(ctx.file, ctx.options)
    reader.prepare()
    with ctx.file.open_text() as (text, _):
        reader.parse(ctx, text)
    assert [r for _, _, r in reader.rows] == [["1", "2"]]
    assert letters(ctx) == [("bad_row", "its columns do not match the header")]
    assert ctx.row_word == word


def test_a_columns_reader_names_the_json_it_expected(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"other": []}')
    with pytest.raises(FileProblem) as exc:
        Counts(inspect(path), ImportOptions(user="t")).prepare()
    expected = 'not a counts file: expected {"counts": [{"when": ..., "count": ...}]}'
    assert str(exc.value) == f"{path}: {expected}"


def test_track_firmware_versions_read_by_threshold() -> None:
    plan = _plan(["time", "lat", "lon", "pm2_5", "temperature", "version_major"])
    divisors = {v: [c[4] for c in plan.value_columns(v)] for v in (-7, 0, 1, 2, 3, 99)}
    assert divisors[-7] == [1.0, 1.0]
    assert divisors[0] == divisors[1] == [1.0, 10.0]  # temperature in tenths from the start
    assert divisors[2] == divisors[99] == [100.0, 10.0]  # PM in hundredths from firmware 2
    assert plan.value_columns(3) is plan.value_columns(10**9)  # one list past the threshold
