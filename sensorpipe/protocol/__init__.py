"""The wire contract shared by edge, gateway, ingest and firmware_sim: one source of truth.

`topics`, `quantities` (units and plausible ranges), `counting` (classes and directions),
`messages` and `codec` (the models and their canonical bytes), `signing` (Ed25519), `ack` (the
ingest's confirmations to a device), `enrollment` (join codes, and the key store of the keys
devices enrol), `registry` (the device registry file) and `register` (its public part),
`provenance` (the `source` and `vouch` tags), `storage` (the names stored in InfluxDB),
`quarantine` (the book of quarantined devices), `configfile` (TOML into pydantic, errors naming
file and key), `files` (secrets written private from the start) and `ratelimit` (the one token
bucket every rate limit is built on: the ingest's quotas, the kit gateway's limits, the edge
agent's pace). Encoding, decoding and checks are pure; a module that touches a file, a database
or the network says so. Two helpers the edge agent and the ingest share sit here too:
connecting to the broker and saying why it failed (`brokerlink`), and logging a problem that
keeps happening (`problems`).
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
