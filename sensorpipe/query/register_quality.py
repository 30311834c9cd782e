"""What the public register says of how good a device's values are, in English and Dutch: per
quantity whether and how it is calibrated (`calibration.status`: the calibration that applies
now, with its id, method, reference station, validity, hours and statistics after calibration,
or "not calibrated: values are indicative", or the reference station's own values), and the
quality flags its readings carried in the last 7 days (`flagged_7d`). `query.register_page` puts
these on the HTML page, `query.export` in the CSV; JSON and the API carry the dicts as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensorpipe.calibration.status import CALIBRATED, REFERENCE

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "calibration": "Calibration",
        "flagged_7d": "Readings flagged, last 7 days",
        "no_flags": "none",
        "not_calibrated": "not calibrated: values are indicative",
        "reference": (
            "reference station: these are the values other sensors are calibrated against"
        ),
        "calibrated": "calibrated with {id} ({method}) against reference station {reference}",
        "calibrated_no_reference": "calibrated with {id} ({method})",
        "valid": "valid {period}",
        "from": "from {start}",
        "until": "until {end}",
        "always": "for all readings",
        "hours": "{n} hours",
        "after": "after calibration RMSE {rmse} {unit}, R² {r2}",
        "algorithm": "algorithm register: {algorithm}",
    },
    "nl": {
        "calibration": "Kalibratie",
        "flagged_7d": "Gemarkeerde metingen, afgelopen 7 dagen",
        "no_flags": "geen",
        "not_calibrated": "niet gekalibreerd: indicatieve waarden",
        "reference": (
            "referentiestation: dit zijn de waarden waartegen andere sensoren worden gekalibreerd"
        ),
        "calibrated": "gekalibreerd met {id} ({method}) tegen referentiestation {reference}",
        "calibrated_no_reference": "gekalibreerd met {id} ({method})",
        "valid": "geldig {period}",
        "from": "vanaf {start}",
        "until": "tot {end}",
        "always": "voor alle metingen",
        "hours": "{n} uur",
        "after": "na kalibratie RMSE {rmse} {unit}, R² {r2}",
        "algorithm": "algoritmeregister: {algorithm}",
    },
}
METHOD_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "linear": "linear",
        "linear_rh": "linear with relative humidity",
        "kohler": "humidity growth correction (κ-Köhler)",
        "group": "group calibration against the nearest station",
    },
    "nl": {
        "linear": "lineair",
        "linear_rh": "lineair met relatieve luchtvochtigheid",
        "kohler": "correctie voor vochtgroei (κ-Köhler)",
        "group": "groepskalibratie tegen het dichtstbijzijnde station",
    },
}
FLAG_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "range": "out of range",
        "stuck": "stuck",
        "spike": "spike",
        "humidity": "humid air (RH ≥ 70 %)",
        "fog": "fog (RH ≥ 98 %)",
        "warmup": "warm-up",
        "clock": "clock not synchronised",
    },
    "nl": {
        "range": "buiten meetbereik",
        "stuck": "vastgelopen",
        "spike": "piek",
        "humidity": "vochtige lucht (RV ≥ 70 %)",
        "fog": "mist (RV ≥ 98 %)",
        "warmup": "opwarmen",
        "clock": "klok niet gelijk",
    },
}


def _number(value: float, decimals: int, lang: str) -> str:
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if lang == "nl" else text


def _date(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC"


def calibration_sentence(status: Mapping[str, Any], lang: str, units: Mapping[str, str]) -> str:
    """One quantity's calibration status (`calibration.status.describe`) in words; `units`
    maps stored units to how they are written (µg/m³)."""
    t = TEXTS[lang]
    kind = status.get("status")
    if kind == REFERENCE:
        return t["reference"]
    if kind != CALIBRATED:
        return t["not_calibrated"]
    method = str(status.get("method"))
    words = {
        "id": status["calibration_id"],
        "method": METHOD_NAMES[lang].get(method, method),
        "reference": status.get("reference"),
    }
    key = "calibrated" if status.get("reference") else "calibrated_no_reference"
    parts = [t[key].format(**words)]
    start, end = status.get("valid_from"), status.get("valid_to")
    bounds = []
    if start:
        bounds.append(t["from"].format(start=_date(str(start))))
    if end:
        bounds.append(t["until"].format(end=_date(str(end))))
    period = " ".join(bounds)
    parts.append(t["valid"].format(period=period) if period else t["always"])
    if isinstance(status.get("n_hours"), int):
        parts.append(t["hours"].format(n=status["n_hours"]))
    rmse, r2 = status.get("rmse"), status.get("r2")
    if isinstance(rmse, int | float):
        unit = str(status.get("unit") or "")
        parts.append(
            t["after"].format(
                rmse=_number(rmse, 2, lang),
                unit=units.get(unit, unit),
                r2="-" if not isinstance(r2, int | float) else _number(r2, 2, lang),
            )
        )
    parts.append(t["algorithm"].format(algorithm=status.get("algorithm")))
    return "; ".join(parts)


def flagged_text(flagged: Mapping[str, int], lang: str) -> str:
    """`flagged_7d` (flag -> readings) in words: "fog (RH ≥ 98 %) 3, stuck 12", or none."""
    if not flagged:
        return TEXTS[lang]["no_flags"]
    names = FLAG_NAMES[lang]
    sep = "." if lang == "nl" else ","
    return ", ".join(
        f"{names.get(flag, flag)} {f'{n:,}'.replace(',', sep)}"
        for flag, n in sorted(flagged.items())
    )


def calibration_csv(calibration: Mapping[str, Mapping[str, Any]]) -> str:
    """The `calibration` column of the register's CSV, one `quantity=...` per quantity joined
    with ';': `pm2_5=cal-1 (linear, reference ref-1, valid from 2019-08-19T00:00:00Z, 706
    hours, RMSE 1.58 ug/m3, R² 0.52, algorithm sensorpipe:calibration:linear)`, or the status
    (`not_calibrated`: indicative values; `reference`)."""
    cells = []
    for q, s in calibration.items():
        if s.get("status") != CALIBRATED:
            cells.append(f"{q}={s.get('status')}")
            continue
        facts = [str(s.get("method"))]
        if s.get("reference"):
            facts.append(f"reference {s['reference']}")
        facts += [f"valid from {s['valid_from']}"] * bool(s.get("valid_from"))
        facts += [f"valid to {s['valid_to']}"] * bool(s.get("valid_to"))
        facts += [f"{s['n_hours']} hours"] * isinstance(s.get("n_hours"), int)
        if isinstance(s.get("rmse"), int | float):
            facts.append(f"RMSE {s['rmse']:.2f} {s.get('unit') or ''}".rstrip())
        if isinstance(s.get("r2"), int | float):
            facts.append(f"R² {s['r2']:.2f}")
        facts.append(f"algorithm {s.get('algorithm')}")
        cells.append(f"{q}={s['calibration_id']} ({', '.join(facts)})")
    return ";".join(cells)
