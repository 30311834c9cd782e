"""Reference stations (`import reference airnowtech|luchtmeetnet|eea`) and any logger's CSV
(`import csv`) on constructed files: values and units, hour-start times, QC codes as dead
letters, preambles, byte-order marks, time zones with daylight saving, and the runner's
registry entries and ledger (a second import stores nothing twice)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sensorpipe.importer.base import DeviceSpec, ImportContext, ImportOptions, Target
from sensorpipe.importer.files import FileProblem
from sensorpipe.importer.logger_csv import column_spec
from sensorpipe.importer.reference import read_station
from sensorpipe.importer.runner import Importer, ImportProblem, prepare
from sensorpipe.importer.timeparse import zone
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.registry import DeviceEntry, Registry, load_registry, save_registry

NOW_MS = 1_800_000_000_000


class Parsed:
    def __init__(self, ctx: ImportContext, lines: list[str], specs: dict[str, DeviceSpec]):
        self.ctx = ctx
        self.lines = lines
        self.specs = specs
        self.letters = list(ctx.letters)

    def reasons(self) -> dict[int, str]:
        return {n: reason for n, _, reason, _, _ in self.letters}


def parse(fmt: str, path: Path, **options: Any) -> Parsed:
    opts = ImportOptions(user="tester", **options)
    (parser,) = prepare(fmt, [path], opts)
    out: list[str] = []
    specs: dict[str, DeviceSpec] = {}

    def resolve(spec: DeviceSpec) -> Target:
        device_id = opts.device or spec.device_id
        specs[device_id] = spec
        return Target(device_id, "s1", frozenset(spec.sensors), frozenset(), True)

    def flush(ctx: ImportContext) -> None:
        out.extend(ctx.lines)
        ctx.lines.clear()
        ctx.line_nos.clear()

    ctx = ImportContext(
        fmt,
        parser.file,
        opts,
        resolve=resolve,
        declare=lambda _t, _k, _v: True,
        flush=flush,
        now_ms=NOW_MS,
    )
    with parser.file.open_text() as (text, _):
        parser.parse(ctx, text)
    ctx.flush()
    return Parsed(ctx, out, specs)


def write(tmp: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp / name
    path.write_text(text, encoding=encoding)
    return path


def air(device: str, source: str, fields: dict[str, float], ms: int, sensor: str) -> str:
    vouch = source.split(":")[0]
    tags = {"device_id": device, "site": "s1", "source": source, "vouch": vouch, "sensor": sensor}
    return to_line(Point("air", tags, fields, ms))


H = "Agency,Site,Site AQS,Param,Param AQS,POC,Method,Duration,Date (UTC),Time (UTC),Date (LST),"
H += "Time (LST),Offset (LST),Value,Unit,QC Code\n"
SITE = "OAQ,Burdens Creek,370630099"
T_0500 = 1_564_635_600_000  # 2019-08-01T05:00:00Z


# --- AirNow-Tech ----------------------------------------------------------------------------


def test_airnowtech_hours_units_qc_codes_and_the_station(tmp_path: Path) -> None:
    rows = [
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/1/2019,5:00,8/1/2019,0:00,-05:00,7.5,UG/M3,0",
        f"{SITE},NO2,42602,1,599,1 Hr,8/1/2019,5:00,8/1/2019,0:00,-05:00,4,PPB,0",
        f"{SITE},TEMP,62101,1,40,1 Hr,8/1/2019,6:00,8/1/2019,1:00,-05:00,21.5,C,1",
        f"{SITE},RHUM,62201,1,11,1 Hr,8/1/2019,6:00,8/1/2019,1:00,-05:00,93,PERCENT,0",
        f"{SITE},O3,44201,1,199,1 Hr,8/1/2019,6:00,8/1/2019,1:00,-05:00,30,PPB,0",
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/19/2019,12:00,8/19/2019,7:00,-05:00,10.1,UG/M3,9",
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/19/2019,13:00,8/19/2019,8:00,-05:00,10.1,UG/M3,5",
        f"{SITE},PM2.5-88101,88101,2,238,1 Hr,8/1/2019,5:00,8/1/2019,0:00,-05:00,7.9,UG/M3,0",
        f"{SITE},TEMP,62101,1,40,1 Hr,8/1/2019,7:00,8/1/2019,2:00,-05:00,70.7,F,0",
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/32/2019,5:00,8/1/2019,0:00,-05:00,7,UG/M3,0",
        f"{SITE},PM2.5-88101,88101,1,238,24 Hr,8/2/2019,5:00,8/2/2019,0:00,-05:00,7,UG/M3,0",
    ]
    p = parse("airnowtech", write(tmp_path, "anc.csv", H + "\n".join(rows) + "\n"))
    src, dev = "reference:airnowtech", "ref-370630099"
    assert p.lines == [
        air(dev, src, {"pm2_5": 7.5}, T_0500, "reference"),
        air(dev, src, {"no2": 7.65}, T_0500, "reference"),  # 4 ppb at 20 °C
        air(dev, src, {"temperature": 21.5}, T_0500 + 3_600_000, "reference"),
        air(dev, src, {"relative_humidity": 93.0}, T_0500 + 3_600_000, "reference"),
        air(dev, src, {"pm2_5": 7.9}, T_0500, "reference-2"),  # a second instrument (POC 2)
    ]
    assert p.reasons() == {
        7: "qc_invalid",
        8: "qc_invalid",
        10: "bad_unit",
        11: "bad_timestamp",
        12: "bad_row",  # a 24-hour mean is no hour
    }
    assert "QC Code '9' (invalid)" in p.letters[0][3]
    assert "QC Code '5' (suspect)" in p.letters[1][3]
    assert p.ctx.not_imported == {"O3": 1}
    spec = p.specs[dev]
    assert (spec.source, spec.station_code, spec.operator) == ("reference", "370630099", "OAQ")
    assert spec.method.startswith("PM2.5-88101: AQS method 238; NO2: AQS method 599")
    assert "Burdens Creek" in spec.purpose


def test_a_file_that_is_not_an_airnowtech_export_names_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "Site,Value\n1,2\n")
    with pytest.raises(FileProblem, match=r"x.csv: not an AirNow-Tech export: its header lacks"):
        prepare("airnowtech", [path], ImportOptions(user="t"))


# --- Luchtmeetnet ---------------------------------------------------------------------------


def page(*items: dict[str, Any]) -> str:
    pagination = {"first_page": 1, "last_page": 1, "current_page": 1, "page_list": [1]}
    return json.dumps({"pagination": pagination, "data": list(items)})


def m(formula: str, value: float | None, when: str, station: str | None = "NL99001") -> dict:
    item: dict[str, Any] = {"formula": formula, "value": value, "timestamp_measured": when}
    if station is not None:
        item["station_number"] = station
    return item


def test_luchtmeetnet_hour_ending_labels_are_stored_at_the_hours_start(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p1.json",
        page(
            m("PM25", 7.4, "2024-02-01T13:00:00+00:00"),
            m("NO2", None, "2024-02-01T13:00:00+00:00"),
            m("O3", 40.0, "2024-02-01T13:00:00+00:00"),
            m("PM10", 12.0, "2024-02-01T15:00:00+02:00"),
        ),
    )
    t13 = 1_706_792_400_000  # 2024-02-01T13:00:00Z
    end = parse("luchtmeetnet", path)
    src, dev = "reference:luchtmeetnet", "ref-nl99001"
    assert end.lines == [
        air(dev, src, {"pm2_5": 7.4}, t13 - 3_600_000, "reference"),
        air(dev, src, {"pm10": 12.0}, t13 - 3_600_000, "reference"),  # its offset is read
    ]
    assert end.reasons() == {2: "bad_row"}  # a null value: no value
    assert end.ctx.not_imported == {"O3": 1}
    start = parse("luchtmeetnet", path, hour_label="start")
    assert start.lines[0] == air(dev, src, {"pm2_5": 7.4}, t13, "reference")


def test_a_station_file_names_and_places_the_station(tmp_path: Path) -> None:
    station = {
        "data": {
            "location": "Voorbeeldstad-Straatweg",
            "organisation": "RIVM",
            "geometry": {"type": "point", "coordinates": [5.1201, 52.0902]},
        }
    }
    number, info = read_station(write(tmp_path, "NL99001.json", json.dumps(station)))
    assert (number, info.name, info.operator, info.location) == (
        "NL99001",
        "Voorbeeldstad-Straatweg",
        "RIVM",
        (52.0902, 5.1201),  # GeoJSON is [lon, lat]
    )
    # /stations/{n}/measurements pages leave station_number out: the one --station it is.
    path = write(tmp_path, "p.json", page(m("PM25", 3.0, "2024-02-01T13:00:00Z", None)))
    p = parse("luchtmeetnet", path, stations={number: info})
    spec = p.specs["ref-nl99001"]
    assert (spec.operator, spec.location, spec.station_code) == ("RIVM", (52.0902, 5.1201), number)
    with pytest.raises(ValueError, match=r"name the file after the station number"):
        read_station(write(tmp_path, "station.json", json.dumps(station)))


# --- EEA ------------------------------------------------------------------------------------

EREPORTING = (
    "Countrycode,Namespace,AirQualityNetwork,AirQualityStation,AirQualityStationEoICode,"
    "SamplingPoint,SamplingProcess,Sample,AirPollutant,AirPollutantCode,AveragingTime,"
    "Concentration,UnitOfMeasurement,DatetimeBegin,DatetimeEnd,Validity,Verification\n"
)
ROW = (
    "NL,NL.RIVM.AQ,NET-NL001A,STA-NL99001,NL99001,SPO-NL99001_06001_100,SPP-NL_A_BETA,"
    "SAM-NL99001_6001,PM2.5,http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001,{avg},"
    "{value},µg/m3,{begin},2019-01-01 02:00:00 +01:00,{validity},1"
)


def test_eea_e_reporting_times_in_utc_plus_one_and_validity(tmp_path: Path) -> None:
    rows = [
        ROW.format(avg="hour", value="8.2", begin="2019-01-01 01:00:00 +01:00", validity="1"),
        ROW.format(avg="hour", value="0.5", begin="2019-01-01 02:00:00 +01:00", validity="3"),
        ROW.format(avg="hour", value="99", begin="2019-01-01 03:00:00 +01:00", validity="-1"),
        ROW.format(avg="day", value="9", begin="2019-01-01 00:00:00 +01:00", validity="1"),
        ROW.format(avg="hour", value="x", begin="2019-01-01 04:00:00 +01:00", validity="1"),
    ]
    text = EREPORTING + "\n".join(rows) + "\n"
    p = parse("eea", write(tmp_path, "NL_6001_99001_2019_timeseries.csv", text, "utf-16"))
    t = 1_546_300_800_000  # 2019-01-01T00:00:00Z = 01:00 +01:00
    src, dev = "reference:eea", "ref-nl99001"
    assert p.lines == [
        air(dev, src, {"pm2_5": 8.2}, t, "reference"),
        air(dev, src, {"pm2_5": 0.5}, t + 3_600_000, "reference"),
    ]
    assert p.reasons() == {4: "qc_invalid", 5: "bad_row", 6: "bad_value"}
    spec = p.specs[dev]
    assert (spec.operator, spec.method) == ("NL.RIVM.AQ", "PM2.5: SPP-NL_A_BETA")


def test_eea_download_form_without_offsets_is_utc_plus_one(tmp_path: Path) -> None:
    point = "NL/SPO-NL99001_06001_100,6001"
    text = (
        "Samplingpoint,Pollutant,Start,End,Value,Unit,AggType,Validity,Verification,ResultTime\n"
        f"{point},2025-03-01 01:00:00,2025-03-01 02:00:00,8.2,ug.m-3,hour,1,3,2025-03-01 03:10\n"
        f"{point},2025-03-01 02:00:00,2025-03-01 03:00:00,-999,ug.m-3,hour,1,3,\n"
        "NL/SPO-NL99001_00007_100,7,2025-03-01 02:00:00,2025-03-01 03:00:00,50,ug.m-3,hour,1,3,\n"
    )
    p = parse("eea", write(tmp_path, "download.csv", text))
    dev = "ref-nl-spo-nl99001_06001_100"
    assert p.lines == [air(dev, "reference:eea", {"pm2_5": 8.2}, 1_740_787_200_000, "reference")]
    assert p.reasons() == {3: "bad_row"}
    assert p.ctx.not_imported == {"7": 1}


# --- any logger's CSV -----------------------------------------------------------------------

PREAMBLE = "Serial ID: Logger 01\nInstrument Data Export\n(UTC-05:00) Eastern Time\n\n"
LOGGER = "Time,NO2 (ppb),PM2.5 (µg/m³),TEMP (°C),RH (%),Inlet\n"


def logger(**options: Any) -> dict[str, Any]:
    columns = options.pop("columns", ["PM2.5 (µg/m³)=pm2_5", "TEMP (°C)=temperature"])
    return {
        "device": "rt01",
        "time_column": "Time",
        "columns": tuple(column_spec(c) for c in columns),
        **options,
    }


def test_a_preamble_and_a_bom_are_skipped_and_local_times_become_utc(tmp_path: Path) -> None:
    text = (
        PREAMBLE
        + LOGGER
        + (
            "8/1/2019 7:11,,5.4,24.8,95.3,Sample\n"
            "8/1/2019 7:12,3.1,,,95.1,Sample\n"  # no mapped value: a bad_row
            "8/1/2019 7:13,3.1,5.6,,95.1\n"  # a trailing cell left out; an empty cell skipped
            "8/1/2019 25:13,3.1,5.6,,95.1,Sample\n"
        )
    )
    path = write(tmp_path, "rt01.csv", "\ufeff" + text)
    options = logger(time_format="%m/%d/%Y %H:%M", timezone=zone("UTC-05:00"))
    p = parse("csv", path, **options)
    t = 1_564_661_460_000  # 2019-08-01T12:11:00Z
    assert p.lines == [
        air("rt01", "import:csv", {"pm2_5": 5.4, "temperature": 24.8}, t, "logger"),
        air("rt01", "import:csv", {"pm2_5": 5.6}, t + 120_000, "logger"),
    ]
    assert p.reasons() == {7: "bad_row", 9: "bad_timestamp"}
    assert p.ctx.not_imported == {"NO2 (ppb)": 3, "RH (%)": 4, "Inlet": 3}


def test_a_zone_name_follows_daylight_saving_both_ways(tmp_path: Path) -> None:
    text = "time;pm\n" + "".join(
        f"{t};1\n"
        for t in (
            "2024-03-31 01:30:00",
            "2024-03-31 02:30:00",  # skipped by the clocks: refused
            "2024-03-31 03:30:00",
            "2024-10-27 02:30:00",  # summer time (the first 02:30)
            "2024-10-27 02:15:00",  # earlier than the row before: winter time (the second)
            "2024-10-27 02:45:00",  # winter time still
            "2024-10-27 03:30:00",
        )
    )
    p = parse(
        "csv",
        write(tmp_path, "dst.csv", text),
        **logger(columns=["pm=pm10"], timezone=zone("Europe/Amsterdam"), time_column="time"),
    )
    stamps = [int(line.rsplit(" ", 1)[1]) for line in p.lines]
    march = 1_711_845_000_000  # 2024-03-31T00:30:00Z
    october = 1_729_989_000_000  # 2024-10-27T00:30:00Z
    hour, quarter = 3_600_000, 900_000
    assert stamps == [
        march,
        march + hour,
        october,
        october + hour - quarter,
        october + hour + quarter,
        october + 2 * hour,
    ]
    assert p.reasons() == {3: "bad_timestamp"}
    assert "does not exist in Europe/Amsterdam" in p.letters[0][3]


def test_units_are_converted_or_refused_in_one_line() -> None:
    assert column_spec("Druck=pressure:Pa") == ("Druck", "pressure", 100.0)
    header, quantity, divisor = column_spec("NO2 (ppb)=no2:ppb")
    assert (header, quantity, round(1 / divisor, 4)) == ("NO2 (ppb)", "no2", 1.9125)
    assert column_spec("PM2.5 (µg/m³)=pm2_5:µg/m³") == ("PM2.5 (µg/m³)", "pm2_5", 1.0)
    with pytest.raises(ValueError, match=r"unit 'mg/m3' cannot be converted to pm2_5's ug/m3"):
        column_spec("PM=pm2_5:mg/m3")
    with pytest.raises(ValueError, match=r"'radon' is no quantity"):
        column_spec("Rn=radon")


def test_a_column_the_file_lacks_or_a_time_format_that_does_not_fit(tmp_path: Path) -> None:
    path = write(tmp_path, "rt01.csv", PREAMBLE + LOGGER + "8/1/2019 7:11,,5.4,24.8,95.3,S\n")
    opts = ImportOptions(user="t", **logger(columns=["PM25=pm2_5"]))
    with pytest.raises(FileProblem, match=r"rt01.csv: no row .* holds 'PM25' .* line 5 comes"):
        prepare("csv", [path], opts)
    opts = ImportOptions(user="t", **logger())  # ISO 8601 by default
    with pytest.raises(FileProblem, match=r"line 6: Time '8/1/2019 7:11' cannot be read as ISO"):
        prepare("csv", [path], opts)


# --- through the runner: registry, dead letters, ledger ---------------------------------------


class FakeInflux:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/write":
            self.lines += request.content.decode().split("\n")
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{}]})


def run(tmp: Path, fake: FakeInflux, fmt: str, path: Path, **options: Any) -> Any:
    opts = ImportOptions(user="alice", **options)
    client = InfluxClient("http://influx", "sp", transport=httpx.MockTransport(fake.handler))
    importer = Importer(
        fmt,
        opts,
        influx=client,
        registry_path=tmp / "registry.toml",
        deadletter_path=tmp / "deadletter.sqlite",
        ledger_path=tmp / "ledger.sqlite",
        retry_backoff_s=0.0,
    )
    return importer.run(prepare(fmt, [path], opts))


def test_a_station_is_registered_as_a_reference_and_imported_once(tmp_path: Path) -> None:
    rows = [
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/1/2019,5:00,8/1/2019,0:00,-05:00,7.5,UG/M3,0",
        f"{SITE},PM2.5-88101,88101,1,238,1 Hr,8/1/2019,6:00,8/1/2019,1:00,-05:00,10.1,UG/M3,9",
    ]
    path = write(tmp_path, "anc.csv", H + "\n".join(rows) + "\n")
    fake = FakeInflux()
    (first,) = run(tmp_path, fake, "airnowtech", path)
    assert (first.stored, dict(first.rejected), first.new_devices) == (
        1,
        {"qc_invalid": 1},
        ["ref-370630099"],
    )
    entry = load_registry(tmp_path / "registry.toml").devices["ref-370630099"]
    assert (entry.source, entry.station_code, entry.operator) == ("reference", "370630099", "OAQ")
    assert entry.method == "PM2.5-88101: AQS method 238"
    written = len(fake.lines)
    assert any(",source=reference:airnowtech,vouch=reference " in x for x in fake.lines)
    (again,) = run(tmp_path, fake, "airnowtech", path)
    assert again.skipped is not None and len(fake.lines) == written


def test_a_logger_device_must_be_registered_or_registered_by_the_import(tmp_path: Path) -> None:
    path = write(tmp_path, "rt01.csv", PREAMBLE + LOGGER + "2019-08-01 07:11:00,,5.4,24.8,95,S\n")
    fake = FakeInflux()
    with pytest.raises(ImportProblem, match=r"--device rt01: not registered .* add --register"):
        run(tmp_path, fake, "csv", path, **logger())
    save_registry(
        Registry(devices={"pi1": DeviceEntry(site="s", password_hash="x")}),
        tmp_path / "registry.toml",
    )
    with pytest.raises(ImportProblem, match=r"--device pi1 is registered with source edge"):
        run(tmp_path, fake, "csv", path, **logger(device="pi1"))
    (result,) = run(tmp_path, fake, "csv", path, **logger(register=True, site="lab"))
    assert (result.stored, result.new_devices) == (1, ["rt01"])
    entry = load_registry(tmp_path / "registry.toml").devices["rt01"]
    assert (entry.source, entry.site, entry.sensors) == ("import", "lab", ["logger"])
    (again,) = run(tmp_path, fake, "csv", path, **logger())
    assert again.skipped is not None


def test_the_register_shows_a_stations_code_operator_and_method_in_english_and_dutch() -> None:
    from sensorpipe.query.export import export

    entry = DeviceEntry(
        site="burdens-creek",
        source="reference",
        station_code="370630099",
        operator="OAQ",
        method="PM2.5-88101: AQS method 238",
    )
    registry = Registry(devices={"ref-370630099": entry})
    (record,) = json.loads(export(registry, None, "json"))
    assert (record["station_code"], record["operator"], record["method"]) == (
        "370630099",
        "OAQ",
        "PM2.5-88101: AQS method 238",
    )
    assert record["source_note"].startswith("an official reference station")
    page = export(registry, None, "html", lang="nl")
    assert "<dt>Referentiestation</dt>" in page
    assert "370630099; OAQ; PM2.5-88101: AQS method 238" in page
    assert "een officieel referentiestation van een meetnet" in page
    assert "Reference station" in export(registry, None, "html", lang="en")


@pytest.mark.parametrize("fmt", ["%m/%d/%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y  %H:%M:%S"])
def test_the_fast_reading_of_numeric_formats_is_strptimes(fmt: str) -> None:
    from sensorpipe.importer.timeparse import LocalTimes, TimestampError

    tz = zone("-05:00")
    fast, slow = LocalTimes(fmt, tz), LocalTimes(fmt, tz)
    slow._fast = None  # strptime alone
    assert fast._fast is not None
    texts = [
        "8/1/2019 7:11", "08/01/2019 07:11", "13/01/2019 7:11", "2/30/2019 1:00",
        "8/1/2019 24:00", "8/1/2019 7:60", "8/1/2019  7:11", "2019-08-01T07:11:00",
        "2019-08-01t07:11:00", "01.08.2019 07:11:00", "0/1/2019 1:00", "8/1/1969 1:00",
        "8/1/2019 7:11 ", "2019-08-01T07:11:60",
    ]  # fmt: skip

    def read(times: LocalTimes, text: str) -> int | str:
        try:
            return times(text)
        except TimestampError:
            return "refused"

    read_fast = [read(fast, t) for t in texts]
    assert read_fast == [read(slow, t) for t in texts]
    assert any(isinstance(ms, int) for ms in read_fast)  # each format reads some


@pytest.mark.parametrize("text", ["05:00", "01:00", "0100", "A5", "15:00"])
def test_an_offset_needs_its_sign(text: str) -> None:
    """`--timezone 01:00` is no offset west or east until it says which: refused, never read
    as a negative offset (a character range once took digits and letters for a sign)."""
    with pytest.raises(ValueError, match="is no time zone"):
        zone(text)


@pytest.mark.parametrize(
    ("text", "hours"), [("+02:00", 2), ("-05:00", -5), ("UTC-05:00", -5), ("\u221205:00", -5)]
)
def test_an_offset_with_its_sign(text: str, hours: int) -> None:
    offset = zone(text).utcoffset(None)
    assert offset is not None and offset.total_seconds() == hours * 3600


def _minutes(days: range, per_day: int = 30) -> str:
    """Logger rows a minute apart, `per_day` a day, on August `days` of 2019 (m/d/Y)."""
    return "".join(
        f"8/{d}/2019 {m // 60}:{m % 60:02d},1,2.5,20.0,80,S\n" for d in days for m in range(per_day)
    )


def test_day_and_month_the_other_way_round_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    """`%d/%m` on a file written `%m/%d`: its first days read (8 January, 8 February ...) and
    the rest do not, or, where no day passes the 12th, every day jumps a month. Either way one
    line and nothing stored, not months of wrong dates and a dead letter per row."""
    swapped = logger(time_format="%d/%m/%Y %H:%M", timezone=zone("-05:00"))
    path = write(tmp_path, "rt01.csv", PREAMBLE + LOGGER + _minutes(range(1, 21)))
    with pytest.raises(FileProblem, match=r"240 of 600 times cannot be read as --time-format"):
        prepare("csv", [path], ImportOptions(user="t", **swapped))
    path = write(tmp_path, "rt02.csv", PREAMBLE + LOGGER + _minutes(range(1, 13)))
    with pytest.raises(FileProblem, match=r"11 of 360 times jump by more than a week"):
        prepare("csv", [path], ImportOptions(user="t", **swapped))
    # Read the right way round, both files import whole.
    right = logger(time_format="%m/%d/%Y %H:%M", timezone=zone("-05:00"))
    assert len(parse("csv", path, **right).lines) == 360


def test_a_few_bad_times_are_dead_letters_not_a_refusal(tmp_path: Path) -> None:
    """A logger's odd row (a 25th hour, a gap of a week) is its own dead letter or simply
    stored: the file is refused only where more than 1 % of its rows (and 3) fail or jump."""
    rows = _minutes(range(1, 11), per_day=60)  # 600 rows
    odd = "8/20/2019 25:00,1,2.5,20.0,80,S\n8/27/2019 0:01,1,2.5,20.0,80,S\n"
    path = write(tmp_path, "rt01.csv", PREAMBLE + LOGGER + rows + odd)
    p = parse("csv", path, **logger(time_format="%m/%d/%Y %H:%M", timezone=zone("-05:00")))
    assert len(p.lines) == 601 and list(p.reasons().values()) == ["bad_timestamp"]
