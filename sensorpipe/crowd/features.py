"""The features of a direct forecast of hour T made at origin T - h, from counts up to the
origin only.

`Calendar` holds the local-time facts of each hour of a UTC grid (hour, weekday, day of
year, public holidays of the country, the row of the same local hour 1, 7, 14, 21, 28 days
earlier: across a DST change that is 23 or 25 hours back, and none for an hour that did not
exist). `Prepared` holds, per series, the arrays the features are gathered from; each row of
them depends on counts of that row or earlier only, which is why a feature taken at the
origin (or a seasonal lag of the target, at least 22 hours back) cannot see later counts.
The no-peeking test proves it on real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from sensorpipe.crowd.series import HOUR_S

LAG_DAYS = (1, 7, 14, 21, 28)
MAX_HORIZON = 12  # hours: the lag of yesterday's next hour must stay at or before the origin
FUTURE = MAX_HORIZON + 1  # rows of calendar past the last count, for forecasts beyond it

NAMES = [
    "o0",
    "o1",
    "o2",
    "o3",
    "o4",
    "o5",
    "yday",
    "yday_m1",
    "yday_p1",
    "w1",
    "w2",
    "w1_m1",
    "w1_p1",
    "m4",
    "sn",
    "lvl",
    "o_ratio",
    "o_ratio_w1",
    "r24",
    "lvl24",
    "city_lvl",
    "w1_o",
    "m4_o",
    "yday_o",
    "sn_scaled",
    "m4_scaled",
    "hol",
    "hol_next",
    "hol_prev",
    "hour",
    "dow",
    "doy",
    "how",
    "series",
]
CATEGORICAL = [NAMES.index("series")]


@dataclass(frozen=True)
class Calendar:
    hour: np.ndarray
    dow: np.ndarray
    doy: np.ndarray
    holiday: np.ndarray  # 1.0 on a public holiday (local date)
    holiday_next: np.ndarray  # tomorrow is one
    holiday_prev: np.ndarray  # yesterday was one
    lag: dict[int, np.ndarray]  # days -> row of the same local hour then, -1: none

    @property
    def hour_of_week(self) -> np.ndarray:
        return self.dow * 24 + self.hour


@cache
def _holidays(country: str, subdiv: str | None, first: int, last: int) -> frozenset[date]:
    import holidays

    try:
        days = holidays.country_holidays(country, subdiv=subdiv, years=range(first, last + 1))
    except NotImplementedError as exc:
        raise ValueError(f"public holidays: {exc}") from None
    return frozenset(days)


def check_country(country: str, subdiv: str | None) -> str | None:
    """Why the `holidays` package cannot give this country's public holidays (None: it can)."""
    try:
        _holidays(country, subdiv, 2024, 2024)
    except ValueError as exc:
        return str(exc)
    return None


def calendar(
    start: int, hours: int, timezone: str, country: str | None, subdiv: str | None = None
) -> Calendar:
    """The local facts of `hours` hours from `start` (UTC seconds) in `timezone`."""
    zone = ZoneInfo(timezone)
    local_s = np.empty(hours, dtype=np.int64)
    for i in range(hours):
        t = datetime.fromtimestamp(start + i * HOUR_S, zone)
        offset = t.utcoffset() or timedelta(0)
        local_s[i] = start + i * HOUR_S + int(offset.total_seconds())
    days = local_s // 86400
    hour = (local_s % 86400) // HOUR_S
    dow = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    epoch = date(1970, 1, 1)
    unique, inverse = np.unique(days, return_inverse=True)
    local_dates = [epoch + timedelta(days=int(d)) for d in unique]
    doy = np.array([d.timetuple().tm_yday for d in local_dates], dtype=np.int64)[inverse]
    holiday = np.zeros(hours)
    holiday_next = np.zeros(hours)
    holiday_prev = np.zeros(hours)
    if country and hours:
        known = _holidays(country, subdiv, local_dates[0].year - 1, local_dates[-1].year + 1)
        one = timedelta(days=1)
        holiday = np.array([d in known for d in local_dates], dtype=float)[inverse]
        holiday_next = np.array([d + one in known for d in local_dates], dtype=float)[inverse]
        holiday_prev = np.array([d - one in known for d in local_dates], dtype=float)[inverse]
    first_row: dict[int, int] = {}
    for i in range(hours - 1, -1, -1):  # the first of a repeated (autumn) local hour
        first_row[int(local_s[i])] = i
    lag = {
        d: np.array([first_row.get(int(s) - d * 86400, -1) for s in local_s], dtype=np.int64)
        for d in LAG_DAYS
    }
    return Calendar(hour, dow, doy, holiday, holiday_next, holiday_prev, lag)


def take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """a[rows], NaN where a row is before the first (or -1: none)."""
    out = a[np.clip(rows, 0, None)].astype(float)
    out[rows < 0] = np.nan
    return out


def window_sum(a: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """Sum of a's `width` rows ending at each of `rows` (NaN as 0), summed in the same order
    whatever came before: the same counts give the same sum to the last bit."""
    out = np.zeros((len(rows), a.shape[1]))
    for j in range(width):
        out += np.nan_to_num(take(a, rows - j))
    return out


class Prepared:
    """The arrays features are gathered from, for counts `values` (NaN: none) on the grid
    of `cal` (which may run FUTURE rows past the counts)."""

    def __init__(self, values: np.ndarray, cal: Calendar) -> None:
        rows = len(cal.hour)
        y = np.full((rows, values.shape[1]), np.nan)
        y[: len(values)] = values[:rows]
        self.y = y
        self.cal = cal
        self.w = [take(y, cal.lag[d]) for d in (7, 14, 21, 28)]
        stack = np.stack(self.w)
        n = (~np.isnan(stack)).sum(axis=0)
        total = np.where(np.isnan(stack), 0.0, stack).sum(axis=0)
        self.m4 = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        sn = self.w[0].copy()
        for w in self.w[1:]:
            sn = np.where(np.isnan(sn), w, sn)
        self.sn = sn
        self.yday = take(y, cal.lag[1])
        valid = ~np.isnan(y)
        self.valid = valid.astype(float)
        # the 4-week mean only where the count is there: the city's level compares like hours
        self.m4_where_y = np.where(valid, np.nan_to_num(self.m4), 0.0)

    def last_valid(self, rows: np.ndarray) -> np.ndarray:
        """The last count at or before each row (NaN: none yet), per series."""
        y = self.y
        idx = np.where(~np.isnan(y), np.arange(len(y))[:, None], -1)
        idx = np.maximum.accumulate(idx, axis=0)
        at = idx[np.clip(rows, 0, None)]
        out = np.take_along_axis(y, np.clip(at, 0, None), axis=0)
        out[(at < 0) | (rows < 0)[:, None]] = np.nan
        return out


def build(p: Prepared, targets: np.ndarray, h: int) -> np.ndarray:
    """Feature rows (len(targets) * series, len(NAMES)), target-major, for forecasts of the
    rows `targets` made `h` hours before each."""
    if not 1 <= h <= MAX_HORIZON:
        raise ValueError(f"horizon {h} h: give 1 to {MAX_HORIZON} hours")
    y, cal = p.y, p.cal
    o = targets - h
    f: dict[str, np.ndarray] = {}
    for j in range(6):
        f[f"o{j}"] = take(y, o - j)
    f["yday"] = take(p.yday, targets)
    f["yday_m1"] = take(p.yday, targets - 1)
    f["yday_p1"] = take(p.yday, targets + 1)
    f["w1"], f["w2"] = take(p.w[0], targets), take(p.w[1], targets)
    f["w1_m1"], f["w1_p1"] = take(p.w[0], targets - 1), take(p.w[0], targets + 1)
    f["m4"], f["sn"] = take(p.m4, targets), take(p.sn, targets)
    y3 = sum(np.nan_to_num(take(y, o - j)) for j in range(3))
    m3 = sum(np.nan_to_num(take(p.m4, o - j)) for j in range(3))
    with np.errstate(all="ignore"):
        f["lvl"] = np.where(m3 > 0, y3 / m3, np.nan)
        f["o_ratio"] = f["o0"] / (take(p.m4, o) + 1)
        f["o_ratio_w1"] = f["o0"] / (take(p.w[0], o) + 1)
        s24 = window_sum(y, o, 24)
        n24 = window_sum(p.valid, o, 24)
        f["r24"] = np.where(n24 >= 12, s24 / np.maximum(n24, 1), np.nan)
        f["lvl24"] = np.where(n24 >= 12, s24 / (window_sum(p.m4, o, 24) + 1), np.nan)
        city_y = sum(np.nansum(take(y, o - j), axis=1) for j in range(3))
        city_m = sum(take(p.m4_where_y, o - j).sum(axis=1) for j in range(3))
        city = np.where(city_m > 0, city_y / city_m, np.nan)
        f["city_lvl"] = np.repeat(city[:, None], y.shape[1], axis=1)
        f["w1_o"] = take(p.w[0], o)
        f["m4_o"] = take(p.m4, o)
        f["yday_o"] = take(p.yday, o)
        f["sn_scaled"] = f["o0"] * (f["w1"] + 1) / (f["w1_o"] + 1)
        f["m4_scaled"] = f["lvl"] * f["m4"]
    per_row = {
        "hol": cal.holiday,
        "hol_next": cal.holiday_next,
        "hol_prev": cal.holiday_prev,
        "hour": cal.hour,
        "dow": cal.dow,
        "doy": cal.doy,
        "how": cal.hour_of_week,
    }
    for name, a in per_row.items():
        f[name] = np.repeat(a[targets].astype(float)[:, None], y.shape[1], axis=1)
    f["series"] = np.repeat(np.arange(y.shape[1], dtype=float)[None, :], len(targets), axis=0)
    return np.stack([f[n].ravel() for n in NAMES], axis=1)
