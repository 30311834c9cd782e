"""Entity ids that stay the same across restarts and hosts.

Things, Locations, Sensors, ObservedProperties and Datastreams get integers derived from
their names: the first bytes of a SHA-256 hash, below 2^53 so a JavaScript number holds them
exactly. An Observation's id names its datastream, its time and the provenance of its point
(`"<datastream id>-<epoch ms>-<source>"`, a string; a time before 1970 is negative:
`"<datastream id>--60000-edge"`): a device's own reading and an imported one of the same
second are two observations with two ids. It can be read back into all three, which a hash of
them could not, and it needs more than 53 bits. An id without the source (as ids were written
before) still names the observation at that time, the first one there if there are several.
"""

from __future__ import annotations

import hashlib
import re

MAX_SAFE_INTEGER = 2**53 - 1
# The time may be negative (before 1970): `"5--60000-edge"`; the source is a `source` tag's
# value (protocol.provenance): `edge`, `airrohr`, `import:sensor-community`, ...
_OBSERVATION_ID = re.compile(
    r"([1-9][0-9]{0,15})-(0|-?[1-9][0-9]{0,15})(?:-([a-z]{1,16}(?::[a-z-]{1,32})?))?"
)


def stable_id(kind: str, *names: str) -> int:
    """The id of the entity of type `kind` named by `names`: 1 .. 2^53 - 1."""
    digest = hashlib.sha256("\x1f".join((kind, *names)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % MAX_SAFE_INTEGER + 1


def observation_id(datastream_id: int, time_ms: int, source: str) -> str:
    return f"{datastream_id}-{time_ms}-{source}"


def parse_observation_id(value: str) -> tuple[int, int, str | None] | None:
    """The datastream id, time and source (None: not named) of an observation id, or None
    when it is none."""
    m = _OBSERVATION_ID.fullmatch(value)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)
