"""The neighbour outlier, judged (quality.neighbours): Qn against its definition, cases at the
z limits, 4 against 5 neighbours, the radius, a reference station among the neighbours (never
flagged), the scale's floor, the configuration's refusals; and a network made of the shared
co-location sensor's real hourly means (one sensor and one station: the shared data have no
network, so the sensor's copies, slightly scaled, are its neighbours)."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from sensorpipe.quality import flags as F
from sensorpipe.quality.config import NeighbourConfig, QualityConfig
from sensorpipe.quality.neighbours import Place, distance_m, judge, qn_scale, robust_z

HOUR = 1_565_000_000_000 - 1_565_000_000_000 % 3_600_000
# Neighbours 1 km apart along a meridian from 52.00 N (0.009° of latitude is about 1 km).
KM = 0.008993


def _places(n: int, *, extra: dict[str, Place] | None = None) -> dict[str, Place]:
    """`judged` at the origin and n neighbours n1..nn within 1 km of it."""
    places = {"judged": Place(52.0, 5.0)}
    for i in range(1, n + 1):
        places[f"n{i}"] = Place(52.0 + KM * 0.1 * i, 5.0)
    return {**places, **(extra or {})}


def _means(values: dict[str, float], quantity: str = "pm2_5") -> dict:
    return {(quantity, HOUR): {(d, "sds011"): v for d, v in values.items()}}


NEIGHBOURS = [10.0, 14.0, 18.0, 22.0, 26.0]
# Qn of NEIGHBOURS by its definition: pairwise distances 4 (x4), 8 (x3), 12 (x2), 16; n = 5,
# h = 3, k = 3: the 3rd smallest, 4; x 2.2219 (consistency) x 0.844 (n = 5).
QN = 2.2219 * 0.844 * 4
LIMIT = 18.0 + 3.5 * QN  # the value at z = 3.5: 44.254...


def _network(x: float, neighbours: list[float] = NEIGHBOURS) -> dict:
    return _means({"judged": x, **{f"n{i}": v for i, v in enumerate(neighbours, start=1)}})


def test_qn_by_its_definition() -> None:
    assert qn_scale(NEIGHBOURS) == pytest.approx(QN)
    # n = 10 (even, > 9): h = 6, k = 15; 0..9 has 9 distances of 1, 8 of 2: the 15th is 2
    assert qn_scale([float(i) for i in range(10)]) == pytest.approx(2.2219 * 2 * 10 / 13.8)
    # robust: one wild value among ten moves it little; the standard deviation, much
    wild = [float(i) for i in range(9)] + [1000.0]
    assert qn_scale(wild) == pytest.approx(2.2219 * 2 * 10 / 13.8)
    assert qn_scale([5.0]) == 0.0


@pytest.mark.parametrize(
    ("x", "flagged"),
    [(LIMIT - 0.05, False), (LIMIT + 0.05, True), (18.0 - 3.5 * QN + 0.05, False)],
    ids=["just-below-high", "just-above-high", "just-inside-low"],
)
def test_the_high_limit(x: float, flagged: bool) -> None:
    verdicts = judge(_network(x), _places(5), NeighbourConfig())
    assert (("judged", "sds011", "pm2_5", HOUR) in verdicts.outliers) is flagged
    assert verdicts.judged == 6 and verdicts.too_few == 0


def test_the_low_limit_and_the_z() -> None:
    x = 18.0 - 3.5 * QN - 0.05
    verdicts = judge(_network(x), _places(5), NeighbourConfig())
    assert verdicts.outliers[("judged", "sds011", "pm2_5", HOUR)] == pytest.approx((x - 18.0) / QN)
    assert robust_z(x, NEIGHBOURS, 0.0) == pytest.approx((x - 18.0) / QN)


def test_configured_limits() -> None:
    near = judge(_network(18.0 + 2 * QN), _places(5), NeighbourConfig(z_high=1.64))
    assert ("judged", "sds011", "pm2_5", HOUR) in near.outliers


def test_four_neighbours_are_too_few_five_are_enough() -> None:
    far_off = 500.0
    four = judge(_network(far_off, NEIGHBOURS[:4]), _places(4), NeighbourConfig())
    assert four.outliers == {}
    assert four.judged == 0 and four.too_few == 5 and "judged" in four.too_few_devices
    five = judge(_network(far_off), _places(5), NeighbourConfig())
    assert ("judged", "sds011", "pm2_5", HOUR) in five.outliers
    # configurable
    lower = judge(_network(far_off, NEIGHBOURS[:4]), _places(4), NeighbourConfig(min_neighbours=4))
    assert ("judged", "sds011", "pm2_5", HOUR) in lower.outliers


def test_only_neighbours_within_the_radius_count() -> None:
    places = _places(4, extra={"n5": Place(52.0 + KM * 3.1, 5.0)})  # 3.1 km north
    assert distance_m((52.0, 5.0), (52.0 + KM * 3.1, 5.0)) == pytest.approx(3100, rel=0.01)
    verdicts = judge(_network(500.0), places, NeighbourConfig())
    assert ("judged", "sds011", "pm2_5", HOUR) not in verdicts.outliers
    assert "judged" in verdicts.too_few_devices
    wider = judge(_network(500.0), places, NeighbourConfig(radius_m=3200))
    assert ("judged", "sds011", "pm2_5", HOUR) in wider.outliers


def test_a_reference_station_counts_as_a_neighbour_and_is_never_flagged() -> None:
    # four low-cost neighbours and a station: five; the station itself reads far off
    places = _places(4, extra={"station": Place(52.001, 5.0, reference=True)})
    values = {"judged": 500.0, **{f"n{i}": v for i, v in enumerate(NEIGHBOURS[:4], 1)}}
    values["station"] = 900.0
    verdicts = judge(_means(values), places, NeighbourConfig())
    assert ("judged", "sds011", "pm2_5", HOUR) in verdicts.outliers
    assert not any(d == "station" for d, *_ in verdicts.outliers)
    assert verdicts.references == {"station"}
    # a reference instrument (sensor model `reference`) on any device is not judged either
    means = {("pm2_5", HOUR): {**_network(10.0)[("pm2_5", HOUR)], ("n1", "reference"): 900.0}}
    judged = judge(means, _places(5), NeighbourConfig())
    assert not any(s == "reference" for _, s, *_ in judged.outliers)


def test_the_scale_floor_where_neighbours_agree() -> None:
    same = [10.0] * 5  # Qn 0: the floor, 2 µg/m³ for PM, is the scale
    assert judge(_network(16.9, same), _places(5), NeighbourConfig()).outliers == {}
    assert judge(_network(17.1, same), _places(5), NeighbourConfig()).outliers
    # a quantity without a floor whose neighbours agree exactly is not judged
    cfg = NeighbourConfig(quantities=["co2"])
    values = {"judged": 900.0, **{f"n{i}": 400.0 for i in range(1, 6)}}
    verdicts = judge(_means(values, "co2"), _places(5), cfg)
    assert verdicts.outliers == {} and verdicts.no_spread == 6  # each of the six
    # quantities not configured are not judged at all; devices without a place neither
    assert judge(_means(values, "co2"), _places(5), NeighbourConfig()).judged == 0
    lost = judge(_means({"nowhere": 1.0}), _places(5), NeighbourConfig())
    assert lost.no_location == {"nowhere"}


def test_the_configuration_and_its_refusals() -> None:
    cfg = QualityConfig.model_validate(
        {"neighbours": {"radius_m": 2000, "min_neighbours": 6, "min_scale": {"pm10": 3.0}}}
    )
    assert cfg.neighbours.radius_m == 2000 and cfg.neighbours.min_scale_of("pm10") == 3.0
    assert cfg.neighbours.min_scale_of("pm2_5") == 2.0
    assert cfg.neighbours.min_scale_of("pressure") == 0.0
    for bad in (
        {"radius_m": 0},
        {"z_high": -1},
        {"z_low": 1},
        {"quantities": ["pm3"]},
        {"min_scale": {"pm2_5": -1}},
        {"radius": 3000},
    ):
        with pytest.raises(ValidationError):
            QualityConfig.model_validate({"neighbours": bad})


def test_the_flag_is_known_and_explained() -> None:
    assert F.NEIGHBOUR == "neighbour" and F.NEIGHBOUR in F.ALL_FLAGS
    assert "robust z-score" in F.FLAGS[F.NEIGHBOUR]
    assert F.QC_VERSION == 2


# --- real data: the shared co-location sensor (tests/data/colocation, MIT: see README.md) ---
COLOCATION = Path(__file__).parent / "data" / "colocation"
LOCAL = timezone(timedelta(hours=-5))


def _rt01_hourly() -> dict[int, float]:
    """RT01's hourly mean PM2.5 (UTC hours, epoch ms) from its 1-minute export."""
    sums: dict[int, list[float]] = {}
    path = COLOCATION / "toco_toucan_RT01_2019-08-18_20.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in list(csv.reader(f))[7:]:
            t = datetime.strptime(row[0], "%m/%d/%Y %H:%M").replace(tzinfo=LOCAL)
            ms = int(t.timestamp() * 1000)
            sums.setdefault(ms - ms % 3_600_000, []).append(float(row[3]))
    return {h: math.fsum(v) / len(v) for h, v in sums.items()}


def _reference_hourly() -> dict[int, float]:
    """The reference monitor's valid hourly PM2.5 (QC code 0), by its UTC hour."""
    out = {}
    with (COLOCATION / "airnowtech_2019-08-18_20.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if r["Param"].startswith("PM2.5") and r["QC Code"] == "0":
                t = datetime.strptime(f"{r['Date (UTC)']} {r['Time (UTC)']}", "%m/%d/%Y %H:%M")
                out[int(t.replace(tzinfo=UTC).timestamp() * 1000)] = float(r["Value"])
    return out


def test_a_network_made_of_the_real_sensor_flags_the_faulty_copy_alone() -> None:
    """RT01 (real), four copies of it scaled by 0.85-1.15 as sensors of one model differ, the
    reference station beside it, and a faulty copy reading three times too high."""
    rt01, station = _rt01_hourly(), _reference_hourly()
    scales = {"rt01": 1.0, "c85": 0.85, "c95": 0.95, "c105": 1.05, "c115": 1.15, "faulty": 3.0}
    means: dict = {}
    for h, v in rt01.items():
        series = {(d, "rt01"): v * k for d, k in scales.items()}
        if h in station:
            series[("station", "reference")] = station[h]
        means[("pm2_5", h)] = series
    places = {d: Place(35.89 + 0.001 * i, -78.87) for i, d in enumerate(scales)}
    places["station"] = Place(35.885, -78.87, reference=True)
    verdicts = judge(means, places, NeighbourConfig())
    assert {d for d, *_ in verdicts.outliers} == {"faulty"}
    # independently: where the neighbours agree within the 2 µg/m³ floor, the faulty copy (3v)
    # is an outlier when it lies more than 3.5 x 2 = 7 µg/m³ above their median (about v):
    # when 2v > 7. RT01 read 1.7-8.9 µg/m³: flagged at 3.7 and above, never at 3.4 or below.
    hours = {h for (_d, _s, _q, h) in verdicts.outliers}
    assert {h for h, v in rt01.items() if v >= 3.7} <= hours
    assert not {h for h, v in rt01.items() if v <= 3.4} & hours
    assert len(hours) == 46
    assert verdicts.references == {"station"}
    assert verdicts.too_few == 0 and verdicts.judged == len(rt01) * len(scales)


def test_the_schedule_judges_the_last_finished_hours(tmp_path: Path) -> None:
    """At 12:05 with settle 10 minutes, 11:00-12:00 has not settled: the 3 hours before it,
    08:00-11:00, are read; at 12:10 it has."""
    from sensorpipe.ingest.neighbours import NeighbourSchedule
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    registry = tmp_path / "registry.toml"
    entry = DeviceEntry(site="s", password_hash="x", location=Location(lat=52.0, lon=5.0))
    save_registry(Registry(devices={"d": entry}), registry)
    asked: list[str] = []

    class Influx:
        def query(self, q: str) -> list[dict]:
            asked.append(q)
            return []

        def write(self, lines: list[str]) -> None:
            assert lines == []

    noon = 1_764_763_200  # 2025-12-03T12:00:00Z
    for now, end_hour in ((noon + 5 * 60, 11), (noon + 10 * 60, 12)):
        asked.clear()
        schedule = NeighbourSchedule(
            QualityConfig(),
            registry,
            lambda: Influx(),  # type: ignore[arg-type,return-value]
            owns_client=False,
            clock=lambda t=now: t,  # type: ignore[misc]
        )
        schedule.run_once()
        end_ms = (noon - (12 - end_hour) * 3600) * 1000
        (q,) = asked
        assert f"time >= {end_ms - 3 * 3_600_000}ms AND time < {end_ms}ms" in q
        assert schedule.runs == 1
