"""The wire contract shared by edge, gateway, ingest and firmware_sim.

One source of truth for topics, quantities and units, message models, signing and the device
registry, and the one token bucket every rate limit is built on (`ratelimit`: the ingest's
quotas, the kit gateway's limits, the edge agent's pace). Everything here is pure: no
sockets, no files except where a function says so. Two helpers that the edge agent and the
ingest share are the exception: connecting to the broker and saying why it failed
(`brokerlink`), and logging a problem that keeps happening (`problems`).
"""

from sensorpipe.protocol.codec import DecodeError, canonical_bytes, decode, encode
from sensorpipe.protocol.messages import (
    AirMessage,
    Link,
    Location,
    Message,
    Reading,
    SensorHealth,
    StatusMessage,
)
from sensorpipe.protocol.quantities import QUANTITIES, Quantity
from sensorpipe.protocol.topics import TOPIC_PREFIX, parse_topic, subscription, topic_for

__all__ = [
    "QUANTITIES",
    "TOPIC_PREFIX",
    "AirMessage",
    "DecodeError",
    "Link",
    "Location",
    "Message",
    "Quantity",
    "Reading",
    "SensorHealth",
    "StatusMessage",
    "canonical_bytes",
    "decode",
    "encode",
    "parse_topic",
    "subscription",
    "topic_for",
]
