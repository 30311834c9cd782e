"""The edge agent's configuration file (TOML), validated at load. See config/edge.example.toml."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sensorpipe.edge.counting.config import CountingConfig
from sensorpipe.edge.drivers.registry import SensorConfig
from sensorpipe.protocol.configfile import load_model
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str
    password: str
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    # How long to wait for the broker at each step of connecting: the TCP connection, the TLS
    # handshake and its answer to CONNECT. A port that accepts but never answers (not an MQTT
    # broker) is reported after this long, and tried again like any other failure.
    connect_timeout_s: float = Field(default=10.0, ge=1.0, le=120.0)
    tls: bool = False
    ca_file: str | None = None
    # Keep each outbox entry until the ingest confirms it kept the message (protocol.ack), not
    # only until the broker acknowledged it. Off only for a broker with no sensorpipe ingest.
    confirm: bool = True
    # A sent entry without a confirmation after this long is sent again.
    confirm_timeout_s: float = Field(default=600.0, ge=1.0)


class LocationConfig(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt_m: float | None = None
    # Decimals kept when the location is published: 3 is about 100 m, 5 about 1 m.
    precision_decimals: int = Field(default=3, ge=0, le=6)


class EdgeConfig(_Strict):
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    private_key: str = Field(description="base64 Ed25519 private key from `devices add`")
    mqtt: MqttConfig
    outbox_path: str = "/var/lib/sensorpipe/outbox.sqlite"
    # When this many readings wait (or the disk is full), the oldest make room for new ones.
    outbox_max_entries: int = Field(default=500_000, ge=100)
    status_interval_s: float = Field(default=300.0, gt=0)
    location: LocationConfig | None = None
    sensors: list[SensorConfig] = Field(default_factory=list)
    counting: CountingConfig | None = None

    @field_validator("private_key")
    @classmethod
    def _usable_key(cls, value: str) -> str:
        value = value.strip()  # a key pasted with a stray space or newline
        try:
            Signer(value)
        except ValueError as exc:
            # No "Value error, " prefix and no traceback: the owner needs the fix, not the stack.
            raise PydanticCustomError(
                "private_key",
                "{reason}; paste the private key that `sensorpipe devices add <device id>` "
                "printed for this device (44 characters ending in '=')",
                {"reason": str(exc)},
            ) from None
        return value

    @model_validator(mode="after")
    def _measures_something(self) -> EdgeConfig:
        if not self.sensors and self.counting is None:
            raise ValueError("configure at least one [[sensors]] entry or a [counting] section")
        return self


def load_edge_config(path: Path | str) -> EdgeConfig:
    return load_model(path, EdgeConfig)
