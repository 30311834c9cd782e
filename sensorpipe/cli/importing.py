"""`sensorpipe import`: history files (Sensor.Community archives, openSenseMap downloads,
Telraam exports, bike tracks, any logger's CSV, reference stations' data) into the stack's
InfluxDB, through the same checks as live data. `list` and `remove` (the files imported, and
undoing an import) live in `import_ledger`."""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.import_ledger import import_list, import_remove
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, QUALITY_CONFIG_OPTION, json_option
from sensorpipe.importer.files import DEFAULT_MAX_DECOMPRESSED_MIB
from sensorpipe.protocol.quantities import QUANTITIES

if TYPE_CHECKING:
    from sensorpipe.importer.base import ImportOptions
    from sensorpipe.importer.runner import FileResult
    from sensorpipe.quality.config import QualityConfig

_USER = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
SHOWN_DEVICES = 10  # devices named per file in the summary (--json lists them all)


@click.group("import")
def import_() -> None:
    """Import history files through the same checks as live data.

    Sensor.Community archive CSVs, openSenseMap downloads, Telraam traffic exports, mobile
    tracks (Snuffelfiets), any logger's CSV (`import csv`) and reference stations' hourly
    values (`import reference`): every reading is checked as the ingest checks it, bad rows go
    to the dead-letter store with file, line and reason (`sensorpipe ingest rejects`), and every
    point is tagged source=import:<format>, vouch=import (a reference station's:
    source=reference:<format>, vouch=reference). Importing a file again stores nothing twice.
    `import list` lists the imported files; `import remove` undoes an import.
    """


# The group's commands that live in a module of their own (import_ledger).
import_.add_command(import_list)
import_.add_command(import_remove)


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path)),
        DIR_OPTION,
        INFLUX_OPTIONS,
        click.option(
            "--site",
            default=None,
            help="Site of the devices the import registers (default: unassigned).",
        ),
        click.option(
            "--device",
            default=None,
            help="Import everything into this registered device instead of registering the "
            "files' own devices.",
        ),
        click.option(
            "--user",
            default=None,
            help="Who imports (recorded with each file; default: your login name).",
        ),
        click.option(
            "--force", is_flag=True, help="Read files imported before again (nothing is doubled)."
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(100, 100_000),
            default=20_000,
            show_default=True,
            help="Points per write to InfluxDB.",
        ),
        click.option(
            "--max-decompressed-mib",
            type=click.IntRange(1, 1024 * 1024),
            default=DEFAULT_MAX_DECOMPRESSED_MIB,
            show_default=True,
            help="A gzip'd file may expand to this many MiB; reading stops past it.",
        ),
        QUALITY_CONFIG_OPTION,
        json_option("Print the summary as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@import_.command("sensor-community")
@_common
def import_sensor_community(files: tuple[Path, ...], **common: Any) -> None:
    """Sensor.Community archive CSVs (archive.sensor.community, `;`-separated, gzip'd too).

    Each sensor becomes device sc-<sensor_id>: P1/P2/P0/P4 are PM10/PM2.5/PM1/PM4, temperature,
    humidity, pressure (Pa, stored as hPa), noise_LAeq."""
    _import("sensor-community", files, common, {})


@import_.command("opensensemap")
@_common
@click.option(
    "--quantity",
    type=click.Choice(list(QUANTITIES)),
    default=None,
    help="What the values are (a per-sensor download does not say), in its canonical unit.",
)
@click.option("--sensor", default=None, help="Sensor model name (default: the sensorType column).")
@click.option("--box", default=None, help="The senseBox a per-sensor download is from.")
@click.option("--mobile", is_flag=True, help="A mobile box: each reading keeps its own position.")
def import_opensensemap(files: tuple[Path, ...], **common: Any) -> None:
    """openSenseMap measurement downloads: CSV (createdAt,value,... per sensor, or /boxes/data
    with sensorId/boxId/phenomenon columns) or JSON (an array of {value, createdAt, location}).

    The device is osm-<boxId> (or osm-<sensorId>); the phenomenon column says what was measured,
    else --quantity must."""
    extra = {k: common.pop(k) for k in ("quantity", "sensor", "box", "mobile")}
    _import("opensensemap", files, common, extra)


@import_.command("telraam")
@_common
@click.option("--segment", default=None, help="The road segment, when the file has no segment_id.")
@click.option(
    "--direction-names",
    default="lft,rgt",
    show_default=True,
    help="Direction names for Telraam's _lft and _rgt counts, e.g. right_to_left,left_to_right.",
)
def import_telraam(files: tuple[Path, ...], **common: Any) -> None:
    """Telraam traffic exports (the API's reports/traffic JSON, or CSV with its columns) into
    the counting series: heavy -> heavy_vehicle, car -> car, bike -> cyclist, pedestrian ->
    pedestrian per direction, uptime as the counter's running_fraction.

    Each segment becomes device telraam-<segment_id>."""
    extra = {k: common.pop(k) for k in ("segment", "direction_names")}
    _import("telraam", files, common, extra)


@import_.command("track")
@_common
@click.option(
    "--track-id",
    default=None,
    help="Names the bike or sensor when the file has no id column (device track-<ID>).",
)
@click.option("--sensor", default=None, help="Sensor model name (default: snuffelfiets or track).")
def import_track(files: tuple[Path, ...], **common: Any) -> None:
    """Mobile tracks, one reading per row with its own time, latitude and longitude (Snuffelfiets
    exports, or CSV with time,latitude,longitude,pm2_5,...): each reading keeps its position, so
    `sensorpipe query air --bbox` finds a ride."""
    extra = {k: common.pop(k) for k in ("track_id", "sensor")}
    _import("track", files, common, extra)


@import_.command("csv")
@_common
@click.option("--time", "time_column", required=True, help="The header of the time column.")
@click.option(
    "--time-format",
    default=None,
    help="How its times are written, as strptime reads them, e.g. '%m/%d/%Y %H:%M' "
    "(default: ISO 8601).",
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="Zone of times without an offset: an offset like -05:00, or a zone name like "
    "Europe/Amsterdam (daylight saving included).",
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    required=True,
    help="HEADER=QUANTITY or HEADER=QUANTITY:UNIT (repeatable), e.g. 'PM2.5 (µg/m³)=pm2_5' or "
    "'Pressure=pressure:Pa'; without a unit, the quantity's own. Counts of passers-by: "
    "HEADER=count:CLASS or HEADER=count:CLASS:DIRECTION, e.g. 'count=count:pedestrian' "
    "(direction both); counts and quantities are imported apart.",
)
@click.option(
    "--sensor", default=None, help="Sensor model name, a tag (default: logger; counts: counter)."
)
@click.option(
    "--register",
    is_flag=True,
    help="Register --device (history from files, source import) when it is not registered.",
)
@click.option(
    "--device-column",
    default=None,
    help="Counts: the header of the column naming each row's counter (a site's name); a new "
    "one is registered as device <--device-prefix><the name in lower case, '-' for the rest>.",
)
@click.option(
    "--device-prefix",
    default="",
    help="Counts: put before the device ids --device-column makes, e.g. akl-.",
)
@click.option(
    "--interval-s",
    type=click.FloatRange(1.0, 86400.0),
    default=3600.0,
    help="Counts: the seconds each row counts, from its time (default 3600, an hour).",
)
@click.option(
    "--locations",
    type=click.Path(path_type=Path),
    default=None,
    help="Counts with --device-column: a CSV of the sites (their names first, or in a column "
    "named as --device-column; Latitude and Longitude columns): new devices are registered "
    "there, imported ones without a location get it.",
)
def import_csv(files: tuple[Path, ...], **common: Any) -> None:
    """Any logger's CSV export into --device: the header row is found below any preamble, each
    --column maps a header to a quantity (converted from its unit), empty cells are skipped.
    Counts of passers-by too (--column HEADER=count:CLASS), into --device or into the device
    each row names (--device-column).

    Example: sensorpipe import csv RT01.csv --device rt01 --register --time Time
    --time-format '%m/%d/%Y %H:%M' --timezone -05:00 --column 'PM2.5 (µg/m³)=pm2_5'

    Counts: sensorpipe import csv auckland_hourly_2019-2024_long.csv.gz --time time_utc
    --device-column site --device-prefix akl- --column count=count:pedestrian
    --locations locations.csv"""
    from sensorpipe.importer.counts_csv import count_column_spec
    from sensorpipe.importer.logger_csv import column_spec
    from sensorpipe.importer.timeparse import zone

    extra = {
        k: common.pop(k)
        for k in (
            "time_column",
            "time_format",
            "timezone",
            "columns",
            "sensor",
            "register",
            "device_column",
            "device_prefix",
            "interval_s",
            "locations",
        )
    }
    try:
        counted = [count_column_spec(c) for c in extra["columns"]]
        count_columns = tuple(c for c in counted if c is not None)
        extra["columns"] = tuple(
            column_spec(c) for c, k in zip(extra["columns"], counted, strict=True) if k is None
        )
        extra["timezone"] = zone(extra["timezone"])
    except ValueError as exc:
        fail(f"--timezone: {exc}" if "--column" not in str(exc) else str(exc))
    extra["count_columns"] = count_columns
    _check_counts(common, extra)
    _read_locations(extra)
    quantities = [q for _, q, _ in extra["columns"]]
    twice = sorted({q for q in quantities if quantities.count(q) > 1})
    if twice:
        fail(f"--column: {', '.join(twice)} given for more than one column: map each quantity once")
    fmt = extra["time_format"]
    if fmt is not None and "%" not in fmt:
        fail(f"--time-format {fmt!r}: write it as strptime does, like '%m/%d/%Y %H:%M'")
    if not extra["register"] and common["site"] is not None and extra["device_column"] is None:
        fail("--site is for the device --register registers")
    _import("csv", files, common, extra)


def _check_counts(common: dict[str, Any], extra: dict[str, Any]) -> None:
    """`import csv`'s device options, and counts, against each other."""
    from sensorpipe.importer.counts_csv import device_id_for

    counts, device_column = extra["count_columns"], extra["device_column"]
    if counts and extra["columns"]:
        fail(
            f"--column: counts ({counts[0][0]}) and quantities ({extra['columns'][0][0]}) in "
            f"one import: import the file twice, once with the counts, once with the quantities"
        )
    if device_column is not None and not counts:
        fail("--device-column is for counts: give --column HEADER=count:CLASS")
    if device_column is not None and common["device"] is not None:
        fail("give --device or --device-column, not both")
    if common["device"] is None and device_column is None:
        fail(
            "import csv: give --device ID (the logger's device; --register registers it)"
            + (" or --device-column HEADER" if counts else "")
        )
    prefix = extra["device_prefix"]
    if prefix and (device_column is None or device_id_for("x", prefix) != f"{prefix}x"):
        fail(
            f"--device-prefix {prefix!r}: "
            + (
                "it is for --device-column"
                if device_column is None
                else "use lower-case letters, digits, '_' and '-', starting with a letter or digit"
            )
        )
    pairs = [(c, d) for _, c, d in counts]
    twice = sorted({f"{c}:{d}" for c, d in pairs if pairs.count((c, d)) > 1})
    if twice:
        fail(f"--column: count:{twice[0]} given for more than one column: map each once")


def _read_locations(extra: dict[str, Any]) -> None:
    """--locations read whole (before any file is imported), as `locations` and
    `locations_file` of the options; one line and exit where it cannot be used."""
    from sensorpipe.importer.locations import LocationsProblem, read_locations

    path = extra.pop("locations")
    if path is None:
        return
    if extra["device_column"] is None:
        fail(
            f"--locations {path}: it places the devices --device-column names: give "
            f"--device-column HEADER (for one --device, `sensorpipe devices edit ID --lat .. "
            f"--lon ..`)"
        )
    try:
        extra["locations"] = read_locations(path, extra["device_column"])
    except LocationsProblem as exc:
        fail(str(exc))
    extra["locations_file"] = path.name


@import_.group("reference")
def import_reference() -> None:
    """Reference stations' published hourly values: AirNow-Tech exports (US), Luchtmeetnet's
    open API (NL) and the EEA's air-quality download (EU).

    Each station is a device of source reference (registered by the import with what the
    files say of it: station code, name, operator, method); its points are tagged
    source=reference:<format>, vouch=reference. Each hourly value is stored at the start of
    its hour, as sensorpipe's own hourly means are. A value the agency marks invalid is a
    dead letter (reason qc_invalid)."""


@import_reference.command("airnowtech")
@_common
def import_airnowtech(files: tuple[Path, ...], **common: Any) -> None:
    """AirNow-Tech exports, the unpivoted table (Agency,Site,Site AQS,Param,...,QC Code).

    Device ref-<Site AQS>; PM2.5 (88101, 88502), PM10, NO2 (ppb to µg/m³ at 20 °C),
    temperature and relative humidity are stored; QC codes 5-9 are dead letters."""
    _import("airnowtech", files, common, {})


@import_reference.command("luchtmeetnet")
@_common
@click.option(
    "--station",
    "stations",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A station's /stations/{number} answer, named after its number (NL10404.json): its "
    "name, location and organisation go into the station's registry entry (repeatable).",
)
@click.option(
    "--hour-label",
    type=click.Choice(["end", "start"]),
    default="end",
    show_default=True,
    help="Whether timestamp_measured labels the hour's end (18:00 = 17:00-18:00, stored at "
    "17:00) or its start.",
)
def import_luchtmeetnet(files: tuple[Path, ...], **common: Any) -> None:
    """Luchtmeetnet open-API /measurements answers saved as JSON files (one page a file).

    Device ref-<station number>; PM25, PM10 and NO2 (µg/m³) are stored."""
    from sensorpipe.importer.reference import read_station

    extra = {k: common.pop(k) for k in ("stations", "hour_label")}
    stations = {}
    for path in extra["stations"]:
        try:
            number, info = read_station(path)
        except ValueError as exc:
            fail(f"--station {exc}")
        stations[number] = info
    extra["stations"] = stations
    _import("luchtmeetnet", files, common, extra)


@import_reference.command("eea")
@_common
def import_eea(files: tuple[Path, ...], **common: Any) -> None:
    """EEA air-quality download CSVs: the e-Reporting time series (*_timeseries.csv) or the
    download service's table as CSV (Samplingpoint,Pollutant,Start,End,Value,...).

    Device ref-<station EoI code> (the newer form: ref-<sampling point>); hourly PM2.5, PM10
    and NO2 are stored; Validity 0 or below is a dead letter."""
    _import("eea", files, common, {})


def _import(
    fmt: str, files: tuple[Path, ...], common: dict[str, Any], extra: dict[str, Any]
) -> None:
    from sensorpipe.importer.files import FileProblem
    from sensorpipe.importer.runner import Importer, ImportProblem, prepare
    from sensorpipe.ingest.deadletter import is_sqlite_file
    from sensorpipe.ingest.influx import InfluxClient, quiet_request_log
    from sensorpipe.stack.local import StackError

    options = _options(common, extra)
    try:
        parsers = prepare(fmt, list(files), options)
    except FileProblem as exc:
        fail(str(exc))
    given = common["quality_config"]
    quality = _quality_config(given) if given is not None else None
    stack = local_stack(common["directory"])
    if quality is None:
        quality = _quality_config(stack.directory / "ingest" / "ingest.toml", default=True)
    influx_url = common["influx_url"]
    if influx_url is None:
        try:
            influx_url = stack.require_influx()[0]
        except StackError as exc:
            fail(f"{exc} (or pass --influx-url)")
    deadletters = stack.deadletter_path
    if deadletters.exists() and not is_sqlite_file(deadletters):
        fail(f"{deadletters} is not a dead-letter store (not an SQLite database)")
    quiet_request_log()
    client = InfluxClient(influx_url, common["database"], timeout_s=60.0)
    try:
        try:
            importer = Importer(
                fmt,
                options,
                influx=client,
                registry_path=stack.registry_path,
                deadletter_path=deadletters,
                ledger_path=stack.directory / "imports" / "ledger.sqlite",
                force=common["force"],
                quality=quality,
            )
        except ImportProblem as exc:
            fail(str(exc))
        if not client.ping(timeout_s=5.0):
            fail(
                f"InfluxDB at {influx_url} does not answer: nothing imported; is the stack up "
                f"(`sensorpipe stack up`)?"
            )
        started = time.monotonic()
        total = sum(p.file.size for p in parsers)
        with _progress(total, quiet=common["as_json"]) as advance:
            importer.progress = advance
            results = importer.run(parsers)
        seconds = time.monotonic() - started
    finally:
        client.close()
    _summary(fmt, results, seconds, common["as_json"])
    failed = [r for r in results if r.error]
    if failed:
        not_read = len(parsers) - len(results)
        more = f"; {not_read} more not started" if not_read else ""
        if all(r.refused for r in failed):
            fail(f"{len(failed)} of {len(parsers)} files were refused ({failed[0].error}){more}")
        fail(
            f"{len(failed)} of {len(parsers)} files were not imported completely "
            f"({failed[0].error}){more}: import them again once fixed (nothing is stored twice)"
        )
    nothing = [r for r in results if _no_good_row(r)]
    if nothing:
        r = nothing[0]
        reason = sorted(r.rejected, key=lambda k: (-r.rejected[k], k))[0]
        which = f"{len(nothing)} of {len(parsers)} files stored no row" if len(results) > 1 else ""
        what = f"{r.path}: no row stored, {r.rows} rejected{_reasons(r.rejected)}"
        fail(
            f"{f'{which} ({what})' if which else what}: the rejected rows are kept as dead "
            f"letters (`sensorpipe ingest rejects --reason {reason}` shows them); fix the file "
            f"and import it again"
        )


def _no_good_row(r: FileResult) -> bool:
    """A file read to its end whose every row was rejected, not all as repeats of rows stored
    before in the same import."""
    if r.skipped is not None or r.error is not None or r.stored or not r.rows:
        return False
    return bool(set(r.rejected) - {"duplicate"})


def _quality_config(path: Path, *, default: bool = False) -> QualityConfig:
    """The [quality] section of `path`: --quality-config, or else (`default`) the stack's
    ingest.toml, where there is one, else the defaults. Imports are so flagged by the
    thresholds the live ingest uses."""
    from sensorpipe.protocol.configfile import ConfigError
    from sensorpipe.quality.config import QualityConfig, load_quality_config

    if default and not path.is_file():
        return QualityConfig()
    try:
        return load_quality_config(path)
    except ConfigError as exc:
        fail(f"--quality-config {exc}" if not default else str(exc))


def _options(common: dict[str, Any], extra: dict[str, Any]) -> ImportOptions:
    from sensorpipe.importer.base import ImportOptions
    from sensorpipe.protocol.counting import DIRECTION_PATTERN
    from sensorpipe.protocol.messages import SENSOR_PATTERN
    from sensorpipe.protocol.registry import TAG_PATTERN
    from sensorpipe.protocol.topics import is_valid_device_id

    site, device = common["site"], common["device"]
    if site is not None and not re.match(TAG_PATTERN, site):
        fail(
            f"--site {site!r}: use letters, digits, '.', '_' and '-', starting with a letter "
            f"or digit"
        )
    if site is not None and device is not None and not extra.get("register"):
        fail(
            f"give --site or --device, not both: what is imported into --device {device} "
            f"keeps that device's site"
        )
    if device is not None and not is_valid_device_id(device):
        fail(f"--device {device!r}: not a device id (lower-case letters, digits, '_' and '-')")
    user = common["user"] if common["user"] is not None else _login_name()
    if not _USER.match(user):
        fail(f"--user {user[:40]!r}: give a name of 1 to 100 characters without control characters")
    sensor = extra.get("sensor")
    if sensor is not None and not re.match(SENSOR_PATTERN, sensor):
        fail(f"--sensor {sensor!r}: use letters, digits, '.', '_' and '-' (at most 32)")
    box = extra.get("box")
    if box is not None and not re.match(r"^[A-Za-z0-9]{1,59}$", box):
        fail(f"--box {box!r}: an openSenseMap box id is letters and digits")
    segment = extra.get("segment")
    if segment is not None and not (
        segment.isascii() and segment.isdigit() and 0 < int(segment) < 10**18
    ):
        fail(f"--segment {segment!r}: a Telraam segment id is a number")
    track_id = extra.get("track_id")
    if track_id is not None and not is_valid_device_id(f"track-{track_id.lower()}"):
        fail(f"--track-id {track_id!r}: use letters, digits, '_' and '-' (at most 58)")
    names = extra.get("direction_names", "lft,rgt").split(",")
    if (
        len(names) != 2
        or names[0] == names[1]
        or not all(re.match(DIRECTION_PATTERN, n) for n in names)
    ):
        fail(
            f"--direction-names {extra.get('direction_names')!r}: give two different direction "
            f"names, comma-separated, like lft,rgt or right_to_left,left_to_right"
        )
    return ImportOptions(
        user=user,
        site=site,
        device=device,
        quantity=extra.get("quantity"),
        sensor=sensor,
        mobile=bool(extra.get("mobile", False)),
        box=box,
        track_id=track_id,
        segment=segment,
        direction_names=(names[0], names[1]),
        time_column=extra.get("time_column"),
        time_format=extra.get("time_format"),
        timezone=extra.get("timezone", UTC),
        columns=extra.get("columns", ()),
        count_columns=extra.get("count_columns", ()),
        interval_s=extra.get("interval_s", 3600.0),
        device_column=extra.get("device_column"),
        device_prefix=extra.get("device_prefix", ""),
        locations=extra.get("locations"),
        locations_file=extra.get("locations_file", ""),
        register=bool(extra.get("register", False)),
        hour_label=extra.get("hour_label", "end"),
        stations=extra.get("stations", {}),
        batch_size=common["batch_size"],
        max_decompressed_mib=common["max_decompressed_mib"],
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


@contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr by bytes read, when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        yield bar.update


def _summary(fmt: str, results: list[FileResult], seconds: float, as_json: bool) -> None:
    rows = sum(r.rows for r in results)
    stored = sum(r.stored for r in results)
    rejected: Counter[str] = Counter()
    for r in results:
        rejected.update(r.rejected)
    rate = rows / seconds if seconds > 0 else 0.0
    if as_json:
        click.echo(
            json.dumps(
                {
                    "format": fmt,
                    "files": [_file_json(r) for r in results],
                    "rows": rows,
                    "stored": stored,
                    "rejected": sum(rejected.values()),
                    "rejected_by_reason": dict(sorted(rejected.items())),
                    "seconds": round(seconds, 3),
                    "rows_per_s": round(rate),
                },
                indent=2,
            )
        )
        return
    for r in results:
        click.echo(_file_line(r, fmt))
    read = [r for r in results if r.skipped is None]
    before = len(results) - len(read)
    skipped = f" ({before} imported before: skipped)" if before else ""
    click.echo(
        f"imported {len(read)} file{'s' if len(read) != 1 else ''}{skipped}: {_rows(rows)}, "
        f"{stored} stored, {sum(rejected.values())} rejected{_reasons(rejected)} in "
        f"{seconds:.1f} s ({rate:.0f} rows/s)"
    )
    if rejected:
        click.echo("rejected rows: `sensorpipe ingest rejects --reason REASON` shows them")


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


def _reasons(rejected: Counter[str]) -> str:
    if not rejected:
        return ""
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) + ")"


def _file_line(r: FileResult, fmt: str) -> str:
    if r.skipped is not None:
        s = r.skipped
        when = datetime.fromtimestamp((s.completed_ms or s.first_ms) / 1000, UTC)
        return (
            f"{r.path}: already imported {when:%Y-%m-%d %H:%M}Z by {s.user} ({_rows(s.rows)}, "
            f"{s.stored} stored, {s.rejected} rejected): nothing written; --force reads it again"
        )
    rejected = sum(r.rejected.values())
    named = [
        d
        + (" (new)" if d in r.new_devices else "")
        + (" (not registered: none of its rows stored)" if d in r.not_registered else "")
        for d in r.devices[:SHOWN_DEVICES]
    ]
    more = len(r.devices) - SHOWN_DEVICES
    devices = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    line = (
        f"{r.path}: {_rows(r.rows)}, {r.stored} stored, {rejected} rejected{_reasons(r.rejected)}"
        f"{'; devices ' + devices if devices else ''}"
    )
    shown = {k: v for k, v in r.not_imported.items() if v}
    if shown:
        why = "no --column for it" if fmt == "csv" else "no sensorpipe quantity"
        line += f"; not imported ({why}): " + ", ".join(
            f"{k} ({v} values)" for k, v in shown.items()
        )
    for note in r.notes:
        line += f"; note: {note}"
    if r.error:
        line += f"; {'REFUSED' if r.refused else 'NOT COMPLETE'}: {r.error}"
    return line


def _file_json(r: FileResult) -> dict[str, Any]:
    out: dict[str, Any] = {"file": str(r.path), "sha256": r.sha256}
    if r.skipped is not None:
        out["skipped"] = "already imported"
        out["imported_by"] = r.skipped.user
        return out
    out.update(
        {
            "rows": r.rows,
            "stored": r.stored,
            "rejected": sum(r.rejected.values()),
            "rejected_by_reason": dict(sorted(r.rejected.items())),
            "devices": r.devices,
            "new_devices": r.new_devices,
            "not_registered": r.not_registered,
            "not_imported": {k: v for k, v in r.not_imported.items() if v},
            "notes": r.notes,
            "error": r.error,
            "refused": r.refused,
        }
    )
    return out
