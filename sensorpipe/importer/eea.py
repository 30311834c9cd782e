"""The European Environment Agency's air-quality download: the e-Reporting time-series CSV
(E1a validated, E2a up-to-date; files `*_timeseries.csv`),

    Countrycode,Namespace,AirQualityNetwork,AirQualityStation,AirQualityStationEoICode,
    SamplingPoint,SamplingProcess,Sample,AirPollutant,AirPollutantCode,AveragingTime,
    Concentration,UnitOfMeasurement,DatetimeBegin,DatetimeEnd,Validity,Verification

and the newer download service's table as CSV (its parquet files' columns,
`Samplingpoint,Pollutant,Start,End,Value,Unit,AggType,Validity,Verification,ResultTime,...`).

Devices: in the e-Reporting form each station (`AirQualityStationEoICode`, e.g. `NL00418`) is
device `ref-<code>`, its `Namespace` the operator and each pollutant's `SamplingProcess` the
method; the newer form names sampling points only (`NL/SPO-NL00418_06001_100`, the station's
metadata is another download), so each sampling point is a device of its own.

Pollutants, by the eionet vocabulary's id (`AirPollutantCode`'s last part, or `Pollutant`):
6001 -> pm2_5, 5 -> pm10, 8 -> no2; the others are counted as not imported. Only hourly values
(`AveragingTime`/`AggType` `hour`) are imported; a daily one is a `bad_row`. Units `µg/m3` and
`ug.m-3` are µg/m³.

Times: the interval's begin (`DatetimeBegin`, `Start`) is the hour's start, where sensorpipe
stores an hourly value (see `reference`). The EEA writes hourly data in UTC+01:00: a time with
an offset is read with it, one without (the newer form) as UTC+01:00 (not `Etc/GMT+1`, which
is UTC-01:00).

Validity: 1 valid, 2 valid (below the detection limit), 3 valid (below the detection limit,
replaced by half of it) and 4 valid (ozone, CCQM.01 calibration) are stored; 0 and below
(-1 not valid, -99 not valid because of maintenance or calibration) are dead letters with
reason `qc_invalid`. `-999` as a value is the newer form's mark for "missing": a `bad_row`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext
from sensorpipe.importer.files import header
from sensorpipe.importer.reader import Reader, found
from sensorpipe.importer.reference import (
    DEVICE_PREFIX,
    QC_INVALID,
    Values,
    scan_methods,
    station_rows,
    station_spec,
)
from sensorpipe.importer.timeparse import LocalTimes

EREPORTING = (
    "Countrycode", "Namespace", "AirQualityNetwork", "AirQualityStation",
    "AirQualityStationEoICode", "SamplingPoint", "SamplingProcess", "Sample", "AirPollutant",
    "AirPollutantCode", "AveragingTime", "Concentration", "UnitOfMeasurement", "DatetimeBegin",
    "DatetimeEnd", "Validity", "Verification",
)  # fmt: skip
DOWNLOAD = ("Samplingpoint", "Pollutant", "Start", "End", "Value", "Unit", "AggType", "Validity")
# The columns each form is read by: station, name, operator, method, pollutant, notation,
# averaging, value, unit, begin, validity ("" where the form has none).
_READ = {
    "e-reporting": (
        "AirQualityStationEoICode", "AirQualityStation", "Namespace", "SamplingProcess",
        "AirPollutantCode", "AirPollutant", "AveragingTime", "Concentration",
        "UnitOfMeasurement", "DatetimeBegin", "Validity",
    ),
    "download": (
        "Samplingpoint", "", "", "", "Pollutant", "Pollutant", "AggType", "Value", "Unit",
        "Start", "Validity",
    ),
}  # fmt: skip
POLLUTANTS = {"6001": "pm2_5", "5": "pm10", "8": "no2"}
EEA_HOURLY_ZONE = timezone(timedelta(hours=1))
_SPACED_OFFSET = re.compile(r"\s+([+-][0-9]{2}:?[0-9]{2})$")
MISSING = "-999"


def _pollutant_id(text: str) -> str:
    """`http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001` or `6001` -> `6001`."""
    return text.strip().rstrip("/").rsplit("/", 1)[-1]


class Eea(Reader):
    name = "eea"
    title = "an EEA air-quality download CSV"
    device_prefix = DEVICE_PREFIX

    def prepare(self) -> None:
        head = self.header(",")
        names = [] if head is None else head[3]
        if all(c in names for c in EREPORTING):
            self._form = "e-reporting"
        elif all(c in names for c in DOWNLOAD):
            self._form = "download"
        else:
            raise self.not_format(
                f"expected the e-Reporting header ({','.join(EREPORTING[:5])},...,Validity,"
                f"Verification) or the download service's ({','.join(DOWNLOAD)},...); found "
                f"{found(head)}"
            )
        # Each station's sampling process per pollutant, for its registry entry.
        self._methods: dict[str, dict[str, str]] = {}
        if self._form == "e-reporting":
            self._methods = scan_methods(
                self.file,
                "AirQualityStationEoICode",
                "AirPollutant",
                "SamplingProcess",
                ("AirPollutantCode", lambda pid: _pollutant_id(pid) in POLLUTANTS),
            )

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        head = header(text, ",")
        assert head is not None  # prepare() saw it
        names = head[3]
        station, name, operator, _, pollutant, notation, averaging, value, unit, begin, valid = (
            names.index(c) if c else -1 for c in _READ[self._form]
        )
        times = LocalTimes(None, EEA_HOURLY_ZONE)
        values = Values(value, names[value], names[unit])
        quantities: dict[str, str | None] = {}
        spec = self._spec(name, operator)
        for (n, raw, f), target in station_rows(ctx, text, head, station, spec):
            pid = f[pollutant]
            quantity = quantities.get(pid)
            if pid not in quantities:
                quantity = POLLUTANTS.get(_pollutant_id(pid))
                quantities[pid] = quantity
            if quantity is None:
                label = (f[notation].strip() or pid)[:40]
                ctx.not_imported[label] = ctx.not_imported.get(label, 0) + 1
                continue
            if f[averaging].strip().casefold() != "hour":
                ctx.reject(
                    n,
                    raw,
                    "bad_row",
                    f"{names[averaging]} {f[averaging][:20]!r}: only hourly values are imported",
                    target,
                )
                continue
            when = _SPACED_OFFSET.sub(r"\1", f[begin].strip())
            t = ctx.observed_at(n, raw, names[begin], when, target, parse=times)
            if t is None:
                continue
            verdict = f[valid].strip()
            try:
                validity = int(verdict)
            except ValueError:
                validity = 0
            if validity <= 0:
                ctx.reject(
                    n,
                    raw,
                    QC_INVALID,
                    f"Validity {verdict[:10]!r}: the reporting agency marks the value as not valid",
                    target,
                )
                continue
            if f[value].strip() == MISSING:
                ctx.reject(n, raw, "bad_row", f"{names[value]} -999: the EEA's mark for missing")
                continue
            values.store(ctx, (n, raw, f), target, quantity, f[unit].strip(), t)

    def _spec(self, name: int, operator: int) -> Callable[[str, list[str]], DeviceSpec]:
        def spec(code: str, f: list[str]) -> DeviceSpec:
            methods = self._methods.get(code, {})
            return station_spec(
                code,
                network="the EEA's air-quality download",
                name=f[name].strip() if name >= 0 else "",
                operator=f[operator].strip() if operator >= 0 else "",
                method="; ".join(f"{p}: {m}" for p, m in methods.items() if m),
            )

        return spec
