"""The edge agent's configuration file (TOML), validated at load. See config/edge.example.toml."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sensorpipe.edge.counting.config import CountingConfig
from sensorpipe.edge.drivers.registry import SensorConfig
from sensorpipe.protocol.brokerlink import ca_file_problem
from sensorpipe.protocol.configfile import ConfigError, key_error, load_model
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
    # The CA certificate (PEM) the broker's certificate is checked against, with tls = true;
    # without it, the system's. Relative to the configuration file.
    ca_file: str | None = None
    # Keep each outbox entry until the ingest confirms it kept the message (protocol.ack), not
    # only until the broker acknowledged it. Off only for a broker with no sensorpipe ingest.
    confirm: bool = True
    # A sent entry without a confirmation after this long is sent again.
    confirm_timeout_s: float = Field(default=600.0, ge=1.0)
    # At most this many messages a second, so that an outbox draining after an outage stays
    # well within the network's quota per device (the ingest's [quota], 20 a second by
    # default): a day of one-minute readings drains in under three minutes.
    max_messages_per_s: float = Field(default=10.0, gt=0, le=10_000)


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
    # Relative to the configuration file, like every path in it.
    outbox_path: str = "/var/lib/sensorpipe/outbox.sqlite"
    # When this many readings wait (or the disk is full), the oldest make room for new ones.
    outbox_max_entries: int = Field(default=500_000, ge=100)
    status_interval_s: float = Field(default=300.0, gt=0)
    location: LocationConfig | None = None
    sensors: list[SensorConfig] = Field(default_factory=list)
    counting: CountingConfig | None = None
    # The file this configuration was loaded from, for errors found after loading.
    _source: Path | None = PrivateAttr(default=None)

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
                "{reason}; paste the private key that `sensorpipe devices add <device id> "
                "--make-key` printed for this device (44 characters ending in '='), or let "
                "`sensorpipe edge join` write this file",
                {"reason": str(exc)},
            ) from None
        return value

    @model_validator(mode="after")
    def _measures_something(self) -> EdgeConfig:
        if not self.sensors and self.counting is None:
            raise ValueError("configure at least one [[sensors]] entry or a [counting] section")
        return self

    @field_validator("mqtt")
    @classmethod
    def _publishes_as_itself(cls, mqtt: MqttConfig, info: ValidationInfo) -> MqttConfig:
        # The broker lets an account publish only under its own device id, and the ingest
        # checks the id in the topic against the message: with another user name every reading
        # would be refused and kept in the outbox for ever.
        device = info.data.get("device_id")
        if device is not None and mqtt.username != device:
            raise PydanticCustomError(
                "device_mismatch",
                "username '{user}' is not the device_id '{device}': a device logs in to the "
                "broker with its own id (as `sensorpipe devices add` printed it); set both to "
                "the registered device id",
                {"device": device, "user": mqtt.username},
            )
        return mqtt

    def key_error(self, key: str, message: str) -> ConfigError:
        """A problem with `key` (dotted: `counting.source.path`) found after loading, say when
        the agent opens its outbox: one line naming the file and the key's line, as a load
        error does."""
        if self._source is None:  # built in code, not loaded from a file
            return ConfigError("edge configuration", f"{key}: {message}")
        return key_error(self._source, key.split("."), message)


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and check the configuration. Its paths are made absolute, relative to the file
    (not to where the agent was started), and the files it reads must exist: the broker's CA
    certificate, a video source, a model. ConfigError names the file, the key and its line."""
    config = _resolve_paths(load_model(path, EdgeConfig), Path(path).resolve().parent)
    config._source = Path(path)
    _check_files(config)
    return config


def _resolve_paths(config: EdgeConfig, base: Path) -> EdgeConfig:
    def resolved(value: str) -> str:
        return str(base / value)  # an absolute one stays as it is

    updates: dict[str, object] = {"outbox_path": resolved(config.outbox_path)}
    if config.mqtt.ca_file is not None:
        updates["mqtt"] = config.mqtt.model_copy(update={"ca_file": resolved(config.mqtt.ca_file)})
    counting = config.counting
    if counting is not None:
        source = counting.source
        if source.path is not None:
            source = source.model_copy(update={"path": resolved(source.path)})
        changes: dict[str, object] = {"source": source}
        if "model" in counting.model_fields_set:  # else the one installed with sensorpipe
            changes["model"] = resolved(counting.model)
        updates["counting"] = counting.model_copy(update=changes)
    return config.model_copy(update=updates)


def _check_files(config: EdgeConfig) -> None:
    outbox = Path(config.outbox_path)
    if outbox.is_dir():
        raise config.key_error(
            "outbox_path",
            f"{outbox} is a directory: name a file in it, e.g. {outbox / 'outbox.sqlite'}",
        )
    if config.mqtt.tls and config.mqtt.ca_file is not None:
        _check_ca_file(config, Path(config.mqtt.ca_file))
    counting = config.counting
    if counting is None:
        return
    if counting.source.kind == "video" and counting.source.path is not None:
        _check_file(config, "counting.source.path", Path(counting.source.path))
    if "model" in counting.model_fields_set:
        _check_file(config, "counting.model", Path(counting.model))


def _check_file(config: EdgeConfig, key: str, path: Path) -> None:
    if not path.exists():
        raise config.key_error(key, f"{path} does not exist")
    if not path.is_file():
        raise config.key_error(key, f"{path} is not a file")


def _check_ca_file(config: EdgeConfig, path: Path) -> None:
    """paho reads the CA file when the agent starts: a traceback there, a line here."""
    problem = ca_file_problem(path)
    if problem:
        raise config.key_error("mqtt.ca_file", problem)
