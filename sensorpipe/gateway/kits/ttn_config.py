"""Configuration of one The Things Stack v3 application (TTN or a private instance).

One `[[ttn]]` table per application in the gateway's configuration:

    [[ttn]]
    application = "my-app@ttn"                      # application id @ tenant (`ttn` on TTN)
    server = "eu1.cloud.thethings.network"           # its MQTT server; leave out: webhook only
    api_key_file = "/etc/sensorpipe/ttn-my-app.key"  # the API key, in a private file
    storage_url = "https://eu1.cloud.thethings.network"  # Storage Integration: fills gaps
    webhook_token_hashes = ["sha256:..."]            # webhook: `sensorpipe serve token` makes one
    ignore_fields = ["battery_status"]               # decoded fields deliberately not stored

    [ttn.fields.pm25]                                # a decoded_payload field (a.b for nesting)
    quantity = "pm2_5"
    sensor = "sds011"

    [ttn.fields.pressure]
    quantity = "pressure"
    sensor = "bme280"
    scale = 0.01                                     # the node sends Pa: value * scale + offset

`fields` maps the application's `decoded_payload` fields (what its payload formatter returns)
to sensorpipe quantities, with the sensor model and a unit conversion where the node sends
other units (`value * scale + offset`). A decoded field that is neither mapped nor ignored is
kept as a dead letter (`unknown_field`), so a new field in the formatter is noticed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensorpipe.http_server import check_token_hashes
from sensorpipe.protocol.messages import SENSOR_PATTERN
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import TTN_APPLICATION_PATTERN

# A decoded_payload field: its key, or keys joined by dots for nested objects (`sds011.pm25`).
FIELD_PATH_PATTERN = r"^[^.\s]{1,64}(\.[^.\s]{1,64}){0,3}$"
# A node's uplink rate limit (see TtnApplication.uplink_burst).
UPLINK_BURST = 10
UPLINK_REFILL_S = 2.0
# The ingest's time window (its defaults, ingest `max_future_s` and `max_backlog_s`): an uplink
# outside it is dead-lettered by the gateway before it moves any of the node's state.
MAX_FUTURE_S = 300.0
MAX_BACKLOG_S = 7 * 86400.0
# Dead letters of nodes nobody registered (to this gateway), per application: at most this many
# letters and bytes in any `UNKNOWN_NODE_WINDOW_S` (refilled evenly); beyond it such uplinks
# are dropped and counted, not kept.
UNKNOWN_NODE_LETTERS = 500
UNKNOWN_NODE_LETTER_BYTES = 4 * 1024 * 1024
UNKNOWN_NODE_WINDOW_S = 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldMapping(_Strict):
    quantity: str
    sensor: str = Field(pattern=SENSOR_PATTERN)
    scale: float = 1.0
    offset: float = 0.0

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, quantity: str) -> str:
        if quantity not in QUANTITIES:
            raise ValueError(
                f"unknown quantity {quantity!r}: expected one of {', '.join(QUANTITIES)}"
            )
        return quantity

    @model_validator(mode="after")
    def _finite(self) -> FieldMapping:
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)) or self.scale == 0:
            raise ValueError("scale must be a finite number other than 0, offset finite")
        return self

    def convert(self, value: float) -> float:
        return value * self.scale + self.offset


class TtnApplication(_Strict):
    # `my-app@ttn`: the application id and the tenant (`ttn` on The Things Network).
    application: str = Field(pattern=TTN_APPLICATION_PATTERN)
    # The application's MQTT server (The Things Stack's MQTT integration); None: webhook only.
    server: str | None = None
    port: int = Field(default=8883, ge=1, le=65535)
    tls: bool = True
    ca_file: Path | None = None
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    # The API key the MQTT integration gives (its password, and the Storage Integration's
    # bearer token); in a file of its own, private. Rights: read application traffic.
    api_key_file: Path | None = None
    # The Things Stack's HTTP API (`https://eu1.cloud.thethings.network`): with the Storage
    # Integration enabled on the application, uplinks the bridge missed while it or its
    # connection was down are fetched from there when it connects again. The MQTT server
    # sends with QoS 0 only and keeps nothing for a client that is away.
    storage_url: str | None = None
    # How far before the last uplink handled the gap-filling query starts (the clocks of the
    # Application Server and of its Storage Integration's batched writes differ a little).
    backfill_margin_s: float = Field(default=120.0, ge=0, le=86400)
    # The Storage Integration writes in batches: the query is asked again this long after a
    # reconnect, for the uplinks that were not yet written the first time.
    backfill_settle_s: float = Field(default=60.0, ge=0, le=3600)
    # SHA-256 of the token the webhook sends (`Authorization: Bearer <token>`, a header set in
    # the TTN console's webhook form).
    webhook_token_hashes: list[str] = Field(default_factory=list)
    fields: dict[str, FieldMapping] = Field(default_factory=dict)
    # decoded_payload fields the group does not want stored (a battery status text, a
    # counter of its own): not dead-lettered.
    ignore_fields: list[str] = Field(default_factory=list)
    # Uplinks simulated in the console (`"simulated": true`) are no measurements: kept as dead
    # letters (`simulated`, naming what would have been stored) unless this is set.
    store_simulated: bool = False
    # Per node: `uplink_burst` uplinks at once, then one every `uplink_refill_s` seconds, by
    # the Network Server's reception times; beyond that an uplink is dropped (counted). The
    # default is a little above what the LoRa duty cycle lets a node send at most: 1 % of the
    # time on each of EU868's two sub-bands at the shortest airtime (SF7/125 kHz, one byte of
    # payload: about 46 ms) is one uplink every 2.3 s. Raise it for a band without a duty
    # cycle (US915) with nodes that send that often.
    uplink_burst: int = Field(default=UPLINK_BURST, ge=1, le=10_000)
    uplink_refill_s: float = Field(default=UPLINK_REFILL_S, gt=0, le=86400)
    # The time window of the ingest this gateway publishes to (its `max_future_s`,
    # `max_backlog_s`): an uplink whose Network Server time is further ahead of the gateway's
    # clock, or older, is dead-lettered here (`future_timestamp`, `too_old`) and moves none of
    # the node's state (sequence numbers, uplinks handled, the bridge's progress).
    max_future_s: float = Field(default=MAX_FUTURE_S, gt=0, le=86400)
    max_backlog_s: float = Field(default=MAX_BACKLOG_S, gt=0, le=366 * 86400)
    # Dead letters of uplinks whose node is no kit of this gateway (not registered, registered
    # to another gateway, or not named at all): at most `unknown_node_letters` letters and
    # `unknown_node_letter_bytes` bytes of payload per `unknown_node_window_s`, refilled
    # evenly over it. Beyond that such uplinks are dropped and counted (said once a minute).
    unknown_node_letters: int = Field(default=UNKNOWN_NODE_LETTERS, ge=0, le=1_000_000)
    unknown_node_letter_bytes: int = Field(
        default=UNKNOWN_NODE_LETTER_BYTES, ge=0, le=1024 * 1024 * 1024
    )
    unknown_node_window_s: float = Field(default=UNKNOWN_NODE_WINDOW_S, gt=0, le=366 * 86400)

    @field_validator("webhook_token_hashes")
    @classmethod
    def _hashes(cls, hashes: list[str]) -> list[str]:
        return check_token_hashes(
            hashes, how="make a token and its hash with `sensorpipe serve token`"
        )

    @field_validator("storage_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+(:\d+)?/?$", url):
            raise ValueError(
                f"{url!r}: expected the server's address, e.g. https://eu1.cloud.thethings.network"
            )
        return None if url is None else url.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> TtnApplication:
        for path in [*self.fields, *self.ignore_fields]:
            if not re.match(FIELD_PATH_PATTERN, path):
                raise ValueError(f"field {path!r}: expected a key, or keys joined by dots")
        both = sorted(set(self.fields) & set(self.ignore_fields))
        if both:
            raise ValueError(f"fields both mapped and ignored: {', '.join(both)}")
        seen: dict[tuple[str, str], str] = {}
        for path, m in self.fields.items():
            key = (m.sensor, m.quantity)
            if key in seen:
                raise ValueError(
                    f"fields {seen[key]!r} and {path!r} both map to {m.quantity} of {m.sensor}"
                )
            seen[key] = path
        if self.server is not None and self.api_key_file is None:
            raise ValueError("an MQTT server needs api_key_file (the API key is its password)")
        if self.storage_url is not None and self.api_key_file is None:
            raise ValueError("storage_url needs api_key_file (the API key reads the storage)")
        if self.server is None and not self.webhook_token_hashes:
            raise ValueError(
                "neither an MQTT server nor a webhook token: give server (and api_key_file) "
                "or webhook_token_hashes"
            )
        return self

    @property
    def application_id(self) -> str:
        return self.application.split("@", 1)[0]

    @property
    def tenant(self) -> str:
        return self.application.split("@", 1)[1]

    @property
    def username(self) -> str:
        """The MQTT user name: `{application id}@{tenant id}`."""
        return self.application

    @property
    def uplink_topic(self) -> str:
        """Every end device's uplinks: `v3/{application id}@{tenant id}/devices/+/up`."""
        return f"v3/{self.application}/devices/+/up"

    def api_key(self) -> str:
        """The API key from its file (surrounding whitespace dropped); OSError or ValueError
        when it cannot be read or is empty."""
        if self.api_key_file is None:
            raise ValueError(f"{self.application}: no api_key_file")
        key = self.api_key_file.read_text(encoding="utf-8").strip()
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"{self.api_key_file}: expected one API key (NNSXS...), nothing else")
        return key
