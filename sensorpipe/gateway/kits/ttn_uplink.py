"""The Things Stack v3 uplink as its integrations deliver it: the JSON of `ApplicationUp`.

The MQTT integration publishes it on `v3/{application id}@{tenant id}/devices/{device id}/up`,
webhooks POST it, the Storage Integration returns it as `{"result": ...}` lines. Its field
names are protobuf's in snake_case (`end_device_ids`, `uplink_message.f_cnt`, `rx_metadata`).
Protobuf's JSON rules make a few of them surprising:

- fields with their zero value are left out: no `f_cnt` is frame counter 0, no `f_port` port 0,
  a gateway's `snr` of exactly 0 dB is absent too;
- 64-bit integers are strings: `settings.frequency` is `"868100000"`, `frequency_offset`
  `"-1870"`;
- durations are strings in seconds with an `s`: `consumed_airtime` `"0.061696s"`;
- times are RFC 3339 with nanoseconds (`"2024-11-26T09:15:42.331628717Z"`), read here to the
  microsecond;
- `end_device_ids.application_ids.application_id` is the application id without the tenant,
  which only the MQTT topic and user name carry (`my-app@ttn`).

The models accept the many fields The Things Stack adds from version to version (they are
ignored) but are strict about each field sensorpipe uses: a wrong type is a `schema` rejection,
not a guess. Reference: `api/ttn/lorawan/v3/messages.proto` (ApplicationUp, ApplicationUplink),
`metadata.proto` (RxMetadata), `lorawan.proto` (TxSettings, DataRate) in
TheThingsNetwork/lorawan-stack, and its data formats documentation.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# The Things Stack's identifiers: lower case letters, digits and single dashes, up to 36.
TTS_ID_PATTERN = r"^[a-z0-9](?:[-]?[a-z0-9]){1,35}$"
# Gateway ids are stored comma-separated (KitLink.gateway_ids): no commas, no spaces.
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DURATION = re.compile(r"^(\d{1,9})(?:\.(\d{1,9}))?s$")
# Packet Broker delivers uplinks that other networks' gateways heard under this gateway id;
# the gateway's own id, when its network shares it, is in `packet_broker.forwarder_gateway_id`.
PACKET_BROKER_GATEWAY = "packetbroker"


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApplicationIds(_Tolerant):
    application_id: str = Field(pattern=TTS_ID_PATTERN)


class EndDeviceIds(_Tolerant):
    device_id: str = Field(pattern=TTS_ID_PATTERN)
    application_ids: ApplicationIds
    dev_eui: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{16}$")


class GatewayIds(_Tolerant):
    gateway_id: str = Field(pattern=GATEWAY_ID_PATTERN)
    eui: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{16}$")


class PacketBrokerMetadata(_Tolerant):
    forwarder_net_id: str | None = None
    forwarder_tenant_id: str | None = None
    # Another network's name for its gateway (TTN v2 ids have underscores).
    forwarder_gateway_id: str | None = Field(default=None, pattern=GATEWAY_ID_PATTERN)


class RxMetadata(_Tolerant):
    """One antenna of one gateway that heard the uplink."""

    gateway_ids: GatewayIds
    packet_broker: PacketBrokerMetadata | None = None
    antenna_index: int = Field(default=0, ge=0, strict=True)
    rssi: float | None = Field(default=None, strict=True)
    channel_rssi: float | None = Field(default=None, strict=True)
    snr: float | None = Field(default=None, strict=True)
    time: AwareDatetime | None = None
    received_at: AwareDatetime | None = None

    @property
    def gateway(self) -> str:
        """The gateway's id; for one heard through Packet Broker, the forwarder's id when its
        network shares it (else `packetbroker`)."""
        ids = self.gateway_ids.gateway_id
        if ids == PACKET_BROKER_GATEWAY and self.packet_broker is not None:
            return self.packet_broker.forwarder_gateway_id or ids
        return ids

    @property
    def signal_dbm(self) -> float | None:
        """The RSSI (`rssi` equals `channel_rssi`); None when the gateway reported none."""
        return self.rssi if self.rssi is not None else self.channel_rssi

    @property
    def snr_db(self) -> float | None:
        """The SNR. Left out of the JSON when it is exactly 0 dB: a gateway that reported
        an RSSI reported an SNR too, so a missing one is then 0."""
        if self.snr is None and self.signal_dbm is not None:
            return 0.0
        return self.snr


class LoRaDataRate(_Tolerant):
    bandwidth: int = Field(default=0, ge=0, strict=True)
    spreading_factor: int = Field(default=0, ge=0, le=12, strict=True)
    coding_rate: str | None = None


class DataRate(_Tolerant):
    # One of lora, fsk, lrfhss; only LoRa has a spreading factor and a bandwidth.
    lora: LoRaDataRate | None = None
    fsk: dict[str, Any] | None = None
    lrfhss: dict[str, Any] | None = None


class TxSettings(_Tolerant):
    data_rate: DataRate
    # uint64: a string of digits.
    frequency: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    coding_rate: str | None = None  # older versions put it here, newer ones in data_rate.lora

    @property
    def frequency_hz(self) -> int | None:
        return None if self.frequency is None else int(self.frequency)


class VersionIds(_Tolerant):
    brand_id: str | None = None
    model_id: str | None = None
    hardware_version: str | None = None
    firmware_version: str | None = None
    band_id: str | None = None


class Location(_Tolerant):
    latitude: float = Field(default=0.0, ge=-90, le=90, strict=True)
    longitude: float = Field(default=0.0, ge=-180, le=180, strict=True)
    altitude: int | None = Field(default=None, strict=True)
    source: str | None = None


class ApplicationUplink(_Tolerant):
    session_key_id: str | None = None
    f_port: int = Field(default=0, ge=0, le=255, strict=True)
    f_cnt: int = Field(default=0, ge=0, le=2**32 - 1, strict=True)
    frm_payload: str | None = None
    # What the payload formatter returned; absent when no formatter is set or it failed.
    decoded_payload: dict[str, Any] | None = None
    decoded_payload_warnings: list[str] = Field(default_factory=list)
    rx_metadata: list[RxMetadata] = Field(default_factory=list, max_length=256)
    settings: TxSettings
    # When the Network Server received it: the observation time sensorpipe stores.
    received_at: AwareDatetime | None = None
    consumed_airtime: str | None = None
    confirmed: bool = False
    # `user` (set in the console), `frm-payload` (from decoded latitude/longitude), ...
    locations: dict[str, Location] = Field(default_factory=dict)
    version_ids: VersionIds | None = None
    network_ids: dict[str, Any] | None = None

    @field_validator("consumed_airtime")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration like '0.061696s'")
        return value

    @property
    def airtime_s(self) -> float | None:
        if self.consumed_airtime is None:
            return None
        return float(Decimal(self.consumed_airtime[:-1]))


class ApplicationUp(_Tolerant):
    end_device_ids: EndDeviceIds
    correlation_ids: list[str] = Field(default_factory=list)
    # When the Application Server received it (what the Storage Integration orders by).
    received_at: AwareDatetime | None = None
    # On the `/up` topic and the uplink webhook path, always an uplink message; other kinds
    # (join_accept, downlink_*, ...) have other topics and paths.
    uplink_message: ApplicationUplink | None = None
    # Made with "Simulate uplink" in the console: no radio ever sent it.
    simulated: bool = False

    @property
    def observed_at(self) -> datetime | None:
        """The Network Server's reception time, else the Application Server's."""
        up = self.uplink_message
        return (up.received_at if up is not None else None) or self.received_at
