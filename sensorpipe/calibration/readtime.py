"""Calibrated values computed when they are read, never stored over the raw ones.

`calibrate_rows` takes rows as `sensorpipe query air` prints them (time, device_id, ...,
quantities) and the calibration book's assignments, and replaces each calibrated quantity's
value by the calibration's, naming it in the row's `calibration` column (`raw` where none
applies). A calibration assigned today so applies to last year's readings as well; the raw
values stay in InfluxDB. A method that needs relative humidity takes the row's own
`relative_humidity` (the hourly mean when the rows are hourly means), else, as a fit does, the
hourly RH of the reference station the calibration was fitted against (`needing_humidity`
says which stations and times to read); a row with neither keeps its raw value and says `raw`.

A group calibration (Samen Meten style, `calibration.group`) has no formula but a factor per
hour, stored in the book: `calibrate_rows_grouped` (what `query air` uses) multiplies a row's
value by the factor of its hour; an hour without one (fog, too few members, no reference yet)
stays raw and says why in the column `calibration_note`. `calibrate_rows` leaves rows of a
group calibration raw (it has no factors to apply). The HTTP API's answers are calibrated by
`query.calibrated`, with these functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sensorpipe.calibration.methods import NEEDS_RH, apply
from sensorpipe.calibration.store import Assignment

RAW = "raw"
HOUR_MS = 3_600_000
COLUMN = "calibration"
RH = "relative_humidity"
NOTE = "calibration_note"
GROUP = "group"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def applying(
    assignments: Sequence[Assignment],
    calibrations: Mapping[str, dict[str, Any]],
    device: str,
    t_ms: int,
) -> dict[str, Assignment]:
    """Per quantity, the latest assignment of `device` whose period holds `t_ms` among the
    calibrations of that quantity: a PM10 calibration assigned later does not hide a PM2.5
    one (as calibration.status chooses for the register)."""
    found: dict[str, Assignment] = {}
    for a in assignments:  # oldest first
        if a.device_id == device and a.covers(t_ms) and a.calibration_id in calibrations:
            found[calibrations[a.calibration_id]["quantity"]] = a
    return found


def label(made: Mapping[str, str]) -> str:
    """The `calibration` column of a row: `raw`, the one calibration that made its values, or
    several as `pm2_5=cal-1;pm10=cal-3` (`labels` reads it back per quantity)."""
    ids = set(made.values())
    if not ids:
        return RAW
    if len(ids) == 1:
        return next(iter(ids))
    return ";".join(f"{q}={c}" for q, c in sorted(made.items()))


def label_of(column: str, quantity: str) -> str:
    """The calibration that made `quantity`'s value of a row whose `calibration` column is
    `column` (one id, or several per quantity), or `raw`; an id whose calibration is of
    another quantity is checked by the caller."""
    if "=" not in column:
        return column
    for part in column.split(";"):
        q, _, cid = part.partition("=")
        if q == quantity:
            return cid
    return RAW


def needing_humidity(
    rows: Iterable[dict[str, Any]],
    assignments: Sequence[Assignment],
    calibrations: Mapping[str, dict[str, Any]],
) -> dict[str, list[int]]:
    """Per reference station, the times (ms) of rows that a calibration with humidity,
    fitted against it, applies to and that have no RH of their own."""
    out: dict[str, list[int]] = {}
    for row in rows:
        if row.get(RH) is not None:
            continue
        t = _ms(row["time"])
        for quantity, chosen in applying(
            assignments, calibrations, str(row.get("device_id", "")), t
        ).items():
            record = calibrations[chosen.calibration_id]
            reference = record.get("reference")
            if reference and record["method"] in NEEDS_RH and row.get(quantity) is not None:
                out.setdefault(reference, []).append(t)
    return out


def calibrate_rows(
    rows: Iterable[dict[str, Any]],
    assignments: Sequence[Assignment],
    calibrations: Mapping[str, dict[str, Any]],
    reference_rh: Mapping[str, Mapping[int, float]] | None = None,
) -> list[dict[str, Any]]:
    """The rows with their calibrated quantities and the `calibration` column. A row without
    RH of its own takes its calibration's reference station's RH of the hour, where
    `reference_rh` (station -> hour ms -> RH) has it."""
    out = []
    for row in rows:
        raw = row
        row = dict(row)
        made: dict[str, str] = {}
        t = _ms(row["time"])
        for quantity, chosen in applying(
            assignments, calibrations, str(row.get("device_id", "")), t
        ).items():
            record = calibrations[chosen.calibration_id]
            value = row.get(quantity)
            rh = raw.get(RH)  # the measured RH, also where RH itself is calibrated
            if rh is None and reference_rh:
                rh = reference_rh.get(record.get("reference", ""), {}).get(t - t % HOUR_MS)
            method = record["method"]
            if method == GROUP:  # hourly factors from the book: `calibrate_rows_grouped`
                value = None
            if value is not None and (method not in NEEDS_RH or rh is not None):
                calibrated = float(apply(method, record["coefficients"], [value], [rh])[0])
                if math.isfinite(calibrated):
                    row[quantity] = calibrated
                    made[quantity] = chosen.calibration_id
        row[COLUMN] = label(made)
        out.append(row)
    return out


def calibrate_rows_grouped(
    rows: Iterable[dict[str, Any]],
    assignments: Sequence[Assignment],
    calibrations: Mapping[str, dict[str, Any]],
    reference_rh: Mapping[str, Mapping[int, float]] | None = None,
    group_factors: Mapping[str, Mapping[int, tuple[float | None, str]]] | None = None,
    window_ms: int | None = None,
) -> list[dict[str, Any]]:
    """`calibrate_rows`, and rows of a group calibration multiplied by the factor of their
        hour (`group_factors`: calibration id -> hour ms -> (factor or None, reason)). Rows of
        windows longer than an hour (`window_ms`) stay raw: one hour's factor does not hold for a
        day's mean. A row left raw by a group calibration says why in `calibration_note` (a column
    every row has where a group calibration is among `calibrations`)."""
    rows = list(rows)
    out = calibrate_rows(rows, assignments, calibrations, reference_rh)
    if not any(r["method"] == GROUP for r in calibrations.values()):
        return out
    for original, row in zip(rows, out, strict=True):
        row[NOTE] = None  # every row has the column; empty, it is not printed
        t = _ms(row["time"])
        per = applying(assignments, calibrations, str(row.get("device_id", "")), t)
        made = {q: label_of(str(row[COLUMN]), q) for q in per}
        made = {q: c for q, c in made.items() if c != RAW}
        notes = []
        for quantity, chosen in per.items():
            cid = chosen.calibration_id
            value = original.get(quantity)
            if calibrations[cid]["method"] != GROUP or value is None:
                continue
            if window_ms is not None and window_ms > HOUR_MS:
                notes.append(f"{cid}: hourly factors, not for windows longer than an hour")
                continue
            factor, reason = (
                (group_factors or {})
                .get(cid, {})
                .get(
                    t - t % HOUR_MS,
                    (None, f"no factor for the hour yet (`calibrate update {cid}`)"),
                )
            )
            if factor is None:
                notes.append(f"{cid}: {reason}")
                continue
            row[quantity] = float(value) * factor
            made[quantity] = cid
        row[COLUMN] = label(made)
        row[NOTE] = "; ".join(notes) or None
    return out


def raw_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as stored, each labelled `raw`."""
    return [{**row, COLUMN: RAW} for row in rows]
