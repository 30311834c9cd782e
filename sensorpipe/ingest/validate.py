"""Every check a message must pass before it is stored. Pure apart from the registry file.

Order: topic, size and JSON, device registered, topic matches payload, signature, schema and
ranges, observation time neither in the future nor older than the backlog window. The first
failure is the reason; `code` is short and stable so rejections can be counted per reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sensorpipe.protocol.codec import DecodeError, canonical_bytes, parse_json, validate
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.messages import AnyMessage
from sensorpipe.protocol.provenance import EDGE, KIT_SOURCES
from sensorpipe.protocol.registry import (
    DeviceEntry,
    Registry,
    allowed_directions,
    allowed_sensors,
    load_registry,
)
from sensorpipe.protocol.signing import Verifier
from sensorpipe.protocol.topics import parse_topic

Rejection = DecodeError
# Gateways and devices have separate name spaces in the registry; verifiers are kept in one map.
GATEWAY_KEY_PREFIX = "gateway:"
log = logging.getLogger(__name__)


class RegistryView:
    """The registry file, re-read when it changes, so devices added at runtime are accepted."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._loaded = False
        self._registry = Registry()
        self._verifiers: dict[str, Verifier] = {}
        self.generation = 0  # goes up each time another registry is loaded
        self.refresh()

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if self._loaded and mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            registry = load_registry(self.path, must_exist=True)
        except ConfigError as exc:
            if self._loaded:
                # A half-edited registry must not take the ingest down: keep the last good one.
                log.error("registry not reloaded, keeping the previous one: %s", exc)
                return
            raise
        self._registry = registry
        self._verifiers = {}
        self._loaded = True
        self.generation += 1

    def device(self, device_id: str) -> DeviceEntry | None:
        return self._registry.devices.get(device_id)

    def verifier(self, signer: str) -> Verifier:
        """The verifier of a device's key, or of a gateway's (`GATEWAY_KEY_PREFIX` + its id)."""
        if signer not in self._verifiers:
            if signer.startswith(GATEWAY_KEY_PREFIX):
                key = self._registry.gateways[signer[len(GATEWAY_KEY_PREFIX) :]].public_key
            else:
                key = self._registry.devices[signer].public_key
            self._verifiers[signer] = Verifier(key)
        return self._verifiers[signer]


class Validator:
    def __init__(
        self,
        registry: RegistryView,
        *,
        clock: Callable[[], float] = time.time,
        max_future_s: float = 300.0,
        max_backlog_s: float = 7 * 86400.0,
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._max_future_s = max_future_s
        self._max_backlog_s = max_backlog_s

    def check(self, topic: str, payload: bytes) -> AnyMessage:
        """The validated message, or raises `Rejection` with a code and a reason."""
        parsed = parse_topic(topic)
        if parsed is None:
            raise Rejection("bad_topic", f"{topic!r} is not sensorpipe/v1/<device_id>/<kind>")
        topic_device, topic_kind = parsed
        obj = parse_json(payload)
        device_id = obj.get("device_id")
        if device_id != topic_device:
            raise Rejection(
                "device_mismatch",
                f"payload device_id {device_id!r} differs from topic device {topic_device!r}",
            )
        if obj.get("kind") != topic_kind:
            raise Rejection(
                "kind_mismatch",
                f"payload kind {obj.get('kind')!r} differs from topic {topic_kind!r}",
            )
        entry = self.registry.device(topic_device)
        if entry is None:
            raise Rejection("unknown_device", f"{topic_device!r} is not in the device registry")
        signer = self._signer(topic_device, entry, obj.get("vouched_by"))
        signature = obj.get("sig")
        if not isinstance(signature, str):
            raise Rejection("unsigned", "message has no signature")
        if not self.registry.verifier(signer).verify(canonical_bytes(obj), signature):
            raise Rejection("bad_signature", f"signature does not verify with {signer}'s key")
        message = validate(obj)
        self._check_tags(message, self.registry.device(topic_device))
        ahead = message.observed_at.timestamp() - self._clock()
        if ahead > self._max_future_s:
            raise Rejection(
                "future_timestamp",
                f"observed_at {message.observed_at.isoformat()} is {ahead:.0f} s in the future",
            )
        if -ahead > self._max_backlog_s:
            raise Rejection(
                "too_old",
                f"observed_at {message.observed_at.isoformat()} is {-ahead / 86400:.1f} days old; "
                f"the backlog window is {self._max_backlog_s / 86400:g} days",
            )
        end = getattr(message, "interval_end", None)
        if end is not None and end.timestamp() - self._clock() > self._max_future_s:
            raise Rejection("future_timestamp", f"interval_end {end.isoformat()} is in the future")
        return message

    @staticmethod
    def _signer(device_id: str, entry: DeviceEntry, vouched_by: object) -> str:
        """Whose key must verify the message: the device's own, or for a kit the key of the
        gateway registered for it (never another gateway's, never the kit's claim alone)."""
        if entry.source == EDGE:
            if vouched_by is not None:
                raise Rejection(
                    "wrong_signer", f"{device_id} signs its own messages; vouched_by must be absent"
                )
            return device_id
        if entry.source in KIT_SOURCES:
            if vouched_by != entry.gateway:
                raise Rejection(
                    "wrong_signer",
                    f"{device_id} is a {entry.source} kit vouched for by gateway "
                    f"{entry.gateway!r}, not {vouched_by!r}",
                )
            return GATEWAY_KEY_PREFIX + str(entry.gateway)
        raise Rejection(
            "wrong_signer", f"{device_id} is registered for imported history only, not messages"
        )

    @staticmethod
    def _check_tags(message: AnyMessage, entry: DeviceEntry | None) -> None:
        """Values that become InfluxDB tags must be ones the registry allows for the device."""
        assert entry is not None
        sensors = allowed_sensors(entry)
        named = [r.sensor for r in getattr(message, "readings", [])]
        named += [h.sensor for h in getattr(message, "sensors", [])]
        for sensor in named:
            if sensor not in sensors:
                raise Rejection(
                    "undeclared_sensor",
                    f"sensor {sensor!r} is not declared for {message.device_id} "
                    f"(declared: {', '.join(sorted(entry.sensors)) or 'none, so a known model'})",
                )
        directions = allowed_directions(entry)
        for count in getattr(message, "counts", []):
            if count.direction not in directions:
                raise Rejection(
                    "undeclared_direction",
                    f"direction {count.direction!r} is not declared for {message.device_id} "
                    f"(allowed: {', '.join(sorted(directions))})",
                )


def epoch_ms(ts: datetime) -> int:
    return round(ts.timestamp() * 1000)
