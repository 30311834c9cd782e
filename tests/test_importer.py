"""History file parsers on exact sample files of each format (tests/data/import), their
rejections, strict times, CSV splitting, and line protocol byte-identical to `to_line`."""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.importer.base import DeviceSpec, ImportContext, ImportOptions, Target
from sensorpipe.importer.files import FileProblem, inspect, rows
from sensorpipe.importer.lines import series_prefix
from sensorpipe.importer.runner import FORMATS, prepare
from sensorpipe.importer.timeparse import TimestampError, utc_ms
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.messages import Reading
from sensorpipe.protocol.quantities import plausibility_error

DATA = Path(__file__).parent / "data" / "import"
NOW_MS = 1_800_000_000_000  # 2027: every sample lies before it


@dataclass
class Parsed:
    lines: list[str]
    letters: list[tuple[int, str, str, str, str | None]]
    ctx: ImportContext
    specs: dict[str, DeviceSpec] = field(default_factory=dict)

    def reasons(self) -> dict[int, str]:
        return {line: reason for line, _, reason, _, _ in self.letters}


def parse(
    fmt: str, name: str | Path, declared: frozenset[str] | None = None, **options: Any
) -> Parsed:
    """Parse a sample file (a name under DATA, or a path) with a context that records, as the
    runner's would."""
    opts = ImportOptions(user="tester", **options)
    (parser,) = prepare(fmt, [DATA / name], opts)
    out: list[str] = []
    specs: dict[str, DeviceSpec] = {}
    targets: dict[str, Target] = {}

    def resolve(spec: DeviceSpec) -> Target:
        device_id = opts.device or spec.device_id
        specs.setdefault(device_id, spec)
        if declared is None:  # a device the import registers: what the file says
            sensors, directions = frozenset(spec.sensors), frozenset(spec.directions)
        else:  # an existing device's own declaration, with the default directions
            sensors, directions = declared, frozenset({"left_to_right", "right_to_left"})
        return targets.setdefault(
            device_id, Target(device_id, "s1", sensors, directions, declared is None)
        )

    def declare(target: Target, kind: str, value: str) -> bool:
        if not target.may_declare:
            return False
        if kind == "sensor":
            target.sensors = target.sensors | {value}
        else:
            target.directions = target.directions | {value}
        return True

    def flush(ctx: ImportContext) -> None:
        out.extend(ctx.lines)
        ctx.lines.clear()
        ctx.line_nos.clear()

    ctx = ImportContext(
        fmt, parser.file, opts, resolve=resolve, declare=declare, flush=flush, now_ms=NOW_MS
    )
    with parser.file.open_text() as (text, _):
        parser.parse(ctx, text)
    ctx.flush()
    return Parsed(out, list(ctx.letters), ctx, specs)


def tags(device: str, fmt: str, **extra: str) -> dict[str, str]:
    return {
        "device_id": device,
        "site": "s1",
        "source": f"import:{fmt}",
        "vouch": "import",
        **extra,
    }


# --- Sensor.Community ---------------------------------------------------------------------


def test_sds011_archive_rows_become_air_points_byte_identical_to_to_line() -> None:
    p = parse("sensor-community", "2024-03-01_sds011_sensor_12345.csv")
    t = tags("sc-12345", "sensor-community", sensor="sds011")
    assert p.lines == [
        to_line(Point("air", t, {"pm10": 28.03, "pm2_5": 17.0}, 1709251294000)),
        to_line(Point("air", t, {"pm10": 26.4, "pm2_5": 16.1}, 1709251441000)),
        to_line(Point("air", t, {"pm10": 25.93, "pm2_5": 15.87}, 1709251588000)),
        to_line(Point("air", t, {"pm10": 27.1}, 1709251735000)),  # P2 empty: PM10 alone
    ]
    assert p.letters == []
    spec = p.specs["sc-12345"]
    assert spec.sensors == ("sds011",) and spec.location == (52.09, 5.121)


def test_bme280_pressure_in_pa_is_stored_in_hpa() -> None:
    p = parse("sensor-community", "2024-03-01_bme280_sensor_12346.csv")
    t = tags("sc-12346", "sensor-community", sensor="bme280")
    fields = {"pressure": 1013.252, "temperature": 7.85, "relative_humidity": 81.23}
    assert p.lines[0] == to_line(Point("air", t, fields, 1709251296000))
    assert len(p.lines) == 3


def test_gzipped_sps30_file_keeps_pm4_number_concentrations_and_typical_size() -> None:
    p = parse("sensor-community", "2024-03-01_sps30_sensor_12347.csv.gz")
    t = tags("sc-12347", "sensor-community", sensor="sps30")
    fields = {
        "pm10": 9.61,
        "pm4": 9.4,
        "pm2_5": 8.95,
        "pm1": 7.2,
        "number_pm10": 59.1,
        "number_pm4": 59.0,
        "number_pm2_5": 58.8,
        "number_pm1": 57.1,
        "number_pm0_5": 45.2,
        "particle_size_typical": 0.56,
    }
    assert p.lines[0] == to_line(Point("air", t, fields, 1709251212000))
    assert len(p.lines) == 2 and p.letters == [] and p.ctx.not_imported == {}


# The SPS30 archive header as archive.sensor.community writes it (YYYY-MM-DD_sps30_sensor_<id>
# .csv): the same in the scripts of two unrelated projects that read those files, and in the
# module's table. Rows whose N/TS columns are empty occur in real files.
SPS30_HEADER = "sensor_id;sensor_type;location;lat;lon;timestamp;P1;P4;P2;P0;N10;N4;N25;N1;N05;TS\n"


def test_an_sps30_archive_imports_its_number_concentrations_and_refuses_implausible_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "2025-06-15_sps30_sensor_80123.csv"
    path.write_text(
        SPS30_HEADER
        + "80123;SPS30;70011;50.080;20.000;2025-06-15T00:00:41;4.02;3.91;3.80;3.52;29.31;29.25;"
        "29.10;28.64;24.37;0.52\n"
        + "80123;SPS30;70011;50.080;20.000;2025-06-15T00:03:08;9.60;;5.40;;;;;;;\n"
        + "80123;SPS30;70011;50.080;20.000;2025-06-15T00:05:35;4.10;3.98;3.86;3.57;5000;29.70;"
        "29.55;29.05;24.71;0.53\n"
        + "80123;SPS30;70011;50.080;20.000;2025-06-15T00:08:02;4.05;3.95;3.83;3.55;29.40;29.33;"
        "29.18;28.70;24.40;12.5\n"
    )
    p = parse("sensor-community", path)
    t = tags("sc-80123", "sensor-community", sensor="sps30")
    first = {
        "pm10": 4.02,
        "pm4": 3.91,
        "pm2_5": 3.8,
        "pm1": 3.52,
        "number_pm10": 29.31,
        "number_pm4": 29.25,
        "number_pm2_5": 29.1,
        "number_pm1": 28.64,
        "number_pm0_5": 24.37,
        "particle_size_typical": 0.52,
    }
    assert p.lines == [
        to_line(Point("air", t, first, 1749945641000)),
        to_line(Point("air", t, {"pm10": 9.6, "pm2_5": 5.4}, 1749945788000)),
    ]
    # Out of the quantity's range: the row is refused as any implausible value is.
    assert p.reasons() == {4: "bad_value", 5: "bad_value"}
    details = {line: detail for line, _, _, detail, _ in p.letters}
    assert (
        details[4] == "N10: number_pm10 = 5000.0 1/cm3 is outside the plausible range 0.0..3000.0"
    )
    assert details[5] == f"TS: {plausibility_error('particle_size_typical', 12.5)}"
    assert p.ctx.not_imported == {}


def test_a_pms5003_file_is_unchanged_and_another_type_does_not_get_the_sps30_columns(
    tmp_path: Path,
) -> None:
    pms = tmp_path / "2025-06-15_pms5003_sensor_80124.csv"
    pms.write_text(
        "sensor_id;sensor_type;location;lat;lon;timestamp;P1;P2;P0\n"
        "80124;PMS5003;70012;50.081;20.001;2025-06-15T00:00:12;12.00;8.00;5.00\n"
    )
    p = parse("sensor-community", pms)
    t = tags("sc-80124", "sensor-community", sensor="pms5003")
    fields = {"pm10": 12.0, "pm2_5": 8.0, "pm1": 5.0}
    assert p.lines == [to_line(Point("air", t, fields, 1749945612000))]
    assert p.letters == [] and p.ctx.not_imported == {}
    # A row of another sensor type under the SPS30's header: its N and TS columns are not the
    # SPS30's, so they are not imported (the summary names them), the rest is.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        SPS30_HEADER + "80125;PMS7003;70013;50.082;20.002;2025-06-15T00:00:12;12.00;;8.00;5.00;"
        "40.00;;;;;0.90\n"
    )
    p = parse("sensor-community", mixed)
    t = tags("sc-80125", "sensor-community", sensor="pms7003")
    assert p.lines == [to_line(Point("air", t, fields, 1749945612000))]
    assert p.ctx.not_imported == {"N10": 1, "TS": 1}


def test_old_archive_times_with_microseconds_and_offset() -> None:
    p = parse("sensor-community", "2016-08-13_dht22_sensor_48.csv")
    assert [line.rsplit(" ", 1)[1] for line in p.lines] == ["1471046426053", "1471046574100"]
    assert "temperature=18.4,relative_humidity=63.2" in p.lines[0]


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_stored() -> None:
    p = parse("sensor-community", "2024-03-02_sds011_sensor_12348.csv")
    assert len(p.lines) == 2
    assert p.reasons() == {
        3: "bad_timestamp",  # 00:03:xx
        4: "bad_value",  # PM10 2500
        5: "bad_value",  # abc
        6: "bad_row",  # a column short
        8: "bad_row",  # no value at all (line 7 is blank: no row)
        9: "bad_timestamp",  # 30 February
    }
    by_line = {line: (raw, detail) for line, raw, _, detail, _ in p.letters}
    assert by_line[4][0] == "12348;SDS011;7000;52.100;5.130;2024-03-02T00:05:00;2500.00;;;8.00;;"
    assert "pm10 = 2500.0 ug/m3 is outside the plausible range" in by_line[4][1]
    assert "11 columns, the header has 12" in by_line[6][1]
    assert p.ctx.rejected_by_reason == {"bad_timestamp": 2, "bad_value": 2, "bad_row": 2}


def test_a_sensor_the_mapped_device_does_not_declare_is_rejected() -> None:
    p = parse(
        "sensor-community",
        "2024-03-01_sds011_sensor_12345.csv",
        frozenset({"bme280"}),
        device="kit-1",
    )
    assert p.lines == []
    assert set(p.reasons().values()) == {"undeclared_sensor"}


def test_a_row_in_the_future_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "future.csv"
    path.write_text(
        "sensor_id;sensor_type;location;lat;lon;timestamp;P1;durP1;ratioP1;P2;durP2;ratioP2\n"
        "1;SDS011;2;52.0;5.0;2099-01-01T00:00:00;10.0;;;5.0;;\n"
    )
    opts = ImportOptions(user="t")
    (parser,) = prepare("sensor-community", [path], opts)
    ctx = ImportContext(
        "sensor-community",
        parser.file,
        opts,
        resolve=lambda s: Target(s.device_id, "s", frozenset(s.sensors), frozenset(), True),
        declare=lambda *_: True,
        flush=lambda _c: None,
        now_ms=NOW_MS,
    )
    with parser.file.open_text() as (text, _):
        parser.parse(ctx, text)
    assert [letter[2] for letter in ctx.letters] == ["future_timestamp"]


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("sensor-community", "createdAt,value\n2024-01-01T00:00:00Z,1\n", "sensor_id;sensor_type"),
        (
            "sensor-community",
            "sensor_id;sensor_type;location;lat;lon;timestamp;brightness\n",
            "no quantity",
        ),
        ("opensensemap", "time;pm25\n1;2\n", "expected a CSV header with createdAt and value"),
        ("opensensemap", '{"report": []}', "expected a JSON array of measurements"),
        ("telraam", "date,uptime,car\n", "it lacks pedestrian_lft"),
        ("track", "sensor_id;timestamp;P1\n", "latitude, longitude"),
        ("track", "time,lat,lon,brightness\n", "no column sensorpipe has a quantity for"),
    ],
)
def test_a_file_of_another_format_names_the_header_it_expected(
    tmp_path: Path, fmt: str, content: str, expected: str
) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text(content)
    with pytest.raises(FileProblem, match=expected):
        prepare(fmt, [path], ImportOptions(user="t", quantity="pm2_5", track_id="x"))


def test_missing_empty_and_directory_files_are_refused_before_anything(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    for name, message in (
        ("none.csv", "no such file"),
        ("empty.csv", "is empty"),
        (".", "is a directory"),
    ):
        with pytest.raises(FileProblem, match=message):
            inspect(tmp_path / name)


# --- openSenseMap ---------------------------------------------------------------------------


def test_per_sensor_csv_needs_quantity_and_takes_the_sensor_id_from_its_name() -> None:
    with pytest.raises(FileProblem, match="give --quantity"):
        prepare("opensensemap", [DATA / "5f0a1b2c3d4e5f6a7b8c9d0e.csv"], ImportOptions(user="t"))
    p = parse("opensensemap", "5f0a1b2c3d4e5f6a7b8c9d0e.csv", quantity="pm2_5")
    t = tags("osm-5f0a1b2c3d4e5f6a7b8c9d0e", "opensensemap", sensor="opensensemap")
    assert p.lines[0] == to_line(Point("air", t, {"pm2_5": 13.1}, 1709287805789))
    assert len(p.lines) == 3


def test_per_sensor_json_string_values_and_a_value_that_is_no_number() -> None:
    p = parse("opensensemap", "5f0a1b2c3d4e5f6a7b8c9d0f.json", quantity="temperature", box="b0x")
    t = tags("osm-b0x", "opensensemap", sensor="opensensemap")
    assert p.lines[0] == to_line(Point("air", t, {"temperature": 7.85}, 1709287573254))
    assert [(n, reason) for n, _, reason, _, _ in p.letters] == [(3, "bad_value")]
    assert (
        p.letters[0][1]
        == '{"location":[5.121,52.09],"createdAt":"2024-03-01T09:56:11.513Z","value":"hot"}'
    )
    assert p.ctx.row_word == "item"
    assert p.specs["osm-b0x"].location == (52.09, 5.121)


def test_boxes_data_csv_maps_phenomenon_unit_and_sensor_type() -> None:
    p = parse("opensensemap", "opensensemap-boxes-data.csv")
    t = tags("osm-5f0a1b2c3d4e5f6a7b8c9d10", "opensensemap", sensor="sds011")
    assert p.lines[0] == to_line(Point("air", t, {"pm2_5": 21.5}, 1709290800000))
    assert sorted(p.specs) == ["osm-5f0a1b2c3d4e5f6a7b8c9d10", "osm-5f0a1b2c3d4e5f6a7b8c9d20"]
    assert p.specs["osm-5f0a1b2c3d4e5f6a7b8c9d20"].location == (52.1, 5.13)


def test_a_mobile_box_keeps_each_position_and_an_unknown_phenomenon_is_rejected() -> None:
    p = parse("opensensemap", "opensensemap-mobile.json")
    t = tags("osm-5f0a1b2c3d4e5f6a7b8c9d30", "opensensemap", sensor="sds011")
    fields = {"pm10": 9.5, "lat": 52.0901, "lon": 5.1201}
    assert p.lines[0] == to_line(Point("air", t, fields, 1709294400000))
    assert "pressure=1012.5,lat=52.0901" in p.lines[2]
    assert p.reasons() == {4: "unknown_phenomenon"}
    assert "Beleuchtungsstärke" in p.letters[0][3]
    assert p.specs["osm-5f0a1b2c3d4e5f6a7b8c9d30"].location is None  # mobile: no fixed place


def test_an_sps30_boxes_number_concentrations_are_stored_and_another_types_are_not(
    tmp_path: Path,
) -> None:
    # A /boxes/data download with every column the docs name; the titles are those that
    # openSenseMap's airrohr decoder matches to SPS30_N05 .. SPS30_N10 (NC0.5, N2.5, NC10, ...).
    path = tmp_path / "boxes-data-sps30.csv"
    box, pms_box = "5f0a1b2c3d4e5f6a7b8c9d40", "5f0a1b2c3d4e5f6a7b8c9d50"
    path.write_text(
        "sensorId,createdAt,value,lat,lon,boxId,phenomenon,unit,sensorType\n"
        f"5f0a1b2c3d4e5f6a7b8c9d41,2024-03-01T11:00:00.000Z,8.95,52.09,5.121,{box},PM2.5,µg/m³,"
        "SPS30\n"
        f"5f0a1b2c3d4e5f6a7b8c9d42,2024-03-01T11:00:00.000Z,45.2,52.09,5.121,{box},NC0.5,#/cm³,"
        "SPS30\n"
        f"5f0a1b2c3d4e5f6a7b8c9d43,2024-03-01T11:00:00.000Z,58.8,52.09,5.121,{box},N2.5,1/cm³,"
        "SPS30\n"
        f"5f0a1b2c3d4e5f6a7b8c9d44,2024-03-01T11:00:00.000Z,5000,52.09,5.121,{box},NC10,#/cm³,"
        "SPS30\n"
        f"5f0a1b2c3d4e5f6a7b8c9d51,2024-03-01T11:00:00.000Z,12.0,52.1,5.13,{pms_box},NC1,#/cm³,"
        "PMS5003\n"
    )
    p = parse("opensensemap", path)
    t = tags(f"osm-{box}", "opensensemap", sensor="sps30")
    assert p.lines == [
        to_line(Point("air", t, {"pm2_5": 8.95}, 1709290800000)),
        to_line(Point("air", t, {"number_pm0_5": 45.2}, 1709290800000)),
        to_line(Point("air", t, {"number_pm2_5": 58.8}, 1709290800000)),
    ]
    assert p.reasons() == {5: "bad_value", 6: "unknown_phenomenon"}
    details = {line: detail for line, _, _, detail, _ in p.letters}
    assert details[5] == plausibility_error("number_pm10", 5000.0)
    assert details[6] == (
        "phenomenon 'NC1' of a pms5003 sensor is no quantity sensorpipe stores "
        "(number concentrations: of an SPS30 only)"
    )


def test_a_download_starting_with_number_concentrations_is_read_for_an_sps30_only(
    tmp_path: Path,
) -> None:
    head = "createdAt,value,boxId,phenomenon,unit,sensorType\n"
    row = "2024-03-01T11:00:00.000Z,45.2,5f0a1b2c3d4e5f6a7b8c9d40,NC0.5,#/cm³,"
    sps30, pms = tmp_path / "sps30.csv", tmp_path / "pms.csv"
    sps30.write_text(head + row + "SPS30\n")
    pms.write_text(head + row + "PMS5003\n")
    assert len(prepare("opensensemap", [sps30], ImportOptions(user="t"))) == 1
    with pytest.raises(FileProblem, match=r"'NC0\.5' of a pms5003 sensor .* of an SPS30 only"):
        prepare("opensensemap", [pms], ImportOptions(user="t"))


# --- Telraam --------------------------------------------------------------------------------


def test_telraam_api_json_into_the_counting_series() -> None:
    p = parse("telraam", "telraam-traffic.json")
    t0 = 1709276400000
    device = "telraam-9000001844"
    expected = []
    counts = [
        ("pedestrian", "lft", 8.0), ("pedestrian", "rgt", 4.0),
        ("cyclist", "lft", 21.333333333333332), ("cyclist", "rgt", 18.666666666666668),
        ("car", "lft", 64.0), ("car", "rgt", 56.0),
        ("heavy_vehicle", "lft", 2.6666666666666665), ("heavy_vehicle", "rgt", 1.3333333333333333),
    ]  # fmt: skip
    for count_class, direction, reported in counts:
        expected.append(
            to_line(
                Point(
                    "traffic",
                    tags(device, "telraam", **{"class": count_class, "direction": direction}),
                    {
                        "count": round(reported * 0.75),  # seen in the 75 % it ran
                        "interval_s": 3600.0,
                        "count_extrapolated": reported,
                    },
                    t0,
                )
            )
        )
    counter: dict[str, float | str] = {
        "running_fraction": 0.75,
        "model_id": "telraam",
        "interval_s": 3600.0,
        "v85_kmh": 38.5,
    }
    expected.append(to_line(Point("counter", tags(device, "telraam"), counter, t0)))
    assert p.lines[:9] == expected
    assert len(p.lines) == 18
    assert p.reasons() == {3: "bad_value"}  # uptime 1.7
    spec = p.specs[device]
    assert spec.directions == ("lft", "rgt") and spec.personal_data is True
    assert spec.count_classes == ("pedestrian", "cyclist", "car", "heavy_vehicle")
    assert p.ctx.not_imported == {"car_speed_hist_0to70plus": 2, "car_speed_hist_0to120plus": 2}


def test_telraam_csv_with_quoted_histograms_and_an_hour_the_camera_was_off() -> None:
    p = parse("telraam", "telraam-export.csv", direction_names=("right_to_left", "left_to_right"))
    assert "direction=right_to_left" in p.lines[0]
    assert p.lines[0].endswith(" count=8i,interval_s=3600.0,count_extrapolated=10.0 1709362800000")
    off = [
        line for line in p.lines if line.startswith("counter") and line.endswith("1709366400000")
    ]
    assert off == [
        to_line(
            Point(
                "counter",
                tags("telraam-9000002001", "telraam"),
                {"running_fraction": 0.0, "model_id": "telraam", "interval_s": 3600.0},
                1709366400000,
            )
        )
    ]
    assert p.reasons() == {4: "bad_value"}  # bike_rgt x (header on line 1)


def test_telraam_directions_an_edge_counter_does_not_have_are_rejected() -> None:
    p = parse("telraam", "telraam-export.csv", frozenset({"camera"}), device="cam-1")
    assert p.lines == []
    assert set(p.reasons().values()) <= {"undeclared_direction", "bad_value"}


# --- tracks ---------------------------------------------------------------------------------


def test_snuffelfiets_raw_units_errors_and_positions() -> None:
    p = parse("track", "snuffelfiets-2024-11-11.csv")
    t = tags("track-352753098853250", "track", sensor="snuffelfiets")
    fields = {
        "relative_humidity": 70.0,
        "pm10": 0.43,  # firmware 2: hundredths of µg/m³
        "pm1": 0.12,
        "pm2_5": 0.26,
        "pressure": 1011.0,
        "temperature": 18.5,  # tenths of °C
        "lat": 52.0981923,
        "lon": 5.1257414,
    }
    assert p.lines[0] == to_line(Point("air", t, fields, 1731314931000))
    version_1 = [line for line in p.lines if "track-359215101207828" in line]
    assert "pm10=6.0,pm1=2.0,pm2_5=4.0" in version_1[0]  # firmware 1: µg/m³ as they are
    assert p.reasons() == {4: "device_error", 7: "device_error"}
    assert "no GPS fix" in p.letters[0][3]
    assert "no2" not in p.lines[0]  # the removed sensor's zeros are not readings
    assert "voc" in p.ctx.not_imported and "_id" not in p.ctx.not_imported


def test_a_generic_ride_needs_a_name_and_rejects_a_reading_without_position() -> None:
    with pytest.raises(FileProblem, match="give --track-id"):
        prepare("track", [DATA / "ride-2024-05-04.csv"], ImportOptions(user="t"))
    p = parse("track", "ride-2024-05-04.csv", track_id="Bike-7")
    assert p.lines[0] == to_line(
        Point(
            "air",
            tags("track-bike-7", "track", sensor="track"),
            {
                "pm2_5": 8.1,
                "pm10": 12.4,
                "temperature": 14.2,
                "relative_humidity": 71.0,
                "lat": 52.3702,
                "lon": 4.8952,
            },
            1714813200000,
        )
    )
    assert p.reasons() == {5: "no_position"}


# --- the pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-03-01T00:01:34", 1709251294000),
        ("2024-03-01 00:01:34", 1709251294000),
        ("2024-03-01T00:01:34Z", 1709251294000),
        ("2024-03-01T00:01:34.5Z", 1709251294500),
        ("2024-03-01T01:01:34+01:00", 1709251294000),
        ("2024-03-01T01:01:34+0100", 1709251294000),
        ("2016-07-14T13:02:46.949036+00:00", 1468501366949),
    ],
)
def test_times_in_the_accepted_forms(text: str, ms: int) -> None:
    assert utc_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    ["2024-03-01", "01/03/2024 10:00", "1709251294", "2024-13-01T00:00:00", "2024-02-30T00:00:00",
     "2024-03-01T24:00:00", "1969-12-31T23:59:59", "2024-03-01T00:00:00+25:00", "",
     "2024-03-01T00:01:34 ", "２０２４-03-01T00:01:34"],
)  # fmt: skip
def test_anything_else_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(TimestampError):
        utc_ms(text)


def test_plain_lines_split_as_the_csv_module_splits_them_quoted_ones_go_through_it() -> None:
    text = 'a;b;c\n1;2;3\n\n"x;y";"say ""hi""";z\n"multi\nline";2;3\n;;\n'
    got = list(rows(text.splitlines(keepends=True), ";"))
    want = [r for r in csv.reader(text.splitlines(keepends=True), delimiter=";") if r]
    assert [f for _, _, f in got] == want
    assert [n for n, _, _ in got] == [1, 2, 4, 5, 7]
    assert got[3][1] == '"multi\nline";2;3'  # the row's exact text, both lines


def test_series_prefix_is_to_lines_escaping() -> None:
    hostile = {"device_id": "d", "site": "Oude Gracht, Utrecht=centrum"}
    prefix = series_prefix("air", hostile)
    assert prefix + "pm2_5=1.0 5" == to_line(Point("air", hostile, {"pm2_5": 1.0}, 5))


def test_plausibility_is_one_rule_for_messages_and_imports() -> None:
    assert plausibility_error("pm2_5", 12.0) is None
    assert plausibility_error("pm2_5", float("nan")) is not None
    assert plausibility_error("pm2_5", float("inf")) is not None
    assert plausibility_error("temperature", 85.5) == (
        "temperature = 85.5 degC is outside the plausible range -60.0..85.0"
    )
    assert plausibility_error("radon", 1.0) == "unknown quantity 'radon'"
    with pytest.raises(ValueError, match=r"temperature = 85.5 degC is outside the plausible range"):
        Reading(quantity="temperature", value=85.5, unit="°C", sensor="bme280")


def test_every_format_is_registered_under_its_source_name() -> None:
    from sensorpipe.protocol.provenance import IMPORT_FORMATS, REFERENCE_FORMATS

    assert set(FORMATS) == set(IMPORT_FORMATS) | set(REFERENCE_FORMATS)
    assert all(cls.name == name for name, cls in FORMATS.items())


def test_gzip_is_found_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "2024-03-01_sds011_sensor_1.csv"  # no .gz, but gzip'd
    path.write_bytes(gzip.compress((DATA / "2024-03-01_sds011_sensor_12345.csv").read_bytes()))
    assert inspect(path).compressed
    (parser,) = prepare("sensor-community", [path], ImportOptions(user="t"))
    assert isinstance(parser, FORMATS["sensor-community"])
