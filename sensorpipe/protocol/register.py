"""The public sensor register: what each device measures, who runs it, why, and what that means
for residents' privacy (the Dutch *Communicatierichtlijn Sensoren* asks municipalities to
publish exactly this).

Built from the registry alone: the HTTP API adds what InfluxDB knows (first and last seen,
uptime, gaps, latency), `sensorpipe devices export` writes it to a file. Only public facts
appear here: no keys, no password hashes, and the location rounded as the host chose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sensorpipe.protocol.counting import COUNT_CLASSES
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import (
    DEFAULT_DIRECTIONS,
    DeviceEntry,
    NetworkInfo,
    Registry,
    sensor_model,
)

PMS_SIZES = ("0_3", "0_5", "1_0", "2_5", "5_0", "10")
# The SPS30's number concentrations (particles smaller than a size) and typical particle size.
SPS30_NUMBERS = (
    "number_pm0_5", "number_pm1", "number_pm2_5", "number_pm4", "number_pm10",
    "particle_size_typical",
)  # fmt: skip
# What each sensor model sensorpipe knows measures (quantity names of protocol.quantities).
SENSOR_QUANTITIES: dict[str, tuple[str, ...]] = {
    "sds011": ("pm2_5", "pm10"),
    "pms5003": ("pm1", "pm2_5", "pm10", *(f"particles_{s}" for s in PMS_SIZES)),
    "pms7003": ("pm1", "pm2_5", "pm10", *(f"particles_{s}" for s in PMS_SIZES)),
    "pmsa003": ("pm1", "pm2_5", "pm10"),
    "sps30": ("pm1", "pm2_5", "pm4", "pm10", *SPS30_NUMBERS),
    "bme280": ("temperature", "relative_humidity", "pressure"),
    "bmp280": ("temperature", "pressure"),
    "bme680": ("temperature", "relative_humidity", "pressure"),
    "sht3x": ("temperature", "relative_humidity"),
    "sht31": ("temperature", "relative_humidity"),
    "sht4x": ("temperature", "relative_humidity"),
    "htu21d": ("temperature", "relative_humidity"),
    "dht22": ("temperature", "relative_humidity"),
    "scd30": ("co2", "temperature", "relative_humidity"),
    "scd4x": ("co2", "temperature", "relative_humidity"),
    # A buried probe measures soil_temperature, one in the air temperature (its config says).
    "ds18b20": ("soil_temperature", "temperature"),
    "no2-b43f": ("no2",),
    "hpma115": ("pm2_5", "pm10"),
    "nextpm": ("pm1", "pm2_5", "pm10"),
    "ips7100": ("pm1", "pm2_5", "pm10"),
    "bmp180": ("temperature", "pressure"),
    "dnms": ("noise",),
    "soil_probe": ("soil_moisture", "soil_probe_voltage"),
}
CAMERA_SENSORS = frozenset({"camera"})
# Expected running hours of a laser PM sensor's laser (the edge agent counts them: edge.duty).
# A model left out has no figure a source gives: its life shows as unknown, not invented.
LASER_LIFE_H: dict[str, float] = {
    "sds011": 8_000.0,  # Nova Fitness: 8000 hours of continuous use
    "pms5003": 3 * 8_760.0,  # Plantower: MTTF >= 3 years (PMS5003ST manual V2.6)
    # Plantower, "PMSA003 series data manual" V2.5 (2016-09-01), Technical Index: MTTF >= 3
    # years (copy at https://www.scribd.com/document/675569791/PMSA003).
    "pmsa003": 3 * 8_760.0,
    # PMS7003: unknown. The PMS7003 spec text we have (research28 §1, git.ferano.io pmme
    # pms7003-spec.txt) starts after the technical index; no source read gives its MTTF.
}

PERSONAL_DATA_CAMERA = (
    "yes: a camera sees people in public space; images are processed on the device only and "
    "never stored or sent; only anonymous counts per class and direction leave it"
)
# What a device without a camera measures, in words a resident reads, by quantity: the
# privacy note names them ("no: the device measures particulate matter, temperature and
# humidity only"), so that a soil probe or a classroom's CO2 sensor is not said to measure "air
# and weather". CO2 indoors rises with the number of people in a room: it is named as such,
# not hidden in "air". A quantity not listed here is named by its description.
MEASURED_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "particulate matter": "particulate matter",
        "no2": "nitrogen dioxide",
        "co2": "CO2",
        "temperature": "temperature",
        "relative_humidity": "humidity",
        "pressure": "air pressure",
        "noise": "sound level (no recordings)",
        "soil moisture": "soil moisture",
        "soil_temperature": "soil temperature",
    },
    "nl": {
        "particulate matter": "fijnstof",
        "no2": "stikstofdioxide",
        "co2": "CO2",
        "temperature": "temperatuur",
        "relative_humidity": "luchtvochtigheid",
        "pressure": "luchtdruk",
        "noise": "geluidsniveau (geen opnames)",
        "soil moisture": "bodemvocht",
        "soil_temperature": "bodemtemperatuur",
    },
}
_NONE_SENTENCE = {"en": "no: the device measures {} only", "nl": "nee: het apparaat meet alleen {}"}
_AND = {"en": "and", "nl": "en"}


def _measured_key(quantity: str) -> str:
    """The word group of a quantity: all particle quantities are one, the soil probe's
    moisture and its voltage are one."""
    if quantity.startswith(("pm", "particles_", "number_", "particle_")):
        return "particulate matter"
    if quantity in ("soil_moisture", "soil_probe_voltage"):
        return "soil moisture"
    return quantity


def personal_data_none(quantities: Sequence[str], lang: str = "en") -> str:
    """The privacy note of a device that processes no personal data and measures
    `quantities` (in QUANTITIES' order), in English or Dutch ("nl"); with none known, the
    English PERSONAL_DATA_UNDECLARED (query.register_page translates it)."""
    words: list[str] = []
    for q in quantities:
        key = _measured_key(q)
        known = QUANTITIES[q].description if q in QUANTITIES else q.replace("_", " ")
        word = MEASURED_WORDS[lang].get(key, known)
        if word not in words:
            words.append(word)
    if not words:
        return PERSONAL_DATA_UNDECLARED
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {_AND[lang]} {words[-1]}"
    return _NONE_SENTENCE[lang].format(listed)


PERSONAL_DATA_UNDECLARED = "no: no camera is declared for it; ask the contact what it measures"
# How a device's readings arrive and what vouches for them (protocol.provenance), for residents.
SOURCE_NOTES: dict[str, str] = {
    "edge": "a sensorpipe device that signs its readings itself",
    "airrohr": (
        "a Sensor.Community airrohr kit; it cannot sign its readings, so the network's gateway "
        "that receives them signs them"
    ),
    "ttn": (
        "a LoRaWAN node through The Things Network; the network's gateway signs the readings "
        "it receives"
    ),
    "import": "history imported from files by the network's operator",
    "reference": (
        "an official reference station of a monitoring network; its published values are "
        "imported from files by the network's operator"
    ),
}
LEGAL_BASIS_NONE = "not applicable: no personal data is processed"
LEGAL_BASIS_UNSTATED = "not stated by the operator: ask the contact"


class RoundedLocation(BaseModel):
    lat: float
    lon: float
    precision_decimals: int = Field(description="decimals published; 3 is about 100 m")


class RegisterEntry(BaseModel):
    """One device in the public register."""

    model_config = ConfigDict(extra="forbid")

    device_id: str
    site: str
    owner: str
    purpose: str
    sensors: list[str] = Field(description="sensor models (declared, plus any seen reporting)")
    quantities: list[str] = Field(description="quantities it measures (protocol names)")
    counts: bool = Field(description="whether it counts passers-by")
    count_classes: list[str] = Field(description="classes it counts (empty if it does not)")
    directions: list[str]
    personal_data: bool
    personal_data_note: str
    contact: str
    legal_basis: str
    retention: str
    licence: str
    source: str = Field(
        description="how its readings arrive: edge, airrohr, ttn, import or reference"
    )
    source_note: str = Field(description="the same, and what vouches for them, in words")
    station_code: str = Field(
        default="", description="a reference station's code in its network (empty otherwise)"
    )
    operator: str = Field(default="", description="who runs a reference station")
    method: str = Field(default="", description="how a reference station measures")
    location: RoundedLocation | None


def counts_passers_by(entry: DeviceEntry) -> bool:
    return bool(CAMERA_SENSORS & set(entry.sensors)) or bool(entry.count_classes)


def register_entry(
    device_id: str,
    entry: DeviceEntry,
    network: NetworkInfo,
    *,
    seen_sensors: set[str] | frozenset[str] = frozenset(),
    seen_quantities: set[str] | frozenset[str] = frozenset(),
    seen_counting: bool = False,
) -> RegisterEntry:
    """The public entry of one device; `seen_*` add what InfluxDB shows it reporting."""
    sensors = sorted(set(entry.sensors) | set(seen_sensors))
    quantities = {q for s in sensors for q in SENSOR_QUANTITIES.get(sensor_model(s), ())}
    quantities |= set(seen_quantities) | set(entry.quantities)
    ordered = [q for q in QUANTITIES if q in quantities]
    counting = counts_passers_by(entry) or seen_counting
    personal = entry.personal_data if entry.personal_data is not None else counting
    if personal:
        note = PERSONAL_DATA_CAMERA if counting else "yes: as stated by the operator"
    else:
        if counting:
            note = "no: as stated by the operator"
        else:
            note = personal_data_none(ordered)
    legal = entry.legal_basis or network.legal_basis
    if not legal:
        legal = LEGAL_BASIS_UNSTATED if personal else LEGAL_BASIS_NONE
    location = None
    if entry.location is not None:
        n = entry.location_precision_decimals
        location = RoundedLocation(
            lat=round(entry.location.lat, n), lon=round(entry.location.lon, n), precision_decimals=n
        )
    return RegisterEntry(
        device_id=device_id,
        site=entry.site,
        owner=entry.owner,
        purpose=entry.purpose,
        sensors=sensors,
        quantities=ordered,
        counts=counting,
        count_classes=(list(entry.count_classes) or list(COUNT_CLASSES)) if counting else [],
        directions=list(entry.directions or DEFAULT_DIRECTIONS) if counting else [],
        personal_data=personal,
        personal_data_note=note,
        contact=entry.contact or network.contact,
        legal_basis=legal,
        retention=entry.retention or network.retention,
        licence=entry.licence or network.licence,
        source=entry.source,
        source_note=SOURCE_NOTES[entry.source],
        station_code=entry.station_code,
        operator=entry.operator,
        method=entry.method,
        location=location,
    )


def build_register(registry: Registry) -> list[RegisterEntry]:
    """Every registered device's public entry, by device id."""
    return [
        register_entry(device_id, entry, registry.network)
        for device_id, entry in sorted(registry.devices.items())
    ]


def register_geojson(
    entries: Sequence[Mapping[str, Any]],
    name: str,
    *,
    foreign: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Register entries (RegisterEntry dumps, with any further properties) as a GeoJSON
    FeatureCollection (RFC 7946: coordinates are [lon, lat]).

    The point is the published, rounded `location`, or `exact_location` where an entry carries
    one; an entry without either is a feature with a null geometry. `foreign` adds members to
    the collection (RFC 7946 section 6.1), such as who runs the network."""
    features = []
    for entry in entries:
        props = {k: v for k, v in entry.items() if k not in ("location", "exact_location")}
        location = entry.get("location")
        where = entry.get("exact_location") or location
        geometry = None
        if where is not None:
            geometry = {"type": "Point", "coordinates": [where["lon"], where["lat"]]}
            if location is not None:
                props["location_precision_decimals"] = location["precision_decimals"]
        features.append(
            {"type": "Feature", "id": entry["device_id"], "geometry": geometry, "properties": props}
        )
    return {"type": "FeatureCollection", "name": name, **(foreign or {}), "features": features}
