"""Sensor.Community airrohr kits: what their firmware POSTs to "Send data to custom API", as a
sensorpipe message. Pure functions, no I/O.

The firmware (opendata-stuttgart/sensors-software, airrohr-firmware.ino, `sendData` and
`sendDataToOptionalApis`) sends, every `interval` ms (145 s by default):

    POST <Path> HTTP/1.1
    Host: <Server>:<Port>
    User-Agent: NRZ-2024-135/<chip id>/<mac>
    Connection: close
    Authorization: Basic <User:Password>          (when User or Password is set)
    Content-Type: application/json
    X-Sensor: esp8266-<chip id>                   (esp32-<chip id> on an ESP32)
    X-MAC-ID: esp8266-<mac, lower-case hex>

    {"esp8266id": "<chip id>", "software_version": "NRZ-2024-135", "sensordatavalues":[
     {"value_type":"SDS_P1","value":"12.30"}, ..., {"value_type":"signal","value":"-67"}]}

Every value is a string (Arduino's `String(float)`: two decimals). Which value types appear
depends on the sensors ticked on the kit's config page; `samples`, `min_micro`, `max_micro`,
`interval` and `signal` are always there. The kit has no clock: the gateway's receive time is
the observation time (`time_source = "receive"`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sensorpipe.protocol.messages import (
    INT64_MAX,
    AirMessage,
    KitLink,
    Link,
    Location,
    Reading,
    StatusMessage,
)
from sensorpipe.protocol.quantities import QUANTITIES


@dataclass(frozen=True, slots=True)
class ValueType:
    """A value type the firmware sends, as a sensorpipe reading: stored = sent * scale."""

    quantity: str
    sensor: str
    unit: str
    scale: float = 1.0


def _v(quantity: str, sensor: str, scale: float = 1.0) -> ValueType:
    return ValueType(quantity, sensor, QUANTITIES[quantity].unit, scale)


PA_TO_HPA = 0.01

# value_type -> reading. The firmware's own names, from its fetchSensor* functions. Sensor
# models are those sensorpipe names elsewhere (protocol.registry.KNOWN_SENSORS); the PMS
# family (PMS1003..7003, PMSA003) sends the same value types and is named pms5003.
VALUE_TYPES: dict[str, ValueType] = {
    # Nova SDS011: P1 is PM10, P2 is PM2.5 (Sensor.Community's names).
    "SDS_P1": _v("pm10", "sds011"),
    "SDS_P2": _v("pm2_5", "sds011"),
    # Plantower PMS: P0 is PM1.
    "PMS_P0": _v("pm1", "pms5003"),
    "PMS_P1": _v("pm10", "pms5003"),
    "PMS_P2": _v("pm2_5", "pms5003"),
    # Honeywell HPMA115: here P1 is PM2.5 and P2 is PM10 (the firmware sends them so).
    "HPM_P1": _v("pm2_5", "hpma115"),
    "HPM_P2": _v("pm10", "hpma115"),
    # Tera Sensor NextPM.
    "NPM_P0": _v("pm1", "nextpm"),
    "NPM_P1": _v("pm10", "nextpm"),
    "NPM_P2": _v("pm2_5", "nextpm"),
    # Piera Systems IPS-7100.
    "IPS_P0": _v("pm1", "ips7100"),
    "IPS_P1": _v("pm10", "ips7100"),
    "IPS_P2": _v("pm2_5", "ips7100"),
    # Sensirion SPS30.
    "SPS30_P0": _v("pm1", "sps30"),
    "SPS30_P2": _v("pm2_5", "sps30"),
    "SPS30_P4": _v("pm4", "sps30"),
    "SPS30_P1": _v("pm10", "sps30"),
    # Its number concentrations (particles of 0.3 µm up to the size, per cm³) and typical size
    # (µm): N05 is NC0.5, N25 NC2.5, TS the typical particle size.
    "SPS30_N05": _v("number_pm0_5", "sps30"),
    "SPS30_N1": _v("number_pm1", "sps30"),
    "SPS30_N25": _v("number_pm2_5", "sps30"),
    "SPS30_N4": _v("number_pm4", "sps30"),
    "SPS30_N10": _v("number_pm10", "sps30"),
    "SPS30_TS": _v("particle_size_typical", "sps30"),
    # Bosch BME280 / BMP280 / BMP180: pressure in Pa.
    "BME280_temperature": _v("temperature", "bme280"),
    "BME280_humidity": _v("relative_humidity", "bme280"),
    "BME280_pressure": _v("pressure", "bme280", PA_TO_HPA),
    "BMP280_temperature": _v("temperature", "bmp280"),
    "BMP280_pressure": _v("pressure", "bmp280", PA_TO_HPA),
    "BMP_temperature": _v("temperature", "bmp180"),
    "BMP_pressure": _v("pressure", "bmp180", PA_TO_HPA),
    # Sensirion SHT3x, HTU21D, DHT22 (sent without a prefix), DS18B20.
    "SHT3X_temperature": _v("temperature", "sht3x"),
    "SHT3X_humidity": _v("relative_humidity", "sht3x"),
    "HTU21D_temperature": _v("temperature", "htu21d"),
    "HTU21D_humidity": _v("relative_humidity", "htu21d"),
    "temperature": _v("temperature", "dht22"),
    "humidity": _v("relative_humidity", "dht22"),
    "DS18B20_temperature": _v("temperature", "ds18b20"),
    # Sensirion SCD30.
    "SCD30_temperature": _v("temperature", "scd30"),
    "SCD30_humidity": _v("relative_humidity", "scd30"),
    "SCD30_co2_ppm": _v("co2", "scd30"),
    # DNMS noise sensor: the equivalent continuous level is the noise reading.
    "DNMS_noise_LAeq": _v("noise", "dnms"),
}

# Value types that describe the kit's measuring cycle and link: KitLink / Link fields.
LINK_TYPES: dict[str, str] = {
    "signal": "rssi_dbm",
    "samples": "samples",
    "min_micro": "min_micro",
    "max_micro": "max_micro",
    "interval": "interval_ms",
}

# The NEO-6M GPS: where a mobile kit was (the message's location). The firmware sends -200
# for a position it has no fix for and -1000 for an unknown height: those mean "no position".
POSITION_TYPES: dict[str, str] = {"GPS_lat": "lat", "GPS_lon": "lon", "GPS_height": "alt_m"}

_NUMBER_CONCENTRATION = "a number concentration (particles per cm³): no sensorpipe quantity"
_PPD42NS = "PPD42NS pulse statistics: no sensorpipe quantity"
# Value types the firmware sends that sensorpipe knows and does not store, and why. They are
# listed in the answer to the kit and counted, not dead-lettered: they are not bad input.
NOT_STORED: dict[str, str] = {
    **{f"NPM_N{s}": _NUMBER_CONCENTRATION for s in ("1", "10", "25")},
    **{f"IPS_N{s}": _NUMBER_CONCENTRATION for s in ("01", "03", "05", "1", "25", "5", "10")},
    "IPS_P01": "PM0.1: no sensorpipe quantity",
    "IPS_P03": "PM0.3: no sensorpipe quantity",
    "IPS_P05": "PM0.5: no sensorpipe quantity",
    "IPS_P5": "PM5: no sensorpipe quantity",
    "DNMS_noise_LA_min": "the interval's minimum level; the LAeq is stored as noise",
    "DNMS_noise_LA_max": "the interval's maximum level; the LAeq is stored as noise",
    "GPS_timestamp": "the GPS clock: the gateway's receive time is the observation time",
    **{name: _PPD42NS for name in ("P1", "P2", "durP1", "durP2", "ratioP1", "ratioP2")},
}

MAX_VALUES = 256  # a kit with every sensor ticked sends about 40
# The firmware writes values of a few characters ("-67", "1013.25"); a longer one is no value
# (and Python refuses to turn over 4,300 digits into an int at all).
MAX_VALUE_CHARS = 64
# Numbers as the firmware writes them: no NaN, no "inf", no Python-only forms like "1_0".
_DECIMAL = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
CHIP_ID = re.compile(r"^[0-9A-Za-z]{1,20}$")
X_SENSOR = re.compile(r"^esp(?:8266|32)-([0-9A-Za-z]{1,20})$")


class PostError(ValueError):
    """A body that is not an airrohr post at all. `code` is a dead-letter reason."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AirrohrPost:
    chip_id: str
    software_version: str | None
    values: list[tuple[str, Any]]  # (value_type, value) in the order sent


def parse_post(body: bytes) -> AirrohrPost:
    """The post's chip id, firmware version and values; PostError if it is not one."""
    try:
        obj = json.loads(body, parse_constant=_no_constant, parse_int=_json_int)
    except RecursionError:
        raise PostError("malformed_json", "nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, NaN
        raise PostError("malformed_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise PostError("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
    chip = obj.get("esp8266id")
    if isinstance(chip, int) and not isinstance(chip, bool):
        chip = str(chip)
    if not isinstance(chip, str) or not CHIP_ID.match(chip):
        raise PostError("schema", f"esp8266id {_short(chip)}: expected the kit's chip id")
    version = obj.get("software_version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 64):
        raise PostError("schema", f"software_version {_short(version)}: expected text")
    items = obj.get("sensordatavalues")
    if not isinstance(items, list):
        raise PostError("schema", "no sensordatavalues list")
    if len(items) > MAX_VALUES:
        raise PostError("schema", f"{len(items)} sensordatavalues, at most {MAX_VALUES}")
    values: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        name = item.get("value_type") if isinstance(item, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= 64 or "value" not in item:
            raise PostError(
                "schema", f"sensordatavalues[{i}]: expected {{'value_type': ..., 'value': ...}}"
            )
        values.append((name, item["value"]))
    return AirrohrPost(chip, version, values)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True, slots=True)
class TooLong:
    """A JSON number of more digits than any value (Python would refuse to convert it): a
    bad value where it is one, not a broken post."""

    digits: int

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def _json_int(text: str) -> int | TooLong:
    return TooLong(len(text)) if len(text) > MAX_VALUE_CHARS else int(text)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Translation:
    """What a post becomes: readings, position and link, and what was not taken."""

    readings: list[Reading] = field(default_factory=list)
    location: Location | None = None
    rssi_dbm: int | None = None
    kit: dict[str, int] = field(default_factory=dict)
    # Dead-letter reason -> one line per value concerned.
    problems: dict[str, list[str]] = field(default_factory=dict)
    not_stored: list[str] = field(default_factory=list)

    def problem(self, code: str, text: str) -> None:
        self.problems.setdefault(code, []).append(text)


def translate(post: AirrohrPost, *, allowed_sensors: frozenset[str]) -> Translation:
    """The readings sensorpipe stores from `post`; each value it cannot take is a problem
    (`unknown_value_type`, `bad_value`, `undeclared_sensor`) and the rest are still taken."""
    out = Translation()
    seen: set[str] = set()
    position: dict[str, float] = {}
    for name, raw in post.values:
        if name in seen:
            out.problem("bad_value", f"{name} sent twice; the first was taken")
            continue
        seen.add(name)
        if name in NOT_STORED:
            out.not_stored.append(name)
            continue
        value_type = VALUE_TYPES.get(name)
        if value_type is not None:
            _reading(out, name, raw, value_type, allowed_sensors)
        elif name in LINK_TYPES:
            _link_value(out, name, raw)
        elif name in POSITION_TYPES:
            number = _decimal(raw)
            if number is None:
                out.problem("bad_value", f"{name} = {_short(raw)}: not a number")
            else:
                position[POSITION_TYPES[name]] = number
        else:
            out.problem("unknown_value_type", f"{name} = {_short(raw)}")
    out.location = _location(out, position)
    return out


def _reading(
    out: Translation, name: str, raw: object, vt: ValueType, allowed: frozenset[str]
) -> None:
    number = _decimal(raw)
    if number is None:
        out.problem("bad_value", f"{name} = {_short(raw)}: not a number")
        return
    if vt.sensor not in allowed:
        out.problem(
            "undeclared_sensor",
            f"{name}: sensor {vt.sensor} is not declared for this kit "
            f"(`sensorpipe devices add-kit airrohr ... --sensor {vt.sensor}`)",
        )
        return
    value = number * vt.scale if vt.scale == 1.0 else round(number * vt.scale, 6)
    try:
        out.readings.append(
            Reading(quantity=vt.quantity, value=value, unit=vt.unit, sensor=vt.sensor)
        )
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        out.problem("bad_value", f"{name} = {_short(raw)}: {reason}")


def _link_value(out: Translation, name: str, raw: object) -> None:
    number = _integer(raw)
    key = LINK_TYPES[name]
    if key == "rssi_dbm":
        if number is None or not -130 <= number <= 0:
            out.problem("bad_value", f"{name} = {_short(raw)}: not a WiFi RSSI in dBm")
        else:
            out.rssi_dbm = number
        return
    if number is None or not 0 <= number <= INT64_MAX:
        out.problem("bad_value", f"{name} = {_short(raw)}: not a whole number >= 0")
        return
    out.kit[key] = number


NO_FIX = -200.0  # what the firmware sends for a position it has no fix for
NO_HEIGHT = -1000.0  # ... and for a height it does not know


def _location(out: Translation, position: dict[str, float]) -> Location | None:
    """The kit's position; None without GPS or without a fix (neither GPS_lat nor GPS_lon, or
    both the firmware's -200). A position out of range (lat in [-90, 90], lon in [-180, 180],
    height in [-500, 9000] m), or half of one (one of GPS_lat and GPS_lon missing or -200, the
    other not), is a `bad_value`."""
    lat, lon = position.get("lat"), position.get("lon")
    if lat in (None, NO_FIX) and lon in (None, NO_FIX):
        return None  # no GPS, or no fix
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        out.problem(
            "bad_value",
            f"GPS_lat = {_coordinate(lat)}, GPS_lon = {_coordinate(lon)}: not a position "
            f"(lat -90..90, lon -180..180, both or neither)",
        )
        return None
    alt = position.get("alt_m")
    if alt == NO_HEIGHT:
        alt = None
    elif alt is not None and not -500 <= alt <= 9000:
        out.problem("bad_value", f"GPS_height = {alt!r}: not a height (-500..9000 m)")
        alt = None
    return Location(lat=lat, lon=lon, alt_m=alt)


def _coordinate(value: float | None) -> str:
    return "missing" if value is None else repr(value)


def _decimal(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and len(raw) > MAX_VALUE_CHARS:
        return None
    try:
        if isinstance(raw, int | float) or (isinstance(raw, str) and _DECIMAL.match(raw)):
            number = float(raw)
        else:
            return None
    except OverflowError:  # an int beyond any float
        return None
    return number if number == number and abs(number) != float("inf") else None


def _integer(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and len(raw) <= MAX_VALUE_CHARS and _INTEGER.match(raw):
        return int(raw)
    return None


def message_for(
    device_id: str,
    seq: int,
    received_at: datetime,
    software_version: str | None,
    t: Translation,
) -> AirMessage | StatusMessage:
    """The message the gateway publishes for one post: an air message with its readings, or,
    when none could be taken, a status message that still records the kit's link."""
    link = Link(
        rssi_dbm=t.rssi_dbm,
        # The firmware does not send its uptime.
        uptime_s=0.0,
        firmware=software_version or "airrohr",
        kit=KitLink(
            time_source="receive",
            samples=t.kit.get("samples"),
            min_micro=t.kit.get("min_micro"),
            max_micro=t.kit.get("max_micro"),
            interval_ms=t.kit.get("interval_ms"),
        ),
    )
    envelope: dict[str, Any] = {
        "device_id": device_id,
        "seq": seq,
        "observed_at": received_at,
        "clock_synced": False,
        "sent_at": received_at,
        "location": t.location,
        "link": link,
    }
    if t.readings:
        return AirMessage(readings=t.readings, **envelope)
    return StatusMessage(sensors=[], **envelope)


def chip_of_x_sensor(header: str) -> str | None:
    """The chip id in an `X-Sensor: esp8266-<id>` header; None if it is not of that form."""
    match = X_SENSOR.match(header.strip())
    return match.group(1) if match else None
