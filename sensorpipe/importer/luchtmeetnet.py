"""Luchtmeetnet (the Dutch national air-quality network, api.luchtmeetnet.nl/open_api): the
`/measurements` answers saved as files, one page a file,

    {"pagination": {...}, "data": [{"station_number": "NL10404", "formula": "PM25",
      "value": 7.4, "timestamp_measured": "2024-02-01T13:00:00+00:00"}, ...]}

(`/stations/{number}/measurements` pages too, which may leave `station_number` out: their rows
belong to the station of the only `--station` file given). Each station is device
`ref-<number>` (`ref-nl10404`); `--station FILE` adds what a `/stations/{number}` answer says
of it (name, location, organisation), the file named after the number (`NL10404.json`).
Formulas: `PM25` -> pm2_5, `PM10` -> pm10, `NO2` -> no2 (all in µg/m³, the API's unit; it
carries no unit field); the others (NO, O3, SO2, FN, LKI, ...) are counted as not imported. A
`null` value is a `bad_row` (no value), like a row without values elsewhere.

Times: `timestamp_measured` is read with its offset (UTC in every answer seen). Luchtmeetnet
does not document whether it labels an hour by its end or its start; third parties read
`18:00` as the hour 17:00-18:00 (hour-ending), the default here (`--hour-label end`): such a
value is stored at 17:00, the hour's start, as sensorpipe's hourly means are. With
`--hour-label start` a timestamp is stored as it is. The values are unvalidated (the network
revises them later); importing a revised download again overwrites them.
"""

from __future__ import annotations

from collections.abc import Iterator

from sensorpipe.importer.base import ImportContext, Target
from sensorpipe.importer.fields import Columns
from sensorpipe.importer.reader import ColumnRow, ColumnsReader
from sensorpipe.importer.reference import DEVICE_PREFIX, Values, station_spec

KEYS = ("station_number", "formula", "value", "timestamp_measured")
STATION, FORMULA, VALUE, TIME = range(4)
FORMULAS = {"PM25": "pm2_5", "PM10": "pm10", "NO2": "no2"}
HOUR_MS = 3_600_000
UNIT = "ug/m3"  # the API's, for every formula imported (its JSON names none)


class Luchtmeetnet(ColumnsReader):
    name = "luchtmeetnet"
    title = "a Luchtmeetnet /measurements answer"
    device_prefix = DEVICE_PREFIX
    columns = Columns(KEYS)
    json_key = "data"
    json_shape = (
        'Luchtmeetnet\'s /measurements JSON, {"pagination": ..., "data": [{"station_number": '
        '..., "formula": ..., "value": ..., "timestamp_measured": ...}]}'
    )

    def prepare(self) -> None:
        keys, first = self.peek()
        if not self.is_json:
            raise self.not_format(f"expected {self.json_shape}")
        missing = [k for k in KEYS[1:] if k not in keys]
        if first is not None and missing:
            raise self.not_format(f"its first measurement lacks {', '.join(missing)}")
        stations = self.options.stations
        if first is not None and not first[STATION] and len(stations) != 1:
            raise self.problem(
                "its measurements name no station_number (a /stations/{number}/measurements "
                "answer): give that station's /stations/{number} answer with --station "
                "NL10404.json"
            )

    def read(self, ctx: ImportContext, source: Iterator[ColumnRow]) -> None:
        o = self.options
        shift = HOUR_MS if o.hour_label == "end" else 0
        only = next(iter(o.stations)) if len(o.stations) == 1 else None
        values = Values(VALUE, "value", "unit")
        targets: dict[str, Target] = {}
        for n, raw, r in source:
            number = r[STATION].strip().upper() or only
            if not number:
                ctx.reject(n, raw, "bad_row", "names no station_number")
                continue
            target = targets.get(number)
            if target is None:
                info = o.stations.get(number)
                target = ctx.target(
                    station_spec(
                        number[:100],
                        network="Luchtmeetnet",
                        name=info.name if info else "",
                        operator=info.operator if info else "",
                        location=info.location if info else None,
                    )
                )
                targets[number] = target
            quantity = FORMULAS.get(r[FORMULA])
            if quantity is None:
                ctx.not_imported[r[FORMULA][:40]] = ctx.not_imported.get(r[FORMULA][:40], 0) + 1
                continue
            t = ctx.observed_at(n, raw, "timestamp_measured", r[TIME], target)
            if t is None:
                continue
            values.store(ctx, (n, raw, r), target, quantity, UNIT, t - shift)
