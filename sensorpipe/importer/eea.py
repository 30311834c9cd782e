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
from datetime import timedelta, timezone
from typing import IO

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target
from sensorpipe.importer.fields import unit_divisor
from sensorpipe.importer.files import header, rows
from sensorpipe.importer.reader import Reader, found
from sensorpipe.importer.reference import (
    DEVICE_PREFIX,
    QC_INVALID,
    SENSOR,
    Columns,
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
        if self._form == "download":
            return
        at = [names.index(c) for c in _READ["e-reporting"]]
        width = len(names)
        with self.file.open_text() as (text, _):
            start = header(text, ",")
            assert start is not None
            for _, _, f in rows(text, ",", start[0] + 1):
                if len(f) != width:
                    continue
                methods = self._methods.setdefault(f[at[0]].strip(), {})
                notation = f[at[5]].strip()
                if notation and notation not in methods and len(methods) < 20:
                    methods[notation] = f[at[3]].strip()

    def parse(self, ctx: ImportContext, text: IO[str]) -> None:
        head = header(text, ",")
        assert head is not None  # prepare() saw it
        names = head[3]
        width = len(names)
        station, name, operator, _, pollutant, notation, averaging, value, unit, begin, valid = (
            names.index(c) if c else -1 for c in _READ[self._form]
        )
        times = LocalTimes(None, EEA_HOURLY_ZONE)
        columns = Columns(value, names[value])
        targets: dict[str, Target] = {}
        quantities: dict[str, str | None] = {}
        divisors: dict[tuple[str, str], float | None] = {}
        for n, raw, f in rows(text, ",", head[0] + 1, ctx.bad_row):
            if len(f) != width:
                ctx.reject(n, raw, "bad_row", "its columns do not match the header")
                continue
            code = f[station].strip()
            target = targets.get(code)
            if target is None:
                if not code:
                    ctx.reject(n, raw, "bad_row", f"{names[station]} is empty: no station")
                    continue
                target = ctx.target(
                    self._spec(
                        code,
                        f[name].strip() if name >= 0 else "",
                        f[operator].strip() if operator >= 0 else "",
                    )
                )
                targets[code] = target
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
            key = (quantity, f[unit].strip())
            if key not in divisors:
                divisors[key] = unit_divisor(*key)
            divisor = divisors[key]
            if divisor is None:
                ctx.reject(
                    n,
                    raw,
                    "bad_unit",
                    f"{names[unit]} {key[1][:20]!r} cannot be converted to {quantity}'s unit",
                    target,
                )
                continue
            fields = ctx.air_fields(n, raw, f, columns(quantity, divisor), target, strip=True)
            if fields is None:
                continue
            prefix = ctx.air_prefix(target, SENSOR)
            if ctx.declared(n, raw, prefix, target, SENSOR):
                ctx.store(n, f"{prefix}{fields} {t}", target)

    def _spec(self, code: str, name: str, operator: str) -> DeviceSpec:
        methods = self._methods.get(code, {})
        method = "; ".join(f"{p}: {m}" for p, m in methods.items() if m)
        return station_spec(
            code, network="the EEA's air-quality download", name=name, operator=operator,
            method=method,
        )  # fmt: skip
