"""Which calibration applies to each device's quantities now, for whatever tells the public how
good a value is: the register (`devices export`, `/api/v1/devices`), SensorThings' calibrated
Datastreams, and the API's uncertainty.

`calibration_status(book, device_ids, now_ms)` reads the calibration book once and gives, per
device and quantity, the calibration that applies at `now_ms`: the latest assignment made
whose validity period holds that time, among the calibrations of that quantity (a device with
a PM2.5 and a PM10 calibration has both). `describe` adds what the book cannot know (the
quantities a device measures and whether it is a reference station): a quantity without a
calibration is "not calibrated: values are indicative", a reference station's is the reference.
`uncertainty` is the ± a calibration's values carry: the out-of-fold RMSE of the chosen method
where the fit stored one (a fair estimate for hours it was not fitted on), else the RMSE of
the fit on all pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sensorpipe.calibration.store import Assignment, CalibrationBook, _iso

REFERENCE_SOURCE = "reference"  # protocol.register's `source` of a reference station
CALIBRATED, NOT_CALIBRATED, REFERENCE = "calibrated", "not_calibrated", "reference"
Status = Literal["calibrated", "not_calibrated", "reference"]


@dataclass(frozen=True)
class Applied:
    """A calibration that applies to one quantity of one device, and its assignment."""

    assignment: Assignment
    record: dict[str, Any]

    @property
    def calibration_id(self) -> str:
        return self.assignment.calibration_id


def applying(
    assignments: Sequence[Assignment],
    records: Mapping[str, dict[str, Any]],
    device_id: str,
    quantity: str,
    t_ms: int,
) -> Applied | None:
    """The calibration of `quantity` that applies to `device_id` at `t_ms`: of the assignments
    (oldest first) whose period holds it, the latest made."""
    found = None
    for a in assignments:
        record = records.get(a.calibration_id)
        if (
            record is not None
            and a.device_id == device_id
            and record.get("quantity") == quantity
            and a.covers(t_ms)
        ):
            found = Applied(a, record)
    return found


def of_quantity(
    assignments: Sequence[Assignment], records: Mapping[str, dict[str, Any]], quantity: str
) -> list[Assignment]:
    """The assignments of calibrations of `quantity` (readtime's rows take any assignment of a
    device; given these only, a row is calibrated by a calibration of its own quantity)."""
    return [
        a for a in assignments if (records.get(a.calibration_id) or {}).get("quantity") == quantity
    ]


# The key under which `read_book` puts a group calibration's hourly factors into its record.
FACTORS = "hourly_factors"


def read_book(
    book: CalibrationBook | None, device_ids: Iterable[str] = ()
) -> tuple[list[Assignment], dict[str, dict[str, Any]]]:
    """The assignments of `device_ids` (all: none given) and the calibrations they name (a
    group calibration's record with its hourly factors, under FACTORS)."""
    if book is None:
        return [], {}
    assignments = book.assignments(list(device_ids))
    records = {i: r for i in {a.calibration_id for a in assignments} if (r := book.get(i))}
    for cid, record in records.items():
        if record.get("method") == "group":  # its hourly factors (readtime.group_factors_of)
            record[FACTORS] = {f.hour_ms: (f.factor, f.reason) for f in book.factors(cid)}
    return assignments, records


def calibration_status(
    book: CalibrationBook | None, device_ids: Iterable[str], now_ms: int
) -> dict[str, dict[str, Applied]]:
    """Per device (of `device_ids`) and quantity, the calibration that applies at `now_ms`; a
    device or quantity with none is absent. No book: nothing applies."""
    devices = list(device_ids)
    assignments, records = read_book(book, devices)
    out: dict[str, dict[str, Applied]] = {}
    quantities = {r.get("quantity") for r in records.values()}
    for device in devices:
        for quantity in sorted(q for q in quantities if isinstance(q, str)):
            applied = applying(assignments, records, device, quantity, now_ms)
            if applied is not None:
                out.setdefault(device, {})[quantity] = applied
    return out


def uncertainty(record: Mapping[str, Any]) -> tuple[float | None, str]:
    """The ± of a calibration's values in its quantity's unit, and which RMSE it is:
    `cv` (out-of-fold, of the chosen method) or `fitted` (the fit on all pairs)."""
    stats = record.get("statistics") or {}
    cv = (stats.get("cv") or {}).get(record.get("method")) or {}
    if isinstance(cv.get("rmse"), int | float):
        return float(cv["rmse"]), "cv"
    fitted = (stats.get("calibrated") or {}).get("rmse")
    return (float(fitted), "fitted") if isinstance(fitted, int | float) else (None, "fitted")


def _algorithm_id(method: str) -> str:
    """The entry of the method in the algorithm register (`devices export --format
    algorithms`, `/api/v1/algorithms`): its `source_id`."""
    return f"sensorpipe:calibration:{method}"


def applied_dict(applied: Applied) -> dict[str, Any]:
    """What the register says of a calibration that applies: its id, method, reference,
    validity, hours, statistics after calibration and its algorithm register entry."""
    r, a = applied.record, applied.assignment
    stats = r.get("statistics") or {}
    after = stats.get("calibrated") or {}
    error, basis = uncertainty(r)
    return {
        "status": CALIBRATED,
        "calibration_id": a.calibration_id,
        "method": r.get("method"),
        "formula": r.get("formula"),
        "sensor_model": r.get("sensor_model"),
        "reference": r.get("reference"),
        "valid_from": _iso(a.valid_from_ms),
        "valid_to": _iso(a.valid_to_ms),
        "n_hours": stats.get("n_pairs", after.get("n")),
        "rmse": after.get("rmse"),
        "r2": after.get("r2"),
        "uncertainty": error,
        "uncertainty_basis": basis,
        "unit": r.get("unit"),
        "algorithm": _algorithm_id(str(r.get("method"))),
    }


def describe(
    quantities: Iterable[str], source: str, applied: Mapping[str, Applied] | None
) -> dict[str, dict[str, Any]]:
    """Per quantity a device measures, how it is calibrated: the calibration that applies
    (applied_dict), `reference` for a reference station's own values, or `not_calibrated`
    (its values are indicative)."""
    out: dict[str, dict[str, Any]] = {}
    for q in quantities:
        if source == REFERENCE_SOURCE:
            out[q] = {"status": REFERENCE}
        elif applied and q in applied:
            out[q] = applied_dict(applied[q])
        else:
            out[q] = {"status": NOT_CALIBRATED}
    return out
