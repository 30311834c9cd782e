"""The ingest's configuration file (TOML). See config/ingest.example.toml."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sensorpipe.protocol.configfile import load_model

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
    # How long the broker keeps the ingest's session (and queues for it) while it is away.
    session_expiry_s: int = Field(default=7 * 86400, ge=60, le=0xFFFFFFFE)
    tls: bool = False
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
    # Dead-letter limits: payload bytes kept per letter, letters kept, and their age (days).
    deadletter_max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    deadletter_max_letters: int = Field(default=100_000, ge=100)
    deadletter_max_age_days: float = Field(default=90.0, gt=0)
    # Prometheus text endpoint (GET /metrics) on this port; none without it. Port 0: any free.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_bind: str = "127.0.0.1"
    # Every this many seconds the counters are also written to InfluxDB (`ingest_status`).
    status_interval_s: float = Field(default=60.0, gt=0)


def load_ingest_config(path: Path | str) -> IngestConfig:
    config = load_model(path, IngestConfig)
    base = Path(path).resolve().parent
    # Relative paths in the file are relative to the file, not to where the ingest started.
    updates = {}
    for key in ("registry_path", "deadletter_path", "stats_path"):
        value = getattr(config, key)
        if value is not None and not Path(value).is_absolute():
            updates[key] = str(base / value)
    return config.model_copy(update=updates)
