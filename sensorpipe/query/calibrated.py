"""Calibrated values with their uncertainty, as `sensorpipe query air` and `/api/v1/air` give
them: one code for both.

`Calibrations` is what the calibration book (calibrations.sqlite) says of the devices asked
for: their assignments, the calibrations' records and, for methods with humidity, the hourly
RH of the reference stations they were fitted against (for rows without RH of their own).
`annotate_rows` adds to `query air`'s rows (calibrated by calibration.readtime) each
quantity's uncertainty and whether it is indicative; `calibrate_answer` calibrates an
`air_series` answer and adds per series and quantity the calibration of each interval, its
uncertainty, the rule it came from and whether it is indicative (`query.uncertainty`), and the
answer's `values` and `uncertainty_basis` (one sentence per rule used). Values are calibrated
when read, never stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sensorpipe.calibration.readtime import (
    COLUMN,
    NOTE,
    RAW,
    RH,
    calibrate_rows_grouped,
    label_of,
)
from sensorpipe.calibration.store import Assignment, open_book
from sensorpipe.query import uncertainty
from sensorpipe.query.output import UNIT_SUFFIX
from sensorpipe.query.series import parse_every
from sensorpipe.query.uncertainty import CALIBRATED_AGGREGATES

HOUR_MS = 3_600_000
# A calibrated value of an interval with readings flagged fog stays indicative: RIVM warns
# that calibration is unreliable in fog (optical sensors read droplets as particles).
FOG = "fog"


class Calibrations:
    """The calibration book's assignments of the devices asked for, and their calibrations."""

    def __init__(self, assignments: list[Assignment], records: dict[str, dict[str, Any]]) -> None:
        self.assignments = assignments
        self.records = records
        self.devices = {a.device_id for a in assignments}
        # Per reference station: its hourly RH (hour ms -> %), for rows without their own.
        self.reference_rh: dict[str, dict[int, float]] = {}
        # Per group calibration: hour ms -> (factor or None, why none), from the book.
        self.group_factors: dict[str, dict[int, tuple[float | None, str]]] = {}

    def read_reference_humidity(self, client: Any, rows: list[dict[str, Any]]) -> None:
        """The hourly RH of the reference stations of the calibrations with humidity, over
        the rows' times, where a row they calibrate has no RH of its own (as a fit takes the
        reference's humidity where the device has none)."""
        from sensorpipe.calibration.data import Window, hourly
        from sensorpipe.calibration.readtime import needing_humidity

        wanted = needing_humidity(rows, self.assignments, self.records)
        for reference, times in wanted.items():
            window = Window(min(times) - min(times) % HOUR_MS, max(times) + HOUR_MS)
            self.reference_rh[reference] = {
                h: v for h, (v, _) in hourly(client, reference, RH, window).items()
            }

    def needs(self, quantities: Collection[str]) -> set[str]:
        """The quantities beyond the calibrated ones that calibrating `quantities` needs."""
        from sensorpipe.calibration.methods import NEEDS_RH

        return {
            RH
            for r in self.records.values()
            if r["quantity"] in quantities and r["method"] in NEEDS_RH
        }

    def calibrate(
        self, rows: Iterable[dict[str, Any]], window_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """The rows calibrated (group calibrations by their hour's factor, for windows of at
        most an hour: `window_ms`), each with its `calibration` column."""
        return calibrate_rows_grouped(
            rows,
            self.assignments,
            self.records,
            self.reference_rh,
            self.group_factors,
            window_ms,
        )


def from_book(path: Path, devices: Sequence[str]) -> Calibrations | None:
    """What calibrates `devices` (all: none given) in the book at `path`; None where there is
    no book or nothing is assigned to them. OSError or sqlite3.Error where it cannot be read."""
    book = open_book(path, create=False)
    if book is None:
        return None
    try:
        assignments = book.assignments(devices)
        records = {i: r for i in {a.calibration_id for a in assignments} if (r := book.get(i))}
        found = Calibrations(assignments, records)
        for cid, record in records.items():
            if record["method"] == "group":
                found.group_factors[cid] = {
                    f.hour_ms: (f.factor, f.reason) for f in book.factors(cid)
                }
    finally:
        book.close()
    return found if assignments else None


def csv_bool(value: bool | None) -> str | None:
    """`true`/`false` in CSV, as in JSON (Python would write True/False); empty for None."""
    return None if value is None else ("true" if value else "false")


def uncertainty_column(quantity: str) -> str:
    """`pm2_5_uncertainty_ugm3`: the ± of a quantity's value, with its unit."""
    from sensorpipe.protocol.quantities import QUANTITIES

    unit = QUANTITIES[quantity].unit if quantity in QUANTITIES else ""
    return f"{quantity}_uncertainty_{UNIT_SUFFIX.get(unit, unit)}".rstrip("_")


class _Labeller:
    """Each value's calibration label (its calibration's id or raw), uncertainty and whether
    it is indicative, for one device's (or site's) quantity; the rules chosen once per
    calibration label."""

    def __init__(
        self,
        quantity: str,
        *,
        sensor: str | None,
        reference: bool,
        records: Mapping[str, dict[str, Any]],
        aggregate_ok: bool,
    ) -> None:
        self.quantity, self.sensor, self.reference = quantity, sensor, reference
        self.records, self.ok = records, aggregate_ok
        self.rules: dict[str, tuple[str, uncertainty.Rule, bool]] = {}

    def __call__(self, value: Any, label: str) -> tuple[str, uncertainty.Uncertainty, bool | None]:
        if not self.ok or not isinstance(value, int | float) or isinstance(value, bool):
            return RAW, uncertainty.NONE, None
        label = label_of(label, self.quantity)  # a row's values may come of several
        chosen = self.rules.get(label)
        if chosen is None:
            record = self.records.get(label)
            made = (
                record if record is not None and record.get("quantity") == self.quantity else None
            )
            how = uncertainty.rule(
                self.quantity, sensor=self.sensor, reference=self.reference, calibration=made
            )
            shown = label if made is not None else RAW
            chosen = self.rules[label] = (shown, how, not (self.reference or made is not None))
        shown, how, flag = chosen
        return shown, how.at(float(value)), flag


def annotate_rows(
    rows: list[dict[str, Any]],
    quantities: Collection[str],
    records: Mapping[str, dict[str, Any]],
    references: Collection[str],
    aggregate: str | None,
) -> tuple[list[dict[str, Any]], set[str]]:
    """`query air`'s rows (each with its `calibration` column) with, per quantity that has a
    value, `<q>_uncertainty_<unit>` and `<q>_indicative`; and the basis keys used."""
    used: set[str] = set()
    ok = (aggregate or "mean") in CALIBRATED_AGGREGATES
    labellers: dict[tuple[str, Any, Any], _Labeller] = {}
    out = []
    for row in rows:
        row = dict(row)
        for q in quantities:
            if row.get(q) is None:
                continue
            key = (q, row.get("sensor"), row.get("device_id"))
            label = labellers.get(key)
            if label is None:
                label = labellers[key] = _Labeller(
                    q,
                    sensor=row.get("sensor"),
                    reference=row.get("device_id") in references,
                    records=records,
                    aggregate_ok=ok,
                )
            _, u, flag = label(row[q], str(row.get(COLUMN, RAW)))
            if flag is False and FOG in str(row.get(f"{q}_flags") or "").split(","):
                flag = True  # calibration does not hold in fog
            row[uncertainty_column(q)] = u.value
            row[f"{q}_indicative"] = flag
            if u.basis:
                used.add(u.basis)
        out.append(row)
    return out, used


def basis_sentences(keys: Iterable[str], records: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    return {k: uncertainty.basis_sentence(k, dict(records)) for k in sorted(keys)}


def calibrate_answer(
    answer: dict[str, Any],
    calibrations: Calibrations | None,
    references: Collection[str],
    *,
    values: str,
    client: Any = None,
) -> dict[str, Any]:
    """An `air_series` answer with its per-device series calibrated where `values` is
    calibrated, an assignment applies and the aggregate allows it (a series per site mixes
    devices in InfluxDB's mean and stays raw), and each series' `calibration`,
    `uncertainty`, `uncertainty_basis` and `indicative` per quantity and interval; the
    answer's `values` and `uncertainty_basis` (key -> sentence). `client` reads the reference
    stations' humidity where a method needs it and a row has none."""
    ok = answer["aggregate"] in CALIBRATED_AGGREGATES
    calibrating = calibrations if (values == "calibrated" and ok) else None
    records = calibrations.records if calibrations is not None else {}
    used: set[str] = set()
    out_series = []
    for series in answer["series"]:
        series = {**series, "values": {q: list(v) for q, v in series["values"].items()}}
        device = series.get("device_id")
        n = len(series["time"])
        labels = [RAW] * n
        if calibrating is not None and device and device in calibrating.devices:
            rows = [
                {"time": t, "device_id": device, **{q: v[i] for q, v in series["values"].items()}}
                for i, t in enumerate(series["time"])
            ]
            if client is not None:
                calibrating.read_reference_humidity(client, rows)
            every = answer.get("every")
            done = calibrating.calibrate(rows, parse_every(every) * 1000 if every else None)
            for q, column in series["values"].items():
                column[:] = [row[q] for row in done]
            labels = [str(row[COLUMN]) for row in done]
            notes = [row.get(NOTE) for row in done]
            if any(notes):  # why a group calibration left a value raw
                series["calibration_note"] = notes
        reference = device in references if device else _site_of_references(series, references)
        cal: dict[str, list[str]] = {}
        unc: dict[str, list[float | None]] = {}
        basis: dict[str, list[str | None]] = {}
        flags: dict[str, list[bool | None]] = {}
        for q, column in series["values"].items():
            label = _Labeller(
                q,
                sensor=series.get("sensor"),
                reference=reference,
                records=records,
                aggregate_ok=ok,
            )
            cal[q], unc[q], basis[q], flags[q] = [], [], [], []
            names = (series.get("flags") or {}).get(q, {}).get("flags") or [[]] * n
            for value, at, seen in zip(column, labels, names, strict=True):
                shown, u, flag = label(value, at)
                if flag is False and FOG in seen:
                    flag = True  # calibration does not hold in fog
                cal[q].append(shown)
                unc[q].append(u.value)
                basis[q].append(u.basis)
                flags[q].append(flag)
                if u.basis:
                    used.add(u.basis)
        series.update(calibration=cal, uncertainty=unc, uncertainty_basis=basis, indicative=flags)
        out_series.append(series)
    return {
        **answer,
        "values": values,
        "uncertainty_basis": basis_sentences(used, records),
        "series": out_series,
    }


def _site_of_references(series: dict[str, Any], references: Collection[str]) -> bool:
    """A series per site is a reference station's only where the site holds reference
    stations alone (`references` then holds it as `site:<name>`, see `references_of`)."""
    return f"site:{series.get('site')}" in references


def references_of(registry: Any) -> set[str]:
    """The register's reference stations (source reference) by id, and as `site:<name>` the
    sites that hold nothing else: their values carry no uncertainty and are not indicative."""
    out = {d for d, e in registry.devices.items() if e.source == "reference"}
    sites: dict[str, bool] = {}
    for d, e in registry.devices.items():
        sites[e.site] = sites.get(e.site, True) and d in out
    return out | {f"site:{s}" for s, alone in sites.items() if alone}
