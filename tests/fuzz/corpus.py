"""A deterministic corpus of malformed and hostile payloads for one device's topic.

Every entry must be rejected by the ingest, each with a reason; `corpus(signer, device_id)`
returns (label, payload) pairs. Categories: bytes that are not JSON, JSON that is not an
object, broken and hostile field values (injection characters in names and tags, huge and
non-finite numbers, wrong types, out-of-range times and values), messages for other devices,
unsigned and wrongly signed messages, deep nesting and oversized arrays.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sensorpipe.protocol.codec import canonical_bytes

HOSTILE_STRINGS = [
    "a,b",
    "a b",
    'a"b',
    "a=b",
    "a\nb",
    "a\\",
    "drop\nair,device_id=x pm2_5=1",
    "é漢字🙂",
    "\u0000",
    "\u202e",
    " ",
    "",
    "x" * 300,
    "'; DROP MEASUREMENT air; --",
    "sensorpipe/v1/other/air",
]


REMOVE = object()


def _base(device_id: str, seq: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "v": 1,
        "kind": "air",
        "device_id": device_id,
        "seq": seq,
        "observed_at": (now - timedelta(minutes=5)).isoformat(),
        "clock_synced": True,
        "sent_at": now.isoformat(),
        "link": {"uptime_s": 10.0, "firmware": "fuzz/1"},
        "readings": [{"quantity": "pm10", "value": 12.0, "unit": "ug/m3", "sensor": "sds011"}],
    }


def _signed(obj: dict[str, Any], sign: Callable[[bytes], str]) -> bytes:
    return json.dumps({**obj, "sig": sign(canonical_bytes(obj))}).encode()


def corpus(
    sign: Callable[[bytes], str], device_id: str, *, first_seq: int = 100_000
) -> list[tuple[str, bytes]]:
    rng = random.Random(1234)
    out: list[tuple[str, bytes]] = []
    seqs = iter(range(first_seq, first_seq + 100_000))

    def signed(label: str, path: tuple[str | int, ...], value: Any = REMOVE) -> None:
        """A signed message with the field at `path` set to `value` (or removed)."""
        obj = _base(device_id, next(seqs))
        target: Any = obj
        for key in path[:-1]:
            target = target[key]
        if value is REMOVE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        out.append((label, _signed(obj, sign)))

    # 1. Bytes that are not JSON at all, or not UTF-8.
    for i in range(150):
        n = rng.randrange(0, 400)
        out.append((f"random-bytes-{i}", bytes(rng.randrange(256) for _ in range(n))))
    good = _signed(_base(device_id, 1), sign)
    for i in range(100):  # truncated valid messages
        out.append((f"truncated-{i}", good[: rng.randrange(1, len(good) - 1)]))
    # 2. JSON that is not an object.
    not_objects: list[Any] = [None, 1, 1.5, "s", [], [1, 2], True]
    for i, value in enumerate(not_objects):
        out.append((f"not-object-{i}", json.dumps(value).encode()))
    out.append(("nan-literal", good.replace(b"12.0", b"NaN")))
    out.append(("infinity-literal", good.replace(b"12.0", b"Infinity")))
    out.append(("deep-nesting", b"[" * 5000 + b"]" * 5000))
    out.append(("big-int", good.replace(b"12.0", b"1" + b"0" * 4000)))
    # 3. Hostile strings in every string field that becomes a name or a tag.
    for i, text in enumerate(HOSTILE_STRINGS):
        signed(f"hostile-device-id-{i}", ("device_id",), text)
        signed(f"hostile-sensor-{i}", ("readings", 0, "sensor"), text)
        signed(f"hostile-quantity-{i}", ("readings", 0, "quantity"), text)
        signed(f"hostile-unit-{i}", ("readings", 0, "unit"), text)
        signed(f"hostile-kind-{i}", ("kind",), text)
        signed(f"hostile-firmware-{i}", ("link", "firmware"), text * 100)
    # 4. Values and types out of range.
    bad_values: list[Any] = [-1.0, 2001.0, 1e308, -1e308, "12", None, True, [], {}]
    for i, value in enumerate(bad_values):
        signed(f"bad-value-{i}", ("readings", 0, "value"), value)
    bad_seqs: list[Any] = [-1, "7", 1.5, None, 2**70]
    for i, seq in enumerate(bad_seqs):
        signed(f"bad-seq-{i}", ("seq",), seq)
    times = [
        "1600-01-01T00:00:00+00:00",
        "1677-09-21T00:12:43+00:00",
        "2263-01-01T00:00:00+00:00",
        "2026-13-01T00:00:00+00:00",
        "yesterday",
        "2026-11-22T12:00:00",  # no offset
        (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        (datetime.now(UTC) - timedelta(days=365)).isoformat(),
    ]
    for i, ts in enumerate(times):
        signed(f"bad-time-{i}", ("observed_at",), ts)
    for i, field in enumerate(["device_id", "seq", "observed_at", "readings", "link", "kind"]):
        signed(f"missing-{i}", (field,))
    reading = _base(device_id, 0)["readings"][0]
    signed("extra-field", ("extra",), "x")
    signed("no-readings", ("readings",), [])
    signed("many-readings", ("readings",), [reading] * 70)
    signed("duplicate-reading", ("readings",), [reading] * 2)
    signed("undeclared-sensor", ("readings", 0, "sensor"), "invented-9")
    signed("wrong-unit", ("readings", 0, "unit"), "mg/m3")
    # 5. Signatures: missing, wrong, or over a different body.
    for i in range(40):
        obj = _base(device_id, next(seqs))
        body = json.dumps({**obj, "sig": "A" * rng.randrange(1, 120)}).encode()
        out.append((f"bad-signature-{i}", body))
    for i in range(20):
        obj = _base(device_id, next(seqs))
        out.append((f"unsigned-{i}", json.dumps(obj).encode()))
    for i in range(40):
        obj = _base(device_id, next(seqs))
        data = json.loads(_signed(obj, sign))
        data["readings"][0]["value"] = 13.0 + i  # changed after signing
        out.append((f"tampered-{i}", json.dumps(data).encode()))
    # 6. Random mutations of a valid signed message (bit flips, byte insertions, deletions).
    while len(out) < 1100:
        original = _signed(_base(device_id, next(seqs)), sign)
        raw = bytearray(original)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(raw))
            action = rng.randrange(3)
            if action == 0:
                raw[pos] ^= 1 << rng.randrange(8)
            elif action == 1:
                raw.insert(pos, rng.randrange(256))
            else:
                del raw[pos]
        try:
            if json.loads(raw) == json.loads(original):
                continue  # only whitespace changed: still the same valid message
        except ValueError:
            pass
        out.append((f"mutated-{len(out)}", bytes(raw)))
    return out


def valid_messages(
    sign: Callable[[bytes], str], device_id: str, count: int
) -> Iterator[tuple[int, bytes]]:
    for seq in range(1, count + 1):
        obj = _base(device_id, seq)
        obj["observed_at"] = (datetime.now(UTC) - timedelta(seconds=600 - seq)).isoformat()
        yield seq, _signed(obj, sign)
