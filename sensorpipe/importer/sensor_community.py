"""Sensor.Community archive CSVs (archive.sensor.community/YYYY-MM-DD/, one file per sensor
and day, e.g. `2024-03-01_sds011_sensor_12345.csv`, also gzip'd).

`;`-separated, a header, then one row per measurement, times in UTC without an offset (older
files: with microseconds and `+00:00`). Six columns come first in every file,
`sensor_id;sensor_type;location;lat;lon;timestamp` (`location` is the archive's location id,
`lat`/`lon` rounded to 3 decimals), then the sensor type's own:

| sensor types                          | columns after `timestamp`                             |
| ------------------------------------- | ----------------------------------------------------- |
| SDS011, PPD42NS                       | P1;durP1;ratioP1;P2;durP2;ratioP2                     |
| PMS1003/3003/5003/6003/7003           | P1;P2;P0                                              |
| HPM                                   | P1;P2                                                 |
| SPS30                                 | P1;P4;P2;P0;N10;N4;N25;N1;N05;TS                      |
| DHT22, HTU21D, SHT30/31/35, SHT85     | temperature;humidity                                  |
| BMP180, BMP280                        | pressure;altitude;pressure_sealevel;temperature       |
| BME280                                | pressure;altitude;pressure_sealevel;temperature;humidity |
| DS18B20                               | temperature                                           |
| DNMS (noise)                          | noise_LAeq;noise_LA_min;noise_LA_max                  |

P0, P1, P2, P4 are PM1, PM10, PM2.5 and PM4 in µg/m³; `pressure` is in Pa (stored as hPa).
The SPS30's N05, N1, N25, N4, N10 are its number concentrations (particles of 0.3 µm up to the
size, per cm³) and TS its typical particle size (µm): imported from rows of sensor type SPS30
only. Columns sensorpipe has no quantity for (the PPD42NS's pulse durations and ratios,
altitude and sea-level pressure derived by the firmware, LA_min/LA_max), and the SPS30's
columns in a row of another sensor type, are not imported; the summary names those that held
values.
Each sensor becomes device `sc-<sensor_id>` with its type (lower case) as its sensor model.
"""

from __future__ import annotations

from operator import itemgetter
from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target, ValueColumn, value_column
from sensorpipe.importer.fields import location, sensor_model
from sensorpipe.importer.files import header, rows
from sensorpipe.importer.reader import Reader, found

FIXED = ("sensor_id", "sensor_type", "location", "lat", "lon", "timestamp")
# column -> (quantity, divisor to its canonical unit)
COLUMNS: dict[str, tuple[str, float]] = {
    "P0": ("pm1", 1.0),
    "P1": ("pm10", 1.0),
    "P2": ("pm2_5", 1.0),
    "P4": ("pm4", 1.0),
    "temperature": ("temperature", 1.0),
    "humidity": ("relative_humidity", 1.0),
    "pressure": ("pressure", 100.0),  # Pa -> hPa
    "noise_LAeq": ("noise", 1.0),
}
# Columns of one sensor type (sensor model -> column -> as COLUMNS), imported from its rows
# alone: short names another type's file could use for something else. The SPS30's number
# concentrations and typical particle size, as the gateway maps its SPS30_N05 .. SPS30_TS.
TYPE_COLUMNS: dict[str, dict[str, tuple[str, float]]] = {
    "sps30": {
        "N05": ("number_pm0_5", 1.0),
        "N1": ("number_pm1", 1.0),
        "N25": ("number_pm2_5", 1.0),
        "N4": ("number_pm4", 1.0),
        "N10": ("number_pm10", 1.0),
        "TS": ("particle_size_typical", 1.0),
    },
}
KNOWN = [*COLUMNS, *(c for columns in TYPE_COLUMNS.values() for c in columns)]
# The columns of a sensor type's rows that are stored, and the indices of those that are not.
Plan = tuple[list[ValueColumn], list[int]]


def plan(names: list[str], model: str) -> Plan:
    """Which of the header's `names` a row of sensor `model` imports, and which it does not."""
    own = TYPE_COLUMNS.get(model, {})
    wanted: list[ValueColumn] = []
    skipped: list[int] = []
    for i, name in enumerate(names[6:], start=6):
        column = COLUMNS.get(name) or own.get(name)
        if column is None:
            skipped.append(i)
        else:
            wanted.append(value_column(i, name, *column))
    return wanted, skipped


class SensorCommunity(Reader):
    name = "sensor-community"
    title = "a Sensor.Community archive CSV"
    device_prefix = "sc-"

    def prepare(self) -> None:
        head = self.header(";")
        if head is None or tuple(head[3][:6]) != FIXED:
            raise self.not_format(
                f"expected a header starting {';'.join(FIXED)};P1;... (or ;temperature;..., "
                f"per sensor type), found {found(head)}"
            )
        values = head[3][6:]
        if not any(c in KNOWN for c in values):
            raise self.problem(
                f"its columns {';'.join(values)} hold no quantity sensorpipe "
                f"stores (known: {', '.join(KNOWN)}): nothing to import"
            )

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        head = header(text, ";")
        assert head is not None  # prepare() saw it
        names = head[3]
        ncols = len(names)
        plans: dict[str, Plan] = {}
        wanted: list[ValueColumn] = []
        skipped: list[int] = []
        skipped_counts = [0] * ncols  # by column index
        unused = None
        sensor_id = sensor_type = None
        model = ""
        target: Target | None = None
        prefix: str | None = None
        for line_no, raw, f in rows(text, ";", head[0] + 1, ctx.bad_row):
            if len(f) != ncols:
                ctx.reject(
                    line_no, raw, "bad_row", f"{len(f)} columns, the header has {ncols}", target
                )
                continue
            if f[0] != sensor_id or f[1] != sensor_type:
                sensor_id, sensor_type = f[0], f[1]
                target, prefix = self._device(ctx, f)
                model = sensor_model(sensor_type)
                if model not in plans:
                    plans[model] = plan(names, model)
                wanted, skipped = plans[model]
                # The columns not imported, in one C call; mostly all empty (the PPD42NS's).
                unused = itemgetter(*skipped, *skipped) if skipped else None
            if target is None:
                ctx.reject(line_no, raw, "bad_row", f"sensor_id {f[0]!r} is not a number")
                continue
            t = ctx.observed_at(line_no, raw, "timestamp", f[5], target)
            if t is None:
                continue
            fields = ctx.air_fields(line_no, raw, f, wanted, target, sensor=model, t=t)
            if fields is None or not ctx.declared(line_no, raw, prefix, target, f[1]):
                continue
            ctx.store(line_no, f"{prefix}{fields} {t}", target)
            if unused is not None and any(unused(f)):
                for i in skipped:
                    if f[i]:
                        skipped_counts[i] += 1
        for i, count in enumerate(skipped_counts):
            if count:
                ctx.not_imported[names[i]] = count

    def _device(self, ctx: ImportContext, f: list[str]) -> tuple[Target | None, str | None]:
        sensor_id, sensor_type = f[0], f[1]
        if not (sensor_id.isascii() and sensor_id.isdigit()) or len(sensor_id) > 20:
            return None, None
        model = sensor_model(sensor_type)
        spec = DeviceSpec(
            device_id=f"sc-{sensor_id}",
            purpose=(
                f"Sensor.Community sensor {sensor_id} ({sensor_type}); history imported from "
                f"the archive"
            ),
            sensors=(model,),
            location=location(f[3], f[4]),
        )
        target = ctx.target(spec)
        return target, ctx.air_prefix(target, model)
