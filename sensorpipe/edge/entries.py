"""What an outbox entry holds, and how it becomes the signed message the broker gets.

A message is validated once, when it is queued (`prepare`): its fields are kept encoded as the
signed message will hold them (PREPARED_PARTS). When the publisher hands the entry to the broker,
`Sealer.seal` adds only what is known then, `sent_at` and `link` (validated and encoded once for
all the entries handed over in the same millisecond with the same link state), and signs. That
keeps an outbox draining after an outage from validating every reading again. Entries queued by
agents before this form (a JSON object marked PREPARED) are still sent as such.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sensorpipe.edge.outbox import Outbox, OutboxEntry
from sensorpipe.edge.publisher import LinkState
from sensorpipe.protocol.codec import dumps_value, encode, encode_fields, encode_parts
from sensorpipe.protocol.messages import MESSAGE_ADAPTER, SendingFields
from sensorpipe.protocol.signing import Signer

FIRMWARE = "sensorpipe-edge/0.1.0"
# The Wi-Fi signal a message reports is read at most this often: reading /proc/net/wireless
# for each message would cost an outbox draining after an outage a file read per message.
RSSI_MAX_AGE_S = 10.0
# Starts the body of an outbox entry whose fields were validated when it was queued
# (`prepare`): then its fields, name and value by turns, each value as it appears in the
# message's canonical JSON, separated by NUL bytes (JSON text never holds one).
PREPARED_PARTS = b"sensorpipe-prepared/2\0"
# Marked an entry validated when queued by agents before PREPARED_PARTS: a JSON object with
# this key. Still sent as such after an upgrade.
PREPARED = "_prepared"
_PLACEHOLDER_LINK = {"uptime_s": 0.0, "firmware": FIRMWARE}


def prepare(draft: dict[str, Any]) -> bytes:
    """An outbox entry's body for a message draft (without `sent_at` and `link`).

    The draft is validated now, once, and kept as the message model dumps it, each field
    encoded as the signed message will hold it (PREPARED_PARTS): sending it then validates and
    encodes only what the agent adds (`sent_at`, `link`), not the readings again, which is most
    of the work of an outbox draining after an outage. A draft that does not validate is kept
    as JSON as it is: sending it sets it aside with the reason, as any entry that cannot be
    encoded."""
    try:
        message = MESSAGE_ADAPTER.validate_python(
            {**draft, "sent_at": draft["observed_at"], "link": _PLACEHOLDER_LINK}
        )
    except (ValidationError, KeyError):
        return json.dumps(draft).encode()
    fields = message.model_dump(mode="json", exclude={"sig", "sent_at", "link"})
    if fields.get("vouched_by") is None:  # as encode_fields leaves it out
        fields.pop("vouched_by", None)
    return PREPARED_PARTS + b"\0".join(
        part for name, value in fields.items() for part in (name.encode(), dumps_value(value))
    )


def read_body(body: bytes) -> dict[str, Any]:
    """The message fields an outbox entry's body holds, whichever form it has."""
    if not body.startswith(PREPARED_PARTS):
        fields: dict[str, Any] = json.loads(body)
        fields.pop(PREPARED, None)
        return fields
    parts = body[len(PREPARED_PARTS) :].split(b"\0")
    return {
        name.decode(): json.loads(value)
        for name, value in zip(parts[::2], parts[1::2], strict=True)
    }


def iso(ts: float) -> str:
    """A message time: ISO 8601 UTC. Milliseconds: the ingest stores points at ms precision,
    so identity survives a round trip."""
    return datetime.fromtimestamp(round(ts, 3), UTC).isoformat(timespec="milliseconds")


class Sealer:
    """Makes an entry the bytes the broker gets: `sent_at` and `link` added, signed."""

    def __init__(
        self,
        signer: Signer,
        outbox: Outbox,
        *,
        clock: Callable[[], float],
        rssi: Callable[[], int | None],
        started: float,
    ) -> None:
        self._signer = signer
        self._outbox = outbox
        self._clock = clock
        self._rssi = rssi
        self._rssi_read: tuple[float, int | None] | None = None  # (monotonic time, value)
        self._started = started  # time.monotonic() at the agent's start: link.uptime_s
        self._sending_key: tuple[Any, ...] | None = None
        self._sending: dict[str, bytes] = {}

    def _signal(self) -> int | None:
        now = time.monotonic()
        if self._rssi_read is None or now - self._rssi_read[0] >= RSSI_MAX_AGE_S:
            self._rssi_read = (now, self._rssi())
        return self._rssi_read[1]

    def seal(self, entry: OutboxEntry, link: LinkState) -> bytes:
        """The signed message of `entry`, as the publisher hands it to the broker now."""
        if entry.body.startswith(PREPARED_PARTS):
            parts = entry.body[len(PREPARED_PARTS) :].split(b"\0")
            fields = {
                name.decode(): value for name, value in zip(parts[::2], parts[1::2], strict=True)
            }
            fields.update(self._sending_parts(link))
            return encode_parts(fields, self._signer.sign)
        draft = json.loads(entry.body)
        prepared = draft.pop(PREPARED, False)
        draft["sent_at"] = iso(self._clock())
        draft["link"] = {
            "rssi_dbm": self._signal(),
            "reconnects": link.reconnects,
            "outbox_depth": link.outbox_depth,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "firmware": FIRMWARE,
            "backlog": link.backlog,
            "outbox_dropped": self._outbox.dropped,
        }
        try:
            if prepared:  # validated when queued: only what was added now
                sending = SendingFields.model_validate(
                    {"sent_at": draft["sent_at"], "link": draft["link"]}
                )
                draft.update(sending.model_dump(mode="json"))
                return encode_fields(draft, self._signer.sign)
            message = MESSAGE_ADAPTER.validate_python(draft)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return encode(message, self._signer.sign)

    def _sending_parts(self, link: LinkState) -> dict[str, bytes]:
        """`sent_at` and `link`, validated and encoded: once for all the entries handed over in
        the same millisecond with the same link state (an outbox draining after an outage)."""
        stamp = round(self._clock(), 3)
        key = (link, stamp, self._outbox.dropped, self._signal())
        if key == self._sending_key:
            return self._sending
        try:
            sending = SendingFields.model_validate(
                {
                    "sent_at": iso(stamp),
                    "link": {
                        "rssi_dbm": key[3],
                        "reconnects": link.reconnects,
                        "outbox_depth": link.outbox_depth,
                        "uptime_s": round(time.monotonic() - self._started, 3),
                        "firmware": FIRMWARE,
                        "backlog": link.backlog,
                        "outbox_dropped": key[2],
                    },
                }
            ).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        if sending["link"].get("kit") is None:  # as encode_fields leaves it out
            sending["link"].pop("kit", None)
        self._sending_key = key
        self._sending = {name: dumps_value(value) for name, value in sending.items()}
        return self._sending
