"""Quality flags on soil moisture and the probe's voltage, with the series a garden gives: flat
for hours in dry weather, a jump within minutes when it rains, slow drying, a drought at 0 %,
and the two faults worth flagging (a frozen converter, a probe pulled out of the soil)."""

from __future__ import annotations

from collections.abc import Iterable

from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.config import QualityConfig

MIN = 60_000  # one reading a minute, in ms
T0 = 1_700_000_000_000
SENSOR = "soil_ads1115"


def flags_of(quantity: str, values: Iterable[float]) -> list[tuple[int, str]]:
    """(index, flags) of each flagged reading of one series, a reading a minute."""
    checker = QualityChecker(QualityConfig())
    out = []
    for i, value in enumerate(values):
        flagged = checker.flag("garden", SENSOR, T0 + i * MIN, [(quantity, value)])
        if flagged.get(quantity):
            out.append((i, flagged[quantity]))
    return out


def test_a_dry_night_at_one_whole_percent_is_not_stuck() -> None:
    # Whole-% moisture (as imports report it) unchanged for 12 hours: 30 minutes, the default
    # stuck run, would have flagged 690 of these readings.
    assert flags_of("soil_moisture", [23.0] * 720) == []


def test_a_day_of_the_same_value_is_stuck() -> None:
    flagged = flags_of("soil_moisture", [23.0] * 1500)
    assert flagged[0] == (1439, "stuck") and len(flagged) == 1500 - 1439
    # The probe's voltage, frozen with it (a hung converter), likewise.
    assert flags_of("soil_probe_voltage", [1.873] * 1440) == [(1439, "stuck")]


def test_rain_and_watering_are_no_spike() -> None:
    # 23 % for an hour, then 45 % within three minutes (a shower), then slowly drying.
    moisture = [23.0] * 60 + [30.0, 38.0, 45.0] + [45.0 - i * 0.01 for i in range(120)]
    assert flags_of("soil_moisture", moisture) == []
    # The voltage falls as the soil wets: never a spike.
    voltage = [2.2] * 60 + [1.9, 1.7, 1.6] + [1.6 + i * 0.0002 for i in range(120)]
    assert flags_of("soil_probe_voltage", voltage) == []


def test_slow_drying_over_days_is_not_flagged() -> None:
    # Three days, 2 points a day, at 0.1 % resolution; the voltage rises alike.
    days = 3 * 1440
    assert flags_of("soil_moisture", [60.0 - round(i / 720, 1) for i in range(days)]) == []
    assert flags_of("soil_probe_voltage", [1.6 + i * 0.02 / 1440 for i in range(days)]) == []


def test_a_drought_at_the_dry_end_is_not_stuck() -> None:
    # Below the probe's dry calibration the driver reports 0 %: for days in a drought.
    assert flags_of("soil_moisture", [0.0] * (3 * 1440)) == []


def test_a_probe_pulled_out_of_the_soil_is_a_spike_on_its_voltage() -> None:
    pulled = [1.6] * 10 + [2.7] * 5  # reads air, as in its dry calibration
    # Flagged from the first reading out of the soil until the recent level (the median of
    # the last 5) has caught up.
    assert flags_of("soil_probe_voltage", pulled) == [(10, "spike"), (11, "spike"), (12, "spike")]
    # Just short of both thresholds (x1.25 and +0.4 V): not flagged.
    assert flags_of("soil_probe_voltage", [1.6] * 10 + [1.99]) == []
    assert flags_of("soil_probe_voltage", [1.2] * 10 + [1.5]) == []
