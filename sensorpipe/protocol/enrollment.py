"""Joining a device: its signing key is made on the device and enrolled over MQTT.

A device registered with `sensorpipe devices add` (without `--make-key`) has a broker password
and no public key yet. The server prints a *join code*: one line holding what the device needs
to reach the broker (host, port, TLS and the CA certificate, its username and password). On
the device, `sensorpipe edge join` writes its configuration from the code, makes an Ed25519
key pair there (the private key never leaves the device), and publishes the public key on
`sensorpipe/v1/<device id>/key`, signed with the new key (proof that the sender holds it).

The ingest takes the first key a device enrols (trust on first use, bound to the broker login:
only the holder of the device's password can publish on that topic) and keeps it in the key
store (`keys_path`, SQLite, under the server's state directory: the registry under /etc is
read-only to the services). From then on the device's messages are checked against that key.
A second, different key is refused (`key_taken`): a code that leaked after the device joined
can no longer add a key, and a code used by someone else first shows at the real device's
join. `sensorpipe devices reset-key ID` forgets an enrolled key so the device can join again.
The ingest answers on the device's acknowledgement topic (`protocol.ack`, field `key`), so
`edge join` can say whether the key was taken.

A key put in the registry by hand (`devices add --make-key`, or `devices key ID KEY`) wins
over an enrolled one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import sqlite3
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sensorpipe.protocol.codec import canonical_bytes
from sensorpipe.protocol.files import create_private
from sensorpipe.protocol.signing import Signer, Verifier
from sensorpipe.protocol.topics import DEVICE_ID_PATTERN, TOPIC_PREFIX

KEY_KIND = "key"
KEY_PATTERN = r"^[A-Za-z0-9+/]{43}=$"  # base64 of 32 raw bytes
NONCE_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
CODE_PREFIX = "spj1."  # a join code, version 1
MAX_CODE_CHARS = 16_384


class KeyEnrollment(BaseModel):
    """What `edge join` publishes: the device's new public key, signed with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    kind: Literal["key"] = "key"
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    public_key: str = Field(pattern=KEY_PATTERN)
    nonce: str = Field(pattern=NONCE_PATTERN)
    sig: str = Field(max_length=200)

    def proves_possession(self) -> bool:
        try:
            verifier = Verifier(self.public_key)
        except ValueError:
            return False
        return verifier.verify(canonical_bytes(self.model_dump(mode="json")), self.sig)


class KeyReply(BaseModel):
    """The ingest's answer to an enrollment, on the device's acknowledgement topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nonce: str = Field(pattern=NONCE_PATTERN)
    ok: bool
    reason: str = Field(default="", max_length=500)
    fingerprint: str = Field(default="", max_length=64)


def enroll_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{device_id}/{KEY_KIND}"


def enrollment_payload(device_id: str, private_key: str, public_key: str, nonce: str) -> bytes:
    body = {"v": 1, "kind": KEY_KIND, "device_id": device_id, "public_key": public_key}
    body["nonce"] = nonce
    body["sig"] = Signer(private_key).sign(canonical_bytes(body))
    return json.dumps(body, separators=(",", ":")).encode()


def fingerprint(public_key: str) -> str:
    """A short, comparable name of a public key: SHA-256 of its raw bytes, 16 hex digits in
    groups of four (what `edge join` prints and `devices list` shows)."""
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        return "?"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


# --- the key store --------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolledKey:
    device_id: str
    public_key: str
    enrolled_at: float  # epoch seconds


class KeyStore:
    """Enrolled keys, one per device, in an SQLite file shared by the ingest's workers and
    read by the CLI. Each call opens its own connection: the file is small and read rarely
    (a device's key is cached by the ingest once found)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        if write and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            create_private(self.path)
        db = sqlite3.connect(self.path if write else f"file:{self.path}?mode=ro", uri=not write)
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            if write:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS keys (device_id TEXT PRIMARY KEY, "
                    "public_key TEXT NOT NULL, enrolled_at REAL NOT NULL)"
                )
            yield db
            db.commit()
        finally:
            db.close()

    def get(self, device_id: str) -> EnrolledKey | None:
        return self.all().get(device_id) if self.path.exists() else None

    def all(self) -> dict[str, EnrolledKey]:
        if not self.path.exists():
            return {}
        try:
            with self._db() as db:
                rows = db.execute("SELECT device_id, public_key, enrolled_at FROM keys").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise
        return {r[0]: EnrolledKey(r[0], r[1], float(r[2])) for r in rows}

    def enroll(self, device_id: str, public_key: str) -> tuple[EnrolledKey, bool]:
        """The device's key after this enrollment, and whether it is `public_key`: the first
        key a device enrols is kept; the same key again is accepted; another is not."""
        with self._db(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT public_key, enrolled_at FROM keys WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is None:
                now = time.time()
                db.execute(
                    "INSERT INTO keys (device_id, public_key, enrolled_at) VALUES (?, ?, ?)",
                    (device_id, public_key, now),
                )
                return EnrolledKey(device_id, public_key, now), True
            kept = EnrolledKey(device_id, row[0], float(row[1]))
            return kept, kept.public_key == public_key

    def forget(self, device_id: str) -> bool:
        """Forget a device's enrolled key (it may join again); whether there was one."""
        if not self.path.exists():
            return False
        with self._db(write=True) as db:
            return db.execute("DELETE FROM keys WHERE device_id = ?", (device_id,)).rowcount > 0


# --- the join code --------------------------------------------------------------------------


class JoinCode(BaseModel):
    """What a device needs to join, printed by the server as one line (`encode`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    tls: bool
    ca_pem: str | None = Field(default=None, max_length=12_000)  # None: the system's CAs
    username: str = Field(pattern=DEVICE_ID_PATTERN)
    password: str = Field(min_length=1, max_length=200)
    sensors: list[str] = Field(default_factory=list, max_length=32)

    def encode(self) -> str:
        """`spj1.<base64url of the compressed JSON>.<check>`: the check (8 hex digits of its
        SHA-256) tells a code cut short or mistyped from a whole one."""
        raw = zlib.compress(self.model_dump_json(exclude_none=True).encode(), 9)
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{CODE_PREFIX}{body}.{_check(body)}"


def _check(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:8]


class BadJoinCode(ValueError):
    """A join code that cannot be read; the message says why."""


def decode_join_code(text: str) -> JoinCode:
    text = "".join(text.split())  # pasted codes may be wrapped or indented
    if not text:
        raise BadJoinCode("no join code given: paste the line `sensorpipe devices add` printed")
    if len(text) > MAX_CODE_CHARS:
        raise BadJoinCode(f"the join code is {len(text)} characters long: not a join code")
    if not text.startswith(CODE_PREFIX):
        raise BadJoinCode(
            f"not a join code (it starts with {CODE_PREFIX!r}): paste the whole line that "
            "`sensorpipe devices add` printed"
        )
    body, _, check = text[len(CODE_PREFIX) :].rpartition(".")
    if not body or check != _check(body):
        raise BadJoinCode(
            "the join code is incomplete or mistyped (its last 8 characters, a check of the "
            "rest, do not match): copy the whole code again from what `sensorpipe devices add` "
            "printed"
        )
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        data = zlib.decompressobj().decompress(raw, 64 * 1024)
        return JoinCode.model_validate_json(data)
    except (binascii.Error, ValueError, zlib.error, ValidationError):
        raise BadJoinCode(
            "the join code is not one this version of sensorpipe reads: update sensorpipe on "
            "this Pi to the server's version, or print the code again with `devices add`"
        ) from None
