"""`sensorpipe import` of hostile files into a real influxd, run as the command a user runs (a
child process that reports its own peak RSS from /proc/self/status as it exits): a gzip bomb, a
100 MB line, a JSON item of 100 MB, an unclosed quote, JSON nested a million levels deep; and
imports refused where another source of the device has data at the file's times (a live edge
reading, a live camera count).

Memory: the import may use MAX_RSS_MB (the command alone takes about 50 MB; batches of 20,000
points and a writer queue two deep add some 20 MB). Before the bounds, the 100 MB line cost
388 MB and the bomb ended in MemoryError at 2.85 GB.
"""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import ClassCount, CountMessage, Link
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack, wait_for
from tests.integration.mqtt_helpers import TestDevice, air_message

MAX_RSS_MB = 120
# `python -m sensorpipe` that writes its peak RSS (VmHWM, kB) to argv[1] as it exits. VmHWM, not
# wait4's ru_maxrss: Linux carries a process's maximum RSS over exec, so a child forked from
# the test runner would report the runner's size.
AS_MODULE = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        f.write(kb)
atexit.register(peak)
sys.argv[0] = "sensorpipe"
runpy.run_module("sensorpipe", run_name="__main__", alter_sys=True)
"""
SC_HEADER = "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
DAY = datetime(2024, 4, 1, tzinfo=UTC)


# Live data must lie within the ingest's backlog window: the refusal tests use recent hours.
RECENT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sc_row(i: int, sensor: int = 777, base: datetime = DAY) -> str:
    t = base + timedelta(seconds=i)
    return f"{sensor};SDS011;1;52.0;5.0;{t:%Y-%m-%dT%H:%M:%S};{10 + i % 7}.5;;;{5 + i % 3}.25;;\n"


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    rss_mb: float

    def error_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in self.stderr, self.stderr[-3000:]
        return lines[0]


@dataclass
class World:
    stack: LocalStack
    influx: InfluxClient

    def sensorpipe(self, *args: str) -> Ran:
        """`python -m sensorpipe ARGS --dir STACK` as a child process, and its peak RSS."""
        work = self.stack.directory.parent
        hwm = work / "hwm"
        hwm.unlink(missing_ok=True)
        with open(work / "out", "w+") as out, open(work / "err", "w+") as err:
            child = subprocess.run(
                [sys.executable, "-c", AS_MODULE, str(hwm), "import", *args,
                 "--dir", str(self.stack.directory)],
                stdout=out,
                stderr=err,
                # a safety net for the code before the bounds: it fails here, not the machine
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
                check=False,
            )  # fmt: skip
            out.seek(0)
            err.seek(0)
            return Ran(child.returncode, out.read(), err.read(), int(hwm.read_text()) / 1024)

    def count(self, q: str) -> int:
        series = self.influx.query(q)
        return int(series[0]["values"][0][1]) if series else 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_stack(tmp_path_factory, "import-bounds", serve=False, kits=False) as (stack, info):
        influx = InfluxClient(info.influx_url, info.database)
        try:
            yield World(stack, influx)
        finally:
            influx.close()


def repeated_gzip(path: Path, head: bytes, block: bytes, times: int, tail: bytes = b"") -> None:
    """A gzip file of `head`, `block` `times` times and `tail`, written fast: gzip members
    may follow one another, so one compressed block is written `times` times."""
    packed = gzip.compress(block)
    with path.open("wb") as f:
        f.write(gzip.compress(head))
        for _ in range(times):
            f.write(packed)
        if tail:
            f.write(gzip.compress(tail))


# --- 9. -----------------------------------------------------------------------------------------
def test_a_gzip_bomb_stops_at_the_decompressed_limit_in_bounded_memory(
    world: World, tmp_path: Path
) -> None:
    bomb = tmp_path / "2024-04-01_sds011_sensor_901.csv.gz"
    # 4 GiB without a newline after one good row, in some 4 MB
    repeated_gzip(bomb, (SC_HEADER + sc_row(0, 901)).encode(), b"9" * (16 << 20), 256)
    assert bomb.stat().st_size < 5 << 20
    ran = world.sensorpipe("sensor-community", str(bomb))  # the default limit
    assert ran.code == 1
    line = ran.error_line()
    assert str(bomb) in line and "more than 1024 MiB when decompressed" in line
    assert "--max-decompressed-mib" in line
    assert ran.rss_mb < MAX_RSS_MB, ran.rss_mb
    assert world.count("SELECT count(pm10) FROM air WHERE device_id = 'sc-901'") == 1


def test_a_100_mb_line_is_one_bad_row_in_bounded_memory(world: World, tmp_path: Path) -> None:
    path = tmp_path / "2024-04-01_sds011_sensor_902.csv.gz"
    long_start = sc_row(1, 902).rstrip("\n").encode()
    repeated_gzip(
        path,
        (SC_HEADER + sc_row(0, 902)).encode() + long_start,
        b"9" * (1 << 20),
        100,  # the line goes on for 100 MiB
        ("\n" + sc_row(2, 902) + sc_row(3, 902)).encode(),
    )
    ran = world.sensorpipe("sensor-community", str(path), "--json")
    assert ran.code == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert (summary["stored"], summary["rejected_by_reason"]) == (3, {"bad_row": 1})
    assert ran.rss_mb < MAX_RSS_MB, ran.rss_mb


def test_json_is_read_as_a_stream_and_a_100_mb_item_is_one_bad_row(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "5f0a1b2c3d4e5f6a7b8c9d01.json"
    item = '{"createdAt": "2024-04-01T00:00:0%dZ", "value": "1%d.5"}'
    with path.open("w") as f:
        f.write("[" + item % (0, 0) + ', {"createdAt": "2024-04-01T00:00:01Z", "value": "')
        for _ in range(100):
            f.write("1" * (1 << 20))
        f.write('"}, ' + item % (2, 2) + "]")
    ran = world.sensorpipe("opensensemap", str(path), "--quantity", "pm2_5", "--json")
    assert ran.code == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert (summary["stored"], summary["rejected_by_reason"]) == (2, {"bad_row": 1})
    assert ran.rss_mb < MAX_RSS_MB, ran.rss_mb


# --- 10. ----------------------------------------------------------------------------------------
def test_an_unclosed_quote_in_20000_lines_costs_one_row(world: World, tmp_path: Path) -> None:
    path = tmp_path / "2024-04-01_sds011_sensor_903.csv"
    lines = [sc_row(i, 903) for i in range(20_000)]
    lines[10] = lines[10].replace(";SDS011;", ';"SDS011;')
    path.write_text(SC_HEADER + "".join(lines))
    ran = world.sensorpipe("sensor-community", str(path), "--json")
    assert ran.code == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert (summary["stored"], summary["rejected_by_reason"]) == (19_999, {"bad_row": 1})
    assert world.count("SELECT count(pm10) FROM air WHERE device_id = 'sc-903'") == 19_999
    assert ran.rss_mb < MAX_RSS_MB, ran.rss_mb


# --- 11. ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["opensensemap", "telraam"])
def test_json_nested_a_million_deep_is_one_line(world: World, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "5f0a1b2c3d4e5f6a7b8c9d02.json"
    path.write_text("[" * 1_000_000 + "]" * 1_000_000)
    option = ["--quantity", "pm2_5"] if fmt == "opensensemap" else ["--segment", "5"]
    ran = world.sensorpipe(fmt, str(path), *option)
    assert ran.code == 1
    line = ran.error_line()
    assert str(path) in line and "nested deeper than 32 levels" in line
    assert ran.rss_mb < MAX_RSS_MB, ran.rss_mb


# --- 12. ----------------------------------------------------------------------------------------
def test_an_archive_is_refused_where_a_live_device_has_readings_at_its_times(
    world: World, tmp_path: Path
) -> None:
    stack = world.stack
    creds = stack.add_device("balcony-09", site="oost", sensors=["sds011"])
    device = TestDevice(creds, stack.require_info().broker_port)
    try:
        device.send(air_message("balcony-09", 1, observed_at=RECENT + timedelta(seconds=90)))
    finally:
        device.close()
    live = "SELECT count(pm2_5) FROM air WHERE device_id = 'balcony-09' AND source = 'edge'"
    wait_for(lambda: world.count(live) == 1, what="the live reading in InfluxDB")
    archive = tmp_path / "recent_sds011_sensor_904.csv"
    archive.write_text(SC_HEADER + "".join(sc_row(i, 904, RECENT) for i in range(0, 600, 30)))

    ran = world.sensorpipe("sensor-community", str(archive), "--device", "balcony-09")
    assert ran.code == 1
    line = ran.error_line()
    for needle in (
        str(archive), "refused", "device balcony-09", "air readings", "source edge",
        iso(RECENT + timedelta(seconds=90)),
        f"{iso(RECENT)} to {iso(RECENT + timedelta(seconds=570))}",
        "Import it under another device id", "leave --device out",
    ):  # fmt: skip
        assert needle in line, line
    imported = (
        "SELECT count(pm10) FROM air WHERE device_id = 'balcony-09' "
        "AND source = 'import:sensor-community'"
    )
    assert world.count(imported) == 0  # nothing of the file was written

    # Under its own device (source import) the same file is imported, and again with --force.
    assert world.sensorpipe("sensor-community", str(archive)).code == 0
    again = world.sensorpipe("sensor-community", str(archive), "--force")
    assert again.code == 0, again.stderr
    assert world.count("SELECT count(pm10) FROM air WHERE device_id = 'sc-904'") == 20

    # Into the live device at times where it has no reading: imported, and again with --force.
    later = tmp_path / "day-before_sds011_sensor_904.csv"
    rows = "".join(sc_row(i, 904, RECENT) for i in range(-86_400, -85_800, 60))
    later.write_text(SC_HEADER + rows)
    first = world.sensorpipe("sensor-community", str(later), "--device", "balcony-09")
    assert first.code == 0, first.stderr
    forced = world.sensorpipe("sensor-community", str(later), "--device", "balcony-09", "--force")
    assert forced.code == 0, forced.stderr
    assert world.count(imported) == 10
    assert world.count(live) == 1  # the live reading as it was


def test_telraam_counts_are_refused_in_an_hour_a_live_camera_counted(
    world: World, tmp_path: Path
) -> None:
    stack = world.stack
    creds = stack.add_device(
        "cam-09", site="oost", sensors=["camera"], directions=["lft", "rgt"],
        count_classes=["pedestrian", "cyclist", "car", "heavy_vehicle"],
    )  # fmt: skip
    start = RECENT + timedelta(minutes=15)  # inside the file's hour
    message = CountMessage(
        device_id="cam-09", seq=1, observed_at=start, clock_synced=True,
        sent_at=datetime.now(UTC), interval_end=start + timedelta(minutes=15),
        link=Link(rssi_dbm=-61, reconnects=0, outbox_depth=0, uptime_s=10.0, firmware="t/1"),
        model_id="street", running_fraction=1.0, frames=100,
        counts=[
            ClassCount(count_class=c, direction=d, count=155 if (c, d) == ("car", "lft") else 0)
            for c in ("pedestrian", "cyclist", "car", "heavy_vehicle") for d in ("lft", "rgt")
        ],
    )  # fmt: skip
    device = TestDevice(creds, stack.require_info().broker_port)
    try:
        device.send(message)
    finally:
        device.close()
    total = "SELECT sum(count) FROM traffic WHERE device_id = 'cam-09' AND class = 'car'"
    wait_for(lambda: world.count(total) == 155, what="the live count in InfluxDB")
    header = (
        "segment_id,date,interval,uptime,heavy_lft,heavy_rgt,car_lft,car_rgt,bike_lft,"
        "bike_rgt,pedestrian_lft,pedestrian_rgt\n"
    )
    export = tmp_path / "telraam-recent.csv"
    export.write_text(header + f"7,{RECENT:%Y-%m-%d %H:%M:%S},hourly,1.0,1,1,100,90,5,5,2,2\n")
    ran = world.sensorpipe("telraam", str(export), "--device", "cam-09")
    assert ran.code == 1
    line = ran.error_line()
    for needle in ("device cam-09", "counts", "source edge", iso(start),
                   f"{iso(RECENT)} to {iso(RECENT + timedelta(seconds=3599))}"):  # fmt: skip
        assert needle in line, line
    assert world.count(total) == 155  # not 155 + 190
    # docs/import.md's way now: the segment's own device.
    assert world.sensorpipe("telraam", str(export)).code == 0
    assert world.count("SELECT sum(count) FROM traffic WHERE device_id = 'telraam-7'") == 206


def test_a_different_import_source_is_another_source_too(world: World, tmp_path: Path) -> None:
    """An openSenseMap download of the sensor an archive was imported for, into its device."""
    archive = tmp_path / "recent_sds011_sensor_905.csv"
    archive.write_text(SC_HEADER + "".join(sc_row(i, 905, RECENT) for i in range(0, 600, 30)))
    assert world.sensorpipe("sensor-community", str(archive)).code == 0
    path = tmp_path / "5f0a1b2c3d4e5f6a7b8c9d03.csv"
    path.write_text(f"createdAt,value\n{iso(RECENT + timedelta(seconds=120))},12.5\n")
    ran = world.sensorpipe("opensensemap", str(path), "--quantity", "pm2_5", "--device", "sc-905")
    assert ran.code == 1
    assert "source import:sensor-community" in ran.error_line()
