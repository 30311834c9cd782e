"""The public sensor register as one self-contained HTML page, in English or Dutch
(`query.export.to_html`; the algorithm register's page is built on its scaffolding).

The page follows the idea of the Dutch *Communicatierichtlijn Sensoren*: for each sensor, what
it measures, who is responsible for it, why it is there, whether it processes personal data
(and what happens to it), on what legal basis, how long data is kept, under what licence the
data is published, and whom to ask. It has inline CSS only: no scripts, no fonts, images or
style sheets from elsewhere, and a Content-Security-Policy that forbids loading any. Every
value from the registry is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.register import (
    LEGAL_BASIS_NONE,
    LEGAL_BASIS_UNSTATED,
    PERSONAL_DATA_CAMERA,
    PERSONAL_DATA_UNDECLARED,
    SOURCE_NOTES,
    personal_data_none,
)
from sensorpipe.protocol.registry import NetworkInfo
from sensorpipe.query.register_quality import (
    TEXTS as QUALITY_TEXTS,
)
from sensorpipe.query.register_quality import (
    calibration_sentence,
    flagged_text,
)

LANGUAGES = ("en", "nl")

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Sensor register",
        "intro": (
            "This page lists every sensor of {network}: what it measures, who is responsible "
            "for it, why it is there, and what it means for your privacy."
        ),
        "operator": "Operator",
        "contact": "Contact",
        "privacy": "Privacy statement",
        "data_licence": "Licence of the data",
        "overview": "Overview",
        "sensor": "Sensor",
        "site": "Area",
        "measures": "What it measures",
        "models": "Sensor models",
        "owner": "Owner",
        "purpose": "Purpose",
        "personal_data": "Processes personal data",
        "legal_basis": "Legal basis",
        "retention": "Retention",
        "licence": "Licence",
        "source": "How its data arrives",
        "station": "Reference station",
        "location": "Location",
        "operation": "In operation",
        "first_seen": "First seen",
        "last_seen": "Last seen",
        "uptime_24h": "Uptime, last 24 hours",
        "uptime_7d": "Uptime, last 7 days",
        "missing_7d": "Messages missing, last 7 days",
        "median_latency_ms_7d": "Median delivery time, last 7 days",
        "sensors_not_ok": "Sensors not working",
        "all_ok": "none reported",
        "yes": "Yes",
        "no": "No",
        "not_stated": "not stated",
        "not_published": "not published",
        "never": "not seen yet",
        "unknown": "unknown",
        "rounded": "rounded to {decimals} decimals (about {size})",
        "map": "map",
        "in": "in",
        "missing": "{missing} of {sent} sent",
        "counting": "passers-by, counted per class and direction: {classes}; directions: {dirs}",
        "no_quantities": "nothing declared yet",
        "devices": "{n} sensors",
        "no_stats": (
            "Figures on operation (last seen, uptime) were not available when this page was made."
        ),
        "generated": "Made on {date} with sensorpipe.",
        "empty": "No sensors are registered.",
    },
    "nl": {
        "title": "Sensorregister",
        "intro": (
            "Op deze pagina staan alle sensoren van {network}: wat ze meten, wie ervoor "
            "verantwoordelijk is, waarom ze er hangen en wat dat betekent voor uw privacy."
        ),
        "operator": "Beheerder",
        "contact": "Contact",
        "privacy": "Privacyverklaring",
        "data_licence": "Licentie van de data",
        "overview": "Overzicht",
        "sensor": "Sensor",
        "site": "Gebied",
        "measures": "Wat meet de sensor",
        "models": "Type sensoren",
        "owner": "Eigenaar",
        "purpose": "Doel",
        "personal_data": "Verwerkt persoonsgegevens",
        "legal_basis": "Grondslag",
        "retention": "Bewaartermijn",
        "licence": "Licentie",
        "source": "Hoe de gegevens binnenkomen",
        "station": "Referentiestation",
        "location": "Locatie",
        "operation": "In bedrijf",
        "first_seen": "Voor het eerst gezien",
        "last_seen": "Laatst gezien",
        "uptime_24h": "Beschikbaarheid, afgelopen 24 uur",
        "uptime_7d": "Beschikbaarheid, afgelopen 7 dagen",
        "missing_7d": "Ontbrekende berichten, afgelopen 7 dagen",
        "median_latency_ms_7d": "Mediane aflevertijd, afgelopen 7 dagen",
        "sensors_not_ok": "Sensoren die niet werken",
        "all_ok": "geen gemeld",
        "yes": "Ja",
        "no": "Nee",
        "not_stated": "niet opgegeven",
        "not_published": "niet gepubliceerd",
        "never": "nog niet gezien",
        "unknown": "onbekend",
        "rounded": "afgerond op {decimals} decimalen (ongeveer {size})",
        "map": "kaart",
        "in": "in",
        "missing": "{missing} van {sent} verstuurd",
        "counting": "passanten, geteld per klasse en richting: {classes}; richtingen: {dirs}",
        "no_quantities": "nog niets opgegeven",
        "devices": "{n} sensoren",
        "no_stats": (
            "Gegevens over de werking (laatst gezien, beschikbaarheid) waren niet beschikbaar "
            "toen deze pagina werd gemaakt."
        ),
        "generated": "Gemaakt op {date} met sensorpipe.",
        "empty": "Er zijn geen sensoren geregistreerd.",
    },
}

QUANTITY_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "pm1": "particulate matter (PM1)",
        "pm2_5": "particulate matter (PM2.5)",
        "pm4": "particulate matter (PM4)",
        "pm10": "particulate matter (PM10)",
        "temperature": "temperature",
        "relative_humidity": "relative humidity",
        "pressure": "air pressure",
        "no2": "nitrogen dioxide (NO₂)",
        "co2": "carbon dioxide (CO₂)",
        "noise": "sound level",
        "soil_moisture": "soil moisture",
        "particles_0_3": "particles > 0.3 µm",
        "particles_0_5": "particles > 0.5 µm",
        "particles_1_0": "particles > 1 µm",
        "particles_2_5": "particles > 2.5 µm",
        "particles_5_0": "particles > 5 µm",
        "particles_10": "particles > 10 µm",
        "number_pm0_5": "particles 0.3-0.5 µm",
        "number_pm1": "particles 0.3-1 µm",
        "number_pm2_5": "particles 0.3-2.5 µm",
        "number_pm4": "particles 0.3-4 µm",
        "number_pm10": "particles 0.3-10 µm",
        "particle_size_typical": "typical particle size",
        "soil_probe_voltage": "soil probe voltage",
        "soil_temperature": "soil temperature",
    },
    "nl": {
        "pm1": "fijnstof (PM1)",
        "pm2_5": "fijnstof (PM2,5)",
        "pm4": "fijnstof (PM4)",
        "pm10": "fijnstof (PM10)",
        "temperature": "temperatuur",
        "relative_humidity": "relatieve luchtvochtigheid",
        "pressure": "luchtdruk",
        "no2": "stikstofdioxide (NO₂)",
        "co2": "kooldioxide (CO₂)",
        "noise": "geluidsniveau",
        "soil_moisture": "bodemvochtigheid",
        "particles_0_3": "deeltjes > 0,3 µm",
        "particles_0_5": "deeltjes > 0,5 µm",
        "particles_1_0": "deeltjes > 1 µm",
        "particles_2_5": "deeltjes > 2,5 µm",
        "particles_5_0": "deeltjes > 5 µm",
        "particles_10": "deeltjes > 10 µm",
        "number_pm0_5": "deeltjes 0,3-0,5 µm",
        "number_pm1": "deeltjes 0,3-1 µm",
        "number_pm2_5": "deeltjes 0,3-2,5 µm",
        "number_pm4": "deeltjes 0,3-4 µm",
        "number_pm10": "deeltjes 0,3-10 µm",
        "particle_size_typical": "typische deeltjesgrootte",
        "soil_probe_voltage": "spanning bodemvochtsensor",
        "soil_temperature": "bodemtemperatuur",
    },
}
_UNITS = {
    "ug/m3": "µg/m³",
    "degC": "°C",
    "%": "%",
    "hPa": "hPa",
    "ppm": "ppm",
    "dBA": "dB(A)",
    "1/cm3": "/cm³",
    "um": "µm",
    "V": "V",
}

CLASS_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "pedestrian": "pedestrians",
        "cyclist": "cyclists",
        "car": "cars and vans",
        "motorcycle": "motorcycles and scooters",
        "heavy_vehicle": "buses and trucks",
    },
    "nl": {
        "pedestrian": "voetgangers",
        "cyclist": "fietsers",
        "car": "auto's en bestelwagens",
        "motorcycle": "motoren en scooters",
        "heavy_vehicle": "bussen en vrachtwagens",
    },
}
DIRECTION_NAMES: dict[str, dict[str, str]] = {
    # lft and rgt: Telraam's names (importer.telraam), traffic to the camera's left or right.
    "en": {
        "left_to_right": "left to right",
        "right_to_left": "right to left",
        "lft": "to the camera's left",
        "rgt": "to the camera's right",
    },
    "nl": {
        "left_to_right": "van links naar rechts",
        "right_to_left": "van rechts naar links",
        "lft": "naar links gezien vanaf de camera",
        "rgt": "naar rechts gezien vanaf de camera",
    },
}

# The register's fixed texts (protocol.register, the network's default retention) in Dutch.
# A text the operator wrote stays as written.
FIXED_NL: dict[str, str] = {
    PERSONAL_DATA_CAMERA: (
        "ja: een camera ziet mensen in de openbare ruimte; de beelden worden alleen op het "
        "apparaat zelf verwerkt en nooit opgeslagen of verstuurd; alleen anonieme aantallen per "
        "klasse en richting verlaten het apparaat"
    ),
    PERSONAL_DATA_UNDECLARED: (
        "nee: er is geen camera voor opgegeven; vraag de contactpersoon wat het meet"
    ),
    "yes: as stated by the operator": "ja: volgens opgave van de beheerder",
    "no: as stated by the operator": "nee: volgens opgave van de beheerder",
    LEGAL_BASIS_NONE: "niet van toepassing: er worden geen persoonsgegevens verwerkt",
    SOURCE_NOTES["edge"]: "een sensorpipe-apparaat dat zijn metingen zelf ondertekent",
    SOURCE_NOTES["airrohr"]: (
        "een Sensor.Community-meetkastje (airrohr); het kan zijn metingen niet ondertekenen, "
        "dus de gateway van het meetnet die ze ontvangt ondertekent ze"
    ),
    SOURCE_NOTES["ttn"]: (
        "een LoRaWAN-sensor via The Things Network; de gateway van het meetnet ondertekent de "
        "metingen die hij ontvangt"
    ),
    SOURCE_NOTES[
        "import"
    ]: "geschiedenis uit bestanden, ingelezen door de beheerder van het meetnet",
    SOURCE_NOTES["reference"]: (
        "een officieel referentiestation van een meetnet; de gepubliceerde waarden zijn uit "
        "bestanden ingelezen door de beheerder van het meetnet"
    ),
    LEGAL_BASIS_UNSTATED: "niet opgegeven door de beheerder: vraag het de contactpersoon",
    str(NetworkInfo.model_fields["retention"].default): (
        "metingen worden bewaard zolang het netwerk bestaat"
    ),
    str(NetworkInfo.model_fields["name"].default): "sensorpipe-meetnet",
}
# The site a device is registered in when none is given (`devices add`, the importers).
UNASSIGNED_SITE = "unassigned"
SITE_NAMES_NL = {UNASSIGNED_SITE: "niet toegewezen"}

# What sensorpipe writes itself into a device's purpose or owner (the importers, the history
# simulation), in Dutch: `{}` stands for what is kept as it is (ids, model names).
# tests/test_public_view.py checks that every importer's "... imported from ..." text is here.
GENERATED_NL: dict[str, str] = {
    "Sensor.Community sensor {} ({}); history imported from the archive": (
        "Sensor.Community-sensor {} ({}); geschiedenis ingelezen uit het archief"
    ),
    "Telraam traffic counter, camera instance {}; counts imported from Telraam exports": (
        "Telraam-verkeersteller, camera {}; tellingen ingelezen uit Telraam-exports"
    ),
    "Telraam traffic counter, road segment {}; counts imported from Telraam exports": (
        "Telraam-verkeersteller, wegvak {}; tellingen ingelezen uit Telraam-exports"
    ),
    "Snuffelfiets bike sensor {}; rides imported from track files": (
        "Snuffelfiets-fietssensor {}; ritten ingelezen uit routebestanden"
    ),
    "mobile sensor {}; rides imported from track files": (
        "mobiele sensor {}; ritten ingelezen uit routebestanden"
    ),
    "openSenseMap senseBox {}; measurements imported from openSenseMap downloads": (
        "openSenseMap-senseBox {}; metingen ingelezen uit openSenseMap-downloads"
    ),
    "openSenseMap sensor {}; measurements imported from openSenseMap downloads": (
        "openSenseMap-sensor {}; metingen ingelezen uit openSenseMap-downloads"
    ),
    "counts passers-by on a street (simulated history)": (
        "telt passanten in een straat (gesimuleerde geschiedenis)"
    ),
    "PM2.5/PM10 and climate in a street (simulated history)": (
        "PM2,5/PM10 en klimaat in een straat (gesimuleerde geschiedenis)"
    ),
    "sensorpipe history simulation": "sensorpipe-geschiedenissimulatie",
    # importer.counts_csv's purpose: the classes it counts, and the counter's name in the files.
    "{} counter {} (its name in the files); counts imported from CSV files": (
        "{}-teller {} (zijn naam in de bestanden); tellingen ingelezen uit CSV-bestanden"
    ),
    "{} counter; counts imported from CSV files": (
        "{}-teller; tellingen ingelezen uit CSV-bestanden"
    ),
    "logger history imported from its CSV exports": (
        "geschiedenis van een meetlogger, ingelezen uit zijn CSV-exports"
    ),
    # importer.reference's purpose, with and without the station's operator (that one first).
    "reference station {}, run by {}: official hourly values from {}, to check and calibrate "
    "low-cost sensors against": (
        "referentiestation {}, beheerd door {}: officiële uurwaarden van {}, om goedkope "
        "sensoren mee te controleren en te kalibreren"
    ),
    "reference station {}: official hourly values from {}, to check and calibrate low-cost "
    "sensors against": (
        "referentiestation {}: officiële uurwaarden van {}, om goedkope sensoren mee te "
        "controleren en te kalibreren"
    ),
}
_GENERATED_PATTERNS = [
    (re.compile(re.escape(english).replace(r"\{\}", "(.+)")), dutch)
    for english, dutch in GENERATED_NL.items()
]

# How far a rounded coordinate may lie from the real place, by decimals kept.
_ROUNDING = {0: "100 km", 1: "10 km", 2: "1 km", 3: "100 m", 4: "10 m", 5: "1 m", 6: "10 cm"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:60rem;padding:1rem 1.25rem 3rem;line-height:1.5;color:#1b1b1b;background:#fff}
h1{font-size:1.8rem;margin:.5rem 0}
h2{font-size:1.3rem;margin:0 0 .5rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ccc;vertical-align:top;
overflow-wrap:anywhere}
article{border:1px solid #bbb;border-radius:.4rem;padding:1rem 1.25rem;margin:1.25rem 0}
dl{display:grid;grid-template-columns:minmax(10rem,16rem) 1fr;gap:.3rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
.personal{background:#fff4e0;border-left:.3rem solid #d98200;padding-left:.5rem}
.not-ok{background:#fdecea;border-left:.3rem solid #c0392b;padding-left:.5rem}
.note{color:#444;font-style:italic}
footer{margin-top:2rem;color:#555;font-size:.9rem}
h1,h2{overflow-wrap:anywhere}
@media (max-width:40rem){body{padding:.75rem .75rem 2rem}dl{grid-template-columns:1fr}
dt{margin-top:.4rem}article{padding:.75rem}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
table,tbody,tr,td{display:block}tr{border-bottom:1px solid #999;padding:.4rem 0}
td{border:0;padding:.1rem 0;display:grid;grid-template-columns:11rem 1fr;gap:.5rem}
td::before{content:attr(data-label);font-weight:600;overflow-wrap:normal}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fixed(text: str, lang: str) -> str:
    return FIXED_NL.get(text, text) if lang == "nl" else text


def _generated(text: str, lang: str) -> str:
    """`text` (a purpose or owner), in Dutch where sensorpipe wrote it; the operator's own
    words stay as written."""
    if lang != "nl":
        return text
    for pattern, dutch in _GENERATED_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return dutch.format(*match.groups())
    return text


def _site(site: str, lang: str) -> str:
    return SITE_NAMES_NL.get(site, site) if lang == "nl" else site


def _not_ok(record: dict[str, Any], lang: str) -> list[str]:
    """The notes of the device's sensors that are not working; in Dutch built from the
    sensors' states (the device's own error message quoted as it sent it)."""
    if lang != "nl" or "sensor_health" not in record:
        return list(record["sensors_not_ok"])
    notes = []
    for h in record["sensor_health"]:
        if h.get("ok") is not False:
            continue
        since = h.get("since")
        when = f" sinds {since.replace('T', ' ')[:16]} UTC" if since else ""
        error = f"; melding van het apparaat: “{h['last_error']}”" if h.get("last_error") else ""
        notes.append(f"{h['sensor']} werkt niet{when}{error}")
    return notes


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _number(value: float, decimals: int, lang: str) -> str:
    out = f"{value:,.{decimals}f}"
    if lang == "nl":  # 1.234,5
        out = out.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return out


def _when(iso: str | None, t: dict[str, str]) -> str:
    if iso is None:
        return t["never"]
    return iso.replace("T", " ")[:16] + " UTC"


def _measures(record: dict[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    parts = []
    for q in record["quantities"]:
        name = QUANTITY_NAMES[lang].get(q, q)
        unit = QUANTITIES[q].unit if q in QUANTITIES else ""
        parts.append(f"{name} {t['in']} {_UNITS.get(unit, unit)}" if unit else name)
    if record["counts"]:
        classes = [CLASS_NAMES[lang].get(c, c) for c in record["count_classes"]]
        dirs = [DIRECTION_NAMES[lang].get(d, d) for d in record["directions"]]
        parts.append(t["counting"].format(classes=", ".join(classes), dirs=", ".join(dirs)))
    return "; ".join(parts) if parts else t["no_quantities"]


def _or_not_stated(value: str, t: dict[str, str]) -> str:
    return _e(value) if value.strip() else f'<span class="note">{_e(t["not_stated"])}</span>'


def _location(record: dict[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    loc = record.get("location")
    if loc is None:
        return f'<span class="note">{_e(t["not_published"])}</span>'
    lat, lon, n = float(loc["lat"]), float(loc["lon"]), int(loc["precision_decimals"])
    rounded = t["rounded"].format(decimals=n, size=_ROUNDING.get(n, "?"))
    osm = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}"
    return (
        f"{_e(f'{lat:.{n}f}, {lon:.{n}f}')}, {_e(rounded)} "
        f'<a href="{_e(osm)}" rel="nofollow noopener">{_e(t["map"])}</a>'
    )


def _uptime(value: float | None, lang: str) -> str:
    return _TEXT[lang]["unknown"] if value is None else _number(value * 100, 1, lang) + " %"


def _article(record: dict[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    personal = record["personal_data"]
    # The note starts with its answer ("yes: ...", "nee: ..."), which the page shows in bold.
    note = _fixed(record["personal_data_note"], lang)
    quantities = record["quantities"]
    if lang == "nl" and quantities and note == personal_data_none(quantities):
        note = personal_data_none(quantities, "nl")  # the note the register wrote, in Dutch
    answer, _, reason = note.partition(": ")
    if answer.lower() in ("yes", "no", "ja", "nee") and reason:
        note = reason
    rows: list[tuple[str, str, str]] = [
        ("measures", _e(_sentence(_measures(record, lang))), ""),
        ("purpose", _or_not_stated(_generated(record["purpose"], lang), t), ""),
        ("owner", _or_not_stated(_generated(record["owner"], lang), t), ""),
        ("site", _e(_site(record["site"], lang)), ""),
        (
            "personal_data",
            f"<strong>{_e(t['yes'] if personal else t['no'])}</strong>: {_e(note)}",
            ' class="personal"' if personal else "",
        ),
        ("legal_basis", _or_not_stated(_fixed(record["legal_basis"], lang), t), ""),
        ("retention", _or_not_stated(_fixed(record["retention"], lang), t), ""),
        ("licence", _or_not_stated(record["licence"], t), ""),
        ("contact", _or_not_stated(record["contact"], t), ""),
        ("source", _e(_fixed(record["source_note"], lang)), ""),
        ("models", _e(", ".join(record["sensors"])) or _e(t["not_stated"]), ""),
        ("location", _location(record, lang), ""),
    ]
    station = [record.get(k) or "" for k in ("station_code", "operator", "method")]
    if any(station):
        rows.insert(-2, ("station", _e("; ".join(v for v in station if v)), ""))
    if "first_seen" in record:
        latency = record["median_latency_ms_7d"]
        rows += [
            ("first_seen", _e(_when(record["first_seen"], t)), ""),
            ("last_seen", _e(_when(record["last_seen"], t)), ""),
            ("uptime_24h", _e(_uptime(record["uptime_24h"], lang)), ""),
            ("uptime_7d", _e(_uptime(record["uptime_7d"], lang)), ""),
            (
                "missing_7d",
                _e(
                    t["missing"].format(
                        missing=_number(record["missing_7d"], 0, lang),
                        sent=_number(record["messages_7d"] + record["missing_7d"], 0, lang),
                    )
                ),
                "",
            ),
            (
                "median_latency_ms_7d",
                _e(t["unknown"] if latency is None else f"{_number(latency, 0, lang)} ms"),
                "",
            ),
            (
                "sensors_not_ok",
                "<br>".join(_e(n) for n in _not_ok(record, lang)) or _e(t["all_ok"]),
                ' class="not-ok"' if record["sensors_not_ok"] else "",
            ),
            ("flagged_7d", _e(flagged_text(record.get("flagged_7d") or {}, lang)), ""),
        ]
    if record.get("calibration"):
        rows.insert(1, ("calibration", _calibration(record, lang), ""))
    body = "\n".join(
        f"<dt{attr}>{_e(t.get(key) or QUALITY_TEXTS[lang][key])}</dt><dd{attr}>{value}</dd>"
        for key, value, attr in rows
    )
    device = record["device_id"]
    return (
        f'<article id="device-{_e(device)}">\n<h2>{_e(t["sensor"])} {_e(device)}</h2>\n'
        f"<dl>\n{body}\n</dl>\n</article>"
    )


def _calibration(record: dict[str, Any], lang: str) -> str:
    """Per quantity the device measures, whether and how it is calibrated: one line each."""
    lines = []
    for q, status in record["calibration"].items():
        name = _sentence(QUANTITY_NAMES[lang].get(q, q))
        lines.append(f"{_e(name)}: {_e(calibration_sentence(status, lang, _UNITS))}")
    return "<br>".join(lines)


def _overview(records: Sequence[dict[str, Any]], lang: str) -> str:
    t = _TEXT[lang]
    keys = ("sensor", "site", "measures", "personal_data")
    head = "".join(f"<th>{_e(t[k])}</th>" for k in keys)
    # Each cell names its column (data-label): on a phone the rows are stacked as cards.
    label = {k: f' data-label="{_e(t[k])}"' for k in keys}
    rows = []
    for r in records:
        device = r["device_id"]
        rows.append(
            f'<tr><td{label["sensor"]}><a href="#device-{_e(device)}">{_e(device)}</a></td>'
            f"<td{label['site']}>{_e(_site(r['site'], lang))}</td>"
            f"<td{label['measures']}>{_e(_measures(r, lang))}</td>"
            f"<td{label['personal_data']}>{_e(t['yes'] if r['personal_data'] else t['no'])}</td>"
            "</tr>"
        )
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def to_html(
    records: Sequence[dict[str, Any]],
    network: NetworkInfo,
    *,
    lang: str = "en",
    generated_at: datetime | None = None,
) -> str:
    """The register as one self-contained HTML page in `lang` (en or nl)."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang {lang!r}: use one of {', '.join(LANGUAGES)}")
    t = _TEXT[lang]
    name = _fixed(network.name, lang)
    generated_at = generated_at or datetime.now(UTC)
    facts = []
    if network.operator.strip():
        facts.append(("operator", _e(network.operator)))
    if network.contact.strip():
        facts.append(("contact", _e(network.contact)))
    url = network.privacy_url.strip()
    if url:
        # Only a web address becomes a link: a `javascript:` URL in the registry stays text.
        is_web = url.lower().startswith(("https://", "http://"))
        link = f'<a href="{_e(url)}" rel="noopener">{_e(url)}</a>' if is_web else _e(url)
        facts.append(("privacy", link))
    if network.licence.strip():
        facts.append(("data_licence", _e(network.licence)))
    network_dl = "\n".join(f"<dt>{_e(t[k])}</dt><dd>{v}</dd>" for k, v in facts)
    with_stats = any("first_seen" in r for r in records)
    header = [f"<p>{_e(t['intro'].format(network=name))}</p>"]
    if network_dl:
        header.append(f"<dl>\n{network_dl}\n</dl>")
    if not with_stats:
        header.append(f'<p class="note">{_e(t["no_stats"])}</p>')
    main: list[str] = []
    if records:
        main += [
            f"<h2>{_e(t['overview'])} ({_e(t['devices'].format(n=len(records)))})</h2>",
            _overview(records, lang),
        ]
        main += [_article(r, lang) for r in records]
    else:
        main.append(f"<p>{_e(t['empty'])}</p>")
    date = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return html_page(
        lang=lang,
        title=f"{t['title']}: {name}",
        header=header,
        main=main,
        footer=t["generated"].format(date=date),
    )


def html_page(
    *, lang: str, title: str, header: Sequence[str], main: Sequence[str], footer: str
) -> str:
    """A self-contained page for a municipality's website (the register's and the algorithm
    register's): inline CSS that fits a 390 px phone, no scripts, nothing loaded from elsewhere
    (its Content-Security-Policy forbids it). `title` and `footer` are text, escaped here;
    `header` and `main` are HTML fragments whose values the caller escaped."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            f'<html lang="{_e(lang)}">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<header>",
            f"<h1>{_e(title)}</h1>",
            *header,
            "</header>",
            "<main>",
            *main,
            "</main>",
            f"<footer><p>{_e(footer)}</p></footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
