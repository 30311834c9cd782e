"""The import runner against a fake InfluxDB: devices registered, dead letters with file and
line, `imports` records, a second import that stores nothing twice, refused points, outages."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from sensorpipe.importer.base import ImportOptions
from sensorpipe.importer.runner import FileResult, Importer, ImportProblem, prepare
from sensorpipe.importer.writer import BatchWriter, WriteFailed
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import DeviceEntry, Registry, load_registry, save_registry
from tests.helpers import dead_letters

DATA = Path(__file__).parent / "data" / "import"
CLEAN = "2024-03-01_sds011_sensor_12345.csv"
BAD = "2024-03-02_sds011_sensor_12348.csv"


class FakeInflux:
    """Records what is written; `refuse` lines are answered 400 (as a field type conflict is)."""

    def __init__(self, refuse: str = "", down: bool = False) -> None:
        self.writes: list[list[str]] = []
        self.refuse = refuse
        self.down = down

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": "overloaded"})
        if request.url.path == "/write":
            lines = request.content.decode().split("\n")
            if self.refuse and any(self.refuse in line for line in lines):
                return httpx.Response(400, json={"error": "partial write: field type conflict"})
            self.writes.append(lines)
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{}]})

    @property
    def lines(self) -> list[str]:
        return [line for batch in self.writes for line in batch]


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    (tmp_path / "files").mkdir()
    for name in (CLEAN, BAD):
        shutil.copy(DATA / name, tmp_path / "files" / name)
    return tmp_path


def run(
    stack: Path, fake: FakeInflux, names: list[str], *, force: bool = False, **options: Any
) -> list[FileResult]:
    opts = ImportOptions(user="alice", **options)
    client = InfluxClient(
        "http://influx", "sensorpipe", transport=httpx.MockTransport(fake.handler)
    )
    importer = Importer(
        "sensor-community",
        opts,
        influx=client,
        registry_path=stack / "registry.toml",
        deadletter_path=stack / "ingest" / "deadletter.sqlite",
        ledger_path=stack / "imports" / "ledger.sqlite",
        force=force,
        retry_backoff_s=0.0,
    )
    parsers = prepare("sensor-community", [stack / "files" / n for n in names], opts)
    return importer.run(parsers)


def test_devices_points_letters_and_records(stack: Path) -> None:
    fake = FakeInflux()
    clean, bad = run(stack, fake, [CLEAN, BAD], site="utrecht")
    assert (clean.rows, clean.stored, sum(clean.rejected.values())) == (4, 4, 0)
    assert (bad.rows, bad.stored, dict(bad.rejected)) == (
        8,
        2,
        {"bad_timestamp": 2, "bad_value": 2, "bad_row": 2},
    )
    assert clean.new_devices == ["sc-12345"] and bad.devices == ["sc-12348"]
    entry = load_registry(stack / "registry.toml").devices["sc-12345"]
    assert (entry.source, entry.site, entry.sensors) == ("import", "utrecht", ["sds011"])
    assert entry.location is not None and (entry.location.lat, entry.location.lon) == (52.09, 5.121)
    air = [line for line in fake.lines if line.startswith("air,")]
    assert len(air) == 6
    assert all(",source=import:sensor-community,vouch=import " in line for line in air)
    records = [line for line in fake.lines if line.startswith("imports,")]
    assert len(records) == 2
    assert records[1].startswith(
        "imports,device_id=sc-12348,source=import:sensor-community,vouch=import "
        'user="alice",file="2024-03-02_sds011_sensor_12348.csv",sha256="'
    )
    assert ",rows=8i,stored=2i,rejected=6i " in records[1]
    kept = dead_letters(stack)
    assert len(kept) == 6
    by_line = {d.topic: d for d in kept}
    letter = by_line["import:sensor-community:2024-03-02_sds011_sensor_12348.csv:4"]
    assert letter.code == "bad_value"
    assert letter.payload == b"12348;SDS011;7000;52.100;5.130;2024-03-02T00:05:00;2500.00;;;8.00;;"
    assert letter.detail.startswith("2024-03-02_sds011_sensor_12348.csv line 4: P1: pm10 = 2500.0")


def test_a_second_import_stores_nothing_twice_and_force_adds_no_letter(stack: Path) -> None:
    fake = FakeInflux()
    run(stack, fake, [CLEAN, BAD])
    written, kept = list(fake.lines), len(dead_letters(stack))
    again = run(stack, fake, [CLEAN, BAD])
    assert all(r.skipped is not None for r in again)
    assert again[1].skipped is not None and again[1].skipped.user == "alice"
    assert fake.lines == written and len(dead_letters(stack)) == kept
    forced = run(stack, fake, [BAD], force=True)
    assert forced[0].stored == 2 and forced[0].error is None
    second = fake.lines[len(written) :]
    # the same points again (they overwrite themselves), the same record time, no new letter
    assert sorted(second) == sorted(line for line in written if "sc-12348" in line)
    assert len(dead_letters(stack)) == kept


def test_points_influxdb_refuses_are_found_and_kept_as_letters(stack: Path) -> None:
    fake = FakeInflux(refuse="pm10=26.4")
    (result,) = run(stack, fake, [CLEAN])
    assert result.error is None
    assert (result.stored, dict(result.rejected)) == (3, {"storage_rejected": 1})
    assert len([line for line in fake.lines if line.startswith("air,")]) == 3
    (letter,) = dead_letters(stack)
    assert letter.code == "storage_rejected"
    assert letter.topic == f"import:sensor-community:{CLEAN}:3"
    assert "field type conflict" in letter.detail
    assert ",rows=4i,stored=3i,rejected=1i " in fake.lines[-1]


def test_influxdb_down_ends_the_run_and_the_file_is_not_marked_done(stack: Path) -> None:
    fake = FakeInflux(down=True)
    (result,) = run(stack, fake, [CLEAN, BAD])
    assert result.fatal and result.error and "InfluxDB could not be" in result.error
    fake.down = False
    clean, bad = run(stack, fake, [CLEAN, BAD])
    assert clean.skipped is None and clean.stored == 4  # imported now, not skipped
    assert bad.error is None


def test_an_existing_device_gets_the_rows_and_keeps_its_declaration(stack: Path) -> None:
    registry = Registry()
    registry.devices["kit-1"] = DeviceEntry(
        site="north", source="import", sensors=["bme280"], purpose="a kit"
    )
    registry.devices["pi-1"] = DeviceEntry(
        site="south", public_key="k", password_hash="h", sensors=["bme280"]
    )
    save_registry(registry, stack / "registry.toml")
    fake = FakeInflux()
    (imported,) = run(stack, fake, [CLEAN], device="kit-1")
    assert imported.stored == 4 and imported.new_devices == []
    assert "device_id=kit-1,sensor=sds011,site=north" in fake.lines[0]
    kit = load_registry(stack / "registry.toml").devices["kit-1"]
    assert kit.sensors == ["bme280", "sds011"]  # an imported device's entry grows
    (edge,) = run(stack, fake, [BAD], device="pi-1")
    assert edge.stored == 0 and edge.rejected["undeclared_sensor"] == 2
    assert load_registry(stack / "registry.toml").devices["pi-1"].sensors == ["bme280"]
    with pytest.raises(ImportProblem, match="--device nobody: no such device"):
        run(stack, fake, [CLEAN], device="nobody")


def test_the_writer_splits_a_refused_batch_down_to_the_refused_lines() -> None:
    fake = FakeInflux(refuse="bad")
    client = InfluxClient("http://influx", "db", transport=httpx.MockTransport(fake.handler))
    writer = BatchWriter(client, backoff_s=0.0)
    lines = [f"m v={i}.0 {i}" for i in range(10)]
    lines[3], lines[8] = "m bad=1.0 3", "m bad=1.0 8"
    writer.submit(lines, list(range(10)))
    refused = writer.wait()
    writer.close()
    assert [(r.line_no, r.line) for r in refused] == [(3, "m bad=1.0 3"), (8, "m bad=1.0 8")]
    assert sorted(fake.lines) == sorted(line for line in lines if "bad" not in line)
    assert writer.points == 8


def test_a_database_that_refuses_everything_is_a_failure_not_ten_thousand_letters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "database not found: sensorpipe"})

    client = InfluxClient("http://influx", "db", transport=httpx.MockTransport(handler))
    writer = BatchWriter(client, backoff_s=0.0)
    writer.submit(["m v=1.0 1"], [1])
    with pytest.raises(WriteFailed, match="database not found"):
        writer.wait()
    with pytest.raises(WriteFailed):  # and every later batch is refused at once
        writer.submit(["m v=2.0 2"], [2])
    writer.close()


# Every row bad: a value no PM sensor gives, a time that is none.
NOTHING_GOOD = (
    "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
    "99999;SDS011;7001;52.1;5.1;2024-03-03T00:01:00;2500.00;;;8.00;;\n"
    "99999;SDS011;7001;52.1;5.1;yesterday;20.00;;;8.00;;\n"
)


def test_a_device_none_of_whose_rows_is_stored_is_not_registered(stack: Path) -> None:
    name = "2024-03-03_sds011_sensor_99999.csv"
    (stack / "files" / name).write_text(NOTHING_GOOD, encoding="utf-8")
    fake = FakeInflux()
    clean, bad = run(stack, fake, [CLEAN, name])
    assert (bad.stored, dict(bad.rejected)) == (0, {"bad_value": 1, "bad_timestamp": 1})
    assert bad.devices == ["sc-99999"] and bad.new_devices == []
    assert clean.new_devices == ["sc-12345"]
    assert sorted(load_registry(stack / "registry.toml").devices) == ["sc-12345"]
    assert sorted(d.code for d in dead_letters(stack)) == ["bad_timestamp", "bad_value"]
    assert not any("sc-99999" in line for line in fake.lines)  # its record names no device
    assert fake.lines[-1].startswith("imports,source=import:sensor-community,vouch=import ")
    assert ",rows=2i,stored=0i,rejected=2i " in fake.lines[-1]


def _counts(stack: Path, *texts: str) -> list[FileResult]:
    options = ImportOptions(
        user="analyst",
        time_column="time_utc",
        count_columns=(("count", "pedestrian", "both"),),
        device_column="site",
    )
    client = InfluxClient(
        "http://influx", "db", transport=httpx.MockTransport(FakeInflux().handler)
    )
    importer = Importer(
        "csv",
        options,
        influx=client,
        registry_path=stack / "registry.toml",
        deadletter_path=stack / "ingest" / "deadletter.sqlite",
        ledger_path=stack / "imports" / "ledger.sqlite",
        retry_backoff_s=0.0,
    )
    paths = []
    for i, text in enumerate(texts):
        paths.append(stack / "files" / f"counts{i}.csv")
        paths[-1].write_text(text, encoding="utf-8")
    return importer.run(prepare("csv", paths, options))


def test_a_site_of_counts_is_registered_with_its_first_stored_row(stack: Path) -> None:
    first, later = _counts(
        stack,
        "time_utc,site,count\n"
        "2024-03-01T08:00:00Z,Plein,many\n"  # Plein's first row is bad, its second good
        "2024-03-01T08:00:00Z,Markt,-3\n"  # every row of Markt in this file is bad
        "2024-03-01T09:00:00Z,Plein,12\n"
        "2024-03-01T09:00:00Z,Markt,x\n",
        "time_utc,site,count\n2024-03-01T10:00:00Z,Markt,4\n",
    )
    assert (first.stored, first.devices, first.new_devices) == (1, ["markt", "plein"], ["plein"])
    assert (later.stored, later.new_devices) == (1, ["markt"])
    registry = load_registry(stack / "registry.toml")
    assert sorted(registry.devices) == ["markt", "plein"]
    assert registry.devices["markt"].station_code == "Markt"


def test_a_files_summary_counts_one_row_as_a_row() -> None:
    from sensorpipe.cli.importing import _file_line

    one = FileResult(Path("one.csv"), "0" * 64, rows=1, stored=1, devices=["a"])
    assert _file_line(one, "csv") == "one.csv: 1 row, 1 stored, 0 rejected; devices a"
    two = FileResult(Path("two.csv"), "0" * 64, rows=2, stored=2)
    assert _file_line(two, "csv") == "two.csv: 2 rows, 2 stored, 0 rejected"


@pytest.mark.parametrize(
    ("repeats", "words"), [(1, "1 row repeats a device"), (2, "2 rows repeat a device")]
)
def test_the_note_on_repeated_rows_agrees_with_their_number(repeats: int, words: str) -> None:
    from sensorpipe.importer.counts_csv import CountRows

    rows = CountRows.__new__(CountRows)  # the note reads only the two counts
    rows.duplicates, rows.first_duplicate = repeats, 3
    assert rows.note() == (
        f"{words} and time read before (the first at line 3): stored once, as first read "
        "(reason duplicate)"
    )
