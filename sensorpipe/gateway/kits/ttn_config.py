"""Configuration of one The Things Stack v3 application (TTN or a private instance).

`fields` maps the application's `decoded_payload` fields (what its payload formatter returns)
to sensorpipe quantities, with the sensor model and a unit conversion where the node sends
other units (`value * scale + offset`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sensorpipe.protocol.messages import SENSOR_PATTERN
from sensorpipe.protocol.registry import TTN_APPLICATION_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldMapping(_Strict):
    quantity: str
    sensor: str = Field(pattern=SENSOR_PATTERN)
    scale: float = 1.0
    offset: float = 0.0


class TtnApplication(_Strict):
    # `my-app@ttn`: the application id and the tenant (`ttn` on The Things Network).
    application: str = Field(pattern=TTN_APPLICATION_PATTERN)
    # The application's MQTT server (The Things Stack's MQTT integration); None: webhook only.
    server: str | None = None
    port: int = Field(default=8883, ge=1, le=65535)
    tls: bool = True
    ca_file: Path | None = None
    # The API key the MQTT integration gives (its password); in a file of its own, private.
    api_key_file: Path | None = None
    # SHA-256 of the token the webhook sends (`Authorization: Bearer <token>`, a header set in
    # the TTN console's webhook form).
    webhook_token_hashes: list[str] = Field(default_factory=list)
    fields: dict[str, FieldMapping] = Field(default_factory=dict)
