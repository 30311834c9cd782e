"""How uncertain a value shown to a resident is, and whether it is indicative.

The rules (docs/calibration.md, "Uncertainty"), in order:

1. A value a calibration made: that calibration's RMSE against its reference, the out-of-fold
   (cross-validated) RMSE of the method it chose where the calibration stored one, else the
   RMSE of the fitted values (in-sample); the basis sentence names which, with the
   calibration's id and reference.
2. A low-cost PM value without a calibration: RIVM Samen Meten's default uncertainty, ±5.3
   µg/m³ for PM2.5 and ±8.5 µg/m³ for PM10, or 20 % of the value where that is larger (PM2.5
   from 26.5 µg/m³ on, PM10 from 42.5).
3. Other quantities: the sensor model's data-sheet accuracy where sensorpipe knows it (BME280:
   ±1 °C, ±3 % RH, ±1 hPa), else none (null).
4. A reference station's value: none (null): it is the reference the others are held against.

Indicative: a low-cost sensor's value no calibration was applied to (true); a calibrated
value and a reference station's are not (false); no value, nothing to say (None).

Each rule has a key (`basis_key`) that answers name per value, and one sentence per key
(`basis_sentence`) that an answer lists once for the keys it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensorpipe.calibration.status import uncertainty as status_uncertainty
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import sensor_model

# Aggregates of which a calibration of the value is the aggregate of calibrated values (or
# near it: a mean of a non-linear method's values is its value at the mean). A count or a
# standard deviation is given as read, labelled raw, without uncertainty.
CALIBRATED_AGGREGATES = ("mean", "median", "min", "max", "first", "last")
# RIVM Samen Meten's default uncertainty of a low-cost PM sensor's value: an absolute floor
# (µg/m³) or a share of the value, whichever is larger.
RIVM_ABSOLUTE = {"pm2_5": 5.3, "pm10": 8.5}
RIVM_RELATIVE = 0.20
# The accuracy a sensor model's data sheet states, in the quantity's unit (Bosch BME280
# data sheet, BST-BME280-DS002: temperature ±1.0 °C at 0-65 °C, humidity ±3 % RH, pressure
# ±1.0 hPa absolute).
# Sensirion: SCD30 CO2 ±(30 ppm + 3 % of the value) at 400-10 000 ppm (data sheet v1.0); SCD4x
# (SCD40 data sheet v1.1) CO2 ±(50 ppm + 5 %) at 400-2000 ppm, ±0.8 °C and ±6 % RH at 15-35 °C.
DATA_SHEET: dict[str, dict[str, float]] = {
    "bme280": {"temperature": 1.0, "relative_humidity": 3.0, "pressure": 1.0},
    "scd30": {"co2": 30.0},
    "scd4x": {"co2": 50.0, "temperature": 0.8, "relative_humidity": 6.0},
    "ds18b20": {"soil_temperature": 0.5, "temperature": 0.5},  # in its band (DATA_SHEET_BAND)
}
# Where a data sheet's accuracy holds only over part of the range: (low, high) of that part, and
# the accuracy outside it. Maxim DS18B20: ±0.5 °C from -10 to +85 °C, ±2 °C outside (-55..125).
DATA_SHEET_BAND: dict[str, dict[str, tuple[float, float, float]]] = {
    "ds18b20": {q: (-10.0, 85.0, 2.0) for q in ("soil_temperature", "temperature")},
}
# The part of a data sheet's accuracy that is a share of the value, added to the fixed part.
DATA_SHEET_SHARE: dict[str, dict[str, float]] = {"scd30": {"co2": 0.03}, "scd4x": {"co2": 0.05}}
# What the unit is called in a sentence and in a CSV column.
UNIT_TEXT = {
    "ug/m3": "µg/m³", "degC": "°C", "%": "%", "hPa": "hPa", "ppm": "ppm", "dBA": "dB(A)",
    "1/cm3": "/cm³", "um": "µm",
}  # fmt: skip
# The uncertainty is given to 0.01 of the unit: finer says nothing, and the crossover of
# the RIVM rule (5.3 = 20 % of 26.5) is exact at that precision.
DECIMALS = 2

RIVM_PREFIX = "rivm-default:"
SHEET_PREFIX = "data-sheet:"
CAL_PREFIX = "calibration:"


@dataclass(frozen=True)
class Uncertainty:
    value: float | None  # ± in the quantity's unit
    basis: str | None  # the rule's key (basis_sentence explains it)


NONE = Uncertainty(None, None)


def unit_text(quantity: str) -> str:
    unit = QUANTITIES[quantity].unit if quantity in QUANTITIES else ""
    return UNIT_TEXT.get(unit, unit)


def calibration_rmse(record: dict[str, Any]) -> tuple[float | None, str]:
    """The RMSE a calibration's values carry, and which: `cv` (out-of-fold RMSE of the method
    it chose) or `fitted` (in-sample); the register's rule (calibration.status)."""
    return status_uncertainty(record)


@dataclass(frozen=True)
class Rule:
    """The rule that gives the uncertainty of one quantity's values of one device: a fixed ±
    (a calibration's RMSE, a data sheet's accuracy), or RIVM's floor and share of the value,
    or none. Chosen once per series and quantity (`rule`), applied to each value (`at`)."""

    basis: str | None = None
    fixed: float | None = None
    floor: float | None = None  # RIVM: max(floor, RIVM_RELATIVE × |value|)
    share: float = 0.0  # a data sheet's "± (fixed + share of the value)"
    band: tuple[float, float, float] | None = None  # `fixed` within (low, high), else the 3rd

    def at(self, value: float | None) -> Uncertainty:
        if value is None or self.basis is None:
            return NONE
        if self.floor is not None:
            return Uncertainty(
                round(max(self.floor, RIVM_RELATIVE * abs(value)), DECIMALS), self.basis
            )
        if self.share and self.fixed is not None:
            return Uncertainty(round(self.fixed + self.share * abs(value), DECIMALS), self.basis)
        if self.band is not None and not self.band[0] <= value <= self.band[1]:
            return Uncertainty(self.band[2], self.basis)
        return Uncertainty(self.fixed, self.basis)


NO_RULE = Rule()


def rule(
    quantity: str,
    *,
    sensor: str | None,
    reference: bool,
    calibration: dict[str, Any] | None = None,
) -> Rule:
    """The rule for the values of `quantity` made by `calibration` (its record) or raw, of a
    device with sensor model `sensor`, a reference station's or not."""
    if reference:
        return NO_RULE
    if calibration is not None:
        rmse, _ = calibration_rmse(calibration)
        if rmse is None:
            return NO_RULE
        return Rule(CAL_PREFIX + str(calibration["id"]), fixed=round(rmse, DECIMALS))
    floor = RIVM_ABSOLUTE.get(quantity)
    if floor is not None:
        return Rule(RIVM_PREFIX + quantity, floor=floor)
    model = sensor_model((sensor or "").lower())  # a second probe's `ds18b20.deep`: ds18b20
    sheet = DATA_SHEET.get(model, {}).get(quantity)
    if sheet is not None:
        share = DATA_SHEET_SHARE.get(model, {}).get(quantity, 0.0)
        band = DATA_SHEET_BAND.get(model, {}).get(quantity)
        return Rule(f"{SHEET_PREFIX}{model}:{quantity}", fixed=sheet, share=share, band=band)
    return NO_RULE


def of_value(
    quantity: str,
    value: float | None,
    *,
    sensor: str | None,
    reference: bool,
    calibration: dict[str, Any] | None = None,
) -> Uncertainty:
    """The uncertainty of one shown `value` (`rule` applied to it)."""
    return rule(quantity, sensor=sensor, reference=reference, calibration=calibration).at(value)


def indicative(value: float | None, *, reference: bool, calibrated: bool) -> bool | None:
    """True: a low-cost sensor's value no calibration made; None where there is no value."""
    if value is None:
        return None
    return not (reference or calibrated)


def basis_sentence(key: str, calibrations: dict[str, dict[str, Any]]) -> str:
    """The one sentence that explains a basis key."""
    if key.startswith(RIVM_PREFIX):
        q = key[len(RIVM_PREFIX) :]
        name = QUANTITIES[q].description.rsplit("(", 1)[-1].rstrip(")") if q in QUANTITIES else q
        floor = RIVM_ABSOLUTE[q]
        return (
            f"RIVM Samen Meten's default uncertainty of an uncalibrated low-cost {name} value: "
            f"±{floor:g} {unit_text(q)}, or {RIVM_RELATIVE:.0%} of the value where that is "
            f"larger (from {floor / RIVM_RELATIVE:g} {unit_text(q)} on)."
        )
    if key.startswith(SHEET_PREFIX):
        sensor, q = key[len(SHEET_PREFIX) :].split(":", 1)
        accuracy = f"{DATA_SHEET[sensor][q]:g} {unit_text(q)}"
        share = DATA_SHEET_SHARE.get(sensor, {}).get(q)
        if share:
            accuracy = f"({accuracy} + {share * 100:g} % of the value)"
        band = DATA_SHEET_BAND.get(sensor, {}).get(q)
        if band:
            low, high, outside = band
            accuracy += (
                f" from {low:g} to {high:g} {unit_text(q)}, ±{outside:g} {unit_text(q)} outside"
            )
        return (
            f"The {sensor.upper()} data sheet's stated accuracy for "
            f"{QUANTITIES[q].description}: ±{accuracy} (no calibration)."
        )
    if key.startswith(CAL_PREFIX):
        cal_id = key[len(CAL_PREFIX) :]
        record = calibrations.get(cal_id, {})
        rmse, which = calibration_rmse(record)
        how = (
            f"the out-of-fold (cross-validated) RMSE of its method {record.get('method')}"
            if which == "cv"
            else f"the RMSE of its fitted values (in-sample, method {record.get('method')})"
        )
        shown = "unknown" if rmse is None else f"{rmse:.2f}"
        return (
            f"Calibration {cal_id}, fitted against reference station "
            f"{record.get('reference', 'unknown')}: {how} on hourly means, {shown} "
            f"{unit_text(str(record.get('quantity', '')))}."
        )
    return key
