"""Message models, version 1. The edge builds them, the ingest validates them: same code.

Every message carries who sent it (`device_id`), a per-device sequence number that survives
reboots (`seq`), when it was observed and whether the device clock was synchronised, when it was
sent, what the device knows about its link, an optional location (mobile sensors) and an
Ed25519 signature over everything else.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from sensorpipe.protocol.counting import COUNT_CLASSES, DIRECTION_PATTERN
from sensorpipe.protocol.quantities import (
    QUANTITIES,
    canonical_unit,
    plausibility_error,
    spellings_of,
)
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN

# Numbers are taken as sent (no "12" for 12, no true for 1) and integers fit InfluxDB's int64.
INT64_MAX = 2**63 - 1
SENSOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
# A kind of sensor fault (edge.errors): a key of SensorHealth.errors, and stored as the field
# `errors_<kind>`.
ERROR_KIND_PATTERN = r"^[a-z][a-z0-9_]{0,23}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KitLink(_Strict):
    """What a gateway learnt about a kit's transmission (airrohr HTTP, LoRaWAN through The
    Things Stack), stored as communication metadata beside what every device reports."""

    # Where `observed_at` came from: `receive` (the kit has no clock: the gateway's receive
    # time) or `network` (The Things Stack's `received_at`).
    time_source: Literal["receive", "network"]
    # airrohr: its measuring cycle (`samples` loop passes, `min_micro`/`max_micro` µs per pass,
    # `interval` ms between sends).
    samples: int | None = Field(default=None, ge=0, le=INT64_MAX, strict=True)
    min_micro: int | None = Field(default=None, ge=0, le=INT64_MAX, strict=True)
    max_micro: int | None = Field(default=None, ge=0, le=INT64_MAX, strict=True)
    interval_ms: int | None = Field(default=None, ge=0, le=INT64_MAX, strict=True)
    # LoRaWAN: the frame counter, the gateways that heard the uplink, the best SNR, the radio
    # settings and the airtime.
    f_cnt: int | None = Field(default=None, ge=0, le=2**32 - 1, strict=True)
    f_port: int | None = Field(default=None, ge=0, le=255, strict=True)
    gateways: int | None = Field(default=None, ge=0, le=1000, strict=True)
    gateway_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=8
    )
    snr_db: float | None = Field(default=None, ge=-40, le=40, strict=True)
    spreading_factor: int | None = Field(default=None, ge=5, le=12, strict=True)
    bandwidth_hz: int | None = Field(default=None, ge=0, le=10_000_000, strict=True)
    frequency_hz: int | None = Field(default=None, ge=0, le=10_000_000_000, strict=True)
    airtime_s: float | None = Field(default=None, ge=0, le=3600, strict=True)


class Link(_Strict):
    """What the device reports about its connection at the moment it sent the message."""

    # Wi-Fi, or LoRa, which is received down to about -137 dBm at SF12.
    rssi_dbm: int | None = Field(default=None, ge=-150, le=0, strict=True)
    reconnects: int = Field(default=0, ge=0, le=INT64_MAX, strict=True)
    outbox_depth: int = Field(default=0, ge=0, le=INT64_MAX, strict=True)
    uptime_s: float = Field(ge=0, le=1e12, strict=True)
    firmware: str = Field(min_length=1, max_length=64)
    # True when the message waited in the outbox across a disconnect or a restart.
    backlog: bool = Field(default=False, strict=True)
    # Readings the device gave up since the agent started (dropped to make room, not storable,
    # too large to send); each also left a gap in the sequence numbers, the exact figure.
    outbox_dropped: int = Field(default=0, ge=0, le=INT64_MAX, strict=True)
    # Kits only: what the gateway that received the reading learnt about its transmission.
    kit: KitLink | None = None


class Location(_Strict):
    lat: float = Field(ge=-90, le=90, strict=True)
    lon: float = Field(ge=-180, le=180, strict=True)
    alt_m: float | None = Field(default=None, ge=-500, le=9000, strict=True)


class Reading(_Strict):
    quantity: str
    value: float = Field(strict=True)
    unit: str
    sensor: str = Field(pattern=SENSOR_PATTERN)

    @field_validator("unit", mode="before")
    @classmethod
    def _usual_spelling(cls, unit: object) -> object:
        # Canonical on the wire and in storage; `µg/m³` and `°C` as people write them.
        return canonical_unit(unit) if isinstance(unit, str) else unit

    @model_validator(mode="after")
    def _known_and_plausible(self) -> Reading:
        q = QUANTITIES.get(self.quantity)
        if q is None:
            raise ValueError(f"unknown quantity {self.quantity!r}")
        if self.unit != q.unit:
            written = " or ".join(repr(s) for s in spellings_of(q.unit))
            raise ValueError(f"{self.quantity} must be in {written}, got {self.unit!r}")
        problem = plausibility_error(self.quantity, self.value)
        if problem is not None:
            raise ValueError(problem)
        return self


class SensorHealth(_Strict):
    """Per-sensor counters since the agent started: gaps and bad frames stay visible."""

    sensor: str = Field(pattern=SENSOR_PATTERN)
    ok: bool = Field(strict=True)
    reads_ok: int = Field(ge=0, le=INT64_MAX, strict=True)
    reads_failed: int = Field(ge=0, le=INT64_MAX, strict=True)
    frames_bad: int = Field(ge=0, le=INT64_MAX, strict=True)
    values_rejected: int = Field(default=0, ge=0, le=INT64_MAX, strict=True)
    last_error: str | None = Field(default=None, max_length=200)
    # A laser PM sensor's running hours (sensorpipe.edge.duty): how much of its life is used.
    laser_hours: float | None = Field(default=None, ge=0, le=1_000_000)
    # Faults by kind since the agent started (edge.errors): failed reads and opens by the kind
    # of their error, bad frames as "checksum", implausible values as "out_of_range".
    errors: dict[
        Annotated[str, Field(pattern=ERROR_KIND_PATTERN)],
        Annotated[int, Field(ge=0, le=INT64_MAX, strict=True)],
    ] = Field(default_factory=dict, max_length=16)
    # Seconds between attempts while the sensor keeps failing (backed off); 0: on schedule.
    backoff_s: float = Field(default=0.0, ge=0, le=1e9, strict=True)


class _Envelope(_Strict):
    v: Literal[1] = 1
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    seq: int = Field(ge=0, le=INT64_MAX, strict=True)
    observed_at: AwareDatetime
    clock_synced: bool = Field(strict=True)
    sent_at: AwareDatetime
    location: Location | None = None
    link: Link
    # A kit's message is signed by the sensorpipe gateway that received it: this is that
    # gateway's id, and `sig` is its signature. None: the device signed it itself.
    vouched_by: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    sig: str | None = Field(default=None, max_length=200)


class SendingFields(_Strict):
    """The envelope's fields a device fills in as it sends (as in `_Envelope`), for an agent
    that validated the rest when it queued the message (edge.entries.prepare)."""

    sent_at: AwareDatetime
    link: Link


class AirMessage(_Envelope):
    kind: Literal["air"] = "air"
    readings: list[Reading] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_value_per_sensor_quantity(self) -> AirMessage:
        seen: set[tuple[str, str]] = set()
        for r in self.readings:
            key = (r.sensor, r.quantity)
            if key in seen:
                raise ValueError(f"duplicate reading of {r.quantity} from sensor {r.sensor}")
            seen.add(key)
        return self


class StatusMessage(_Envelope):
    kind: Literal["status"] = "status"
    sensors: list[SensorHealth] = Field(max_length=32)


class ClassCount(_Strict):
    count_class: str
    direction: str = Field(pattern=DIRECTION_PATTERN)
    count: int = Field(ge=0, le=1_000_000, strict=True)

    @model_validator(mode="after")
    def _known_class(self) -> ClassCount:
        if self.count_class not in COUNT_CLASSES:
            known = ", ".join(COUNT_CLASSES)
            raise ValueError(f"unknown count class {self.count_class!r}: expected one of {known}")
        return self


class CountMessage(_Envelope):
    """Passers-by per class and direction in one interval; `observed_at` is its start.

    Only these aggregates leave the device: never a frame, a crop or a track. Every class and
    direction the counter watches is listed, zeros included, so "none passed" differs from
    "not counted". `running_fraction` is the share of the interval the counter actually
    processed frames, so camera or model outages show as gaps instead of low counts.
    """

    kind: Literal["count"] = "count"
    interval_end: AwareDatetime
    model_id: str = Field(min_length=1, max_length=80)
    running_fraction: float = Field(ge=0.0, le=1.0, strict=True)
    frames: int = Field(ge=0, le=INT64_MAX, strict=True)
    counts: list[ClassCount] = Field(max_length=64)

    @model_validator(mode="after")
    def _interval_and_unique(self) -> CountMessage:
        if self.interval_end <= self.observed_at:
            raise ValueError("interval_end must be after observed_at (the interval start)")
        keys = [(c.count_class, c.direction) for c in self.counts]
        if len(keys) != len(set(keys)):
            raise ValueError("each count class and direction may appear once")
        return self


AnyMessage = AirMessage | StatusMessage | CountMessage
Message = Annotated[AnyMessage, Field(discriminator="kind")]
MESSAGE_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(Message)
