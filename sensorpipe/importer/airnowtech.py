"""AirNow-Tech exports of US reference monitors (the "table, unpivoted" CSV): one row per
parameter and hour,

    Agency,Site,Site AQS,Param,Param AQS,POC,Method,Duration,Date (UTC),Time (UTC),
    Date (LST),Time (LST),Offset (LST),Value,Unit,QC Code

with dates `M/D/YYYY` and times `H:MM`. Each site (`Site AQS`, the 9-digit AQS code) is a
reference station, device `ref-<AQS code>`; `Agency` is its operator, and the AQS method code
of each parameter its method. An hour without a value is an absent row, not an empty cell.

Times: `Date (UTC)` and `Time (UTC)` are read (the local-standard-time columns say the same
hour); AirNow-Tech labels an hourly value by the hour's start, which is where sensorpipe
stores it (see `reference`). Parameters, by AQS parameter code: 88101 and 88502 (PM2.5) ->
pm2_5, 81102 (PM10) -> pm10, 42602 (NO2, ppb stored as µg/m³ at 20 °C) -> no2, 62101
(temperature) -> temperature, 62201 (relative humidity) -> relative_humidity; the others (O3,
CO, SO2, wind, ...) have no sensorpipe quantity and are counted as not imported. Only hourly
values are imported (`Duration` `1 Hr`): a 24-hour mean is a `bad_row`, not an hour.

QC codes, as sensortoolkit reads them: 0 valid, 1 adjusted, 2 averaged, 3 interpolated,
4 estimated are stored; 5 suspect, 6 suspect (audit failure), 7 insufficient data, 8 missing
and 9 invalid are the agency's verdict that the value must not be used: a dead letter with
reason `qc_invalid`, naming the code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext
from sensorpipe.importer.files import header
from sensorpipe.importer.reader import Reader, found
from sensorpipe.importer.reference import (
    DEVICE_PREFIX,
    QC_INVALID,
    Values,
    instrument,
    scan_methods,
    station_rows,
    station_spec,
)
from sensorpipe.importer.timeparse import LocalTimes

COLUMNS = (
    "Agency", "Site", "Site AQS", "Param", "Param AQS", "POC", "Method", "Duration",
    "Date (UTC)", "Time (UTC)", "Date (LST)", "Time (LST)", "Offset (LST)", "Value", "Unit",
    "QC Code",
)  # fmt: skip
# AQS parameter code -> quantity
PARAMETERS = {
    "88101": "pm2_5",
    "88502": "pm2_5",
    "81102": "pm10",
    "42602": "no2",
    "62101": "temperature",
    "62201": "relative_humidity",
}
QC_CODES = {
    "0": "valid",
    "1": "adjusted",
    "2": "averaged",
    "3": "interpolated",
    "4": "estimated",
    "5": "suspect",
    "6": "suspect, audit failure",
    "7": "insufficient data",
    "8": "missing",
    "9": "invalid",
}
QC_VALID = frozenset({"0", "1", "2", "3", "4"})
HOURLY = frozenset({"1 hr", "1hr", "1 hour", "60 min"})  # `Duration`, case aside


def _imported(param_aqs: str) -> bool:
    return param_aqs.strip() in PARAMETERS


class AirNowTech(Reader):
    name = "airnowtech"
    title = "an AirNow-Tech export"
    device_prefix = DEVICE_PREFIX

    def prepare(self) -> None:
        head = self.header(",")
        names = [] if head is None else head[3]
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise self.not_format(
                f"its header lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                f"(expected AirNow-Tech's unpivoted table: {','.join(COLUMNS)}; found "
                f"{found(head)})"
            )
        self._methods = scan_methods(
            self.file, "Site AQS", "Param", "Method", ("Param AQS", _imported)
        )

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        head = header(text, ",")
        assert head is not None  # prepare() saw it
        names = head[3]
        agency, site, aqs, param, param_aqs, poc, _, duration, date, time_, *_ = (
            names.index(c) for c in COLUMNS
        )
        value, unit, qc = (names.index(c) for c in ("Value", "Unit", "QC Code"))
        times = LocalTimes("%m/%d/%Y %H:%M", UTC)
        values = Values(value, "Value", "Unit")
        quantities: dict[str, str | None] = {}
        spec = self._spec(site, agency)
        for (n, raw, f), target in station_rows(ctx, text, head, aqs, spec):
            name = f[param].strip()
            quantity = quantities.get(name)
            if name not in quantities:
                quantity = PARAMETERS.get(f[param_aqs].strip())
                quantities[name] = quantity
            if quantity is None:
                ctx.not_imported[name] = ctx.not_imported.get(name, 0) + 1
                continue
            if f[duration].strip().casefold() not in HOURLY:
                problem = f"Duration {f[duration][:20]!r}: only hourly values are imported"
                ctx.reject(n, raw, "bad_row", problem, target)
                continue
            t = ctx.observed_at(
                n, raw, "Date (UTC)", f"{f[date].strip()} {f[time_].strip()}", target, parse=times
            )
            if t is None:
                continue
            verdict = f[qc].strip()
            if verdict not in QC_VALID:
                meaning = QC_CODES.get(verdict, "not an AirNow-Tech QC code")
                ctx.reject(
                    n,
                    raw,
                    QC_INVALID,
                    f"QC Code {verdict[:10]!r} ({meaning}): the agency marks the value as not "
                    f"to be used",
                    target,
                )
                continue
            values.store(ctx, (n, raw, f), target, quantity, f[unit].strip(), t, instrument(f[poc]))

    def _spec(self, site: int, agency: int) -> Callable[[str, list[str]], DeviceSpec]:
        def spec(code: str, f: list[str]) -> DeviceSpec:
            methods = self._methods.get(code, {})
            method = "; ".join(f"{p}: AQS method {m}" for p, m in methods.items() if m)
            return station_spec(
                code,
                network="AirNow-Tech (US EPA)",
                name=f[site].strip()[:120],
                operator=f[agency].strip()[:200],
                method=method,
            )

        return spec
