"""The neighbour outlier on the real stack: the ingest's timer (`[quality.neighbours]` in
ingest.toml) judges the stored hourly means of registered devices and merges `neighbour` into
the outlier hour's stored flags (other flags, raw values and `qc` kept); `sensorpipe quality
neighbours` run again changes nothing and says who had too few neighbours; `query air --flag
neighbour` reads the flag like any other."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import DeviceEntry, load_registry, save_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.conftest import _require_binaries

pytestmark = pytest.mark.integration

H0 = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
H0_MS = int(H0.timestamp() * 1000)
HOUR_MS = 3_600_000
# Six sensors about 100 m apart and a reference station among them; one sensor 10 km away.
NEAR = {"nb-odd": 0, "nb-a": 1, "nb-b": 2, "nb-c": 3, "nb-d": 4, "nb-e": 5}
LEVEL = {"nb-a": 9.0, "nb-b": 10.0, "nb-c": 11.0, "nb-d": 12.0, "nb-e": 13.0}


def _value(device: str, hour: int, minute: int) -> float:
    """PM2.5 of `device` in hour 0-2, minute 0-9: nb-odd 60 µg/m³ in hour 1 (its neighbours
    9-13), the station 900 in hour 1 (never flagged), nb-far 80 (too few neighbours)."""
    if device == "nb-odd":
        return 60.0 + minute * 0.1 if hour == 1 else 11.0 + minute * 0.1
    if device == "nb-st":
        return 900.0 if hour == 1 else 10.5
    if device == "nb-far":
        return 80.0
    return LEVEL[device] + minute * 0.1


def _points() -> list[str]:
    lines = []
    for device in [*NEAR, "nb-st", "nb-far"]:
        sensor = "reference" if device == "nb-st" else "sds011"
        tags = {"device_id": device, "site": "nb", "sensor": sensor, "source": "edge"}
        for hour in range(3):
            for minute in range(10):
                t = H0_MS + hour * HOUR_MS + minute * 60_000
                fields: dict[str, Any] = {"pm2_5": _value(device, hour, minute), "qc": 1}
                if sensor == "sds011":  # PM10 like its neighbours' (not an outlier), flagged
                    fields["pm10"] = 15.0 + minute * 0.1
                    fields["qc_pm10"] = "humidity"
                if device == "nb-odd" and hour == 1 and minute == 3:
                    fields["qc_pm2_5"] = "fog,humidity"
                lines.append(to_line(Point("air", tags, fields, t)))
    return lines


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _require_binaries()
    s = LocalStack(tmp_path_factory.mktemp("neighbours") / "stack")
    toml = s.directory / "ingest" / "ingest.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text(
        "[quality.neighbours]\nevery_s = 5\nhours = 8\nsettle_s = 0\n", encoding="utf-8"
    )
    s.up(detach=False, serve=False)
    try:
        s.add_devices(
            [
                (
                    d,
                    {
                        "site": "nb",
                        "sensors": ["sds011"],
                        "location": Location(lat=52 + i * 1e-3, lon=5.0),
                    },
                )
                for d, i in NEAR.items()
            ]
            + [
                (
                    "nb-far",
                    {"site": "nb", "sensors": ["sds011"], "location": Location(lat=52.1, lon=5.0)},
                )
            ]
        )
        registry = load_registry(s.registry_path)
        registry.devices["nb-st"] = DeviceEntry(
            site="nb", source="reference", location=Location(lat=52.0025, lon=5.0)
        )
        save_registry(registry, s.registry_path)
        info = s.require_info()
        influx = InfluxClient(info.influx_url, info.database)
        try:
            influx.write(_points())
        finally:
            influx.close()
        yield s
    finally:
        s.down()


def _stored(stack: LocalStack) -> dict[tuple[str, int], dict[str, Any]]:
    info = stack.require_info()
    influx = InfluxClient(info.influx_url, info.database)
    try:
        series = influx.query(
            f"SELECT * FROM air WHERE site = 'nb' AND time >= {H0_MS}ms GROUP BY device_id"
        )
    finally:
        influx.close()
    out = {}
    for s in series:
        for row in s["values"]:
            values = dict(zip(s["columns"], row, strict=True))
            out[(s["tags"]["device_id"], int(values.pop("time")))] = values
    return out


def _flagged(stack: LocalStack) -> list[tuple[str, int]]:
    """(device, time) of the stored readings flagged `neighbour`."""
    return [k for k, v in _stored(stack).items() if "neighbour" in (v.get("qc_pm2_5") or "")]


def _wait_for_the_ingests_run(stack: LocalStack) -> None:
    wait_for(lambda: len(_flagged(stack)) == 10, timeout_s=90, what="the ingest's neighbour run")


def test_the_stack_flags_the_outlier_hour_and_keeps_everything_else(stack: LocalStack) -> None:
    odd_hour = range(H0_MS + HOUR_MS, H0_MS + 2 * HOUR_MS)

    _wait_for_the_ingests_run(stack)
    stored = _stored(stack)
    assert sorted(_flagged(stack)) == sorted(
        ("nb-odd", H0_MS + HOUR_MS + m * 60_000) for m in range(10)
    )
    fog = stored[("nb-odd", H0_MS + HOUR_MS + 3 * 60_000)]
    assert fog["qc_pm2_5"] == "fog,humidity,neighbour"
    for (device, t), v in stored.items():
        hour, minute = divmod(t - H0_MS, HOUR_MS)
        assert v["pm2_5"] == _value(device, hour, minute // 60_000)  # raw untouched
        assert v["qc"] == 1  # the version it was stored with, kept
        if device != "nb-st":  # another quantity of the same points: its flags as they were
            assert v["qc_pm10"] == "humidity"
        if device != "nb-odd" or t not in odd_hour:
            assert v.get("qc_pm2_5") is None


def test_running_it_again_changes_nothing_and_says_who_was_not_judged(stack: LocalStack) -> None:
    _wait_for_the_ingests_run(stack)
    before = _stored(stack)
    period = ["--from", H0.isoformat(), "--to", (H0 + timedelta(hours=3)).isoformat()]
    args = ["quality", "neighbours", "--dir", str(stack.directory), *period]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["readings_flagged"] == 0
    assert summary["readings_already_flagged"] == 10
    assert [(o["device_id"], o["hour"][:13]) for o in summary["outliers"]] == [
        ("nb-odd", (H0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H"))
    ]
    assert summary["too_few_neighbours_devices"] == ["nb-far"]
    assert summary["reference_stations"] == ["nb-st"]
    assert summary["hours_checked"] == 3
    assert _stored(stack) == before
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    # nb-far: PM2.5 and PM10, 3 hours each
    assert "too few neighbours: 6 device-hours with fewer than 5 neighbours" in text.stdout
    assert "nb-far" in text.stdout and "0 readings flagged now (10 had" in text.stdout
    # the read side sees the flag like any other
    query = CliRunner().invoke(
        main,
        [
            "query", "air", "--dir", str(stack.directory), "--device", "nb-odd",
            "--quantity", "pm2_5", *period, "--every", "1h", "--flag", "neighbour",
            "--format", "json",
        ],
    )  # fmt: skip
    assert query.exit_code == 0, query.output
    rows = {r["time"][:13]: r for r in json.loads(query.stdout)}
    odd = rows[(H0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H")]
    assert odd["pm2_5_flagged"] == 10 and odd["pm2_5_flags"] == "neighbour"
    assert rows[H0.strftime("%Y-%m-%dT%H")]["pm2_5_flagged"] == 0


def test_every_reader_of_the_flags_sees_it(stack: LocalStack) -> None:
    """The register's flagged_7d, SensorThings' resultQuality and /api/v1/flags."""
    from fastapi.testclient import TestClient

    from sensorpipe.api.app import create_app
    from sensorpipe.api.context import ApiContext
    from tests.helpers import stack_serve_config

    _wait_for_the_ingests_run(stack)
    api = TestClient(create_app(ApiContext(stack_serve_config(stack, register_cache_s=0))))
    assert "neighbour" in api.get("/api/v1/flags").json()["flags"]
    devices = api.get("/api/v1/devices").json()
    records = devices["devices"] if isinstance(devices, dict) else devices
    odd = next(r for r in records if r["device_id"] == "nb-odd")
    assert odd["flagged_7d"] == {"fog": 1, "humidity": 1 + 30, "neighbour": 10}  # PM10: 30
    (thing,) = api.get("/sta/v1.1/Things", params={"$filter": "name eq 'nb-odd'"}).json()["value"]
    (ds,) = api.get(
        f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams",
        params={"$filter": "properties/quantity eq 'pm2_5'"},
    ).json()["value"]
    flagged = api.get(
        f"/sta/v1.1/Datastreams({ds['@iot.id']})/Observations",
        params={"$filter": "resultQuality eq 'neighbour'", "$count": "true"},
    ).json()
    assert flagged["@iot.count"] == 10
    assert all("neighbour" in o["resultQuality"] for o in flagged["value"])


def test_the_hour_not_over_yet_is_never_judged(stack: LocalStack) -> None:
    """`--to now` (the default) stops at the start of the current hour: a flag is never
    withdrawn, and an unfinished hour's mean is not final."""
    result = CliRunner().invoke(
        main, ["quality", "neighbours", "--dir", str(stack.directory), "--from", "-3h"]
    )
    assert result.exit_code == 0, result.output
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    reached = [
        datetime.fromisoformat(line.split("checked to ")[1].split(":", 2)[0] + ":00:00+00:00")
        for line in result.stderr.splitlines()
        if line.startswith("checked to ")
    ]
    assert reached and max(reached) <= this_hour
