"""Hourly count series on a full UTC grid, one column per device (or area), for forecasting.

A missing hour, and an hour of a counter stuck at zero, is NaN: never 0. `read_counts_csv`
reads the long form `time_utc,site,count` (the Auckland long file); `from_count_series`
takes count_series answers from InfluxDB. `stuck_zeros` is the causal stuck-at-zero rule the
research measured on the Auckland counts (a zero run is a fault once its expected total is
>= 30 passers-by over >= 2 hours, or it lasts >= 24 hours); `clean` applies it.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HOUR_S = 3600


class CountsInputError(ValueError):
    """Counts that cannot be used, with the file, line and what to do (one line)."""


@dataclass
class Counts:
    """`values[i, s]`: the count of series `names[s]` in the hour starting at
    `start + i` hours (seconds since 1970 UTC); NaN where there is none."""

    start: int
    values: np.ndarray
    names: list[str]
    kind: str = "device"  # or "area": the CSV column the forecasts are written under
    # Rows of a CSV file that repeat a site and hour read before (dropped: the first is kept,
    # as `sensorpipe import csv` keeps it), and the line of the first of them.
    duplicates: int = 0
    first_duplicate_line: int | None = None

    @property
    def hours(self) -> int:
        return int(self.values.shape[0])

    def row(self, t: int) -> int:
        """The row of the hour starting at `t` (seconds, UTC, on the hour)."""
        return (t - self.start) // HOUR_S

    def time(self, row: int) -> int:
        return self.start + row * HOUR_S

    def until(self, t: int) -> Counts:
        """These counts as known at `t`: the hours starting after `t` removed."""
        last = self.row(t)
        return Counts(
            self.start,
            self.values[: max(0, last + 1)].copy(),
            self.names,
            self.kind,
            self.duplicates,
            self.first_duplicate_line,
        )


def parse_time(text: str) -> int:
    """ISO 8601 (a date means midnight UTC; no offset means UTC) to seconds since 1970."""
    t = datetime.fromisoformat(text.strip())
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp())


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_counts_csv(path: Path, kind: str = "device", only: Sequence[str] = ()) -> Counts:
    """The long form `time_utc,site,count` (hours on the hour, UTC), one row per series and
    hour; `only`: keep these series (all when empty). A bad line is refused with its number; a
    row of a site and hour read before is dropped (the first read is kept) and counted in
    `Counts.duplicates`, as `sensorpipe import csv` keeps the first."""
    try:
        handle = _open(path)
    except OSError as exc:
        raise CountsInputError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    wanted = set(only)
    rows: dict[tuple[int, str], float] = {}
    repeats: list[int] = []  # the lines of rows dropped as duplicates
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader, [])]
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise CountsInputError(f"{path}: not a CSV file of counts ({exc})") from None
        need = ["time_utc", "site", "count"]
        if any(n not in header for n in need):
            raise CountsInputError(
                f"{path}: line 1: the header {','.join(header)[:80]!r} lacks one of "
                f"{','.join(need)}: give counts in the long form time_utc,site,count"
            )
        it, isite, icount = (header.index(n) for n in need)
        line = 1
        try:
            for line, rec in enumerate(reader, start=2):
                if not rec:
                    continue
                if not _add_row(path, line, rec, (it, isite, icount), wanted, rows):
                    repeats.append(line)
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise CountsInputError(f"{path}: line {line + 1}: cannot read it ({exc})") from None
    if not rows:
        what = f" of {', '.join(sorted(wanted))}" if wanted else ""
        raise CountsInputError(f"{path}: no counts{what} in it")
    missing = sorted(wanted - {s for _, s in rows})
    if missing:
        raise CountsInputError(f"{path}: no counts of {', '.join(missing)} in it")
    counts = _grid(rows, kind)
    counts.duplicates = len(repeats)
    counts.first_duplicate_line = repeats[0] if repeats else None
    return counts


def _add_row(
    path: Path,
    line: int,
    rec: list[str],
    cols: tuple[int, int, int],
    wanted: set[str],
    rows: dict[tuple[int, str], float],
) -> bool:
    """Add one line's count to `rows`; False for a site and hour read before (not added)."""
    it, isite, icount = cols
    if len(rec) <= max(cols):
        raise CountsInputError(f"{path}: line {line}: {len(rec)} columns, expected 3 or more")
    site = rec[isite].strip()
    if wanted and site not in wanted:
        return True
    try:
        t = parse_time(rec[it])
    except ValueError:
        raise CountsInputError(
            f"{path}: line {line}: time_utc {rec[it]!r} is not ISO 8601 (e.g. 2024-01-31T13:00:00Z)"
        ) from None
    if t % HOUR_S:
        raise CountsInputError(
            f"{path}: line {line}: time_utc {rec[it]!r} is not on the hour: give hourly counts"
        )
    if not site:
        raise CountsInputError(f"{path}: line {line}: site is empty: name the counter")
    text = rec[icount].strip()
    try:
        value = float(text) if text else float("nan")
    except ValueError:
        value = -1.0
    if not (value >= 0 or np.isnan(value)) or np.isinf(value):
        raise CountsInputError(
            f"{path}: line {line}: count {text!r} is not a number >= 0 "
            "(leave it empty where nothing was counted)"
        )
    if (t, site) in rows:
        return False
    rows[(t, site)] = value
    return True


def _grid(rows: dict[tuple[int, str], float], kind: str) -> Counts:
    names = sorted({s for _, s in rows})
    col = {s: i for i, s in enumerate(names)}
    times = [t for t, _ in rows]
    start = min(times)
    values = np.full(((max(times) - start) // HOUR_S + 1, len(names)), np.nan)
    for (t, s), v in rows.items():
        values[(t - start) // HOUR_S, col[s]] = v
    return Counts(start, values, names, kind)


def from_count_series(answers: Iterable[dict[str, Any]], kind: str = "device") -> Counts:
    """Hourly count_series answers (every="1h", flags excluded) to a grid: each device's
    classes and directions summed; an hour without a report, or with a flagged count (stuck,
    ...), is NaN."""
    rows: dict[tuple[int, str], float] = {}
    for answer in answers:
        for s in answer["series"]:
            times = [parse_time(t.replace("Z", "+00:00")) for t in s["time"]]
            total = np.zeros(len(times))
            seen = np.zeros(len(times), dtype=bool)
            flagged = np.zeros(len(times), dtype=bool)
            for c in s["counts"]:
                v = np.array([np.nan if x is None else float(x) for x in c["values"]])
                seen |= ~np.isnan(v)
                total += np.nan_to_num(v)
                flagged |= np.array([bool(n) for n in c.get("flagged", [0] * len(times))])
            # A flagged class or direction makes the hour's sum a part: no count at all.
            seen &= ~flagged
            for t, summed, ok in zip(times, total, seen, strict=True):
                if ok:  # the grid runs from the first count to the last
                    rows[(t, s["device_id"])] = float(summed)
    if not rows:
        raise CountsInputError("no counts stored for these devices in that time range")
    return _grid(rows, kind)


def stuck_zeros(
    values: np.ndarray,
    hour_of_week: np.ndarray,
    expected_min: float = 30.0,
    hours_min: int = 2,
    hours_always: int = 24,
    weeks: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Zero runs that are a stuck counter, not a quiet street: (as known at each hour, in
    hindsight). A run is stuck once it lasted >= `hours_min` hours and the counts expected in
    it (the median of the last `weeks` non-zero counts of each local hour of the week, scaled
    by how busy the other series are this hour) add up to >= `expected_min`, or once it lasted
    `hours_always` hours. `now[i]`: stuck as known at hour i (causal: from hours <= i only);
    `hindsight[i]`: in a run found stuck at any time."""
    n, s = values.shape
    buf = np.full((s, 168, weeks), np.nan)
    nbuf = np.zeros((s, 168), dtype=int)
    run = np.zeros(s, dtype=int)
    run_expected = np.zeros(s)
    run_start = np.zeros(s, dtype=int)
    stuck = np.zeros(s, dtype=bool)
    now = np.zeros((n, s), dtype=bool)
    hindsight = np.zeros((n, s), dtype=bool)
    cols = np.arange(s)
    for i in range(n):
        how = int(hour_of_week[i])
        x = values[i]
        mu = _median(buf[:, how, :])
        ok = (x > 0) & (mu > 0)
        scale = float(x[ok].sum() / mu[ok].sum()) if ok.sum() >= 3 else 1.0
        scale = min(max(scale, 0.02), 3.0)
        zero = x == 0
        run_start[zero & (run == 0)] = i
        run[zero] += 1
        run_expected[zero] += mu[zero] * scale
        long_enough = (run_expected >= expected_min) & (run >= hours_min)
        became = zero & ~stuck & (long_enough | (run >= hours_always))
        for c in np.flatnonzero(became):
            hindsight[run_start[c] : i, c] = True
        stuck |= became
        now[i] = zero & stuck
        hindsight[i] |= now[i]
        counted = x > 0  # NaN (no report) neither ends nor extends a run
        run[counted] = 0
        run_expected[counted] = 0
        stuck[counted] = False
        c = cols[counted]
        buf[c, how, nbuf[c, how] % weeks] = x[c]
        nbuf[c, how] += 1
    return now, hindsight


def _median(a: np.ndarray) -> np.ndarray:
    """Each row's median of its values that are not NaN (0 where none is): np.nanmedian's
    answer, many times faster on short rows."""
    ordered = np.sort(a, axis=1)  # NaN sorts last
    n = (~np.isnan(a)).sum(axis=1)
    rows = np.arange(len(a))
    lo = ordered[rows, np.maximum(n - 1, 0) // 2]
    hi = ordered[rows, np.maximum(n, 1) // 2 - (n == 0)]
    return np.where(n > 0, (lo + hi) / 2, 0.0)


def clean(values: np.ndarray, hour_of_week: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): the counts with stuck zeros as NaN, as known at each hour (to
    compute features from) and in hindsight (to train on and to score). An hour at which
    every one of three or more series reads 0 (a lost hour, e.g. the Auckland file's spring
    DST placeholder) is NaN in both."""
    values = values.astype(float, copy=True)
    if values.shape[1] >= 3:
        reported = ~np.isnan(values)
        all_zero = (np.nan_to_num(values, nan=1.0) == 0).all(axis=1) & (reported.sum(axis=1) >= 3)
        values[all_zero] = np.nan
    now, hindsight = stuck_zeros(values, hour_of_week)
    return np.where(now, np.nan, values), np.where(hindsight, np.nan, values)
