"""`calibrate group`, `calibrate update` and `calibrate report` on the real stack with three real
days of the co-location data (tests/data/colocation, MIT).

Group: four members are the shared sensor's file with its PM2.5 scaled (0.8, 1.0, 1.15, 1.3:
sensors of one model that read differently), written here and imported with `import csv`; a
fifth ("near", x 0.9) is assigned the group calibration. The hourly factors, the fog hours
(the sensor's own RH is often >= 98 %) and the leave-one-device-out statistics are checked
against a computation from the files (csv + statistics), and `query air` against raw x factor.

Report: the SVG's points are checked against the pairs computed from the files."""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack
from tests.integration.test_calibration import reference_hours

DATA = Path(__file__).parent.parent / "data" / "colocation"
SENSOR = DATA / "toco_toucan_RT01_2019-08-18_20.csv"
REFERENCE = DATA / "airnowtech_2019-08-18_20.csv"
STATION = "ref-370630099"
SCALES = {"g1": 0.8, "g2": 1.0, "g3": 1.15, "g4": 1.3}
NEAR = 0.9
PM, RH = "PM2.5 (µg/m³)", "RH (%)"
SENSOR_ARGS = [
    "--register", "--site", "burdens-creek", "--time", "Time",
    "--time-format", "%m/%d/%Y %H:%M", "--timezone", "UTC-05:00",
    "--column", f"{PM}=pm2_5", "--column", f"{RH}=relative_humidity",
]  # fmt: skip
SVG = "{http://www.w3.org/2000/svg}"


def sensorpipe(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def scaled(path: Path, scale: float) -> Path:
    """The sensor's file with its PM2.5 column times `scale` (preamble and all else as is)."""
    lines = SENSOR.read_text(encoding="utf-8-sig").splitlines()
    rows = list(csv.reader(lines[6:]))
    col = rows[0].index(PM)
    for row in rows[1:]:
        if row[col]:
            row[col] = f"{float(row[col]) * scale:.4f}"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines[:6]) + "\n")
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


@dataclass
class World:
    stack: LocalStack
    tmp: Path
    linear: dict[str, Any]
    group: dict[str, Any]  # fitted on the first two days, then updated to the third

    def dir(self) -> list[str]:
        return ["--dir", str(self.stack.directory)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("groupfiles")
    with running_stack(tmp_path_factory, "calgroup", serve=False, kits=False) as (stack, _):
        d = ["--dir", str(stack.directory), "--user", "analyst"]
        sensorpipe("import", "csv", str(SENSOR), "--device", "rt01", *SENSOR_ARGS, *d)
        for device, scale in [*SCALES.items(), ("near", NEAR)]:
            path = scaled(tmp / f"{device}.csv", scale)
            sensorpipe("import", "csv", str(path), "--device", device, *SENSOR_ARGS, *d)
        sensorpipe("import", "reference", "airnowtech", str(REFERENCE), *d)
        at = ["--dir", str(stack.directory)]
        linear = json.loads(
            sensorpipe(
                "calibrate", "fit", "--device", "rt01", "--reference", STATION,
                "--method", "linear", "--json", *at,
            ).stdout
        )  # fmt: skip
        members = [a for m in SCALES for a in ("--device", m)]
        group = json.loads(
            sensorpipe(
                "calibrate", "group", "--reference", STATION, *members,
                "--to", "2019-08-20T05:00:00Z", "--json", *at,
            ).stdout
        )  # fmt: skip
        sensorpipe("calibrate", "apply", group["id"], "--device", "near", *at)
        yield World(stack, tmp, linear, group)


# --- the independent computation: the files read with csv and statistics -------------------


def minutes(path: Path, column: str) -> dict[datetime, list[float]]:
    """A column's values per UTC hour from a sensor file (local time UTC-05:00)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    out: dict[datetime, list[float]] = defaultdict(list)
    for row in csv.DictReader(lines[6:]):
        local = datetime.strptime(row["Time"], "%m/%d/%Y %H:%M")
        if row[column]:
            hour = (local + timedelta(hours=5)).replace(minute=0, tzinfo=UTC)
            out[hour].append(float(row[column]))
    return out


def complete_means(path: Path) -> dict[datetime, float]:
    """The hourly PM2.5 means of the hours with >= 45 of 60 minutes."""
    return {h: statistics.fmean(v) for h, v in minutes(path, PM).items() if len(v) >= 45}


def expected_factors(
    world: World, leave_out: str | None = None, until: datetime | None = None
) -> dict[datetime, float | None]:
    """Per hour with a reference value: reference ÷ the members' mean, or None (fewer than 3
    members, fog at the station or in the members' mean RH)."""
    ref, ref_rh = reference_hours("PM2.5-88101"), reference_hours("RHUM-62201")
    own_rh = {h: statistics.fmean(v) for h, v in minutes(SENSOR, RH).items()}
    means = {m: complete_means(world.tmp / f"{m}.csv") for m in SCALES if m != leave_out}
    out: dict[datetime, float | None] = {}
    for hour, value in ref.items():
        if until is not None and hour >= until:
            continue
        having = [m[hour] for m in means.values() if hour in m]
        fog = ref_rh.get(hour, 0) >= 98 or (having and own_rh[hour] >= 98)
        out[hour] = None if fog or len(having) < 3 else value / statistics.fmean(having)
    return out


def iso(hour: datetime) -> str:
    return hour.isoformat().replace("+00:00", "Z")


def stored_factors(world: World) -> dict[str, float | None]:
    from sensorpipe.calibration.store import CalibrationBook
    from sensorpipe.cli.calibrate import book_path

    book = CalibrationBook(book_path(world.stack.directory))
    try:
        return {
            datetime.fromtimestamp(f.hour_ms / 1000, UTC).isoformat().replace("+00:00", "Z"): (
                f.factor
            )
            for f in book.factors(world.group["id"])
        }
    finally:
        book.close()


# --- group ---------------------------------------------------------------------------------


def test_the_hourly_factors_are_reference_over_the_group_mean_and_fog_stays_raw(
    world: World,
) -> None:
    until = datetime(2019, 8, 20, 5, tzinfo=UTC)
    expected = expected_factors(world, until=until)
    stored = stored_factors(world)
    with_factor = {iso(h): f for h, f in expected.items() if f is not None}
    foggy = {iso(h) for h, f in expected.items() if f is None}
    assert len(with_factor) >= 5 and len(foggy) >= 5  # both occur in these real days
    assert {h: f for h, f in stored.items() if f is not None} == pytest.approx(with_factor)
    assert foggy <= {h for h, f in stored.items() if f is None}
    assert world.group["hours"]["counts"]["factor"] == len(with_factor)


def test_update_extends_the_factors_to_the_hours_since(world: World) -> None:
    before = stored_factors(world)
    out = sensorpipe("calibrate", "update", world.group["id"], "--to", "2019-08-21T05:00:00Z",
                     *world.dir()).stdout  # fmt: skip
    assert "hours written" in out
    after = stored_factors(world)
    expected = expected_factors(world, until=datetime(2019, 8, 21, 5, tzinfo=UTC))
    assert {h: f for h, f in after.items() if f is not None} == pytest.approx(
        {iso(h): f for h, f in expected.items() if f is not None}
    )
    assert max(after) > max(before)
    assert all(after[h] == f for h, f in before.items() if f is not None)  # kept as they were


def test_leave_one_device_out_statistics_equal_the_files(world: World) -> None:
    until = datetime(2019, 8, 20, 5, tzinfo=UTC)
    ref = reference_hours("PM2.5-88101")
    cal, refs = [], []
    for member in sorted(SCALES):
        own = complete_means(world.tmp / f"{member}.csv")
        factors = expected_factors(world, leave_out=member, until=until)
        for hour in sorted(own):
            if factors.get(hour) is not None:
                cal.append(own[hour] * factors[hour])  # type: ignore[operator]
                refs.append(ref[hour])
    stats = world.group["statistics"]["calibrated"]
    assert stats["n"] == len(cal) > 0
    rmse = math.sqrt(statistics.fmean((c - r) ** 2 for c, r in zip(cal, refs, strict=True)))
    assert stats["rmse"] == pytest.approx(rmse)
    assert stats["r2"] == pytest.approx(statistics.correlation(cal, refs) ** 2)
    shown = sensorpipe("calibrate", "show", world.group["id"], *world.dir()).stdout
    assert "leave one device out" in shown and f"{rmse:.2f}" in shown


def test_query_air_multiplies_by_the_hours_factor_and_says_why_where_none(world: World) -> None:
    out = sensorpipe(
        "query", "air", "--device", "near", "--quantity", "pm2_5", "--every", "1h",
        "--from", "2019-08-18T05:00:00Z", "--to", "2019-08-20T05:00:00Z",
        "--format", "json", *world.dir(),
    ).stdout  # fmt: skip
    rows = {r["time"][:19]: r for r in json.loads(out)}
    near = {
        iso(h)[:19]: statistics.fmean(v) for h, v in minutes(world.tmp / "near.csv", PM).items()
    }
    stored = stored_factors(world)
    calibrated = noted = 0
    for hour, factor in stored.items():
        row = rows.get(hour[:19])
        if row is None:
            continue
        if factor is None:
            assert row["calibration"] == "raw" and row["calibration_note"]
            assert row["pm2_5"] == pytest.approx(near[hour[:19]], abs=1e-3)
            noted += "fog" in row["calibration_note"]
        else:
            assert row["calibration"] == world.group["id"]
            assert row["pm2_5"] == pytest.approx(near[hour[:19]] * factor, abs=1e-3)
            calibrated += 1
    assert calibrated > 0 and noted > 0


def test_the_api_gives_the_same_group_calibrated_values(world: World) -> None:
    """`/api/v1/air?values=calibrated` (the default) calibrates a group-calibrated device as
    `query air` does: raw x the hour's stored factor, labelled; hours without one stay raw,
    indicative, with the reason in `calibration_note`; a day's mean stays raw."""
    from sensorpipe.api.app import create_app
    from sensorpipe.api.context import ApiContext
    from sensorpipe.cli.serve import serve_config
    from tests.integration.live_server import live_server

    window = {"device": "near", "quantity": "pm2_5", "from": "2019-08-18T05:00:00Z"}
    config = serve_config(world.stack.directory, None, None, None, False)
    with live_server(create_app(ApiContext(config))) as base:
        hourly = httpx.get(
            f"{base}/api/v1/air", params={**window, "to": "2019-08-20T05:00:00Z"}, timeout=30
        ).json()
        daily = httpx.get(
            f"{base}/api/v1/air",
            params={**window, "to": "2019-08-20T05:00:00Z", "every": "1d"},
            timeout=30,
        ).json()
        streams = httpx.get(
            f"{base}/sta/v1.1/Datastreams",
            params={"$filter": "properties/device_id eq 'near'"},
            timeout=30,
        ).json()["value"]
        (cal,) = [d for d in streams if "pm2_5" in d["name"] and d["name"].endswith("(calibrated)")]
        observations = httpx.get(
            f"{base}/sta/v1.1/Datastreams({cal['@iot.id']})/Observations",
            params={"$top": "1000", "$filter": "phenomenonTime lt 2019-08-20T05:00:00Z"},
            timeout=30,
        ).json()["value"]
    (series,) = hourly["series"]
    near = {
        iso(h)[:19]: statistics.fmean(v) for h, v in minutes(world.tmp / "near.csv", PM).items()
    }
    stored = stored_factors(world)
    calibrated = raw = 0
    for i, t in enumerate(series["time"]):
        factor = stored.get(t)
        value, label = series["values"]["pm2_5"][i], series["calibration"]["pm2_5"][i]
        if value is None or t[:19] not in near:
            continue
        if factor is None:
            assert label == "raw" and series["indicative"]["pm2_5"][i] is True
            assert series["calibration_note"][i]
            assert value == pytest.approx(near[t[:19]], abs=1e-3)
            raw += 1
        else:
            fog = (
                "fog"
                in ((series.get("flags") or {}).get("pm2_5") or {"flags": [[]] * (i + 1)})["flags"][
                    i
                ]
            )
            assert label == world.group["id"] and series["indicative"]["pm2_5"][i] is fog
            assert value == pytest.approx(near[t[:19]] * factor, abs=1e-3)
            assert series["uncertainty"]["pm2_5"][i] is not None
            calibrated += 1
    assert calibrated > 0 and raw > 0
    (day,) = daily["series"]
    assert set(day["calibration"]["pm2_5"]) == {"raw"}
    # SensorThings' calibrated Datastream: each minute's reading x its hour's factor; minutes
    # of hours without a factor are not in it.
    assert len(observations) > 100
    for o in observations:
        hour = o["phenomenonTime"][:13] + ":00:00Z"
        assert stored[hour] is not None and o["parameters"]["calibration"] == world.group["id"]
        assert o["result"] == pytest.approx(o["parameters"]["raw_result"] * stored[hour], abs=1e-3)


# --- report --------------------------------------------------------------------------------


def svg_points(page: str, plot: str) -> list[tuple[float, float]]:
    """(cx, cy) of the circles of scatter `plot`, its <svg> parsed as XML."""
    svg = next(
        ET.fromstring(m.group(0))
        for m in re.finditer(r"<svg .*?</svg>", page, re.S)
        if f'id="{plot}"' in m.group(0)[:200]
    )
    group = next(g for g in svg.iter(f"{SVG}g") if g.get("id") == f"{plot}-points")
    return [
        (float(c.get("cx", "nan")), float(c.get("cy", "nan"))) for c in group.iter(f"{SVG}circle")
    ]


def test_the_reports_points_are_the_pairs_of_the_files(world: World) -> None:
    out = world.tmp / "report.html"
    sensorpipe("calibrate", "report", world.linear["id"], "--out", str(out), *world.dir())
    page = out.read_text(encoding="utf-8")
    assert (
        "<script" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
        and "https://" not in page
    )
    ref = reference_hours("PM2.5-88101")
    means = complete_means(SENSOR)
    pairs = sorted((ref[h], means[h]) for h in means if h in ref)
    raw = sorted(svg_points(page, "scatter-raw"))
    assert len(raw) == len(pairs) > 50
    assert raw == [pytest.approx(p, rel=1e-5, abs=1e-4) for p in pairs]
    c = world.linear["coefficients"]
    calibrated = sorted((r, c["a"] + c["b"] * v) for r, v in pairs)
    assert sorted(svg_points(page, "scatter-calibrated")) == [
        pytest.approx(p, rel=1e-5, abs=1e-4) for p in calibrated
    ]
    own_rh = {h: statistics.fmean(v) for h, v in minutes(SENSOR, RH).items()}
    fog = sum(1 for h in means if h in ref and own_rh[h] >= 98)
    assert page.count('<circle class="fog"') == 2 * fog > 0
    assert "Calibration of particulate matter sensors: linear" in page  # its register entry


def test_the_report_of_a_group_calibration_and_its_errors(world: World) -> None:
    out = world.tmp / "group.html"
    sensorpipe("calibrate", "report", world.group["id"], "--out", str(out), *world.dir())
    page = out.read_text(encoding="utf-8")
    ref = reference_hours("PM2.5-88101")
    until = datetime(2019, 8, 20, 5, tzinfo=UTC)
    member_hours = sum(
        1 for m in SCALES for h in complete_means(world.tmp / f"{m}.csv") if h in ref and h < until
    )
    assert len(svg_points(page, "scatter-raw")) == member_hours
    assert "near: " in page and "leave one device out" in page
    bad = sensorpipe(
        "calibrate", "report", world.linear["id"], "--out", str(world.tmp / "x.html"),
        "--from", "2019-07-01T00:00:00Z", "--to", "2019-07-02T00:00:00Z", *world.dir(), ok=False,
    )  # fmt: skip
    assert bad.exit_code == 1 and "holds no pm2_5 of it in the period" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
    bad = sensorpipe(
        "calibrate", "report", world.linear["id"], "--out", str(world.tmp / "no" / "x.html"),
        *world.dir(), ok=False,
    )  # fmt: skip
    assert bad.exit_code == 1 and "cannot write it" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
