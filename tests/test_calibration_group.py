"""Group calibration (Samen Meten style) on constructed data: the hourly factor is the one the
data were made with; hours with too few members or fog get none and their values stay raw,
saying why; the leave-one-device-out statistics equal a computation written out here; the
book keeps a stored factor and fills hours stored without one; read time multiplies by the
hour's factor."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from sensorpipe.calibration.group import (
    FOG_RH,
    GroupHours,
    distance_km,
    group_statistics,
    hour_factor,
    hourly_factors,
    leave_one_out,
)
from sensorpipe.calibration.readtime import calibrate_rows, calibrate_rows_grouped
from sensorpipe.calibration.store import CalibrationBook

HOUR = 3_600_000
T0 = 1_564_617_600_000  # 2019-08-01T00:00Z
WEIGHTS = {"a": 0.7, "b": 1.0, "c": 1.3}  # mean 1: the group's mean is the base value


def constructed(
    hours: int = 48,
) -> tuple[dict[str, dict[int, float]], dict[int, float], dict[int, float]]:
    """Members a, b, c reading base x weight; the reference reads base x the hour's factor."""
    members: dict[str, dict[int, float]] = {d: {} for d in WEIGHTS}
    reference, truth = {}, {}
    for i in range(hours):
        h = T0 + i * HOUR
        base = 5.0 + 3.0 * math.sin(i / 5)
        truth[h] = 0.6 + 0.01 * i
        reference[h] = base * truth[h]
        for d, w in WEIGHTS.items():
            members[d][h] = base * w
    return members, reference, truth


def test_each_hours_factor_is_the_one_the_data_were_made_with() -> None:
    members, reference, truth = constructed()
    factors = hourly_factors(GroupHours(members, reference, {}, {}))
    assert [f.hour_ms for f in factors] == sorted(truth)
    for f in factors:
        assert f.factor == pytest.approx(truth[f.hour_ms]) and f.members == 3 and not f.reason


def test_too_few_members_fog_and_no_reference_give_no_factor_and_say_why() -> None:
    members, reference, _ = constructed(6)
    hours = sorted(reference)
    del members["c"][hours[0]]  # two members left: fewer than 3
    station_rh = {hours[1]: FOG_RH}  # fog at the station, on the limit
    member_rh = {d: {hours[2]: 99.0} for d in WEIGHTS}  # fog in the group's mean
    member_rh["a"][hours[3]] = 99.0  # one member foggy, the mean (99 + 90 + 90)/3 is not
    member_rh["b"][hours[3]] = member_rh["c"][hours[3]] = 90.0
    del reference[hours[4]]
    factors = {
        f.hour_ms: f for f in hourly_factors(GroupHours(members, reference, station_rh, member_rh))
    }
    assert factors[hours[0]].factor is None and "2 members" in factors[hours[0]].reason
    assert factors[hours[1]].factor is None and "at the station" in factors[hours[1]].reason
    assert factors[hours[2]].factor is None and "group's mean RH" in factors[hours[2]].reason
    assert factors[hours[3]].factor is not None
    assert factors[hours[4]].factor is None and "no reference" in factors[hours[4]].reason
    assert factors[hours[5]].factor is not None
    # Fewer members are enough when asked.
    assert (
        hourly_factors(GroupHours(members, reference, {}, {}), min_members=2)[0].factor is not None
    )


def test_leave_one_device_out_statistics_equal_a_computation_written_out_here() -> None:
    members, reference, _ = constructed()
    # Some noise, so the members do not agree exactly; and one hour where d leaves 2 others.
    for i, h in enumerate(sorted(reference)):
        members["a"][h] *= 1 + 0.05 * math.cos(i)
        members["b"][h] += 0.3 * math.sin(2 * i)
    members["d"] = {h: v * 1.1 for h, v in members["b"].items()}
    del members["c"][T0]
    loo = leave_one_out(GroupHours(members, reference, {}, {}))
    expected: list[tuple[str, int, float, float, float]] = []
    for device in sorted(members):
        for h, raw in sorted(members[device].items()):
            others = [members[o][h] for o in members if o != device and h in members[o]]
            if len(others) < 3:
                continue
            factor = reference[h] / statistics.fmean(others)
            expected.append((device, h, raw, raw * factor, reference[h]))
    assert len(expected) == 4 * 48 - 1 - 3  # c's missing hour, and at T0 a, b, d have 2 others
    got = list(zip(loo.devices, loo.hours, loo.raw, loo.calibrated, loo.reference, strict=True))
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2:] for g in got] == [pytest.approx(e[2:]) for e in expected]
    stats = group_statistics(loo, "pm2_5")
    cal = [e[3] for e in expected]
    ref = [e[4] for e in expected]
    rmse = math.sqrt(statistics.fmean((c - r) ** 2 for c, r in zip(cal, ref, strict=True)))
    slope, intercept = statistics.linear_regression(ref, cal)
    assert stats["calibrated"]["n"] == len(expected)
    assert stats["calibrated"]["rmse"] == pytest.approx(rmse)
    assert stats["calibrated"]["slope"] == pytest.approx(slope)
    assert stats["calibrated"]["intercept"] == pytest.approx(intercept)
    assert stats["calibrated"]["r2"] == pytest.approx(statistics.correlation(cal, ref) ** 2)
    raws = [e[2] for e in expected]
    assert stats["raw"]["rmse"] == pytest.approx(
        math.sqrt(statistics.fmean((v - r) ** 2 for v, r in zip(raws, ref, strict=True)))
    )
    a = [e for e in expected if e[0] == "a"]
    assert stats["per_device"]["a"]["calibrated"]["n"] == len(a)
    assert stats["per_device"]["a"]["calibrated"]["rmse"] == pytest.approx(
        math.sqrt(statistics.fmean((e[3] - e[4]) ** 2 for e in a))
    )


def test_a_hour_factor_needs_a_group_mean_above_zero() -> None:
    assert hour_factor(T0, [0.0, 0.0, 0.0], 5.0, None, []).factor is None
    assert hour_factor(T0, [1.0, 2.0, 3.0], 5.0, 97.9, [97.9]).factor == pytest.approx(2.5)


def test_distance_is_the_great_circle_distance() -> None:
    # Utrecht Dom to Amsterdam Dam: about 35 km.
    assert distance_km(52.0907, 5.1214, 52.3731, 4.8932) == pytest.approx(35.3, abs=0.5)
    assert distance_km(52.0, 5.0, 52.0, 5.0) == 0.0


def test_the_book_keeps_a_stored_factor_and_fills_hours_stored_without_one(
    tmp_path: Path,
) -> None:
    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    cid = book.add({"method": "group", "quantity": "pm2_5", "coefficients": {}})["id"]
    first = [hour_factor(T0, [1, 2, 3], 4.0, None, []), hour_factor(T0 + HOUR, [1], 4.0, None, [])]
    assert book.add_factors(cid, first) == 2
    again = [
        hour_factor(T0, [2, 2, 2], 4.0, None, []),  # would be 2.0: the stored 2.0 stays
        hour_factor(T0 + HOUR, [1, 1, 1], 3.0, None, []),  # now has members: filled
        hour_factor(T0 + 2 * HOUR, [1, 1, 1], 2.0, None, []),
    ]
    assert book.add_factors(cid, again) == 2
    stored = book.factors(cid)
    book.close()
    assert [(f.hour_ms, f.factor) for f in stored] == [
        (T0, 2.0),
        (T0 + HOUR, 3.0),
        (T0 + 2 * HOUR, 2.0),
    ]


def test_read_time_multiplies_by_the_hours_factor_and_leaves_the_rest_raw_saying_why(
    tmp_path: Path,
) -> None:
    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    cid = book.add({"method": "group", "quantity": "pm2_5", "coefficients": {}})["id"]
    book.add_factors(
        cid,
        [
            hour_factor(T0, [1.0, 1.0, 1.0], 0.5, None, []),
            hour_factor(T0 + HOUR, [1.0, 1.0, 1.0], 0.5, 99.0, []),  # fog
        ],
    )
    book.assign(cid, "near", None, None, "a test")
    factors = {cid: {f.hour_ms: (f.factor, f.reason) for f in book.factors(cid)}}
    assignments, records = book.assignments(), {r["id"]: r for r in book.all()}
    book.close()
    rows = [
        {"time": "2019-08-01T00:00:00Z", "device_id": "near", "pm2_5": 10.0},
        {"time": "2019-08-01T00:59:00Z", "device_id": "near", "pm2_5": 8.0},
        {"time": "2019-08-01T01:10:00Z", "device_id": "near", "pm2_5": 10.0},
        {"time": "2019-08-01T02:00:00Z", "device_id": "near", "pm2_5": 10.0},
        {"time": "2019-08-01T00:00:00Z", "device_id": "other", "pm2_5": 10.0},
    ]
    out = calibrate_rows_grouped(rows, assignments, records, None, factors)
    assert [(r["pm2_5"], r["calibration"]) for r in out] == [
        (5.0, cid),
        (4.0, cid),
        (10.0, "raw"),
        (10.0, "raw"),
        (10.0, "raw"),
    ]
    notes = [r["calibration_note"] for r in out]
    assert notes[:2] == [None, None] and notes[4] is None
    assert "fog" in notes[2] and "no factor for the hour yet" in notes[3]
    # A day's mean is not calibrated with one hour's factor.
    day = calibrate_rows_grouped(rows[:1], assignments, records, None, factors, 86_400_000)
    assert day[0]["pm2_5"] == 10.0 and "longer than an hour" in day[0]["calibration_note"]
    # The existing read-time function leaves a group calibration's rows raw (no factors).
    assert calibrate_rows(rows[:1], assignments, records)[0]["calibration"] == "raw"


def test_an_api_answer_gets_the_group_factors_per_device_series(tmp_path: Path) -> None:
    from sensorpipe.query.calibrated import Calibrations, calibrate_answer

    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    cid = book.add({"method": "group", "quantity": "pm2_5", "coefficients": {}})["id"]
    book.add_factors(cid, [hour_factor(T0, [2.0, 2.0, 2.0], 3.0, None, [])])
    book.assign(cid, "near", None, None, "a test")
    factors = {cid: {f.hour_ms: (f.factor, f.reason) for f in book.factors(cid)}}
    assignments, records = book.assignments(), {r["id"]: r for r in book.all()}
    book.close()
    times = ["2019-08-01T00:00:00Z", "2019-08-01T01:00:00Z"]
    answer = {
        "aggregate": "mean",
        "every": "1h",
        "series": [{"device_id": "near", "time": times, "values": {"pm2_5": [4.0, 4.0]}}],
    }
    with_factors = Calibrations(assignments, records)
    with_factors.group_factors = factors
    (series,) = calibrate_answer(answer, with_factors, set(), values="calibrated")["series"]
    assert series["values"]["pm2_5"] == [6.0, 4.0]
    assert series["calibration"]["pm2_5"] == [cid, "raw"]
    assert series["calibration_note"][0] is None and "no factor" in series["calibration_note"][1]
    # Without the book's factors nothing is multiplied, and each value says why.
    (plain,) = calibrate_answer(
        answer, Calibrations(assignments, records), set(), values="calibrated"
    )["series"]
    assert plain["values"]["pm2_5"] == [4.0, 4.0] and plain["calibration"]["pm2_5"] == ["raw"] * 2
    assert all("no factor" in note for note in plain["calibration_note"])
    # A day's mean stays raw: one hour's factor does not hold for it.
    (day,) = calibrate_answer({**answer, "every": "1d"}, with_factors, set(), values="calibrated")[
        "series"
    ]
    assert (
        day["values"]["pm2_5"] == [4.0, 4.0] and "longer than an hour" in day["calibration_note"][0]
    )


def test_without_devices_the_group_is_the_registered_devices_near_the_station() -> None:
    from sensorpipe.cli.calibrate_group import _group_members
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.registry import DeviceEntry, Registry

    def at(lat: float, lon: float, sensor: str = "sds011") -> DeviceEntry:
        return DeviceEntry(
            site="s", source="import", sensors=[sensor], location=Location(lat=lat, lon=lon)
        )

    registry = Registry(
        devices={
            "station": at(52.0, 5.0),
            "near": at(52.02, 5.02),  # 2.6 km
            "far": at(52.2, 5.0),  # 22 km
            "bme": at(52.01, 5.0, "bme280"),  # 1.1 km, another model
            "nowhere": DeviceEntry(site="s", source="import", sensors=["sds011"]),
        }
    )
    assert _group_members(registry, "station", (), 10.0, "sds011") == ["near"]
    assert _group_members(registry, "station", (), 10.0, None) == ["bme", "near"]
    assert _group_members(registry, "station", (), 25.0, "sds011") == ["far", "near"]
    assert _group_members(registry, "station", ("far", "far"), 1.0, None) == ["far"]


def test_apply_warns_where_a_group_calibration_goes_beyond_its_radius(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sensorpipe.cli.main import main
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    def at(lat: float | None) -> DeviceEntry:
        where = None if lat is None else Location(lat=lat, lon=5.0)
        return DeviceEntry(site="s", source="import", sensors=["sds011"], location=where)

    devices = {"station": at(52.0), "near": at(52.05), "far": at(52.3), "unplaced": at(None)}
    save_registry(Registry(devices=devices), tmp_path / "registry.toml")
    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    group = {"chosen_by": "within 10 km of station", "within_km": 10.0}
    record = {"method": "group", "quantity": "pm2_5", "sensor_model": "sds011", "group": group}
    cid = book.add({**record, "reference": "station", "coefficients": {}})["id"]
    book.close()
    run = CliRunner().invoke(
        main,
        ["calibrate", "apply", cid, "--device", "near", "--device", "far",
         "--device", "unplaced", "--dir", str(tmp_path)],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "--device near" not in run.stderr
    assert "--device far is 33.4 km from station, outside the 10 km" in run.stderr
    assert "--device unplaced has no registered location" in run.stderr
    assert run.stdout.count(f"{cid} applies to") == 3
