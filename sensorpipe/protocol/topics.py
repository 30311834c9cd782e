"""MQTT topic names. The device id is a topic level so broker ACL patterns can use %u."""

from __future__ import annotations

import re

TOPIC_PREFIX = "sensorpipe/v1"
# Crowding alerts (sensorpipe.crowd.delivery): sensorpipe/alerts/v1/<area id>.
ALERT_TOPIC_PREFIX = "sensorpipe/alerts/v1"
KINDS = ("air", "status", "count")
# Not data: a device enrolling the key it made (protocol.enrollment); never stored as a point.
CONTROL_KINDS = ("key",)
# Device ids end up in topics, usernames, file names and InfluxDB tags: keep them boring.
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def is_valid_device_id(device_id: str) -> bool:
    return bool(_DEVICE_ID.match(device_id))


def topic_for(device_id: str, kind: str) -> str:
    if not is_valid_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}: expected {DEVICE_ID_PATTERN}")
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}: expected one of {', '.join(KINDS)}")
    return f"{TOPIC_PREFIX}/{device_id}/{kind}"


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(device_id, kind) for a sensorpipe topic, or None when the topic is not one of ours."""
    prefix = TOPIC_PREFIX + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix) :].split("/")
    if len(rest) != 2 or rest[1] not in KINDS + CONTROL_KINDS or not is_valid_device_id(rest[0]):
        return None
    return rest[0], rest[1]


# Where dead letters that were never MQTT messages come from: a kit's post to the gateway, an
# uplink from The Things Stack, a row of an imported file.
FOREIGN_LETTER_PREFIXES = ("airrohr:", "ttn:", "import:")


def is_message_topic(topic: str) -> bool:
    """Whether a dead letter's topic is an MQTT message topic (below TOPIC_PREFIX), rather than
    where a kit's post or an imported row came from (`airrohr:...`, `ttn:...`, `import:...`)."""
    return not topic.startswith(FOREIGN_LETTER_PREFIXES)


def subscription(shared_group: str | None = None) -> str:
    """The ingest's subscription; with a group, a shared subscription for N workers."""
    topic = f"{TOPIC_PREFIX}/+/+"
    return f"$share/{shared_group}/{topic}" if shared_group else topic


def acl_pattern() -> str:
    """Mosquitto ACL pattern: a device may publish only below its own id."""
    return f"{TOPIC_PREFIX}/%u/+"
