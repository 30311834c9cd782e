"""Where an import's points lie (the ledger's spans) and what `import remove` refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sensorpipe.importer.ledger import Ledger, SpanKey, line_spans
from sensorpipe.importer.removal import RemovalProblem, find_entry, plan
from sensorpipe.ingest.lineprotocol import Point, to_line


def test_spans_per_measurement_and_device_whatever_the_tag_order() -> None:
    lines = [
        to_line(Point("air", {"device_id": "a-1", "source": "import:csv"}, {"pm2_5": 1.0}, 2000)),
        to_line(Point("air", {"device_id": "a-1", "site": "x y"}, {"pm2_5": 2.0}, 1000)),
        to_line(Point("air", {"device_id": "a-1"}, {"pm2_5": 2.0}, 5000)),
        # `class` sorts before `device_id`; the device id is the last tag here.
        to_line(Point("traffic", {"class": "pedestrian", "device_id": "t"}, {"count": 3}, 7000)),
        to_line(Point("imports", {"source": "import:csv"}, {"file": "device_id=z"}, 1)),
    ]  # fmt: skip
    spans: dict[SpanKey, list[int]] = {}
    line_spans(lines, spans)
    assert spans == {("air", "a-1"): [1000, 5000], ("traffic", "t"): [7000, 7000]}


def test_spans_only_grow(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.begin("ab" * 32, "csv", "f.csv", "u", 1)
    ledger.widen("ab" * 32, {("air", "d"): [100, 200]})
    ledger.widen("ab" * 32, {("air", "d"): [150, 300]})
    ledger.widen("ab" * 32, {("air", "d"): [50, 60]})
    (span,) = ledger.spans("ab" * 32)
    assert (span.first_ms, span.last_ms) == (50, 300)


def _two_files(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for sha, lo, hi in (("a" * 64, 0, 100), ("ab" + "c" * 62, 100, 200)):
        ledger.begin(sha, "csv", f"{sha[:2]}.csv", "u", lo + 1)
        ledger.complete(sha, completed_ms=5, rows=3, stored=3, rejected=0)
        ledger.widen(sha, {("air", "d"): [lo, hi]})
    return ledger


def test_a_file_sharing_times_is_refused_alone_and_taken_together(tmp_path: Path) -> None:
    ledger = _two_files(tmp_path)
    a, b = find_entry(ledger, "a" * 8), find_entry(ledger, "abcccccc")
    with pytest.raises(RemovalProblem, match=r"shared with ab\.csv"):
        plan(ledger, [a])
    assert [r.entry.sha256 for r in plan(ledger, [a, b])] == [a.sha256, b.sha256]
    # Touching at one instant is sharing too: the same time is the same point.
    ledger.widen("ab" + "c" * 62, {("air", "other"): [0, 1]})
    with pytest.raises(RemovalProblem):
        plan(ledger, [b])


def test_another_format_or_device_is_not_shared(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for sha, fmt, device in (
        ("1" * 64, "csv", "d"),
        ("2" * 64, "csv", "e"),
        ("3" * 64, "track", "d"),
    ):
        ledger.begin(sha, fmt, "f", "u", 1)
        ledger.widen(sha, {("air", device): [0, 100]})
    assert len(plan(ledger, [find_entry(ledger, "1" * 8)])) == 1  # fmt: skip


def test_a_file_imported_before_spans_were_noted_asks_for_force(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.begin("f" * 64, "csv", "old.csv", "u", 1)
    ledger.complete("f" * 64, completed_ms=5, rows=3, stored=3, rejected=0)
    with pytest.raises(RemovalProblem, match=r"with --force and the same options"):
        plan(ledger, [find_entry(ledger, "f" * 12)])
    # A file of which nothing was stored has nothing to find: it is only forgotten.
    ledger.begin("e" * 64, "csv", "empty.csv", "u", 2)
    ledger.complete("e" * 64, completed_ms=5, rows=3, stored=0, rejected=3)
    assert plan(ledger, [find_entry(ledger, "e" * 8)])[0].spans == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("abc", "at least 8 hex digits"),
        ("not-hex-at-all", "neither a file nor a sha256"),
        ("0123456789", "no imported file's sha256 starts so"),
    ],
)
def test_a_bad_name_is_one_line(tmp_path: Path, name: str, says: str) -> None:
    with pytest.raises(RemovalProblem, match=says):
        find_entry(_two_files(tmp_path), name)


def test_a_prefix_naming_two_files_asks_for_more(tmp_path: Path) -> None:
    ledger = _two_files(tmp_path)
    assert find_entry(ledger, "AAAAAAAA").file_name == "aa.csv"  # any case
    ledger.begin("a" * 8 + "b" * 56, "csv", "x.csv", "u", 9)
    with pytest.raises(RemovalProblem, match=r"names 2 files .* give more digits"):
        find_entry(ledger, "a" * 8)
    assert find_entry(ledger, "a" * 9).file_name == "aa.csv"


def test_a_file_is_found_by_its_bytes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    f = tmp_path / "day.csv"
    f.write_text("a,b\n1,2\n")
    ledger.begin(hashlib.sha256(f.read_bytes()).hexdigest(), "csv", "day.csv", "u", 1)
    assert find_entry(ledger, str(f)).file_name == "day.csv"
    f.write_text("a,b\n1,3\n")
    with pytest.raises(RemovalProblem, match="never imported"):
        find_entry(ledger, str(f))


class _Shards:
    """What InfluxDB's `SHOW STATS FOR 'shard'` answers, for `check_index`."""

    database = "sensorpipe"

    def __init__(self, *paths: Path | str) -> None:
        tags = [
            {"database": "sensorpipe", "id": str(i), "path": str(p)} for i, p in enumerate(paths, 1)
        ]
        tags.append({"database": "other", "id": "9", "path": "/nowhere"})
        self.rows: list[dict[str, object]] = [{"name": "shard", "tags": t} for t in tags]

    def query(self, q: str, *, database: str | None = None) -> list[dict[str, object]]:
        assert q == "SHOW STATS FOR 'shard'"
        return self.rows


def test_removal_needs_every_shard_on_the_tsi1_index(tmp_path: Path) -> None:
    from typing import Any, cast

    from sensorpipe.importer.removal import check_index

    tsi1, inmem = tmp_path / "1", tmp_path / "2"
    (tsi1 / "index").mkdir(parents=True)
    inmem.mkdir()
    check_index(cast(Any, _Shards(tsi1)))  # its `index` folder: tsi1
    with pytest.raises(RemovalProblem, match=r"shard 2 of sensorpipe uses the in-memory index"):
        check_index(cast(Any, _Shards(tsi1, inmem)))
    elsewhere = cast(Any, _Shards(tsi1, "/var/lib/influxdb/data/sensorpipe/autogen/7"))
    with pytest.raises(RemovalProblem, match=r"InfluxDB runs elsewhere.*--influx-index-tsi1"):
        check_index(elsewhere)
    check_index(elsewhere, tsi1_confirmed=True)  # the operator's word
