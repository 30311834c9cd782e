"""Group calibrations kept up to date by the real stack: the ingest's periodic job (`[calibration]`
of ingest.toml, set by `stack up`) adds the hours of new data sent through the broker without
anyone running a command; `calibrate update --all` updates every group calibration (one whose
reference has no new data; one that fails, named, exit 1); a broken book is logged and counted
and the ingest keeps storing messages."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.calibration.store import CalibrationBook
from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.registry import DeviceEntry, load_registry, save_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.conftest import _require_binaries
from tests.integration.mqtt_helpers import TestDevice, air_message, registered_device

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
H0 = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
H0_MS = int(H0.timestamp() * 1000)
LEVEL = {"cp-g1": 8.0, "cp-g2": 10.0, "cp-g3": 12.0}  # each member's PM2.5, minute 0
REFERENCE = {0: 20.0, 1: 22.0, 2: 15.0, 3: 30.0}  # cp-st's hourly PM2.5; cp-st2 has 0 and 1


def _pm(device: str, hour: int, minute: int) -> float:
    return LEVEL[device] * (1 + 0.1 * hour) + minute * 0.01


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def sensorpipe(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with members cp-g1..3 (hours 0 and 1 stored, every 6 minutes), stations cp-st
    (hours 0-3) and cp-st2 (hours 0-1), and two group calibrations of hours 0-1: cal-1 against
    cp-st, cal-2 against cp-st2. The ingest updates every 5 s."""
    _require_binaries()
    s = LocalStack(tmp_path_factory.mktemp("calperiodic") / "stack")
    toml = s.directory / "ingest" / "ingest.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text(
        "[calibration]\nupdate_every_s = 5\n[quality.neighbours]\nenabled = false\n",
        encoding="utf-8",
    )
    s.up(detach=False, serve=False)
    devices: list[TestDevice] = []
    try:
        devices = [registered_device(s, d, site="cp") for d in LEVEL]
        registry = load_registry(s.registry_path)
        for station in ("cp-st", "cp-st2"):
            registry.devices[station] = DeviceEntry(site="cp", source="reference")
        save_registry(registry, s.registry_path)
        lines = []
        for d in LEVEL:
            tags = {"device_id": d, "site": "cp", "sensor": "sds011", "source": "edge"}
            for hour in (0, 1):
                for minute in range(0, 60, 6):
                    t = H0_MS + hour * HOUR_MS + minute * 60_000
                    lines.append(to_line(Point("air", tags, {"pm2_5": _pm(d, hour, minute)}, t)))
        for station, hours in (("cp-st", (0, 1, 2, 3)), ("cp-st2", (0, 1))):
            tags = {"device_id": station, "site": "cp", "sensor": "reference", "source": "import"}
            for hour in hours:
                point = Point("air", tags, {"pm2_5": REFERENCE[hour]}, H0_MS + hour * HOUR_MS)
                lines.append(to_line(point))
        info = s.require_info()
        influx = InfluxClient(info.influx_url, info.database)
        try:
            influx.write(lines)
        finally:
            influx.close()
        for station in ("cp-st", "cp-st2"):
            result = sensorpipe(
                "calibrate", "group", "--reference", station, "--min-members", "2",
                "--device", "cp-g1", "--device", "cp-g2", "--device", "cp-g3",
                "--from", _iso(H0_MS), "--to", _iso(H0_MS + 2 * HOUR_MS),
                "--dir", str(s.directory),
            )  # fmt: skip
            assert result.exit_code == 0, result.output
        s.devices = devices  # type: ignore[attr-defined]
        yield s
    finally:
        for device in devices:
            device.close()
        s.down()


def factors(stack: LocalStack, calibration_id: str) -> dict[int, Any]:
    """Hour (0, 1, ...) -> the stored factor (None: stored without one) and its reason."""
    book = CalibrationBook(stack.calibration_path)
    try:
        return {
            (f.hour_ms - H0_MS) // HOUR_MS: (f.factor, f.reason)
            for f in book.factors(calibration_id)
        }
    finally:
        book.close()


def stats(stack: LocalStack) -> dict[str, Any]:
    return dict(json.loads((stack.directory / "ingest" / "stats.json").read_text()))


def expected_factor(hour: int) -> float:
    means = [statistics.fmean(_pm(d, hour, m) for m in range(0, 60, 6)) for d in LEVEL]
    return REFERENCE[hour] / statistics.fmean(means)


def test_the_ingest_adds_the_hours_of_new_data_by_itself(stack: LocalStack) -> None:
    assert set(factors(stack, "cal-1")) == {0, 1}
    seq = 0
    for device in stack.devices:  # type: ignore[attr-defined]
        d = device.creds.device_id
        for hour in (2, 3):
            for minute in range(0, 60, 6):
                seq += 1
                observed = H0 + timedelta(hours=hour, minutes=minute)
                assert not device.send(air_message(d, seq, pm2_5=_pm(d, hour, minute),
                                                   observed_at=observed)).is_failure  # fmt: skip

    def updated() -> bool:
        got = factors(stack, "cal-1")
        return all(got.get(h, (None,))[0] is not None for h in (2, 3))

    wait_for(updated, timeout_s=90, what="the ingest's update of cal-1 to hours 2 and 3")
    got = factors(stack, "cal-1")
    for hour in (0, 1, 2, 3):
        assert got[hour][0] == pytest.approx(expected_factor(hour))
    # cal-2's station sent nothing since: the new hours are stored without a factor, saying so.
    wait_for(lambda: {2, 3} <= set(factors(stack, "cal-2")), what="cal-2's hours 2 and 3")
    got2 = factors(stack, "cal-2")
    assert got2[2] == (None, "no reference value for the hour") == got2[3]
    assert got2[1][0] == pytest.approx(expected_factor(1))  # its stations agree on 0-1
    s = wait_for(
        lambda: (x := stats(stack))["calibration_hours_written"] >= 4 and x,
        what="the updates counted in the ingest's stats",
    )
    assert s["calibration_update_runs"] >= 1
    assert s["periodic_errors"] == {}  # the runs before the book existed were no error


def test_update_all_updates_each_and_names_the_one_that_failed(stack: LocalStack) -> None:
    """cal-3 is a group whose member cp-g4 has since reported from another sensor model: its
    update fails, the others are updated, the exit status is 1 and cal-3 is named."""
    directory = ["--dir", str(stack.directory)]
    ok = sensorpipe("calibrate", "update", "--all", *directory)
    assert ok.exit_code == 0, ok.output
    assert [line.split(":")[0] for line in ok.stdout.splitlines()] == ["cal-1", "cal-2"]
    # (What the hours hold depends on the module's other tests, run in any order.)
    assert all(
        re.match(r"cal-[12]: \d+ hours written; stored ", line) for line in ok.stdout.splitlines()
    )
    registry = load_registry(stack.registry_path)
    registry.devices["cp-g4"] = DeviceEntry(site="cp", source="import", sensors=["sds011"])
    save_registry(registry, stack.registry_path)
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        tags = {"device_id": "cp-g4", "site": "cp", "sensor": "sds011", "source": "import"}
        lines = [
            to_line(Point("air", tags, {"pm2_5": 11.0}, H0_MS + m * 360_000)) for m in range(20)
        ]
        influx.write(lines)
        result = sensorpipe(
            "calibrate", "group", "--reference", "cp-st", "--min-members", "1",
            "--device", "cp-g1", "--device", "cp-g4", "--from", _iso(H0_MS),
            "--to", _iso(H0_MS + 2 * HOUR_MS), *directory,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        tags["sensor"] = "pms5003"  # its sensor swapped since
        influx.write([to_line(Point("air", tags, {"pm2_5": 9.0}, H0_MS + 4 * HOUR_MS))])
    finally:
        influx.close()
    failed = sensorpipe("calibrate", "update", "--all", "--json", *directory)
    assert failed.exit_code == 1
    outcomes = {u["calibration_id"]: u for u in json.loads(failed.stdout)}
    assert [c for c, u in outcomes.items() if u["ok"]] == ["cal-1", "cal-2"]
    assert "2 sensor models" in outcomes["cal-3"]["error"]
    assert "1 of 3 calibrations not updated: cal-3" in failed.stderr
    one = sensorpipe("calibrate", "update", "cal-2", *directory)
    assert one.exit_code == 0 and one.stdout.startswith("cal-2: ")


def test_a_broken_book_is_logged_and_counted_and_the_ingest_keeps_storing(
    stack: LocalStack,
) -> None:
    stack.calibration_path.write_bytes(b"not a database at all" * 100)
    wait_for(
        lambda: "not a database" in (stats(stack).get("periodic_last_error") or ""),
        timeout_s=60,
        what="the ingest's failed update counted",
    )
    assert stats(stack)["periodic_errors"]["calibration update"] >= 1
    log = (stack.directory / "ingest" / "ingest.log").read_text()
    assert "calibration update failed: file is not a database" in log
    device = stack.devices[0]  # type: ignore[attr-defined]
    before = stats(stack)["stored_messages"]
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    assert not device.send(air_message(device.creds.device_id, 10_000, observed_at=now)).is_failure
    wait_for(lambda: stats(stack)["stored_messages"] > before, what="the message stored")
    assert stack.ingest is not None and stack.ingest.running
    status = sensorpipe("stack", "status", "--dir", str(stack.directory))
    assert "PERIODIC RUNS FAILED: calibration update" in status.stdout, status.output
