"""The device registry: who each device is, where it stands, what it measures and why.

The gateway generates broker credentials and ACLs from it, the ingest verifies signatures and
membership against it, and `sensorpipe devices export` publishes its public part for residents.
Only public keys and password hashes live here, never secrets.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensorpipe.protocol.configfile import load_model
from sensorpipe.protocol.counting import COUNT_CLASSES, DIRECTION_PATTERN
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.messages import SENSOR_PATTERN, Location
from sensorpipe.protocol.provenance import EDGE, KIT_SOURCES, DeviceSource
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN, is_valid_device_id

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# An airrohr kit's chip id as its firmware sends it (`esp8266id`): decimal on an ESP8266,
# lower-case hexadecimal on an ESP32.
CHIP_ID_PATTERN = r"^[0-9a-f]{1,20}$"
# The Things Stack: application id with its tenant (`my-app@ttn`), end device id (`eui-...`).
TTN_APPLICATION_PATTERN = r"^[a-z0-9](?:-?[a-z0-9]){1,35}@[a-z0-9](?:-?[a-z0-9]){1,35}$"
TTN_DEVICE_PATTERN = r"^[a-z0-9](?:-?[a-z0-9]){1,35}$"


def _known_names(names: list[str], known: Collection[str], what: str) -> list[str]:
    """`names` if each is one of `known`; else a ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}: expected some of {list(known)}")
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceEntry(_Strict):
    site: str = Field(pattern=TAG_PATTERN)
    owner: str = ""
    purpose: str = ""
    # Sensor models it may report. Empty: any model the project knows (KNOWN_SENSORS).
    sensors: list[Annotated[str, Field(pattern=SENSOR_PATTERN)]] = Field(
        default_factory=list, max_length=32
    )
    # Direction names its counting line uses. Empty: the defaults (DEFAULT_DIRECTIONS).
    directions: list[Annotated[str, Field(pattern=DIRECTION_PATTERN)]] = Field(
        default_factory=list, max_length=8
    )
    # How its readings arrive (protocol.provenance): its own edge agent, a kit through a
    # sensorpipe gateway, or history files only.
    source: DeviceSource = EDGE
    # Edge devices: the Ed25519 public key it signs with and its broker password's hash. An
    # empty key: the device makes its own and enrols it (protocol.enrollment, `edge join`).
    # airrohr kits: the hash of the HTTP basic-auth password typed into the kit (no key: the
    # gateway signs). TTN nodes and imported devices: neither.
    public_key: str = ""
    password_hash: str = ""
    # Kits: the sensorpipe gateway that receives their readings and signs them.
    gateway: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    chip_id: str | None = Field(default=None, pattern=CHIP_ID_PATTERN)
    ttn_application: str | None = Field(default=None, pattern=TTN_APPLICATION_PATTERN)
    ttn_device: str | None = Field(default=None, pattern=TTN_DEVICE_PATTERN)
    # Fixed location of a stationary device, published rounded to this many decimals
    # (3 decimals is about 100 m): citizen hosts decide how precisely their home is shown.
    location: Location | None = None
    location_precision_decimals: int = Field(default=3, ge=0, le=6)
    # What residents are told (the public register). Empty: the network's value.
    contact: str = Field(default="", max_length=200)
    legal_basis: str = Field(default="", max_length=300)
    retention: str = Field(default="", max_length=200)
    licence: str = Field(default="", max_length=100)
    # Classes a counting camera reports (empty: every class sensorpipe counts, when it counts).
    count_classes: list[Annotated[str, Field(pattern=DIRECTION_PATTERN)]] = Field(
        default_factory=list, max_length=16
    )
    # Whether the device processes personal data on the device (a camera does, even if only
    # anonymous counts leave it). None: decided from its sensors.
    personal_data: bool | None = None
    # Its own quota at the ingest, where the network's default ([quota] in ingest.toml) does not
    # fit: e.g. a device that reports every second. None: the default.
    max_messages_per_s: float | None = Field(default=None, gt=0, le=100_000)
    max_bytes_per_s: int | None = Field(default=None, ge=1024)
    # Reference stations (source reference): the network's own station code (`NL10404`, AQS
    # `370630099`), who runs it, and how it measures (the methods per quantity, as the data
    # says). Empty for other devices.
    station_code: str = Field(default="", max_length=100)
    operator: str = Field(default="", max_length=200)
    method: str = Field(default="", max_length=300)
    # Imported history (sources import and reference): the quantities its files held, for the
    # register where the sensor model says nothing of them (a logger, a station). Kept by
    # `sensorpipe import`, never by hand.
    quantities: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("quantities")
    @classmethod
    def _known_quantities(cls, quantities: list[str]) -> list[str]:
        return _known_names(quantities, QUANTITIES, "quantities")

    @model_validator(mode="after")
    def _what_its_source_needs(self) -> DeviceEntry:
        needs: dict[str, tuple[str, ...]] = {
            "edge": ("password_hash",),
            "airrohr": ("gateway", "chip_id", "password_hash"),
            "ttn": ("gateway", "ttn_application", "ttn_device"),
            "import": (),
            "reference": (),
        }
        missing = [k for k in needs[self.source] if not getattr(self, k)]
        if missing:
            raise ValueError(f"a device of source {self.source!r} needs {', '.join(missing)}")
        if self.source not in KIT_SOURCES and self.gateway is not None:
            raise ValueError(f"only kits (airrohr, ttn) have a gateway, not {self.source!r}")
        if self.source != EDGE and self.public_key:
            raise ValueError(f"a device of source {self.source!r} has no key of its own")
        return self


class GatewayAccount(_Strict):
    """A sensorpipe gateway that receives kits' readings (airrohr HTTP, The Things Stack) and
    publishes them signed with its own key: its broker account may publish only for its kits."""

    public_key: str
    password_hash: str


class NetworkInfo(_Strict):
    """Who runs the network, and what applies to each device unless its entry says otherwise."""

    name: str = Field(default="sensorpipe network", max_length=120)
    operator: str = Field(default="", max_length=200)
    contact: str = Field(default="", max_length=200)
    legal_basis: str = Field(default="", max_length=300)
    retention: str = Field(default="readings are kept as long as the network runs", max_length=200)
    licence: str = Field(default="CC-BY-4.0", max_length=100)
    privacy_url: str = Field(default="", max_length=300)


# Sensor models a device may name without declaring them: the drivers here and the sensors of
# the citizen-science kits people own. Stored values become InfluxDB tags, so free-form names
# would let one device create unlimited series.
KNOWN_SENSORS = frozenset(
    {
        "sds011", "bme280", "bmp280", "bme680", "pms5003", "pms7003", "pmsa003", "sps30",
        "sht3x", "sht31", "sht4x", "htu21d", "dht22", "scd30", "scd4x", "ds18b20",
        "no2-b43f", "camera", "hpma115", "nextpm", "ips7100", "bmp180", "dnms",
        "soil_probe",
    }
)  # fmt: skip
# Models of which a device may carry several, each with its own sensor tag `<model>.<suffix>`
# (`soil_probe.bed2`, `ds18b20.deep`: the edge agent's `sensor` key, edge.drivers.registry's
# sensor_tag). Such a tag is a known sensor, judged as its model (sensor_model).
TAGGED_MODELS = frozenset({"soil_probe", "ds18b20", "pms5003", "pms7003", "pmsa003"})
DEFAULT_DIRECTIONS = ("left_to_right", "right_to_left")


def sensor_model(tag: str) -> str:
    """The sensor model a sensor tag names: the part before its first dot (`soil_probe.bed2`:
    `soil_probe`); data sheets and quality settings are looked up by it."""
    return tag.split(".", 1)[0]


def known_sensor(tag: str) -> bool:
    """A model sensorpipe knows (KNOWN_SENSORS), or `<model>.<suffix>` of a TAGGED_MODELS one."""
    model, dot, suffix = tag.partition(".")
    return tag in KNOWN_SENSORS or (bool(dot and suffix) and model in TAGGED_MODELS)


def allowed_sensors(entry: DeviceEntry) -> frozenset[str]:
    return frozenset(entry.sensors) if entry.sensors else KNOWN_SENSORS


def allowed_directions(entry: DeviceEntry) -> frozenset[str]:
    return frozenset(entry.directions or DEFAULT_DIRECTIONS)


AREA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
AREA_KINDS = ("enclosed", "street")
# The interval an area's levels are given per: a number and m or h, from 1m to 1d.
AREA_INTERVAL_PATTERN = r"^[1-9][0-9]{0,4}[mh]$"


class AreaLine(_Strict):
    """A counting device (its line) of an area: which of its directions go into the area and
    which out of it. A street area counts every direction given here (none given: all)."""

    device: str = Field(pattern=DEVICE_ID_PATTERN)
    inward: list[Annotated[str, Field(pattern=DIRECTION_PATTERN)]] = Field(
        default_factory=list, max_length=8
    )
    outward: list[Annotated[str, Field(pattern=DIRECTION_PATTERN)]] = Field(
        default_factory=list, max_length=8
    )

    @model_validator(mode="after")
    def _in_or_out(self) -> AreaLine:
        both = sorted(set(self.inward) & set(self.outward))
        if both:
            raise ValueError(f"line {self.device}: {', '.join(both)} cannot count both in and out")
        return self


class AreaEntry(_Strict):
    """An area whose crowding is measured (sensorpipe.crowd): a street (capacity: passers-by
    per interval) or an enclosed place (capacity: persons at once, its occupancy counted from
    the ins and outs of its lines). Its devices are either those inside `polygon` (a
    GeoJSON-style ring of [lon, lat]) or its `lines`."""

    name: str = Field(min_length=1, max_length=120)
    kind: Literal["enclosed", "street"]
    capacity: int = Field(gt=0, le=10_000_000)
    interval: str = Field(default="1h", pattern=AREA_INTERVAL_PATTERN)
    polygon: list[tuple[float, float]] = Field(default_factory=list, max_length=1000)
    lines: list[AreaLine] = Field(default_factory=list, max_length=100)
    # Classes that count as the crowd (protocol.counting's classes).
    classes: list[Annotated[str, Field(pattern=DIRECTION_PATTERN)]] = Field(
        default_factory=lambda: ["pedestrian"], min_length=1, max_length=8
    )
    # Public holidays (ISO 3166-1 country, optional subdivision as the `holidays` package
    # names it, e.g. NZ and AUK) and the local time of its days (IANA zone).
    country: str = Field(default="NL", pattern=r"^[A-Z]{2}$")
    subdivision: str = Field(default="", pattern=r"^[A-Z0-9]{0,6}$")
    timezone: str = Field(default="Europe/Amsterdam", max_length=64)
    # Enclosed: the local hour at which the occupancy is reset to zero each day.
    quiet_hour: int = Field(default=4, ge=0, le=23)
    # Levels (fractions of the capacity) that are alerted on, going up.
    thresholds: list[float] = Field(default_factory=lambda: [0.7, 0.9], min_length=1, max_length=5)
    # Below this share of the interval its counters ran, an interval has no level.
    min_running_fraction: float = Field(default=0.25, gt=0, le=1)

    @field_validator("interval")
    @classmethod
    def _whole_interval(cls, interval: str) -> str:
        seconds = int(interval[:-1]) * (60 if interval[-1] == "m" else 3600)
        if not (3600 % seconds == 0 or (seconds % 3600 == 0 and 86400 % seconds == 0)):
            raise ValueError(
                f"interval {interval!r}: give one that divides an hour or a day, "
                "like 5m, 15m, 1h or 6h"
            )
        return interval

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, classes: list[str]) -> list[str]:
        return _known_names(classes, COUNT_CLASSES, "classes")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone!r}: give an IANA name like Europe/Amsterdam"
            ) from None
        return zone

    @field_validator("thresholds")
    @classmethod
    def _rising(cls, thresholds: list[float]) -> list[float]:
        if any(not 0 < t <= 10 for t in thresholds) or thresholds != sorted(set(thresholds)):
            raise ValueError(
                "give rising fractions of the capacity above 0, e.g. [0.7, 0.9] (70 % and 90 %)"
            )
        return thresholds

    @field_validator("polygon")
    @classmethod
    def _ring(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not polygon:
            return polygon
        for lon, lat in polygon:
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(f"polygon point {lon},{lat}: give lon,lat in degrees")
        ring = list(polygon)
        if ring[0] != ring[-1]:
            ring.append(ring[0])  # GeoJSON: the ring ends where it starts
        if len(set(ring)) < 3:
            raise ValueError("polygon: give at least three distinct lon,lat points")
        return ring

    @model_validator(mode="after")
    def _devices_of_its_kind(self) -> AreaEntry:
        if bool(self.polygon) == bool(self.lines):
            raise ValueError("an area has either a polygon or counting lines, one of them")
        if self.kind == "enclosed":
            if not self.lines:
                raise ValueError(
                    "an enclosed area needs counting lines with the directions that go in "
                    "and out (a polygon does not say which way people cross)"
                )
            if not any(line.inward for line in self.lines) or not any(
                line.outward for line in self.lines
            ):
                raise ValueError("an enclosed area needs a direction in and one out")
        devices = [line.device for line in self.lines]
        twice = sorted({d for d in devices if devices.count(d) > 1})
        if twice:
            raise ValueError(f"devices listed twice: {', '.join(twice)}")
        return self


class ServiceAccount(_Strict):
    username: str = Field(pattern=DEVICE_ID_PATTERN)
    password_hash: str


class Registry(_Strict):
    network: NetworkInfo = Field(default_factory=NetworkInfo)
    devices: dict[str, DeviceEntry] = Field(default_factory=dict)
    ingest: ServiceAccount | None = None
    # Further accounts that may read every device's messages (more ingest workers on a shared
    # subscription, auditors). The broker uses the user name as client id, so each process
    # that reads needs an account of its own.
    readers: list[ServiceAccount] = Field(default_factory=list)
    # Accounts that may only read the crowding alerts (sensorpipe/alerts/v1/#), one per
    # subscriber: a control room, a bridge to a pager.
    alert_subscribers: list[ServiceAccount] = Field(default_factory=list)
    gateways: dict[str, GatewayAccount] = Field(default_factory=dict)
    # Areas whose crowding is measured, by id (sensorpipe.crowd).
    areas: dict[str, AreaEntry] = Field(default_factory=dict)

    def reader_names(self) -> list[str]:
        names = [self.ingest.username] if self.ingest is not None else []
        return names + [r.username for r in self.readers]

    @field_validator("devices")
    @classmethod
    def _ids_are_valid(cls, devices: dict[str, DeviceEntry]) -> dict[str, DeviceEntry]:
        for device_id in devices:
            if not is_valid_device_id(device_id):
                raise ValueError(f"invalid device id {device_id!r}: expected {DEVICE_ID_PATTERN}")
        return devices

    @model_validator(mode="after")
    def _kits_are_consistent(self) -> Registry:
        for name in self.gateways:
            if not is_valid_device_id(name):
                raise ValueError(f"invalid gateway id {name!r}: expected {DEVICE_ID_PATTERN}")
            if name in self.devices or name in self.reader_names():
                raise ValueError(f"gateway {name!r} has the name of a device or a reader")
        taken = set(self.devices) | set(self.reader_names()) | set(self.gateways)
        for account in self.alert_subscribers:
            if account.username in taken:
                raise ValueError(
                    f"alert subscriber {account.username!r} has the name of a device, a reader "
                    "or a gateway"
                )
        chips: dict[str, str] = {}
        nodes: dict[tuple[str, str], str] = {}
        for device_id, d in self.devices.items():
            if d.gateway is not None and d.gateway not in self.gateways:
                raise ValueError(f"device {device_id!r}: gateway {d.gateway!r} is not registered")
            if d.chip_id is not None:
                if d.chip_id in chips:
                    raise ValueError(
                        f"chip id {d.chip_id} is registered twice: {chips[d.chip_id]}, {device_id}"
                    )
                chips[d.chip_id] = device_id
            if d.ttn_application is not None and d.ttn_device is not None:
                node = (d.ttn_application, d.ttn_device)
                if node in nodes:
                    raise ValueError(
                        f"TTN device {node[1]} of {node[0]} is registered twice: "
                        f"{nodes[node]}, {device_id}"
                    )
                nodes[node] = device_id
        self.check_areas()
        return self

    def check_areas(self) -> None:
        """Each area's id is valid, its lines are registered devices and count directions
        those devices have."""
        for area_id, area in self.areas.items():
            if not re.match(AREA_ID_PATTERN, area_id):
                raise ValueError(f"invalid area id {area_id!r}: expected {AREA_ID_PATTERN}")
            for line in area.lines:
                entry = self.devices.get(line.device)
                if entry is None:
                    known = ", ".join(sorted(self.devices)[:10]) or "none"
                    raise ValueError(
                        f"area {area_id!r}: device {line.device!r} is not registered "
                        f"(registered: {known}); register it first or leave it out"
                    )
                unknown = sorted(set(line.inward + line.outward) - allowed_directions(entry))
                if unknown:
                    raise ValueError(
                        f"area {area_id!r}: device {line.device!r} has no direction "
                        f"{', '.join(unknown)} (its directions: "
                        f"{', '.join(sorted(allowed_directions(entry)))})"
                    )

    def kit_by_chip(self, chip_id: str) -> str | None:
        """The device id of the airrohr kit with this chip id."""
        for device_id, d in self.devices.items():
            if d.source == "airrohr" and d.chip_id == chip_id:
                return device_id
        return None

    def kit_by_ttn(self, application: str, ttn_device: str) -> str | None:
        """The device id of the TTN node `ttn_device` of `application` (`app@tenant`)."""
        for device_id, d in self.devices.items():
            if d.source == "ttn" and (d.ttn_application, d.ttn_device) == (application, ttn_device):
                return device_id
        return None

    def public_view(self) -> list[dict[str, object]]:
        """What residents may see: id, site, owner, purpose, sensors, rounded location."""
        out: list[dict[str, object]] = []
        for device_id, d in sorted(self.devices.items()):
            loc = None
            if d.location is not None:
                n = d.location_precision_decimals
                loc = {"lat": round(d.location.lat, n), "lon": round(d.location.lon, n)}
            out.append(
                {
                    "device_id": device_id,
                    "site": d.site,
                    "owner": d.owner,
                    "purpose": d.purpose,
                    "sensors": d.sensors,
                    "location": loc,
                }
            )
        return out


def load_registry(path: Path | str, *, must_exist: bool = False) -> Registry:
    """The registry in `path`. A file that does not exist is an empty registry for those who
    create one (`devices add`, the local stack); with `must_exist`, for those who only read it
    (the ingest), it is a ConfigError: an empty registry would refuse every device."""
    path = Path(path)
    if not must_exist and not path.exists():
        return Registry()
    return load_model(path, Registry)


def save_registry(registry: Registry, path: Path | str) -> None:
    # Password hashes: private to the owner, from the first byte on.
    write_private(
        path,
        tomli_w.dumps(registry.model_dump(mode="json", exclude_none=True, exclude_defaults=True)),
    )
