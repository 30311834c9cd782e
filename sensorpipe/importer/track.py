"""Mobile tracks: one reading per row, each with its own time and position (bike sensors such
as the Snuffelfiets, walks with a portable sensor).

The columns are found by name (any case, `,` `;` or tab between them): a time (`time`,
`timestamp`, `datetime`, `recording_timestamp`, `recorded_at`), `latitude`/`lat`,
`longitude`/`lon`/`lng`, an id of the bike or sensor (`entity_id`, `device_id`, `sensor_id`,
`bike_id`), and values named as sensorpipe's quantities or as people write them (`pm2_5`,
`pm2.5`, `pm25`, `pm10`, `pm1_0`, `temperature`, `humidity`, `pressure`, ...) in the
quantities' units (µg/m³, °C, %, hPa). Every reading becomes an `air` point with fields
`lat`/`lon`, as the ingest stores a mobile message, so a bounding box finds a ride
(`sensorpipe query air --bbox`). A row without a position (0, 0: no GPS fix) is rejected
(`no_position`): a reading that cannot be placed says nothing about a street.

Snuffelfiets exports (the province of Utrecht's data platform: `entity_id`,
`recording_timestamp`, `latitude`, `longitude`, `pm1_0`, `pm2_5`, `pm10`, `temperature`,
`humidity`, `pressure`, `error_code`, `version_major`, ...) are recognised by `version_major`
and read in their raw units, as the data platform documents them: temperature in tenths of
°C, PM in hundredths of µg/m³ from firmware version 2 on, pressure in hPa. A row with an
`error_code` other than 0 is rejected (`device_error`, the errors named); `no2` is not
imported (the sensor was removed, the column is 0), nor `voc`, `voltage`, accuracies.

The device is `track-<id>` for the file's id column, else `track-<--track-id>`, or `--device`.
"""

from __future__ import annotations

from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target, ValueColumn, value_column
from sensorpipe.importer.fields import compact, quantity_named
from sensorpipe.importer.files import header, rows
from sensorpipe.importer.reader import Reader, found
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.topics import is_valid_device_id

DELIMITERS = ",;\t"
TIME_NAMES = ("recordingtimestamp", "time", "timestamp", "datetime", "recordedat", "createdat")
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon", "lng", "long")
ID_NAMES = ("entityid", "deviceid", "sensorid", "bikeid")
SNUFFELFIETS_MARK = "versionmajor"
# Snuffelfiets columns that are no reading (or no longer one): not imported.
SNUFFELFIETS_OTHER = ("no2", "voc", "voltage", "accmax", "horizontalaccuracy")
# Snuffelfiets bookkeeping: neither read nor listed as not imported.
SNUFFELFIETS_BOOKKEEPING = ("id", "receivetimestamp", "versionminor")
# Snuffelfiets raw units: what to divide by, and from which firmware version on.
SNUFFELFIETS_SCALE = {"temperature": 10.0, "pm1": 100.0, "pm2_5": 100.0, "pm10": 100.0}
SNUFFELFIETS_SCALE_FROM = {"pm1": 2, "pm2_5": 2, "pm10": 2}
ERRORS = {
    1: "accelerometer not found",
    4: "BME sensor not found",
    8: "BME sensor failed to begin reading",
    16: "GPS not found",
    32: "no GPS fix",
    128: "NO2 sensor not found",
    512: "PM sensor not found",
    1024: "PM measurement failed to start",
    2048: "PM measurement read failure (sensor not ready)",
    4096: "PM measurement accuracy uncertain",
}


class Track(Reader):
    name = "track"
    title = "a track CSV (time, latitude, longitude and values per row)"
    device_prefix = "track-"

    def prepare(self) -> None:
        head = self.header(DELIMITERS)
        if head is None:
            raise self.not_format("it holds no line")
        plan = _plan(head[3])
        missing = [what for what, i in (("time", plan.time), ("latitude", plan.lat),
                                          ("longitude", plan.lon)) if i is None]  # fmt: skip
        if missing or not plan.values:
            lacks = ", ".join(missing) if missing else "no column sensorpipe has a quantity for"
            raise self.not_format(
                f"{lacks} (expected a header like time,latitude,longitude,pm2_5,pm10), "
                f"found {found(head)}"
            )
        o = self.options
        if o.device is None and plan.id is None and o.track_id is None:
            raise self.problem(
                "names no bike or sensor (no entity_id or device_id "
                "column): give --track-id NAME (its rides become device track-NAME) or "
                "--device ID"
            )

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        head = header(text, DELIMITERS)
        assert head is not None
        names = head[3]
        plan = _plan(names)
        unused = plan.unused
        unused_counts = [0] * len(unused)
        o = self.options
        sensor = o.sensor or ("snuffelfiets" if plan.snuffelfiets else "track")
        width = len(names)
        targets: dict[str, tuple[Target | None, str | None]] = {}
        ti, lai, loi, vi = plan.time, plan.lat, plan.lon, plan.version
        assert ti is not None and lai is not None and loi is not None
        for n, raw, f in rows(text, head[2], head[0] + 1, ctx.bad_row):
            if len(f) != width:
                ctx.reject(n, raw, "bad_row", f"{len(f)} columns, the header has {width}")
                continue
            for k, i in enumerate(unused):
                if f[i].strip() not in ("", "0"):
                    unused_counts[k] += 1
            key = f[plan.id].strip() if plan.id is not None else (o.track_id or "")
            found = targets.get(key)
            if found is None:
                found = self._device(ctx, key, sensor)
                targets[key] = found
            target, prefix = found
            if target is None:
                ctx.reject(n, raw, "bad_row", f"bike or sensor id {key[:40]!r} is unusable")
                continue
            t = ctx.observed_at(n, raw, "time", f[ti], target, strip=True)
            if t is None:
                continue
            version = 0
            if vi is not None:
                error = _error(f, plan)
                if error is not None:
                    ctx.reject(n, raw, "device_error", error, target)
                    continue
                try:
                    version = int(f[vi])
                except ValueError:
                    ctx.reject(n, raw, "bad_value", "version_major is not a number", target)
                    continue
            try:
                lat, lon = float(f[lai]), float(f[loi])
            except ValueError:
                ctx.reject(n, raw, "no_position", "latitude/longitude are not numbers", target)
                continue
            if lat == 0 and lon == 0:
                ctx.reject(n, raw, "no_position", "position 0, 0: no GPS fix", target)
                continue
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                ctx.reject(
                    n, raw, "bad_value", f"position {lat}, {lon} is not on the globe", target
                )
                continue
            columns = plan.value_columns(version)
            fields = ctx.air_fields(
                n, raw, f, columns, target, strip=True, rounded=False, sensor=sensor, t=t
            )
            if fields is None or not ctx.declared(n, raw, prefix, target, sensor):
                continue
            ctx.store(n, f"{prefix}{fields},lat={lat!r},lon={lon!r} {t}", target)
        for k, i in enumerate(unused):
            if unused_counts[k]:
                ctx.not_imported[names[i] or f"column {i + 1}"] = unused_counts[k]

    def _device(
        self, ctx: ImportContext, key: str, sensor: str
    ) -> tuple[Target | None, str | None]:
        device_id = f"track-{key.lower()}"
        if self.options.device is None and not is_valid_device_id(device_id):
            return None, None
        kind = "Snuffelfiets bike sensor" if sensor == "snuffelfiets" else "mobile sensor"
        spec = DeviceSpec(
            device_id=device_id,
            purpose=f"{kind} {key}; rides imported from track files",
            sensors=(sensor,),
        )
        target = ctx.target(spec)
        return target, ctx.air_prefix(target, sensor)


class _Plan:
    """Where a track file keeps what: column indexes by role."""

    def __init__(self) -> None:
        self.time: int | None = None
        self.lat: int | None = None
        self.lon: int | None = None
        self.id: int | None = None
        self.version: int | None = None
        self.error: int | None = None
        self.snuffelfiets = False
        # index, column, quantity, divisor of raw values, from which firmware version
        self.values: list[tuple[int, str, str, float, int]] = []
        self.unused: list[int] = []
        self.newest_scale = 0  # the highest firmware version a unit changed at
        self._columns: dict[int, list[ValueColumn]] = {}

    def value_columns(self, version: int) -> list[ValueColumn]:
        """The value columns of a row of firmware `version` (raw units where it has them)."""
        # Every version from the newest threshold on reads alike, as does every one below 0
        # (the thresholds are 0 or more): a file's own numbers make a few lists, not one each.
        key = max(-1, min(version, self.newest_scale))
        columns = self._columns.get(key)
        if columns is None:
            columns = self._columns[key] = [
                value_column(i, name, quantity, divisor if key >= from_version else 1.0)
                for i, name, quantity, divisor, from_version in self.values
            ]
        return columns


def _plan(names: list[str]) -> _Plan:
    plan = _Plan()
    keys = [compact(n) for n in names]
    plan.snuffelfiets = SNUFFELFIETS_MARK in keys
    for role, candidates in (
        ("time", TIME_NAMES),
        ("lat", LAT_NAMES),
        ("lon", LON_NAMES),
        ("id", ID_NAMES),
    ):
        index = next((keys.index(c) for c in candidates if c in keys), None)
        setattr(plan, role, index)
    taken = {plan.time, plan.lat, plan.lon, plan.id}
    if plan.snuffelfiets:
        plan.version = keys.index(SNUFFELFIETS_MARK)
        plan.error = keys.index("errorcode") if "errorcode" in keys else None
        taken |= {plan.version, plan.error}
        taken |= {i for i, key in enumerate(keys) if key in SNUFFELFIETS_BOOKKEEPING}
    seen: set[str] = set()
    for i, (name, key) in enumerate(zip(names, keys, strict=True)):
        if i in taken:
            continue
        quantity = None if plan.snuffelfiets and key in SNUFFELFIETS_OTHER else quantity_named(name)
        if quantity is None or quantity in seen:
            plan.unused.append(i)
            continue
        seen.add(quantity)
        if plan.snuffelfiets:
            divisor = SNUFFELFIETS_SCALE.get(quantity, 1.0)
            from_version = SNUFFELFIETS_SCALE_FROM.get(quantity, 0)
        else:
            divisor, from_version = 1.0, 0
        plan.values.append((i, name, quantity, divisor, from_version))
        plan.newest_scale = max(plan.newest_scale, from_version)
    return plan


def _error(f: list[str], plan: _Plan) -> str | None:
    """What a Snuffelfiets row's error_code says, when it is not 0."""
    if plan.error is None:
        return None
    text = f[plan.error].strip()
    if text in ("", "0"):
        return None
    try:
        code = int(text)
    except ValueError:
        return f"error_code {text[:20]!r} is not a number"
    named = [ERRORS.get(bit, f"code {bit}") for bit in (1 << b for b in range(16)) if code & bit]
    return f"error_code {code}: {', '.join(named)}"


assert set(SNUFFELFIETS_SCALE) <= set(QUANTITIES)
