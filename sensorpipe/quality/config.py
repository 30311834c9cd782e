"""The quality checks' thresholds: per quantity, per sensor model, with defaults and reasons.

In ingest.toml (and read from the stack's ingest.toml by `sensorpipe import`):

    [quality]
    enabled = true              # false: no flags, no `qc` field (the benchmark's "off")
    humidity_rh = 70.0
    fog_rh = 98.0

    [quality.quantities.pm2_5]  # any key of `Thresholds`; unset keys keep the default
    stuck_readings = 30

    [quality.sensors.sds011.pm2_5]   # one sensor model (the reading's `sensor` tag)
    high = 999.9

A sensor model's keys override the quantity's, which override the defaults below. Counts of
readings (stuck) assume the edge agent's reading interval, 60 s (edge drivers' `interval_s`);
a network whose devices report every 5 minutes sets smaller runs for their sensor models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sensorpipe.protocol.configfile import load_model
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import sensor_model

PM = ("pm1", "pm2_5", "pm4", "pm10")
# The sensor tag of a reference station's values (importer.reference.SENSOR).
REFERENCE_MODEL = "reference"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    """One quantity's thresholds (None: as the quantity's, or the default)."""

    # range: flagged below `low` or above `high` (at the limit is not flagged).
    low: float | None = None
    high: float | None = None
    # stuck: flagged from the N-th equal value in a row on; 0 turns it off.
    stuck_readings: int | None = Field(default=None, ge=0)
    # stuck, for a value at the range's limit (0 µg/m³ in clean air, 100 % RH in fog), where
    # a run of equal values is normal: judged by this longer run; 0 turns it off.
    stuck_readings_at_limit: int | None = Field(default=None, ge=0)
    # how close to `low` or `high` a value counts as at the limit (a saturated sensor reads
    # just below its ceiling: 99.9 % RH).
    limit_band: float | None = Field(default=None, ge=0)
    # spike: flagged when value > spike_factor x the recent level (the median of the last
    # readings) and value - level > spike_step; spike_factor 0 turns it off.
    spike_factor: float | None = Field(default=None, ge=0)
    spike_step: float | None = Field(default=None, ge=0)
    # humidity and fog flags apply to this quantity (optical particle counts).
    humidity: bool | None = None
    # warm-up: readings taken less than warmup_s after the device started, or after a gap of
    # more than gap_s in the series; warmup_s 0 turns it off.
    warmup_s: float | None = Field(default=None, ge=0)
    gap_s: float | None = Field(default=None, gt=0)

    @field_validator("stuck_readings", "stuck_readings_at_limit")
    @classmethod
    def _a_run(cls, n: int | None) -> int | None:
        if n == 1:
            raise ValueError("a run is 2 equal readings or more: give 2 or more, or 0 (off)")
        return n


@dataclass(frozen=True, slots=True)
class Rules:
    """The thresholds resolved for one (sensor model, quantity): every key set."""

    low: float
    high: float
    stuck_readings: int
    stuck_readings_at_limit: int
    limit_band: float
    spike_factor: float
    spike_step: float
    humidity: bool
    warmup_s: float
    gap_s: float
    # derived, for the checker's inner loop
    warmup_ms: float = field(init=False)
    gap_ms: float = field(init=False)
    at_low: float = field(init=False)  # at or below: at the limit (low + limit_band)
    at_high: float = field(init=False)  # at or above: at the limit (high - limit_band)

    def __post_init__(self) -> None:
        object.__setattr__(self, "warmup_ms", self.warmup_s * 1000)
        object.__setattr__(self, "gap_ms", self.gap_s * 1000)
        object.__setattr__(self, "at_low", self.low + self.limit_band)
        object.__setattr__(self, "at_high", self.high - self.limit_band)


# The defaults, with their reasons.
# - range: the quantity's plausible range (protocol.quantities), which the ingest already
#   enforces by rejecting, except where a data sheet gives a narrower measuring range (below,
#   per model) or for PM: 1000 µg/m³ is the top of the optical sensors' stated ranges (SPS30
#   0-1000, SDS011 0-999.9, PMS5003 "maximum range >= 1000"); above it they saturate.
# - stuck: 30 equal values in a row is half an hour at the edge agent's 60 s: PM sensors
#   report with 0.1 µg/m³ resolution (SDS011) or whole µg/m³ (Plantower), and a working one
#   in moving air changes within minutes; weather sensors with 0.01 resolution even sooner.
#   Research27 §7: 3 equal hourly values flag a frozen reference monitor, which is 180 of
#   our 1-min readings; 30 is stricter, yet long enough that a still night passes. Hourly
#   data wants 4 for its sensor model: in the shared reference file's hourly PM2.5 (0.1
#   µg/m³ resolution), runs of 4 are exactly the hours its agency marked invalid, runs of 3
#   include a valid one (tests/test_quality_real_data.py).
# - stuck at the limit: 0 µg/m³ holds for hours in very clean air, a saturated RH sensor reads
#   its ceiling through a night of fog: 360 readings (6 h) of PM at 0, 1440 (a day) of RH at
#   98 % or more (limit_band 2: the co-location sensor RT01 saturates at 99.9 %, a BME280 at
#   100 %). RT01 read 99.9 % for 2,126 minutes in a row on 24-25 August 2019 while the
#   reference beside it measured 70-95 %: a day is long enough for fog and short enough for that.
# - spike: 10 x the recent level (the example) and a step of more than 100 µg/m³
#   (research27 §7, a 1-min step of 100 µg/m³ in the low-cost literature; both together, so
#   a rise from 1 to 15 µg/m³ in clean air is not a spike). Off for weather quantities, whose
#   fast changes (sun on the housing) are real.
# - humidity/fog: PM quantities only: optical sensors count swollen droplets (SDS011 is
#   specified to 70 % RH; above 98 % fog makes PM unusable, RIVM Samen Meten).
# - warm-up: 120 s, two readings at 60 s: the PMS5003 data sheet asks for at least 30 s after
#   wake-up for stable data (the fan), the SDS011 the same; a 1-min mean that began before the
#   fan settled is the first reading, the second is a margin. A gap of more than 30 min (30
#   missed readings) means the sensor was off or unplugged as far as the data can tell.
_DEFAULT = Thresholds(
    stuck_readings=30,
    stuck_readings_at_limit=0,
    limit_band=0.0,
    spike_factor=0.0,
    spike_step=0.0,
    humidity=False,
    warmup_s=0.0,
    gap_s=1800.0,
)
_PM = Thresholds(
    high=1000.0,
    stuck_readings_at_limit=360,
    spike_factor=10.0,
    spike_step=100.0,
    humidity=True,
    warmup_s=120.0,
)
# The SPS30's number concentrations (particles per cm³): optical counts like PM, so the fog and
# humidity flags, the warm-up and a long run at 0 in clean air apply; their range is the
# quantity's (the data sheet's 0-3000 #/cm³), and no spike rule (no study gives a step).
_COUNTS = Thresholds(stuck_readings_at_limit=360, humidity=True, warmup_s=120.0)
NUMBER_CONCENTRATIONS = ("number_pm0_5", "number_pm1", "number_pm2_5", "number_pm4", "number_pm10")
DEFAULTS: dict[str, Thresholds] = {
    **{q: _PM for q in PM},
    **dict.fromkeys(NUMBER_CONCENTRATIONS, _COUNTS),
    # Humidity sensors saturate at or near 100 % through a night of fog (see above).
    "relative_humidity": Thresholds(stuck_readings_at_limit=1440, limit_band=2.0),
    # The BME280's operating range (data sheet: -40..85 °C); most others' are wider.
    "temperature": Thresholds(low=-40.0),
    # Soil moisture (a capacitive probe, or an import's soil sensor):
    # - stuck: a day (1440 readings at 60 s). In dry weather the soil dries by a point or two
    #   a day, so a value rounded to whole % (as imports and many kits report it) stays flat
    #   for many hours, all night long; 30 minutes, the default, would flag every dry night. A
    #   probe frozen for a day (a hung converter) is still caught.
    # - at the limit (0 % below the dry end in a drought, 100 % in waterlogged soil, within 1
    #   point): not judged as stuck at all; a dry spell lasts weeks, and the edge driver already
    #   reports a disconnected or unpowered probe as an error.
    # - spike: off. Moisture jumps up within minutes when it rains or the garden is watered,
    #   which is what a garden project wants to see. A sudden fall (a probe pulled out of the
    #   soil reads air, i.e. dry) is caught on the probe's voltage below, which then rises.
    "soil_moisture": Thresholds(stuck_readings=1440, stuck_readings_at_limit=0, limit_band=1.0),
    # The probe's output voltage falls when the soil wets and rises slowly as it dries, so:
    # - stuck: a day, as its moisture (the two are one measurement).
    # - spike: a rise to 1.25 x the recent level and by more than 0.4 V within minutes is not
    #   drying (a probe's dry-to-wet span is about 1.4 V: 2.6 V in air, 1.2 V in water, so
    #   0.4 V is about 30 points of moisture): the probe was pulled out or lost contact with
    #   the soil. Rain and watering lower the voltage and are never flagged.
    "soil_probe_voltage": Thresholds(stuck_readings=1440, spike_factor=1.25, spike_step=0.4),
    # Soil (DS18B20 probe, 1/16 °C steps): range as the quantity's (-55..125 °C, the data
    # sheet's). Buried at 30-50 cm soil warms and cools by a few tenths of a degree a day, so
    # equal values for hours are real: stuck from 12 hours of equal values (720 at 60 s).
    "soil_temperature": Thresholds(stuck_readings=720),
}
# Sensor models whose data sheets give a narrower measuring range.
SENSOR_DEFAULTS: dict[str, dict[str, Thresholds]] = {
    # SDS011 data sheet: measuring range 0.0-999.9 µg/m³.
    "sds011": {q: Thresholds(high=999.9) for q in ("pm2_5", "pm10")},
    # Plantower data sheets: effective range (PM2.5 standard) 0-500 µg/m³.
    **{
        m: {q: Thresholds(high=500.0) for q in ("pm1", "pm2_5", "pm10")}
        for m in ("pms5003", "pms7003", "pmsa003")
    },
    # DHT22 data sheet: -40..80 °C.
    "dht22": {"temperature": Thresholds(low=-40.0, high=80.0)},
    # SCD30 data sheet: CO2 measurement range 400-10,000 ppm.
    "scd30": {"co2": Thresholds(high=10_000.0)},
    # A reference station's hourly values (`sensorpipe import reference`; a second instrument
    # of a station is `reference-2`, judged alike): a stuck run is 4 hours (runs of 4 are the
    # hours the shared file's agency marked invalid, see above); no warm-up, since an hourly
    # value is the mean of a monitor that runs on and each hour is a gap of 60 minutes; no
    # humidity or fog flags, since reference monitors dry the sampled air (a heated inlet).
    REFERENCE_MODEL: {
        q: Thresholds(stuck_readings=4, warmup_s=0.0, humidity=False) for q in QUANTITIES
    },
}


def model_of(sensor: str) -> str:
    """The sensor model whose defaults apply to a sensor tag: a reference station's further
    instruments (`reference-2`) are the reference's, a device's second probe's
    (`soil_probe.bed2`, `pms5003.indoor`) its model's."""
    return REFERENCE_MODEL if sensor.startswith(REFERENCE_MODEL) else sensor_model(sensor)


# The neighbour outlier's defaults (quality.neighbours), with their reasons:
# - radius 3 km and at least 5 neighbours: CrowdQC+'s buddy check (research27 §7: radius 3000 m,
#   >= 5 buddies); within 3 km a city's PM and weather are one air mass, and a median and Qn of
#   fewer than 5 values are too unsteady to call a device an outlier by.
# - z beyond -3.5 or 3.5: Iglewicz & Hoaglin's limit for robust z-scores. With a Gaussian
#   network about 1 device-hour in 2,000 passes it by chance. CrowdQC+'s own limits (buddy
#   check alpha 0.1 two-tailed, |z| > 1.64; m2 -2.33/+1.64) clean a temperature data set before
#   analysis, where dropping 1 good hour in 10 is a fair price; a flag shown to residents must
#   not mark 1 good hour in 10. Symmetric: a PM sensor errs both ways (humid air high, a clogged
#   inlet or a failing fan low); CrowdQC+'s asymmetry is for warm-biased thermometers.
# - min_scale, the smallest spread the z is computed with, per quantity: where neighbours
#   agree closely, a small difference would otherwise be a large z. PM 2 µg/m³: a device is then
#   flagged no nearer than 7 µg/m³ (3.5 x 2) to its neighbours' median, the US EPA's RMSE target
#   for a PM2.5 sensor against a reference, so a sensor meeting EPA's targets is not flagged for
#   its neighbours agreeing well. Temperature 1 °C and RH 3 %: the BME280 data sheet's absolute
#   accuracy. A quantity without a floor whose neighbours agree exactly is not judged.
# - quantities: PM, temperature and relative humidity, where a city's neighbours share the air.
#   Not pressure (it follows altitude, not the air), CO2 (indoor and outdoor sensors mix) or
#   noise (very local by nature).
# - every hour over the last 3 finished hours, each judged 10 minutes after it ended: an edge
#   device's outbox delivers a short outage's readings within minutes, and a verdict once
#   written is not withdrawn (a later run adds flags, never removes one).
NEIGHBOUR_QUANTITIES = (*PM, "temperature", "relative_humidity")
NEIGHBOUR_MIN_SCALE = {**{q: 2.0 for q in PM}, "temperature": 1.0, "relative_humidity": 3.0}


class NeighbourConfig(_Strict):
    """`[quality.neighbours]`: the neighbour outlier (quality.neighbours), and the stack's
    schedule for it."""

    # false: the ingest does not run it on its timer (`sensorpipe quality neighbours` still can)
    enabled: bool = True
    every_s: float = Field(default=3600.0, ge=5)
    hours: int = Field(default=3, ge=1, le=168)
    settle_s: float = Field(default=600.0, ge=0)
    radius_m: float = Field(default=3000.0, gt=0)
    min_neighbours: int = Field(default=5, ge=1)
    z_low: float = Field(default=-3.5, lt=0)
    z_high: float = Field(default=3.5, gt=0)
    quantities: list[str] = Field(default_factory=lambda: list(NEIGHBOUR_QUANTITIES))
    # per quantity; unset: NEIGHBOUR_MIN_SCALE's, else 0 (no floor)
    min_scale: dict[str, float] = Field(default_factory=dict)

    @field_validator("quantities")
    @classmethod
    def _known(cls, quantities: list[str]) -> list[str]:
        _check_quantities(dict.fromkeys(quantities))
        return quantities

    @field_validator("min_scale")
    @classmethod
    def _known_scales(cls, scales: dict[str, float]) -> dict[str, float]:
        _check_quantities(scales)
        for name, value in scales.items():
            if not value >= 0:
                raise ValueError(f"min_scale of {name} is {value}: give 0 or more")
        return scales

    def min_scale_of(self, quantity: str) -> float:
        return self.min_scale.get(quantity, NEIGHBOUR_MIN_SCALE.get(quantity, 0.0))


class QualityConfig(_Strict):
    """The `[quality]` section: whether flags are computed, and their thresholds."""

    enabled: bool = True
    # SDS011 is specified up to 70 % RH; optical PM reads high above it (research27 §4).
    humidity_rh: float = Field(default=70.0, gt=0, le=100)
    # At 98 % RH and above, fog: RIVM calls PM calibration unreliable then.
    fog_rh: float = Field(default=98.0, gt=0, le=100)
    # Counts of passers-by (`traffic`): stuck when the same count fills every interval for
    # this long: a zero for count_stuck_s, any other count for count_stuck_nonzero_s. In the
    # shared Auckland pedestrian counts (21 city-centre sites, hourly, 2019-2024) equal
    # non-zero counts never ran longer than 5 hours; zeros ran 6 hours or more 124 times (nights,
    # lockdowns), a day or more 16 times, one of them the broken counter at 107 Quay Street,
    # 0 for 25,560 hours. 0 turns either off.
    count_stuck_s: float = Field(default=86400.0, ge=0)
    count_stuck_nonzero_s: float = Field(default=21600.0, ge=0)
    # A run of zeros is stuck sooner where the counter should have counted people in it
    # (quality.zeros): once it has lasted count_zero_min_s and its expected total (from the
    # series' hour-of-week profile, scaled by how busy the other counters are that hour)
    # reaches count_zero_expected passers-by. On the Auckland counts 30 and 2 hours flag 205
    # Queen Street's weekend days of zeros and leave quiet nights and lockdown nights alone
    # (measured in /work/notes/r29, stuck.py). 0 turns it off.
    count_zero_expected: float = Field(default=30.0, ge=0)
    count_zero_min_s: float = Field(default=7200.0, ge=0)
    # A series (device, sensor, quantity) not seen for this long (observation time) is
    # forgotten; and at most max_series are remembered (the least recently seen go first).
    # Two days outlasts a weekend's outage; a series takes about 400 bytes (measured with
    # tracemalloc), so 100,000 are about 40 MB.
    forget_after_s: float = Field(default=2 * 86400.0, gt=0)
    max_series: int = Field(default=100_000, ge=1)
    quantities: dict[str, Thresholds] = Field(default_factory=dict)
    sensors: dict[str, dict[str, Thresholds]] = Field(default_factory=dict)
    # the neighbour outlier, computed over stored hourly means (quality.neighbours)
    neighbours: NeighbourConfig = Field(default_factory=NeighbourConfig)

    @field_validator("quantities")
    @classmethod
    def _known_quantities(cls, quantities: dict[str, Thresholds]) -> dict[str, Thresholds]:
        _check_quantities(quantities)
        return quantities

    @field_validator("sensors")
    @classmethod
    def _known_sensor_quantities(
        cls, sensors: dict[str, dict[str, Thresholds]]
    ) -> dict[str, dict[str, Thresholds]]:
        for per_quantity in sensors.values():
            _check_quantities(per_quantity)
        return sensors

    def rules(self, sensor: str, quantity: str) -> Rules:
        """The thresholds for `quantity` from a sensor tagged `sensor`: the tag's keys over its
        model's (`[quality.sensors.soil_probe]` for `soil_probe.bed2`) over the quantity's
        over the defaults (built-in, then this file's)."""
        q = QUANTITIES[quantity]
        merged: dict[str, object] = {"low": q.minimum, "high": q.maximum}
        model = model_of(sensor)
        layers = (
            _DEFAULT,
            DEFAULTS.get(quantity),
            SENSOR_DEFAULTS.get(model, {}).get(quantity),
            self.quantities.get(quantity),
            self.sensors.get(model, {}).get(quantity) if model != sensor else None,
            self.sensors.get(sensor, {}).get(quantity),
        )
        for layer in layers:
            if layer is not None:
                merged.update(layer.model_dump(exclude_none=True))
        return Rules(**merged)  # type: ignore[arg-type]


def _check_quantities(quantities: Mapping[str, object]) -> None:
    for name in quantities:
        if name not in QUANTITIES:
            known = ", ".join(QUANTITIES)
            raise ValueError(f"unknown quantity {name!r}: expected one of {known}")


class _QualitySection(BaseModel):
    """A configuration file read for its `[quality]` section alone (an ingest.toml)."""

    model_config = ConfigDict(extra="ignore")

    quality: QualityConfig = Field(default_factory=QualityConfig)


def load_quality_config(path: Path | str) -> QualityConfig:
    """The `[quality]` section of a TOML file (the defaults where it has none); ConfigError
    names the file and the key."""
    return load_model(path, _QualitySection).quality
