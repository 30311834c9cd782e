"""Issue 27 point 6, a public view a municipality can put online, without a browser or a stack:
the background map's settings and the CSP they make, the Dutch register page without English
generated texts, the warning for a camera without a legal basis or contact, CSV precision and
units, and unfinished intervals marked `partial`."""

from __future__ import annotations

import ast
import csv
import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from sensorpipe.api.config import BASEMAPS, MapSettings, ServeConfig
from sensorpipe.api.guard import content_security_policy
from sensorpipe.api.v1 import mark_partial
from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import DeviceEntry, Registry
from sensorpipe.query.export import export
from sensorpipe.query.health import SensorState
from sensorpipe.query.output import csv_column, quantity_csv, render
from sensorpipe.query.register import DeviceStats, RegisterStats
from sensorpipe.query.register_page import GENERATED_NL

ROOT = Path(__file__).resolve().parents[1]
PDOK = "https://service.pdok.nl/brt/achtergrondkaart/wmts/v2_0/standaard/EPSG:3857/{z}/{x}/{y}.png"


def img_src(config: ServeConfig) -> list[str]:
    csp = content_security_policy(config)
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("img-src"))
    return directive.split()[1:]


# --- 1. the background map -------------------------------------------------------------------
def test_the_default_map_is_pdok_with_kadasters_attribution_and_the_csp_allows_its_host_alone() -> (
    None
):
    basemap = ServeConfig().basemap()
    assert basemap is not None and basemap.name == "pdok"
    assert basemap.tile_url == PDOK
    assert "Kadaster" in basemap.attribution and "https://www.kadaster.nl" in basemap.attribution
    assert img_src(ServeConfig()) == ["'self'", "data:", "https://service.pdok.nl"]


@pytest.mark.parametrize(
    ("settings", "url", "origin"),
    [
        ({"basemap": "pdok-grijs"}, PDOK.replace("standaard", "grijs"), "https://service.pdok.nl"),
        ({"basemap": "osm"}, "https://tile.openstreetmap.org/{z}/{x}/{y}.png", None),
        (
            {"tile_url": "https://tiles.example.org/t/{z}/{x}/{y}.png", "attribution": "© me"},
            "https://tiles.example.org/t/{z}/{x}/{y}.png",
            "https://tiles.example.org",
        ),
    ],
)
def test_each_basemap_and_a_custom_url_allow_exactly_their_tile_host(
    settings: dict[str, str], url: str, origin: str | None
) -> None:
    config = ServeConfig(map=MapSettings.model_validate(settings))
    basemap = config.basemap()
    assert basemap is not None and basemap.tile_url == url
    host = origin or "https://tile.openstreetmap.org"
    assert img_src(config) == ["'self'", "data:", host]
    if basemap.name == "osm":
        assert "OpenStreetMap" in basemap.attribution and "copyright" in basemap.attribution


def test_basemap_none_draws_no_background_and_allows_no_tile_host() -> None:
    config = ServeConfig(map=MapSettings(basemap="none"))
    assert config.basemap() is None
    assert img_src(config) == ["'self'", "data:"]


def test_a_top_level_tile_url_is_still_read_as_a_custom_map() -> None:
    config = ServeConfig(tile_url="https://t.example.org/{z}/{x}/{y}.png", tile_attribution="© t")
    basemap = config.basemap()
    assert basemap is not None and basemap.name == "custom" and basemap.attribution == "© t"
    with pytest.raises(ValidationError, match="both at the top and in"):
        ServeConfig(
            tile_url="https://t.example.org/{z}/{x}/{y}.png", map=MapSettings(basemap="osm")
        )


def test_pdok_tiles_are_asked_for_only_over_the_netherlands() -> None:
    for name in ("pdok", "pdok-grijs"):
        bounds = BASEMAPS[name].bounds
        assert bounds is not None
        (south, west), (north, east) = bounds
        # Utrecht, Maastricht, Groningen and Vlissingen inside; Paris, Berlin, London not (a
        # box: the north of Belgium is inside it).
        for lat, lon in ((52.09, 5.12), (50.85, 5.69), (53.22, 6.57), (51.44, 3.57)):
            assert south <= lat <= north and west <= lon <= east
        for lat, lon in ((48.86, 2.35), (52.52, 13.40), (51.51, -0.13)):
            assert not (south <= lat <= north and west <= lon <= east)


# --- 2. the Dutch register page --------------------------------------------------------------
def _visible_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.split("</style>", 1)[1]))


def _importer_purpose_tails() -> list[str]:
    """The fixed end of every purpose an importer writes (`purpose=f"...; ... imported from
    ..."`), read from their source."""
    tails = []
    for path in sorted((ROOT / "sensorpipe" / "importer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.keyword) and node.arg == "purpose"):
                continue
            if not isinstance(node.value, ast.JoinedStr):
                continue
            tail = ""
            for part in node.value.values:
                if isinstance(part, ast.Constant):
                    tail += str(part.value)
                else:
                    tail = ""
            if "imported" in tail:
                tails.append(tail)
    return tails


def test_every_importers_generated_purpose_has_a_dutch_translation() -> None:
    tails = _importer_purpose_tails()
    assert len(tails) >= 4, tails  # Sensor.Community, Telraam, track files, openSenseMap
    for tail in tails:
        assert any(tail in english for english in GENERATED_NL), f"no Dutch for {tail!r}"


# The English texts sensorpipe itself writes that reached the Dutch page before.
ENGLISH = (
    "history imported from the archive",
    "imported from",
    "Sensor.Community sensor",
    "Telraam traffic counter",
    "road segment",
    "rides imported",
    "simulated history",
    "history simulation",
    "unassigned",
    "not ok",
    "since",
    "sensorpipe network",
    "camera's left",
)


def _registry_with_generated_texts() -> Registry:
    from sensorpipe.importer.telraam import _spec

    registry = Registry()
    entries = {
        "sc-1234": (
            "Sensor.Community sensor 1234 (SDS011); history imported from the archive",
            ["sds011"],
        ),
        "telraam-9000": (_spec("9000", "lft", "rgt").purpose, ["camera"]),
        "track-b1": ("Snuffelfiets bike sensor B1; rides imported from track files", ["sds011"]),
        "osm-x": (
            "openSenseMap senseBox abc; measurements imported from openSenseMap downloads",
            [],
        ),
        "sim-1": ("PM2.5/PM10 and climate in a street (simulated history)", ["sds011", "bme280"]),
    }
    for device_id, (purpose, sensors) in entries.items():
        registry.devices[device_id] = DeviceEntry(
            site="unassigned",
            source="import",
            purpose=purpose,
            owner="sensorpipe history simulation" if device_id == "sim-1" else "",
            sensors=sensors,
        )
    # Telraam's own direction names, as its importer registers them.
    registry.devices["telraam-9000"].directions = list(_spec("9000", "lft", "rgt").directions)
    return registry


def test_the_dutch_page_has_no_english_text_sensorpipe_generated() -> None:
    registry = _registry_with_generated_texts()
    now = int(datetime(2026, 12, 6, 10, tzinfo=UTC).timestamp() * 1000)
    broken = SensorState("bme280", ok=False, last_error="no answer at 0x76", since_ms=now)
    stats = RegisterStats(
        {"sim-1": DeviceStats(first_seen_ms=now, last_seen_ms=now, health={"bme280": broken})},
        now,
    )
    english_page = _visible_text(export(registry, stats, "html", lang="en"))
    dutch_page = _visible_text(export(registry, stats, "html", lang="nl"))
    for text in ENGLISH:
        assert text in english_page, f"{text!r} is no longer on the English page: test it anew"
        assert text not in dutch_page, text
    for dutch in (
        "Sensor.Community-sensor 1234 (SDS011); geschiedenis ingelezen uit het archief",
        "Telraam-verkeersteller, wegvak 9000; tellingen ingelezen uit Telraam-exports",
        "Snuffelfiets-fietssensor B1; ritten ingelezen uit routebestanden",
        "openSenseMap-senseBox abc; metingen ingelezen uit openSenseMap-downloads",
        "PM2,5/PM10 en klimaat in een straat (gesimuleerde geschiedenis)",
        "sensorpipe-geschiedenissimulatie",
        "niet toegewezen",
        "bme280 werkt niet sinds 2026-12-06 10:00 UTC",
        "Sensorregister: sensorpipe-meetnet",
        "naar links gezien vanaf de camera",
    ):
        assert dutch in dutch_page, dutch
    # The device's own error message is quoted as it sent it.
    assert "\u201cno answer at 0x76\u201d" in dutch_page


def test_what_an_operator_typed_stays_as_typed_on_the_dutch_page() -> None:
    registry = Registry()
    registry.devices["a"] = DeviceEntry(
        site="lombok",
        source="import",
        purpose="history imported from the archive of the school",
        sensors=["sds011"],
    )
    page = _visible_text(export(registry, None, "html", lang="nl"))
    assert "history imported from the archive of the school" in page  # no whole match
    assert "lombok" in page


# --- 3. a camera without a legal basis or contact ---------------------------------------------
def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENSORPIPE_DIR", str(tmp_path / "no-stack"))
    return tmp_path / "st"


def _warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def test_devices_add_warns_of_a_camera_without_legal_basis_or_contact(directory: Path) -> None:
    bare = run("devices", "add", "cam-1", "--dir", str(directory), "--sensor", "camera")
    assert bare.exit_code == 0, bare.output
    (line,) = _warnings(bare)
    assert "cam-1 (no legal basis, no contact)" in line and "personal data" in line
    assert "--legal-basis" in line and "--contact" in line
    # Only a contact: the legal basis is still missing.
    half = run(
        "devices", "add", "cam-2", "--dir", str(directory), "--sensor", "camera",
        "--contact", "privacy@example.org",
    )  # fmt: skip
    assert half.exit_code == 0, half.output
    (line,) = _warnings(half)
    assert "cam-2 (no legal basis)" in line and "cam-1" not in line
    # Declared as processing personal data without a camera: warned too.
    declared = run("devices", "add", "wifi-1", "--dir", str(directory), "--personal-data")
    assert declared.exit_code == 0 and _warnings(declared), declared.output
    complete = run(
        "devices", "add", "cam-3", "--dir", str(directory), "--sensor", "camera",
        "--contact", "privacy@example.org", "--legal-basis", "publieke taak (AVG art. 6 lid 1e)",
    )  # fmt: skip
    assert complete.exit_code == 0 and _warnings(complete) == [], complete.output
    air = run("devices", "add", "air-1", "--dir", str(directory), "--sensor", "sds011")
    assert air.exit_code == 0 and _warnings(air) == [], air.output
    not_personal = run(
        "devices", "add", "cam-4", "--dir", str(directory), "--sensor", "camera",
        "--no-personal-data",
    )  # fmt: skip
    assert not_personal.exit_code == 0 and _warnings(not_personal) == []


def test_devices_export_warns_once_and_the_networks_values_count(directory: Path) -> None:
    for args in (("cam-1", "--sensor", "camera"), ("cam-2", "--sensor", "camera")):
        assert run("devices", "add", args[0], "--dir", str(directory), *args[1:]).exit_code == 0
    assert (
        run("devices", "add", "air-1", "--dir", str(directory), "--sensor", "sds011").exit_code == 0
    )
    for fmt in ("json", "html"):
        result = run("devices", "export", "--dir", str(directory), "--format", fmt)
        assert result.exit_code == 0, result.output
        (line,) = _warnings(result)
        assert "cam-1 (no legal basis, no contact); cam-2 (no legal basis, no contact)" in line
        assert "air-1" not in line
        assert "warning" not in result.stdout
    network = run(
        "devices", "network", "--dir", str(directory), "--contact", "privacy@example.org",
        "--legal-basis", "publieke taak",
    )  # fmt: skip
    assert network.exit_code == 0, network.output
    result = run("devices", "export", "--dir", str(directory))
    assert result.exit_code == 0 and _warnings(result) == [], result.stderr


# --- 4. CSV: units in the header, values to their precision ------------------------------------
def test_csv_names_units_and_rounds_each_quantity_to_its_precision() -> None:
    assert csv_column("pm2_5") == "pm2_5_ugm3"
    assert csv_column("temperature") == "temperature_degc"
    assert csv_column("relative_humidity") == "relative_humidity_pct"
    assert csv_column("pressure") == "pressure_hpa"
    assert csv_column("device_id") == "device_id"
    text = quantity_csv(
        ["time", "pm2_5", "pm10", "temperature", "relative_humidity", "pressure"],
        [
            ["t", 12.345678, 20.04999, -3.4567, 67.5001, 1013.2587],
            ["t2", None, 7, 0.04, 99.6, None],
        ],
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["time", "pm2_5_ugm3", "pm10_ugm3", "temperature_degc", "relative_humidity_pct",
         "pressure_hpa"],
        ["t", "12.3", "20.0", "-3.5", "68", "1013.3"],
        ["t2", "", "7.0", "0.0", "100", ""],
    ]  # fmt: skip
    # The counter's running share to 0.1 % of it, a count as it is.
    assert quantity_csv(["count", "running_fraction"], [[7, 0.98333333]]) == (
        "count,running_fraction\n7,0.983\n"
    )
    # A count of readings has no unit and is not rounded.
    assert quantity_csv(["time", "pm2_5"], [["t", 59]], units=False) == "time,pm2_5\nt,59\n"


def test_the_clis_csv_and_the_apis_csv_write_the_same() -> None:
    from sensorpipe.api.v1 import _csv

    rows = [{"time": "t", "device_id": "d", "pm2_5": 3.14159, "relative_humidity": 55.5}]
    columns = ["time", "device_id", "pm2_5", "relative_humidity"]
    cli = render(rows, columns, "csv")
    api = bytes(_csv(columns, [[r[c] for c in columns] for r in rows], "air.csv").body).decode()
    assert cli == api == "time,device_id,pm2_5_ugm3,relative_humidity_pct\nt,d,3.1,56\n"


# --- 5. the unfinished interval -------------------------------------------------------------
def _answer(times: list[str], to: str, every: str = "1h") -> dict[str, object]:
    return {"from": times[0], "to": to, "every": every, "series": [{"time": times}]}


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_current_hour_is_marked_partial_and_a_finished_range_is_not() -> None:
    times = ["2026-12-06T08:00:00Z", "2026-12-06T09:00:00Z", "2026-12-06T10:00:00Z"]
    now = _ms("2026-12-06T10:24:00Z")
    live = mark_partial(_answer(times, "2026-12-06T10:24:00Z"), now)
    assert live["partial"] == ["2026-12-06T10:00:00Z"]
    # A range that ended on the hour, asked later: every interval is over.
    done = mark_partial(_answer(times, "2026-12-06T11:00:00Z"), now + 3 * 3600_000)
    assert done["partial"] == []
    # A range cut short by `to` in the past: its last interval holds part of an hour.
    cut = mark_partial(_answer(times, "2026-12-06T10:30:00Z"), now + 3 * 3600_000)
    assert cut["partial"] == ["2026-12-06T10:00:00Z"]
    # With 5-minute intervals only the current one is unfinished.
    five = ["2026-12-06T10:15:00Z", "2026-12-06T10:20:00Z"]
    assert mark_partial(_answer(five, "2026-12-06T10:24:00Z", "5m"), now)["partial"] == [
        "2026-12-06T10:20:00Z"
    ]
    assert (
        mark_partial({"to": "2026-12-06T10:24:00Z", "every": "1h", "series": []}, now)["partial"]
        == []
    )


@pytest.mark.parametrize(
    ("purpose", "dutch"),
    [
        (
            "logger history imported from its CSV exports",
            "geschiedenis van een meetlogger, ingelezen uit zijn CSV-exports",
        ),
        (
            "reference station Burdens Creek (370630099), run by US EPA: official hourly values "
            "from AirNow-Tech, to check and calibrate low-cost sensors against",
            "referentiestation Burdens Creek (370630099), beheerd door US EPA: officiële "
            "uurwaarden van AirNow-Tech, om goedkope sensoren mee te controleren en te kalibreren",
        ),
        (
            "reference station NL10404: official hourly values from Luchtmeetnet, to check and "
            "calibrate low-cost sensors against",
            "referentiestation NL10404: officiële uurwaarden van Luchtmeetnet, om goedkope "
            "sensoren mee te controleren en te kalibreren",
        ),
    ],
)
def test_the_logger_and_reference_purposes_are_dutch_on_the_dutch_page(
    purpose: str, dutch: str
) -> None:
    from sensorpipe.importer.reference import station_spec
    from sensorpipe.query.register_page import _generated

    assert _generated(purpose, "nl") == dutch
    assert _generated(purpose, "en") == purpose
    # The importers still write these very texts.
    if purpose.startswith("reference station NL10404"):
        spec = station_spec("NL10404", network="Luchtmeetnet")
        assert spec.purpose == purpose
