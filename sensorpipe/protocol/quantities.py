"""What can be measured: every quantity, its canonical unit and its physically plausible range.

Adding a quantity (soil moisture, noise, CO2, ...) means adding one entry here; the message
models, the ingest validation, the storage field names and the query CLI all read this table.
The range is for rejecting values no working sensor can produce, not for quality control:
a high-but-possible PM10 during fireworks must pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str
    minimum: float
    maximum: float
    description: str


def _declare(*quantities: Quantity) -> dict[str, Quantity]:
    return {q.name: q for q in quantities}


QUANTITIES: dict[str, Quantity] = _declare(
    Quantity("pm1", "ug/m3", 0.0, 2000.0, "particulate matter up to 1 µm (PM1)"),
    Quantity("pm2_5", "ug/m3", 0.0, 2000.0, "particulate matter up to 2.5 µm (PM2.5)"),
    Quantity("pm4", "ug/m3", 0.0, 2000.0, "particulate matter up to 4 µm (PM4)"),
    Quantity("pm10", "ug/m3", 0.0, 2000.0, "particulate matter up to 10 µm (PM10)"),
    Quantity("temperature", "degC", -60.0, 85.0, "air temperature"),
    Quantity("relative_humidity", "%", 0.0, 100.0, "relative humidity of the air"),
    Quantity("pressure", "hPa", 300.0, 1100.0, "barometric air pressure"),
    Quantity("no2", "ug/m3", 0.0, 5000.0, "nitrogen dioxide concentration"),
    Quantity("co2", "ppm", 0.0, 40000.0, "carbon dioxide concentration"),
    Quantity("noise", "dBA", 0.0, 140.0, "A-weighted sound level"),
    Quantity(
        "soil_moisture",
        "%",
        0.0,
        100.0,
        "soil moisture: % of the probe's dry-to-wet span (volumetric water content only when "
        "the probe was calibrated in dry and saturated soil)",
    ),
    # A capacitive probe's output as the ADC read it (0..VDD, at most 5.5 V; a little below 0
    # is ADC noise), kept so that soil_moisture can be recomputed with a new calibration.
    Quantity("soil_probe_voltage", "V", -0.3, 6.2, "soil moisture probe output voltage"),
    # The DS18B20's measuring range (Maxim data sheet: -55..+125 °C), the probe buried for it.
    Quantity("soil_temperature", "degC", -55.0, 125.0, "soil temperature"),
    # Particle counts of laser PM sensors (PMS5003/7003: per 0.1 L in the frame, a uint16, so
    # at most 65535 / 100 per cm³; the data sheet gives no narrower range).
    Quantity("particles_0_3", "1/cm3", 0.0, 655.35, "particles larger than 0.3 µm per cm³"),
    Quantity("particles_0_5", "1/cm3", 0.0, 655.35, "particles larger than 0.5 µm per cm³"),
    Quantity("particles_1_0", "1/cm3", 0.0, 655.35, "particles larger than 1 µm per cm³"),
    Quantity("particles_2_5", "1/cm3", 0.0, 655.35, "particles larger than 2.5 µm per cm³"),
    Quantity("particles_5_0", "1/cm3", 0.0, 655.35, "particles larger than 5 µm per cm³"),
    Quantity("particles_10", "1/cm3", 0.0, 655.35, "particles larger than 10 µm per cm³"),
    # Number concentrations of the Sensirion SPS30 (NC0.5 ... NC10): particles SMALLER than a
    # size, from 0.3 µm on (each bin holds the ones before it: NC0.5 <= NC1 <= ... <= NC10),
    # the opposite of the Plantower counts above (particles LARGER than a size). Their own
    # names, so that the two never land in one series or one chart: `number_pm2_5` counts what
    # `pm2_5` weighs. Range: the SPS30 data sheet's number concentration range, 0-3000 #/cm³
    # (it states nothing beyond); the typical particle size 0-10 µm (the sensor's size range).
    *(
        Quantity(f"number_pm{key}", "1/cm3", 0.0, 3000.0, f"particles of 0.3 to {size} µm per cm³")
        for key, size in (("0_5", "0.5"), ("1", "1"), ("2_5", "2.5"), ("4", "4"), ("10", "10"))
    ),
    Quantity(
        "particle_size_typical",
        "um",
        0.0,
        10.0,
        "typical particle size: the mean diameter of the particles counted (SPS30)",
    ),
)


# (minimum, maximum) per quantity, for the check every reading passes (messages, kits, imports).
_BOUNDS: dict[str, tuple[float, float]] = {
    q.name: (q.minimum, q.maximum) for q in QUANTITIES.values()
}


def plausibility_error(quantity: str, value: float) -> str | None:
    """None when `value` (in the quantity's canonical unit) is one a working sensor can give,
    else why not. Not a number and infinities are never plausible. Fast enough to call for
    every value of a bulk import: one dict lookup and one chained comparison."""
    bounds = _BOUNDS.get(quantity)
    if bounds is None:
        return f"unknown quantity {quantity!r}"
    low, high = bounds
    if low <= value <= high:  # False for NaN
        return None
    unit = QUANTITIES[quantity].unit
    return f"{quantity} = {value} {unit} is outside the plausible range {low}..{high}"


# How people write the canonical units (in datasheets, on airrohr pages, in docs/).
# Keys are compared after `_unit_key`: case folded, spaces dropped, µ/μ read as u, ³ as 3.
_UNIT_SPELLINGS: dict[str, str] = {
    "ug/m3": "ug/m3",
    "ug/m^3": "ug/m3",
    "ugm-3": "ug/m3",
    "ug/m**3": "ug/m3",
    "ug.m-3": "ug/m3",
    "degc": "degC",
    "°c": "degC",
    "℃": "degC",
    "c": "degC",
    "celsius": "degC",
    "%": "%",
    "%rh": "%",
    "percent": "%",
    "hpa": "hPa",
    "mbar": "hPa",
    "mb": "hPa",
    "ppm": "ppm",
    "dba": "dBA",
    "db(a)": "dBA",
    "1/cm3": "1/cm3",
    "#/cm3": "1/cm3",
    "/cm3": "1/cm3",
    "cm-3": "1/cm3",
    "v": "V",
    "volt": "V",
    "um": "um",
    "micrometre": "um",
    "micrometer": "um",
}


# µg/m³ per ppb of a gas stored in µg/m³, at the EU's reference conditions for gases (20 °C,
# 101.3 kPa; Directive 2008/50/EC, Annex VI): molar mass / 24.055 L/mol. A reference station's
# or logger's ppb (or ppm) becomes µg/m³ with it.
UG_M3_PER_PPB: dict[str, float] = {"no2": 1.9125}


def _unit_key(unit: str) -> str:
    key = unit.strip().casefold().replace(" ", "")
    return key.replace("µ", "u").replace("μ", "u").replace("³", "3")


_CANONICAL_UNITS = frozenset(_UNIT_SPELLINGS.values())  # each is its own canonical spelling


def canonical_unit(unit: str) -> str:
    """The canonical spelling of `unit` (`µg/m³` -> `ug/m3`, `°C` -> `degC`), or `unit` itself
    when it is no known spelling (the caller then refuses it with the unit it expected)."""
    if unit in _CANONICAL_UNITS:  # as every message of the edge agent spells it: no key to make
        return unit
    return _UNIT_SPELLINGS.get(_unit_key(unit), unit)


def spellings_of(unit: str) -> list[str]:
    """A few accepted spellings of a canonical unit, for error messages."""
    examples = {"ug/m3": ["µg/m³", "ug/m3"], "degC": ["°C", "degC"], "%": ["%", "%RH"]}
    return examples.get(unit, [unit])


# Decimals a value of each quantity is published with in CSV (sensorpipe.query.output): what
# the sensors resolve and what a reader can use, not the float noise of a mean. PM to
# 0.1 µg/m³ (the SDS011's and PMS5003's resolution is 0.1 and 1), temperature to 0.1 °C,
# relative humidity to 1 % (the sensors' accuracy is ±2-3 %), pressure to 0.1 hPa.
DECIMALS: dict[str, int] = {
    "pm1": 1,
    "pm2_5": 1,
    "pm4": 1,
    "pm10": 1,
    "temperature": 1,
    "relative_humidity": 0,
    "pressure": 1,
    "no2": 1,
    "co2": 0,
    "noise": 1,
    "soil_moisture": 0,
    "particles_0_3": 2,
    "particles_0_5": 2,
    "particles_1_0": 2,
    "particles_2_5": 2,
    "particles_5_0": 2,
    "particles_10": 2,
    # SPS30 number concentrations: 0.1 per cm³ (the float output's noise below it); the
    # typical size to 0.01 µm.
    "number_pm0_5": 1,
    "number_pm1": 1,
    "number_pm2_5": 1,
    "number_pm4": 1,
    "number_pm10": 1,
    "particle_size_typical": 2,
    "soil_probe_voltage": 3,
    # The DS18B20 resolves 1/16 °C; its accuracy is ±0.5 °C: 0.1 °C like air temperature.
    "soil_temperature": 1,
}
