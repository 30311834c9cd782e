"""Hostile history files against the importers' bounds: a line or a quoted row longer than the
cap is one `bad_row` and reading goes on at the next line, a gzip stream that expands past the
limit ends the file with one line naming the option, JSON is read item by item with a nesting
cap, and files that are not UTF-8 are read where their encoding is certain (a byte-order mark;
Latin-1 only where the bytes are not UTF-8 and hold no control character) or refused with one
line. The memory these take is asserted in tests/integration/test_import_bounds.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.importer.base import ImportOptions
from sensorpipe.importer.files import MAX_LINE, MAX_ROW, rows
from sensorpipe.importer.runner import FileResult, Importer, prepare
from sensorpipe.ingest.influx import InfluxClient
from tests.helpers import dead_letters
from tests.test_importer_runner import FakeInflux

DATA = Path(__file__).parent / "data" / "import"
SC_HEADER = "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"


def sc_row(i: int) -> str:
    return (
        f"777;SDS011;1;52.0;5.0;2024-04-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d};"
        f"{10 + i % 7}.5;;;{5 + i % 3}.25;;\n"
    )


def run(
    tmp_path: Path, fmt: str, files: list[Path], *, fake: FakeInflux | None = None, **options: Any
) -> list[FileResult]:
    import httpx

    fake = fake or FakeInflux()
    opts = ImportOptions(user="alice", **options)
    client = InfluxClient(
        "http://influx", "sensorpipe", transport=httpx.MockTransport(fake.handler)
    )
    importer = Importer(
        fmt,
        opts,
        influx=client,
        registry_path=tmp_path / "registry.toml",
        deadletter_path=tmp_path / "ingest" / "deadletter.sqlite",
        ledger_path=tmp_path / "imports" / "ledger.sqlite",
        retry_backoff_s=0.0,
    )
    return importer.run(prepare(fmt, files, opts))


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["import", *args, "--influx-url", "http://127.0.0.1:9"])


def one_line_error(result: Any, *needles: str) -> str:
    """The command failed with one line (no traceback) holding every needle."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    for needle in needles:
        assert needle in line, line
    return line


# --- 9. lines, decompressed size ------------------------------------------------------------
def test_a_line_longer_than_the_cap_is_one_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    long = "777;SDS011;1;52.0;5.0;2024-04-01T00:00:30;" + "9" * (3 * MAX_LINE) + ";;;1.0;;\n"
    path = tmp_path / "long.csv"
    path.write_text(SC_HEADER + sc_row(0) + long + sc_row(60) + sc_row(120))
    (result,) = run(tmp_path, "sensor-community", [path])
    assert result.error is None
    assert (result.stored, dict(result.rejected)) == (3, {"bad_row": 1})
    (letter,) = dead_letters(tmp_path)
    assert letter.topic == "import:sensor-community:long.csv:3"
    assert f"longer than {MAX_LINE} characters" in letter.detail
    assert len(letter.payload) <= 1024  # its start is kept, not the whole line


def test_a_gzip_stream_that_expands_past_the_limit_ends_the_file_with_one_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "2024-04-01_sds011_sensor_777.csv.gz"
    body = "".join(sc_row(i) for i in range(0, 86_400, 2)).encode()  # 2.6 MB of rows
    path.write_bytes(gzip.compress(SC_HEADER.encode() + body))
    (result,) = run(tmp_path, "sensor-community", [path], max_decompressed_mib=1)
    assert result.error is not None
    assert str(path) in result.error
    assert "more than 1 MiB" in result.error and "--max-decompressed-mib" in result.error
    assert 0 < result.stored < 43_200  # what came before the limit, reported as incomplete


# --- 10. an unclosed quote --------------------------------------------------------------------
def test_an_unclosed_quote_costs_its_row_and_every_row_after_it_is_imported(
    tmp_path: Path,
) -> None:
    lines = [sc_row(i) for i in range(20_000)]
    lines[4] = lines[4].replace(";SDS011;", ';"SDS011;')  # one quote, never closed
    path = tmp_path / "quote.csv"
    path.write_text(SC_HEADER + "".join(lines))
    (result,) = run(tmp_path, "sensor-community", [path])
    assert result.error is None
    assert (result.stored, dict(result.rejected)) == (19_999, {"bad_row": 1})
    (letter,) = dead_letters(tmp_path)
    assert letter.topic == "import:sensor-community:quote.csv:6"
    assert "quote" in letter.detail and letter.payload == lines[4].rstrip("\n").encode()


def test_rows_resync_at_the_line_after_an_unclosed_quote() -> None:
    bad: list[tuple[int, str, str]] = []
    text = ['a;"b;c\n', *(f"{i};x;y\n" for i in range(MAX_ROW // 4)), 'd;"e\nf";g\n']
    got = list(rows(iter(text), ";", 1, lambda n, raw, detail: bad.append((n, raw, detail))))
    assert [n for n, _, _ in bad] == [1]
    assert got[0] == (2, "0;x;y", ["0", "x", "y"])
    assert len(got) == MAX_ROW // 4 + 1
    assert got[-1] == (len(text), 'd;"e\nf";g', ["d", "e\nf", "g"])  # a quoted newline still works


# --- 11. nesting --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["opensensemap", "telraam"])
def test_deeply_nested_json_is_one_line_naming_the_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "5f0a1b2c3d4e5f6a7b8c9d0e.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    one_line_error(cli(fmt, str(path), "--quantity" if fmt == "opensensemap" else "--segment",
                       "pm2_5" if fmt == "opensensemap" else "1"),
                   str(path), "nested deeper than")  # fmt: skip


def test_nesting_deep_in_a_later_item_ends_the_file_after_what_came_before(
    tmp_path: Path,
) -> None:
    items = json.loads((DATA / "telraam-traffic.json").read_text())["report"]
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "telraam.json"
    path.write_text('{"report": [' + json.dumps(items[0]) + "," + deep + "]}")
    (result,) = run(tmp_path, "telraam", [path])
    assert result.error is not None and "nested deeper than" in result.error
    assert str(path) in result.error and result.stored == 1


def test_json_items_are_read_one_by_one_and_an_overlong_item_is_a_bad_row(
    tmp_path: Path,
) -> None:
    name = "5f0a1b2c3d4e5f6a7b8c9d0f.json"
    plain = run(tmp_path / "plain", "opensensemap", [DATA / name], quantity="pm2_5")[0]
    items = json.loads((DATA / name).read_text())
    huge = {"createdAt": "2024-03-01T10:00:00Z", "value": "1" * (3 * MAX_ROW)}
    path = tmp_path / name
    path.write_text(json.dumps([items[0], huge, *items[1:]]))
    (result,) = run(tmp_path, "opensensemap", [path], quantity="pm2_5")
    assert result.error is None and plain.stored > 1
    assert result.stored == plain.stored
    assert result.rejected == {"bad_row": 1, **plain.rejected}
    (letter,) = [d for d in dead_letters(tmp_path) if d.code == "bad_row"]
    assert letter.topic.endswith(":2") and "item 2: longer than" in letter.detail


# --- 16. encodings --------------------------------------------------------------------------------
def test_utf16_with_a_byte_order_mark_is_read_by_every_importer(tmp_path: Path) -> None:
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("sensor-community", "2024-03-01_sds011_sensor_12345.csv", {}),
        ("opensensemap", "5f0a1b2c3d4e5f6a7b8c9d0e.csv", {"quantity": "pm2_5"}),
        ("telraam", "telraam-export.csv", {}),
        ("track", "ride-2024-05-04.csv", {"track_id": "bike-7"}),
    ]
    for fmt, name, options in cases:
        plain = run(tmp_path / fmt / "plain", fmt, [DATA / name], **options)[0]
        path = tmp_path / fmt / name
        # Excel's "Unicode text": UTF-16 little-endian with a byte-order mark, CRLF
        path.write_bytes((DATA / name).read_text().replace("\n", "\r\n").encode("utf-16"))
        (result,) = run(tmp_path / fmt, fmt, [path], **options)
        assert result.error is None, result.error
        assert (result.stored, result.rejected) == (plain.stored, plain.rejected), fmt
        assert any("UTF-16" in note for note in result.notes), result.notes


def test_latin1_is_read_only_where_the_bytes_are_not_utf8_and_it_says_so(
    tmp_path: Path,
) -> None:
    text = "time,latitude,longitude,pm2_5,Straße\n" + "".join(
        f"2024-05-04T09:00:{s:02d}Z,52.37,4.89,8.{s},Hauptstraße\n" for s in range(10)
    )
    path = tmp_path / "ride.csv"
    path.write_bytes(text.encode("latin-1"))
    (result,) = run(tmp_path, "track", [path], track_id="bike-7")
    assert result.error is None and result.stored == 10
    assert result.not_imported == {"Straße": 10}
    assert any("Latin-1" in note and "not UTF-8" in note for note in result.notes)


@pytest.mark.parametrize("fmt", ["sensor-community", "opensensemap", "telraam", "track"])
def test_files_that_are_no_text_are_refused_with_one_line(tmp_path: Path, fmt: str) -> None:
    noise = bytes(range(256)) * 64  # random-looking bytes: NUL, control characters, 0x80-0xff
    path = tmp_path / "noise.csv"
    path.write_bytes(noise)
    one_line_error(cli(fmt, str(path)), str(path), "not text")
    utf16 = tmp_path / "no-bom.csv"  # UTF-16 without a byte-order mark cannot be told apart
    utf16.write_bytes((DATA / "ride-2024-05-04.csv").read_text().encode("utf-16-le"))
    one_line_error(cli(fmt, str(utf16)), str(utf16), "UTF-16")
