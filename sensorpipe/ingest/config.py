"""The ingest's configuration file (TOML). See config/ingest.example.toml."""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from sensorpipe.crowd.alerts import AlertsConfig
from sensorpipe.crowd.retrain import ForecastConfig
from sensorpipe.protocol.brokerlink import ca_file_problem
from sensorpipe.protocol.configfile import ConfigError, key_error, load_model
from sensorpipe.quality.config import QualityConfig

# The shared subscription's group name is a secret of the ingest workers. Mosquitto 2.0 grants
# every client's SUBSCRIBE to `$share/<group>/...` and applies its ACL only when it delivers:
# a device that joined the workers' group would be dealt every (k+1)-th message, be refused it,
# and the group would lose it (until the device sent it again, 600 s later). The topic filter
# is public (protocol.topics), so only an unguessable group name keeps devices out.
SHARED_GROUP_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
_SHARED_GROUP = re.compile(SHARED_GROUP_PATTERN)


def new_shared_group() -> str:
    """A random group name for ingest workers: 22 characters, 128 bits."""
    return secrets.token_urlsafe(16)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = "ingest"
    password: str
    # A broker configured by sensorpipe uses the user name as client id and ignores this.
    client_id: str = "sensorpipe-ingest"
    # With a group name, N ingest workers share the stream ($share/<group>/...). A random
    # one (new_shared_group): a device that knows it can make the workers lose messages.
    shared_group: str | None = None
    keepalive_s: int = Field(default=30, ge=5)
    # How long to wait for the broker at each step of connecting: the TCP connection, the TLS
    # handshake and its answer to CONNECT. A port that accepts but never answers (not an MQTT
    # broker) is reported after this long, and tried again like any other failure.
    connect_timeout_s: float = Field(default=10.0, ge=1.0, le=120.0)
    # How long the broker keeps the ingest's session (and queues for it) while it is away.
    session_expiry_s: int = Field(default=7 * 86400, ge=60, le=0xFFFFFFFE)
    tls: bool = False
    # The CA certificate (PEM) the broker's certificate is checked against; without it, the
    # system's. Relative to the configuration file.
    ca_file: str | None = None

    @field_validator("shared_group")
    @classmethod
    def _unguessable(cls, group: str | None) -> str | None:
        if group is not None and not _SHARED_GROUP.match(group):
            raise ValueError(
                f"{group!r}: the group name keeps devices out of the workers' stream, so it "
                f"must be one they cannot guess: 16 to 64 letters, digits, '-' or '_', chosen "
                f"at random, e.g. {new_shared_group()!r}"
            )
        return group


class InfluxConfig(_Strict):
    url: str = "http://127.0.0.1:8086"
    database: str = "sensorpipe"
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class BrokerAdminConfig(_Strict):
    """The broker's admin account (Mosquitto's dynamic security plugin), on the same broker as
    [broker]: with it, the ingest disables the broker account of a device it quarantines, so
    the broker refuses the device's connection from then on."""

    username: str
    password: str


class QuotaConfig(_Strict):
    """What one device may send, per ingest worker, enforced as each message arrives (before it
    is parsed): token buckets that refill at the rate and hold the burst. A message over the
    quota is acknowledged to the broker without being stored or confirmed to its device, so it
    costs almost nothing and never queues in front of another device's; a device that waits for
    confirmations (the edge agent) keeps it and sends it again later. The defaults leave a
    working device far below them: one message a minute in normal operation, and the edge
    agent's backlog after an outage drains at its own pace (10 a second, edge `[mqtt]`).
    A device registered with `max_messages_per_s`/`max_bytes_per_s` has those instead."""

    messages_per_s: float = Field(default=20.0, gt=0)
    burst_messages: int = Field(default=600, ge=1)
    bytes_per_s: int = Field(default=64 * 1024, ge=1024)
    burst_bytes: int = Field(default=4 * 1024 * 1024, ge=70 * 1024)
    # Rejected messages a device may send (bad signatures, undeclared sensors, ...) before it
    # counts as over its quota; they are still dead-lettered up to its dead-letter quota.
    rejects_per_s: float = Field(default=1.0, gt=0)
    burst_rejects: int = Field(default=100, ge=1)
    # Dead letters kept per device (letters and bytes). Letters are never pruned to make room:
    # beyond its quota a device's further rejected messages are not kept and not confirmed.
    deadletters_per_device: int = Field(default=10_000, ge=10)
    deadletter_bytes_per_device: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    # A device over its quota in this many seconds within 1.5 times as long is quarantined
    # (quarantine_path; its broker account disabled with [broker_admin]). 0: never.
    quarantine_after_s: float = Field(default=10.0, ge=0)


class CalibrationConfig(_Strict):
    """`[calibration]`: the group calibrations whose hourly factors the ingest keeps up to date
    (calibration.updating), on the timer thread it shares with the neighbour outlier."""

    # The calibration book (calibrations.sqlite); unset: no update. A book that does not exist
    # yet is no error (nothing to update until `calibrate group` makes one).
    book: str | None = None
    # false: the ingest does not update them (`sensorpipe calibrate update --all` still can)
    enabled: bool = True
    # Every hour: a factor needs the reference's value of a finished hour.
    update_every_s: float = Field(default=3600.0, ge=5)
    # The earliest hour an update computes, this long before now: data older than the ingest's
    # backlog window (7 days) does not come through it; `calibrate update --from` reaches back.
    catch_up_s: float = Field(default=7 * 86400.0, gt=0)


class IngestConfig(_Strict):
    broker: BrokerConfig
    influx: InfluxConfig = InfluxConfig()
    registry_path: str
    deadletter_path: str = "deadletter.sqlite"
    stats_path: str | None = None
    # Stored as the `gateway` tag: which broker or gateway a message came through.
    gateway_id: str = Field(default="local", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    batch_max: int = Field(default=500, ge=1, le=10000)
    batch_wait_ms: int = Field(default=100, ge=0, le=10000)
    # Threads that check a batch's messages side by side, the next batch while the writer
    # stores the one before. Signature verification releases the GIL, the rest of a check
    # does not: more threads pay only where verification dominates (many cores, slow ones).
    # 1, the default, checks in the writer thread, one batch after the other; on two cores
    # with broker and InfluxDB beside it, that measured best (bench.pipeline).
    validate_threads: int = Field(default=1, ge=1, le=64)
    max_future_s: float = Field(default=300.0, gt=0)
    # The backlog window: how old an observation may be when it arrives. A device that was
    # offline sends its outbox when it is back; older than this is refused (`too_old`), which
    # also keeps old dates from opening new InfluxDB shards one by one.
    max_backlog_s: float = Field(default=7 * 86400.0, gt=0)
    # Dead-letter limits: payload bytes kept per letter, and letters kept in all. A full store
    # keeps no further letters; it never removes old ones to make room (they may be the only
    # copy, confirmed to their device). Per device: [quota].
    deadletter_max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    deadletter_max_letters: int = Field(default=1_000_000, ge=100)
    # Letters older than this many days are removed. None (the default): only by an operator
    # (`sensorpipe ingest purge`).
    deadletter_max_age_days: float | None = Field(default=None, gt=0)
    quota: QuotaConfig = QuotaConfig()
    # The quarantine book (protocol.quarantine) shared with the kit gateway and the CLI; none:
    # a device over its quota is only reported.
    quarantine_path: str | None = None
    # The keys devices made themselves and enrolled (protocol.enrollment, `edge join`); the
    # ingest writes it, so it lies under the server's state directory, not beside the registry.
    keys_path: str = "keys.sqlite"
    broker_admin: BrokerAdminConfig | None = None
    # Prometheus text endpoint (GET /metrics) on this port; none without it. Port 0: any free.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_bind: str = "127.0.0.1"
    # Every this many seconds the counters are also written to InfluxDB (`ingest_status`).
    status_interval_s: float = Field(default=60.0, gt=0)
    # Quality flags on every air reading as it is stored (quality.config): thresholds per
    # quantity and sensor model; without the section, the defaults.
    quality: QualityConfig = QualityConfig()
    # Group calibrations kept up to date (calibration.updating); without `book`, none.
    calibration: CalibrationConfig = CalibrationConfig()
    # Crowding alerts per area (sensorpipe.crowd.alertjob), on the same timer thread.
    alerts: AlertsConfig = AlertsConfig()
    # The saved forecast models retrained on a schedule (sensorpipe.crowd.retrain), in a
    # child process started from the same timer thread.
    forecast: ForecastConfig = ForecastConfig()
    # The file this configuration was loaded from, for errors found after loading.
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("metrics_bind")
    @classmethod
    def _an_address(cls, bind: str) -> str:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise ValueError(
                f"{bind!r} is not an IP address: the address the metrics endpoint listens on, "
                f"e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            ) from None
        return bind

    def key_error(self, key: str, message: str) -> ConfigError:
        """A problem with `key` (dotted: `broker.ca_file`) found after loading, say when the
        ingest starts: one line naming the file and the key's line, as a load error does."""
        if self._source is None:  # built in code, not loaded from a file
            return ConfigError("ingest configuration", f"{key}: {message}")
        return key_error(self._source, key.split("."), message)


def load_ingest_config(path: Path | str) -> IngestConfig:
    """Load and check the configuration, and the files it names that must exist: the
    registry (without it every message would be rejected as from an unknown device) and the
    broker's CA certificate. ConfigError names the file, the key and its line."""
    config = load_model(path, IngestConfig)
    base = Path(path).resolve().parent
    # Relative paths in the file are relative to the file, not to where the ingest started.
    updates: dict[str, object] = {}
    for key in ("registry_path", "deadletter_path", "stats_path", "quarantine_path", "keys_path"):
        value = getattr(config, key)
        if value is not None and not Path(value).is_absolute():
            updates[key] = str(base / value)
    ca_file = config.broker.ca_file
    if ca_file is not None and not Path(ca_file).is_absolute():
        updates["broker"] = config.broker.model_copy(update={"ca_file": str(base / ca_file)})
    book = config.calibration.book
    if book is not None and not Path(book).is_absolute():
        updates["calibration"] = config.calibration.model_copy(update={"book": str(base / book)})
    alert_paths = {}
    for key in ("store", "models"):
        value = getattr(config.alerts, key)
        if value is not None and not Path(value).is_absolute():
            alert_paths[key] = str(base / value)
    if alert_paths:
        updates["alerts"] = config.alerts.model_copy(update=alert_paths)
    models = config.forecast.models
    if models is not None and not Path(models).is_absolute():
        updates["forecast"] = config.forecast.model_copy(update={"models": str(base / models)})
    config = config.model_copy(update=updates)
    config._source = Path(path)
    _check_registry(config)
    check_ca_file(config)
    return config


def _check_registry(config: IngestConfig) -> None:
    path = Path(config.registry_path)
    if not path.exists():
        raise config.key_error(
            "registry_path",
            f"{path} does not exist: correct registry_path, or create the registry "
            f"(`sensorpipe devices add`)",
        )
    if not path.is_file():
        raise config.key_error("registry_path", f"{path} is not a file")


def check_ca_file(config: IngestConfig) -> None:
    """A ca_file that is set must hold a CA certificate (PEM): ConfigError if not."""
    if config.broker.ca_file is None:
        return
    problem = ca_file_problem(Path(config.broker.ca_file))
    if problem:
        raise config.key_error("broker.ca_file", problem)
