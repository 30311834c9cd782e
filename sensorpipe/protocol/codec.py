"""Encoding and decoding of messages: pure functions, no I/O.

The signature covers the canonical JSON of the message without its `sig` key: keys sorted,
no whitespace, UTF-8. Both sides compute it from the same dict, so any device or kit adapter
that can produce sorted compact JSON can sign.
"""

from __future__ import annotations

import bisect
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from sensorpipe.protocol.messages import MESSAGE_ADAPTER, AnyMessage

MAX_PAYLOAD_BYTES = 64 * 1024


class DecodeError(ValueError):
    """A payload that is not a valid message. `code` is short and stable, for counting."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode(message: AnyMessage, sign: Callable[[bytes], str] | None = None) -> bytes:
    return encode_fields(message.model_dump(mode="json", exclude={"sig"}), sign)


def encode_fields(body: dict[str, Any], sign: Callable[[bytes], str] | None = None) -> bytes:
    """`encode` of a message already dumped (`model_dump(mode="json")`, without `sig`)."""
    # Fields only kits' messages use are left out of a device's own, as they were before.
    if body.get("vouched_by") is None:
        body.pop("vouched_by", None)
    if body["link"].get("kit") is None:
        body["link"].pop("kit", None)
    if sign is None:
        return _dumps(body).encode()
    # The same bytes as dumping the body with its `sig` (keys sorted), with the body encoded
    # once, not twice (once to sign, once to send): the keys before "sig" and those after it,
    # joined around it. An outbox draining after an outage encodes thousands a second.
    before = _dumps({k: v for k, v in body.items() if k < "sig"})[1:-1]
    after = _dumps({k: v for k, v in body.items() if k > "sig"})[1:-1]
    unsigned = ",".join(part for part in (before, after) if part)
    sig = sign(("{" + unsigned + "}").encode())
    signed = ",".join(part for part in (before, '"sig":' + json.dumps(sig), after) if part)
    return ("{" + signed + "}").encode()


def dumps_value(value: Any) -> bytes:
    """A value as it appears inside a message's canonical JSON (for `encode_parts`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=256)
def _key_prefix(key: str) -> bytes:
    return (json.dumps(key, ensure_ascii=False) + ":").encode()


def encode_parts(parts: Mapping[str, bytes], sign: Callable[[bytes], str]) -> bytes:
    """`encode_fields` of a message whose top-level values are encoded already
    (`dumps_value`), signed: the same bytes, without encoding again what did not change. An
    agent keeps a queued message's readings encoded and adds only what it fills in as it sends
    (`sent_at`, `link`). Keys are sorted as `json.dumps(sort_keys=True)` sorts them."""
    keys = sorted(key for key in parts if key != "sig")
    items = [_key_prefix(key) + parts[key] for key in keys]
    sig = sign(b"{" + b",".join(items) + b"}")
    items.insert(bisect.bisect_left(keys, "sig"), _key_prefix("sig") + dumps_value(sig))
    return b"{" + b",".join(items) + b"}"


def parse_json(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        obj = json.loads(payload, parse_constant=_no_constant)
    except RecursionError:
        raise DecodeError("malformed_json", "nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, NaN/Infinity, an integer too long
        raise DecodeError("malformed_json", str(exc)[:300]) from None
    if not isinstance(obj, dict):
        raise DecodeError("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validate(obj: dict[str, Any]) -> AnyMessage:
    if obj.get("v") != 1:
        raise DecodeError("unsupported_version", f"schema version {obj.get('v')!r}, expected 1")
    try:
        return MESSAGE_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise DecodeError("schema", _summarise(exc)) from None


def decode(payload: bytes) -> AnyMessage:
    return validate(parse_json(payload))


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
