"""End-to-end acknowledgements: the ingest tells a device which of its messages are kept.

A broker's PUBACK only says the broker has the message; a broker killed before its next
autosave forgets it. So a device keeps each outbox entry until the ingest confirms that the
message was stored in InfluxDB or kept as a dead letter (rejected, with its reason, centrally).

The ingest publishes, after each batch, one acknowledgement per device on
`sensorpipe/ack/v1/<device id>` (QoS 1, never retained): the sequence numbers it kept, as
inclusive ranges. Ranges, not "everything up to N", because several ingest workers share a
device's stream and each knows only the messages it handled. A device that gets no
acknowledgement (the broker lost the message, or the acknowledgement) sends the entry again
after a reconnect or a timeout; the ingest stores a repeated message idempotently.

Those of the numbers it kept as dead letters rather than storing them are listed again in
`rejected`, with the reason, so that a device can tell "stored" from "set aside" (`edge check`
fails on the latter). The same topic carries the answer to a key enrollment (`key`,
protocol.enrollment): it is the only topic a device may read.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sensorpipe.protocol.enrollment import KeyReply
from sensorpipe.protocol.messages import INT64_MAX
from sensorpipe.protocol.topics import is_valid_device_id

ACK_PREFIX = "sensorpipe/ack/v1"
MAX_RANGES = 1000  # one batch of a device's messages is far fewer
MAX_SPAN = 100_000  # numbers in one range; more would be an outbox bigger than any device's


class SetAside(BaseModel):
    """A confirmed message the ingest kept as a dead letter instead of storing it: the device
    drops it all the same (sending it again would not change its fate), but `edge check` and
    the agent's log can say why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0, le=INT64_MAX)
    code: str = Field(max_length=40)
    detail: str = Field(default="", max_length=300)


class Ack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(default=1, ge=1, le=1)
    seqs: list[tuple[int, int]] = Field(default_factory=list, max_length=MAX_RANGES)
    # Of `seqs`, those set aside as dead letters (rejected, with the reason), not stored.
    rejected: list[SetAside] = Field(default_factory=list, max_length=MAX_RANGES)
    # The answer to a key enrollment (protocol.enrollment), on the same topic: the only one
    # a device may read.
    key: KeyReply | None = None

    @field_validator("seqs")
    @classmethod
    def _ranges(cls, seqs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for first, last in seqs:
            if not 0 <= first <= last <= INT64_MAX:
                raise ValueError(f"range {first}-{last}: expected 0 <= first <= last")
            if last - first >= MAX_SPAN:
                raise ValueError(f"range {first}-{last} spans more than {MAX_SPAN} numbers")
        return seqs

    def numbers(self) -> list[int]:
        return [n for first, last in self.seqs for n in range(first, last + 1)]


def ack_topic(device_id: str) -> str:
    if not is_valid_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}")
    return f"{ACK_PREFIX}/{device_id}"


def ack_acl_pattern() -> str:
    """Mosquitto ACL pattern: a device may read only its own acknowledgements."""
    return f"{ACK_PREFIX}/%u"


def to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    ranges: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    return ranges


def encode_ack(seqs: Iterable[int], rejected: Iterable[SetAside] = ()) -> bytes:
    ack = Ack(seqs=to_ranges(seqs), rejected=list(rejected)[:MAX_RANGES])
    leave_out = {"rejected"} if not ack.rejected else set()
    return ack.model_dump_json(exclude_none=True, exclude=leave_out).encode()


def encode_key_reply(reply: KeyReply) -> bytes:
    return Ack(key=reply).model_dump_json(exclude_none=True).encode()


def decode_ack(payload: bytes) -> Ack:
    """Raises pydantic's ValidationError for anything that is not an acknowledgement."""
    return Ack.model_validate_json(payload)
