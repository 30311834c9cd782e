"""A JSON number of thousands of digits is valid JSON that Python will not turn into an int
(over 4,300 digits): in an openSenseMap or Telraam JSON file it is that item's bad value, and
the import goes on with the next item."""

from __future__ import annotations

import io
import json
from pathlib import Path

from sensorpipe.importer.jsonstream import items
from tests.helpers import dead_letters
from tests.test_import_bounds import DATA, run

HUGE = "9" * 5000  # a valid JSON number


def test_the_reader_gives_an_item_with_a_huge_number_and_goes_on() -> None:
    text = '[{"value": ' + HUGE + '}, {"value": -' + HUGE + '}, {"value": 7}]'
    got = list(items(io.StringIO(text)))
    assert [n for n, _ in got] == [1, 2, 3]
    assert got[2][1] == {"value": 7}
    for _, item in got[:2]:
        assert not isinstance(item["value"], int | float)
        assert "5000" in str(item["value"]) or "5001" in str(item["value"])


def test_opensensemap_rejects_the_item_and_imports_the_rest(tmp_path: Path) -> None:
    name = "5f0a1b2c3d4e5f6a7b8c9d0f.json"
    plain = run(tmp_path / "plain", "opensensemap", [DATA / name], quantity="pm2_5")[0]
    items_ = json.loads((DATA / name).read_text())
    path = tmp_path / name
    bad = '{"createdAt": "2024-03-01T10:00:00Z", "value": ' + HUGE + "}"
    path.write_text("[" + json.dumps(items_[0]) + "," + bad + "," +
                    ",".join(json.dumps(i) for i in items_[1:]) + "]")  # fmt: skip
    (result,) = run(tmp_path, "opensensemap", [path], quantity="pm2_5")
    assert result.error is None, result.error
    assert plain.stored > 1 and result.stored == plain.stored
    assert sum(result.rejected.values()) == sum(plain.rejected.values()) + 1
    (letter,) = [d for d in dead_letters(tmp_path) if d.topic.endswith(":2")]
    assert letter.code in ("bad_value", "bad_row")
    assert "5000-digit number" in letter.detail, letter.detail
    assert len(letter.payload) <= 1024


def test_telraam_rejects_the_item_and_imports_the_rest(tmp_path: Path) -> None:
    report = json.loads((DATA / "telraam-traffic.json").read_text())["report"]
    plain = run(tmp_path / "plain", "telraam", [DATA / "telraam-traffic.json"])[0]
    bad_count = json.dumps({**report[0], "date": "2024-03-01T03:00:00.000Z", "car_lft": 0})
    bad_count = bad_count.replace('"car_lft": 0', '"car_lft": ' + HUGE)
    bad_segment = json.dumps({**report[0], "date": "2024-03-01T04:00:00.000Z", "segment_id": 0})
    bad_segment = bad_segment.replace('"segment_id": 0', '"segment_id": ' + HUGE)
    path = tmp_path / "telraam.json"
    body = ",".join([json.dumps(report[0]), bad_count, bad_segment,
                     *(json.dumps(r) for r in report[1:])])  # fmt: skip
    path.write_text('{"report": [' + body + "]}")
    (result,) = run(tmp_path, "telraam", [path])
    assert result.error is None, result.error
    assert plain.stored > 1 and result.stored == plain.stored
    assert sum(result.rejected.values()) == sum(plain.rejected.values()) + 2
    rejected = {d.topic.rsplit(":", 1)[1]: d for d in dead_letters(tmp_path)}
    assert rejected["2"].code == "bad_value" and "5000-digit number" in rejected["2"].detail
    assert "3" in rejected


def test_telraam_csv_with_a_huge_segment_id_rejects_the_row(tmp_path: Path) -> None:
    """The same number in a CSV column: no segment id, that row's bad_row."""
    lines = (DATA / "telraam-export.csv").read_text().splitlines(keepends=True)
    plain = run(tmp_path / "plain", "telraam", [DATA / "telraam-export.csv"])[0]
    bad = lines[1].replace("9000002001", HUGE, 1).replace(" 07:00:00", " 05:00:00", 1)
    path = tmp_path / "telraam.csv"
    path.write_text(lines[0] + lines[1] + bad + "".join(lines[2:]))
    (result,) = run(tmp_path, "telraam", [path])
    assert result.error is None, result.error
    assert plain.stored > 1 and result.stored == plain.stored
    assert sum(result.rejected.values()) == sum(plain.rejected.values()) + 1
    (letter,) = [d for d in dead_letters(tmp_path) if d.topic.endswith(":3")]
    assert letter.code == "bad_row" and "segment_id" in letter.detail, letter.detail
