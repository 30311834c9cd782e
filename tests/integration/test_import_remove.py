"""`sensorpipe import remove` on the real stack: an import made with the wrong time zone is
undone (points, `imports` records, dead letters, ledger) and done again right; another file's
points stay; files that share a device's times are refused alone and removed together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack_influx

DATA = Path(__file__).parent.parent / "data" / "colocation"
SENSOR = DATA / "toco_toucan_RT01_2019-08-18_20.csv"
REFERENCE = DATA / "airnowtech_2019-08-18_20.csv"
STATION = "ref-370630099"
COLUMNS = [
    "--time", "Time", "--time-format", "%m/%d/%Y %H:%M",
    "--column", "PM2.5 (µg/m³)=pm2_5", "--column", "RH (%)=relative_humidity",
]  # fmt: skip


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, InfluxClient]]:
    up = {"serve": False, "kits": False}
    with running_stack_influx(tmp_path_factory, "importremove", **up) as found:
        yield found


def points(influx: InfluxClient, device: str) -> tuple[int, int | None]:
    """How many PM2.5 readings the device holds, and the time of its first (ms)."""
    rows = influx.query(f"SELECT pm2_5 FROM air WHERE device_id = '{device}'")
    values = rows[0]["values"] if rows else []
    return len(values), (values[0][0] if values else None)


def imports_records(influx: InfluxClient, device: str) -> int:
    rows = influx.query(f"SELECT * FROM imports WHERE device_id = '{device}'")
    return len(rows[0]["values"]) if rows else 0


def listed(stack: LocalStack) -> list[dict[str, Any]]:
    return list(json.loads(ok("import", "list", "--dir", str(stack.directory), "--json").stdout))


def test_a_wrong_import_is_removed_and_done_again(
    world: tuple[LocalStack, InfluxClient], tmp_path: Path
) -> None:
    stack, influx = world
    d = ["--dir", str(stack.directory), "--user", "analyst"]
    ok("import", "reference", "airnowtech", str(REFERENCE), *d)
    station_before = points(influx, STATION)
    # A row the checks refuse: a dead letter of this file.
    bad = tmp_path / "rt01.csv"
    bad.write_bytes(SENSOR.read_bytes() + b"8/21/2019 0:00,1,1,not-a-number,23,50,1,Sample\n")
    wrong = ["--device", "rt01", "--register", "--site", "burdens-creek", *COLUMNS]
    ok("import", "csv", str(bad), *wrong, "--timezone", "UTC+05:00", *d)  # should be -05:00
    n, first_wrong = points(influx, "rt01")
    assert n == 4320 and imports_records(influx, "rt01") == 1
    store = DeadLetterStore(stack.deadletter_path)
    assert len(store.list(device="rt01")) == 1
    entry = next(e for e in listed(stack) if e["file"] == "rt01.csv")
    assert [(s["measurement"], s["device_id"]) for s in entry["spans"]] == [("air", "rt01")]
    assert entry["spans"][0]["from"] == "2019-08-17T19:00Z"  # 00:00 read as UTC+05:00

    # Not a terminal and no --yes: nothing is deleted.
    refused = run("import", "remove", str(bad), "--dir", str(stack.directory))
    assert refused.exit_code == 1 and "add --yes" in refused.output
    assert points(influx, "rt01")[0] == n

    removed = ok("import", "remove", entry["sha256"][:10], "--yes", "--dir", str(stack.directory))
    assert "removed rt01.csv" in removed.output and "1 dead letters" in removed.output
    assert points(influx, "rt01") == (0, None)
    assert imports_records(influx, "rt01") == 0
    assert store.list(device="rt01") == []
    assert points(influx, STATION) == station_before  # another file's points stay
    files = [e["file"] for e in listed(stack)]
    assert REFERENCE.name in files and "rt01.csv" not in files

    # Imported again, right: read as new (not "already imported"), at the right hours.
    again = ok("import", "csv", str(bad), *wrong, "--timezone", "UTC-05:00", *d)
    assert "already imported" not in again.output
    n_right, first_right = points(influx, "rt01")
    assert n_right == n and first_wrong is not None and first_right is not None
    assert first_right - first_wrong == 10 * 3_600_000


def test_files_sharing_a_devices_times_are_removed_together(
    world: tuple[LocalStack, InfluxClient], tmp_path: Path
) -> None:
    stack, influx = world
    d = ["--dir", str(stack.directory), "--user", "analyst"]
    one, two = tmp_path / "day-a.csv", tmp_path / "day-b.csv"
    text = SENSOR.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header, rows = text[:7], text[7:]
    one.write_text("".join(header + rows[:1500]), encoding="utf-8")
    two.write_text("".join(header + rows[1000:2500]), encoding="utf-8")  # overlaps `one`
    args = ["--device", "rt02", "--register", "--site", "burdens-creek", *COLUMNS]
    ok("import", "csv", str(one), str(two), *args, "--timezone", "UTC-05:00", *d)
    assert points(influx, "rt02")[0] == 2500

    alone = run("import", "remove", str(one), "--yes", "--dir", str(stack.directory))
    assert alone.exit_code == 1, alone.output
    assert "day-b.csv" in alone.output and "nothing removed" in alone.output
    assert "Traceback" not in alone.output
    assert points(influx, "rt02")[0] == 2500

    ok("import", "remove", str(one), str(two), "--yes", "--dir", str(stack.directory))
    assert points(influx, "rt02")[0] == 0
    assert {e["file"] for e in listed(stack)}.isdisjoint({"day-a.csv", "day-b.csv"})


def test_a_file_never_imported_is_one_line(world: tuple[LocalStack, InfluxClient]) -> None:
    from sensorpipe.importer.ledger import Ledger

    stack, _ = world
    Ledger(stack.directory / "imports" / "ledger.sqlite").close()  # whatever ran before
    result = run(
        "import", "remove", str(DATA / "README.md"), "--yes", "--dir", str(stack.directory)
    )
    assert result.exit_code == 1
    assert "never imported" in result.output and "Traceback" not in result.output


def series_counts(influx: InfluxClient) -> dict[str, int]:
    rows = influx.query("SELECT count(pm2_5) FROM air GROUP BY *")
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items())): r["values"][0][1] for r in rows
    }


def test_removing_again_and_again_leaves_every_other_series(
    world: tuple[LocalStack, InfluxClient], tmp_path: Path
) -> None:
    """A new user's sequence: remove a logger's import, import it again (--force with another
    time zone is refused), remove it, import it again, then remove the station's file. With
    InfluxDB's in-memory index the last DELETE took every device's points in its time range;
    each removal must take its own file's series only."""
    stack, influx = world
    d = ["--dir", str(stack.directory), "--user", "analyst"]
    at = ["--dir", str(stack.directory)]
    station = tmp_path / "station.csv"
    station.write_bytes(REFERENCE.read_bytes() + b"\n")  # another file of the same station
    logger = tmp_path / "rt09.csv"
    logger.write_bytes(SENSOR.read_bytes())
    args = ["--device", "rt09", "--register", "--site", "burdens-creek", *COLUMNS]
    for f in [x["sha256"] for x in listed(stack) if x["file"] == REFERENCE.name]:
        ok("import", "remove", f, "--yes", *at)  # the first test's station file
    ok("import", "reference", "airnowtech", str(station), *d)
    ok("import", "csv", str(logger), *args, "--timezone", "UTC-05:00", *d)
    ok("import", "remove", str(logger), "--yes", *at)
    ok("import", "csv", str(logger), *args, "--timezone", "UTC-05:00", *d)
    # Again with another time zone: refused (it would leave two shifted copies), nothing written.
    before_force = points(influx, "rt09")
    forced = run("import", "csv", str(logger), *args, "--timezone", "UTC+05:00", "--force", *d)
    assert forced.exit_code == 1, forced.output
    assert "--timezone UTC-05:00 then, UTC+05:00 now" in forced.output
    assert "sensorpipe import remove" in forced.output and "Traceback" not in forced.output
    assert points(influx, "rt09") == before_force
    ok("import", "csv", str(logger), *args, "--timezone", "UTC-05:00", "--force", *d)  # the same
    ok("import", "remove", str(logger), "--yes", *at)
    ok("import", "csv", str(logger), *args, "--timezone", "UTC-05:00", *d)
    before = series_counts(influx)
    assert any("device_id=rt09" in k for k in before) and any(STATION in k for k in before)
    ok("import", "remove", str(station), "--yes", *at)
    after = series_counts(influx)
    assert after == {k: v for k, v in before.items() if STATION not in k}


def test_an_influxdb_with_the_in_memory_index_is_refused(
    world: tuple[LocalStack, InfluxClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """InfluxDB 1.x with `index-version = "inmem"` (the default of Debian's package) deletes
    other series' points at a DELETE after a series was removed whole: `import remove` says so
    and removes nothing."""
    import sensorpipe.ingest.influxd as influxd
    from sensorpipe.process import free_ports

    stack, _ = world
    tsi1 = influxd.influxd_config

    def inmem(directory: Path, *, http_port: int, rpc_port: int) -> str:
        text = tsi1(directory, http_port=http_port, rpc_port=rpc_port)
        assert 'index-version = "tsi1"' in text
        return text.replace('index-version = "tsi1"', 'index-version = "inmem"')

    monkeypatch.setattr(influxd, "influxd_config", inmem)
    http, rpc = free_ports(2)
    other = influxd.Influxd(
        tmp_path / "influxd", http_port=http, rpc_port=rpc, database="sensorpipe"
    )
    other.start()
    try:
        client = other.client()
        client.write(["air,device_id=rt01,source=import:csv pm2_5=1 1566100800000"])
        client.close()
        mine = tmp_path / "station-3.csv"
        mine.write_bytes(REFERENCE.read_bytes() + b"\n\n\n")
        ok("import", "reference", "airnowtech", str(mine), "--dir", str(stack.directory))
        (entry,) = [e for e in listed(stack) if e["file"] == mine.name]
        refused = run(
            "import", "remove", entry["sha256"], "--yes", "--influx-url", other.url,
            "--dir", str(stack.directory),
        )  # fmt: skip
        assert refused.exit_code == 1, refused.output
        assert "in-memory index (inmem)" in refused.output and "nothing removed" in refused.output
        assert 'index-version = "tsi1"' in refused.output and "Traceback" not in refused.output
        assert entry["sha256"] in {e["sha256"] for e in listed(stack)}  # not forgotten
    finally:
        other.stop()
