"""HTTP basic auth for airrohr kits: each kit its own user (its device id) and password.

The registry keeps a salted scrypt hash of the password (`scrypt$<n>$<r>$<p>$<salt>$<hash>`,
base64), never the password. Checking one costs about 50 ms and 16 MiB on purpose, so:
- a password that was checked once is remembered (a SHA-256 of user, password and stored hash
  in memory): a kit posting every 145 s costs one scrypt per gateway start, not one per post;
- unknown users are refused without hashing anything (device ids are public in the register);
- wrong passwords for one user are throttled (a token bucket per user): once it is empty the
  gateway answers 429 without hashing, so a flood of guesses cannot burn the CPU the other
  kits need. A kit whose password was remembered is not affected by guesses at its name;
- at most two checks run at once, so guesses at many names cannot take more than 32 MiB.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sensorpipe.gateway.kits.limits import RateLimiter
from sensorpipe.protocol.provenance import AIRROHR
from sensorpipe.protocol.registry import DeviceEntry, Registry

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_PREFIX = "scrypt"
# Passwords typed by hand into a phone: lower-case letters and digits without 0/o, 1/l/i.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 20  # about 98 bits; the firmware takes up to 64 characters
_REMEMBERED_MAX = 10_000
_CHECKS_AT_ONCE = 2


def new_kit_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**26)


def hash_kit_password(password: str) -> str:
    """The registry's form of a kit's password: salted scrypt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"{_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_kit_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; False for a malformed hash."""
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, binascii.Error, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def is_kit_password_hash(stored: str) -> bool:
    parts = stored.split("$")
    return len(parts) == 6 and parts[0] == _PREFIX and all(x.isdigit() for x in parts[1:4])


@dataclass(frozen=True, slots=True)
class AuthResult:
    """`device_id` set: admitted. Else `status` 401 (unknown or wrong) or 429 (`retry_after_s`:
    too many wrong passwords for this user lately)."""

    device_id: str | None
    entry: DeviceEntry | None = None
    status: int = 200
    retry_after_s: float = 0.0
    why: str = ""


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header; None if absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class KitAuthenticator:
    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        failures_burst: int = 5,
        failure_refill_s: float = 12.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._remembered: set[bytes] = set()
        self._failures = RateLimiter(burst=failures_burst, refill_s=failure_refill_s, clock=clock)
        self._checks = threading.BoundedSemaphore(_CHECKS_AT_ONCE)

    def check(self, authorization: str | None) -> AuthResult:
        """Who the `Authorization` header admits. May take one scrypt (~50 ms): call it from
        a worker thread."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return AuthResult(None, status=401, why="no basic-auth credentials")
        user, password = credentials
        entry = self._registry().devices.get(user)
        if entry is None or entry.source != AIRROHR or not entry.password_hash:
            return AuthResult(None, status=401, why=f"{user[:64]!r} is not a registered kit")
        key = hashlib.sha256(
            b"\0".join((user.encode(), password.encode(), entry.password_hash.encode()))
        ).digest()
        if key in self._remembered:
            return AuthResult(user, entry)
        wait = self._failures.wait_s(user, take=False)
        if wait > 0:
            return AuthResult(
                None, status=429, retry_after_s=wait, why=f"too many wrong passwords for {user}"
            )
        with self._checks:
            right = verify_kit_password(password, entry.password_hash)
        if not right:
            self._failures.wait_s(user)
            return AuthResult(None, status=401, why=f"wrong password for {user}")
        if len(self._remembered) >= _REMEMBERED_MAX:
            self._remembered.clear()
        self._remembered.add(key)
        return AuthResult(user, entry)
