"""Quality flags on real data, through the importer's row path (`ImportContext.air_fields`
with the run's checker), checked against figures counted independently from the files.

- tests/data/colocation/rt01_slice_flags.csv (see rt01_slice_flags.md: US EPA sensortoolkit,
  MIT): a real low-cost sensor's 1-minute PM2.5 beside its own relative humidity, with long
  runs at RH >= 90 %, a humidity sensor stuck at 99.9 % for 2,126 minutes while the reference
  beside it read 70-95 %, and an 87-minute gap.
- tests/data/pedestrian-counts/auckland_slice_flags.csv (CC BY 4.0): a counter stuck at 0 and
  a working one with night zeros.
- tests/data/colocation/airnowtech_slice_flags.csv (MIT): a reference monitor's hourly PM2.5
  stuck at 10.1 for 4 hours, which its agency marked invalid.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path

import pytest

from sensorpipe.importer.base import ImportContext, ImportOptions, Target, value_column
from sensorpipe.importer.files import inspect
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.config import QualityConfig, Thresholds
from sensorpipe.quality.flags import QC_VERSION

RT01 = Path(__file__).parent / "data" / "colocation" / "rt01_slice_flags.csv"
FIELD = re.compile(r'(\w+)=("[^"]*"|[^,]+)')  # a line protocol field; a string holds commas
LOCAL = timezone(timedelta(hours=-5))  # the export's local standard time, UTC-05:00


def _rows() -> list[list[str]]:
    with RT01.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))[7:]  # five preamble lines, a blank one, the header


def _ms(text: str) -> int:
    return int(datetime.strptime(text, "%m/%d/%Y %H:%M").replace(tzinfo=LOCAL).timestamp() * 1000)


@pytest.fixture(scope="module")
def flagged() -> list[dict[str, str]]:
    """Each row's stored quality fields (qc_<quantity> -> flags; qc -> version)."""
    target = Target("rt01", "s", frozenset({"rt01"}), frozenset(), False)
    ctx = ImportContext(
        "track",  # a format whose rows carry their own humidity
        inspect(RT01),
        ImportOptions(user="t"),
        resolve=lambda spec: target,
        declare=lambda *_: True,
        flush=lambda c: None,
        now_ms=2_000_000_000_000,
        quality=QualityChecker(),
    )
    columns = [
        value_column(3, "PM2.5 (µg/m³)", "pm2_5"),
        value_column(4, "TEMP (°C)", "temperature"),
        value_column(5, "RH (%)", "relative_humidity"),
    ]
    out = []
    for n, row in enumerate(_rows(), start=8):
        fields = ctx.air_fields(
            n, ",".join(row), row, columns, target, sensor="rt01", t=_ms(row[0])
        )
        assert fields is not None
        pairs = FIELD.findall(fields)
        qc = {k: v.strip('"') for k, v in pairs if k.startswith("qc")}
        out.append(qc)
    return out


def _flags(qc: dict[str, str], quantity: str) -> set[str]:
    """A row's flags of `quantity`."""
    return set(qc.get("qc_" + quantity, "").split(",")) - {""}


def test_every_row_is_checked(flagged: list[dict[str, str]]) -> None:
    assert len(flagged) == 2314 and all(qc["qc"] == f"{QC_VERSION}i" for qc in flagged)


def test_humidity_and_fog_on_pm_where_the_rows_own_humidity_says(
    flagged: list[dict[str, str]],
) -> None:
    rh = [float(r[5]) for r in _rows()]
    humid = [i for i, h in enumerate(rh) if h >= 70]
    fog = [i for i, h in enumerate(rh) if h >= 98]
    assert [i for i, qc in enumerate(flagged) if "humidity" in _flags(qc, "pm2_5")] == humid
    assert [i for i, qc in enumerate(flagged) if "fog" in _flags(qc, "pm2_5")] == fog
    assert len(fog) > 1800 and len(humid) == len(rh)  # a humid day and a half, fog most of it
    # humidity and fog are about particles: the humidity and temperature are not flagged so
    assert not any({"humidity", "fog"} & _flags(qc, "temperature") for qc in flagged)


def test_the_humidity_sensor_stuck_at_99_9_is_flagged_after_a_day(
    flagged: list[dict[str, str]],
) -> None:
    rows = _rows()
    # independently: every run of equal RH values, flagged from its 1440th reading on at or
    # above 98 % (a saturated sensor), from its 30th below
    expected: list[int] = []
    i = 0
    for value, group in groupby(r[5] for r in rows):
        n = len(list(group))
        needed = 1440 if float(value) >= 98 else 30
        expected += range(i + needed - 1, i + n) if n >= needed else []
        i += n
    stuck = [i for i, qc in enumerate(flagged) if "stuck" in _flags(qc, "relative_humidity")]
    assert stuck == expected
    # the one such run, 8/23 20:47 to 8/25 9:39: its 1440th reading (8/24 has a minute missing)
    assert len(stuck) == 2126 - 1439
    assert rows[stuck[0]][0] == "8/24/2019 20:47" and rows[stuck[-1]][0] == "8/25/2019 9:39"


def test_a_working_pm_sensor_is_neither_stuck_nor_spiking(flagged: list[dict[str, str]]) -> None:
    assert not any({"stuck", "spike", "range"} & _flags(qc, "pm2_5") for qc in flagged)


def test_warmup_after_the_87_minute_gap(flagged: list[dict[str, str]]) -> None:
    rows = _rows()
    warm = [rows[i][0] for i, qc in enumerate(flagged) if "warmup" in _flags(qc, "pm2_5")]
    assert warm == ["8/25/2019 6:17", "8/25/2019 6:18"]  # 0 and 60 s after it; 6:19 is 120 s


# --- counts: tests/data/pedestrian-counts/auckland_slice_flags.csv (CC BY 4.0, see its .md) ---

AUCKLAND = Path(__file__).parent / "data" / "pedestrian-counts" / "auckland_slice_flags.csv"


def _utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_a_counter_stuck_at_zero_is_flagged_after_a_day_and_night_zeros_are_not() -> None:
    """The day rule alone (count_zero_expected 0); the rule by expected counts, which judges
    Commerce Street West's 12 zero hours from a Saturday 19:00 stuck (the Saturday before it
    counted 300-440 an hour then), is tested in test_counts_import.py."""
    with AUCKLAND.open(encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["time_utc"])
    checker = QualityChecker(QualityConfig(count_zero_expected=0))
    flagged: dict[str, list[str]] = {}
    for r in rows:
        flags = checker.flag_count(
            r["site"], "pedestrian", "both", _utc_ms(r["time_utc"]), 3600.0, float(r["count"])
        )
        if flags:
            flagged.setdefault(r["site"], []).append(r["time_utc"])
    # independently: per site, runs of equal counts in time order, flagged where the run has
    # lasted a day (a zero) or 6 hours (another count) by the end of the hour
    expected: dict[str, list[str]] = {}
    for site in ("107 Quay Street", "Commerce Street West"):
        hours = [r for r in rows if r["site"] == site]
        for _, group in groupby(hours, key=lambda r: r["count"]):
            run = list(group)
            limit = 24 if run[0]["count"] == "0" else 6
            first = datetime.fromisoformat(run[0]["time_utc"].replace("Z", "+00:00"))
            for r in run:
                end = datetime.fromisoformat(r["time_utc"].replace("Z", "+00:00"))
                if (end - first).total_seconds() + 3600 >= limit * 3600:
                    expected.setdefault(site, []).append(r["time_utc"])
    assert flagged == expected
    stuck = flagged["107 Quay Street"]
    assert stuck[0] == "2019-04-01T16:00:00Z"  # the 24th hour of zeros from 3/31 17:00
    assert stuck[-1] == "2019-04-08T23:00:00Z" and len(stuck) == 198 - 23
    assert "Commerce Street West" not in flagged  # its 12 hours of zeros are not a day


# --- a frozen reference monitor: tests/data/colocation/airnowtech_slice_flags.csv (MIT) -------

AIRNOWTECH = Path(__file__).parent / "data" / "colocation" / "airnowtech_slice_flags.csv"


@pytest.mark.parametrize(
    ("run", "flagged"),
    [
        # 4 equal hourly values: exactly the hours the agency marked invalid (QC code 9) that
        # a run of 4 can see, its 4th
        (4, ["8/19/2019 15:00"]),
        # 3 (research27 §7's "3 identical consecutive hourly values"): a valid run too
        (3, ["8/19/2019 14:00", "8/19/2019 15:00", "8/25/2019 5:00"]),
    ],
)
def test_a_reference_monitors_stuck_hours(run: int, flagged: list[str]) -> None:
    with AIRNOWTECH.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    config = QualityConfig(sensors={"fem": {"pm2_5": Thresholds(stuck_readings=run)}})
    checker = QualityChecker(config)
    stuck = []
    for r in rows:
        hour = datetime.strptime(f"{r['Date (UTC)']} {r['Time (UTC)']}", "%m/%d/%Y %H:%M")
        t = int(hour.replace(tzinfo=UTC).timestamp() * 1000)
        out = checker.flag("burdens-creek", "fem", t, [("pm2_5", float(r["Value"]))])
        if "stuck" in out.get("pm2_5", ""):
            stuck.append(f"{r['Date (UTC)']} {r['Time (UTC)']}")
    assert stuck == flagged
    invalid = [f"{r['Date (UTC)']} {r['Time (UTC)']}" for r in rows if r["QC Code"] == "9"]
    assert invalid == ["8/19/2019 12:00", "8/19/2019 13:00", "8/19/2019 14:00", "8/19/2019 15:00"]
