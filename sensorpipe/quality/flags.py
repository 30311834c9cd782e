"""The quality flags: their names as stored, and why each exists, in one sentence for people.

A flag says a reading is doubtful, not that it is wrong: the raw value is kept as it came,
and whoever reads it decides (a chart draws it differently, an hourly mean may leave it out).
The names are stored in InfluxDB (`qc_<quantity>` fields), so they never change; a new check
gets a new name and raises `QC_VERSION`.
"""

from __future__ import annotations

from collections.abc import Iterable

# The version of the check set that flagged a point, stored as the integer field `qc`. Raised
# whenever a check is added or its meaning changes, so a reader can tell which points were
# judged by which rules (and that a point without `qc` was never checked).
# 2: the neighbour outlier (`neighbour`), added to stored points later by its own run
# (ingest.neighbours); the checks made as a point is stored are those of version 1.
QC_VERSION = 2

RANGE = "range"
STUCK = "stuck"
SPIKE = "spike"
HUMIDITY = "humidity"
FOG = "fog"
WARMUP = "warmup"
CLOCK = "clock"
NEIGHBOUR = "neighbour"

# Each flag and the one sentence that explains it (API, dashboard, README).
FLAGS: dict[str, str] = {
    RANGE: (
        "the value lies outside what this sensor model or quantity can measure reliably "
        "(its data sheet's range), though inside what is physically possible"
    ),
    STUCK: (
        "the sensor reported exactly the same value many times in a row, as a frozen or "
        "failed sensor does"
    ),
    SPIKE: (
        "the value jumped far above the sensor's recent level in one step, as a fault or a "
        "very local source (a smoker, an exhaust) can make it"
    ),
    HUMIDITY: (
        "the air was humid (relative humidity 70 % or more), where optical particle sensors "
        "read too high because particles take up water"
    ),
    FOG: (
        "the air was near saturation (relative humidity 98 % or more, fog or mist): an optical "
        "particle sensor's value is not usable then"
    ),
    WARMUP: (
        "the reading was taken just after the device started or after a long gap, before the "
        "sensor (its fan, its heater) had settled"
    ),
    CLOCK: (
        "the device's clock was not synchronised when it took the reading, so its time may be wrong"
    ),
    NEIGHBOUR: (
        "the device's hourly mean stood far apart from those of the sensors and stations "
        "around it that hour (a robust z-score against at least 5 within 3 km, by default), "
        "as a faulty or badly placed sensor's does"
    ),
}
ALL_FLAGS = tuple(sorted(FLAGS))
# The flags a count can carry (`qc_count`: a counter stuck at 0, an unsynchronised clock).
COUNT_FLAGS = (CLOCK, STUCK)


def joined(flags: Iterable[str]) -> str:
    """The stored form of a set of flags: sorted names joined by ","."""
    return ",".join(sorted(set(flags)))


def parse(stored: str | None) -> tuple[str, ...]:
    """The flags of a stored `qc_<quantity>` value (none for None or an empty string)."""
    if not stored:
        return ()
    return tuple(name for name in stored.split(",") if name)
