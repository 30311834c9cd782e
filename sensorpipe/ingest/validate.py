"""Every check a message must pass before it is stored. Pure apart from the registry file.

Order: topic, size and JSON, device registered, topic matches payload, signature, schema and
ranges, observation time neither in the future nor older than the backlog window. The first
failure is the reason; `code` is short and stable so rejections can be counted per reason.

A device's key is the registry's, or, where the registry has none, the one it enrolled
(protocol.enrollment: the key store is read, not written, here). An enrollment message on
`sensorpipe/v1/<id>/key` is checked here too (`check_enrollment`); keeping it is the ingest's.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sensorpipe.protocol.codec import DecodeError, canonical_bytes, parse_json, validate
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.enrollment import KEY_KIND, KeyEnrollment, KeyStore
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

    def __init__(self, path: Path | str, keys: KeyStore | None = None) -> None:
        self.path = Path(path)
        self.keys = keys
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
        """The verifier of a device's key, or of a gateway's (`GATEWAY_KEY_PREFIX` + its id).
        Raises `Rejection` `no_key` for a device that has not enrolled its key yet."""
        if signer not in self._verifiers:
            if signer.startswith(GATEWAY_KEY_PREFIX):
                key = self._registry.gateways[signer[len(GATEWAY_KEY_PREFIX) :]].public_key
            else:
                key = self._registry.devices[signer].public_key or self.enrolled_key(signer)
                if not key:
                    raise Rejection(
                        "no_key",
                        f"{signer} has no signing key yet: run `sensorpipe edge join` on the "
                        "device (it makes its key and enrols it)",
                    )
            self._verifiers[signer] = Verifier(key)
        return self._verifiers[signer]

    def enrolled_key(self, device_id: str) -> str:
        """The key `device_id` enrolled, read from the key store now; "" if none."""
        if self.keys is None:
            return ""
        try:
            enrolled = self.keys.get(device_id)
        except sqlite3.Error as exc:
            log.error("cannot read the key store %s: %s", self.keys.path, exc)
            return ""
        return enrolled.public_key if enrolled is not None else ""

    def forget_verifier(self, device_id: str) -> None:
        self._verifiers.pop(device_id, None)


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
        if topic_kind == KEY_KIND:
            raise Rejection("bad_topic", "a key enrollment is checked by check_enrollment")
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

    def check_enrollment(self, topic: str, payload: bytes) -> KeyEnrollment:
        """An enrollment of the device's own key (protocol.enrollment), or `Rejection`. Whether
        the device already has another key is decided where it is kept (the ingest)."""
        parsed = parse_topic(topic)
        if parsed is None or parsed[1] != KEY_KIND:
            raise Rejection("bad_topic", f"{topic!r} is not sensorpipe/v1/<device_id>/key")
        obj = parse_json(payload)
        if obj.get("device_id") != parsed[0]:
            raise Rejection(
                "device_mismatch",
                f"payload device_id {obj.get('device_id')!r} differs from topic device "
                f"{parsed[0]!r}",
            )
        entry = self.registry.device(parsed[0])
        if entry is None:
            raise Rejection("unknown_device", f"{parsed[0]!r} is not in the device registry")
        if entry.source != EDGE:
            raise Rejection("wrong_signer", f"{parsed[0]} is a {entry.source} device: no key")
        if entry.public_key:
            raise Rejection(
                "key_taken",
                f"{parsed[0]} has a key in the registry (`devices add --make-key`): use that "
                "configuration, or register the device again without --make-key",
            )
        try:
            enrollment = KeyEnrollment.model_validate(obj)
        except ValueError as exc:
            raise Rejection("schema", f"not a key enrollment: {str(exc).splitlines()[0]}") from None
        if not enrollment.proves_possession():
            raise Rejection("bad_signature", "the enrollment is not signed by the key it enrols")
        return enrollment

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
