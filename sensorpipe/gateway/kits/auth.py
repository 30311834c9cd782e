"""HTTP basic auth for airrohr kits: each kit its own user (its device id) and password.

The registry keeps a salted scrypt hash of the password (`scrypt$<n>$<r>$<p>$<salt>$<hash>`,
base64), never the password. Checking one costs about 50 ms and 16 MiB on purpose, so:
- a password that was checked once is remembered (a SHA-256 of user, password and stored hash
  in memory): a kit posting every 145 s costs one scrypt per gateway start, not one per post;
- unknown users are refused without hashing anything (device ids are public in the register);
- all checks share a global budget (a token bucket: `CHECKS_BURST` at once, then one every
  `CHECK_REFILL_S`): beyond it the gateway answers 429 without hashing, so a flood of guesses,
  at one name or many, cannot burn the CPU the other kits need;
- wrong passwords for one user are counted (a token bucket per user, 5 then one per 12 s).
  A user over it is still checked (a right password must always pass: kit ids are public, so
  anyone could otherwise keep a kit out, and the firmware never sends a refused post again),
  but only from the part of the global budget above `CHECKS_RESERVE`: a flood at one name
  leaves that reserve to the other kits. A kit whose password was remembered is not affected
  by guesses at its name at all;
- each client address has a budget of its own within the global one (`CLIENT_CHECKS_BURST`
  at once, then one every `CLIENT_CHECK_REFILL_S`; an IPv6 address counts by its /64): beyond
  it that address is answered 429 without hashing and without taking from the global budget,
  so one address guessing at many names cannot keep the other kits' first posts out (it
  takes four addresses guessing at once, 4 x 0.5 checks a second, to spend the global budget
  as it refills). Behind a reverse proxy every client has the proxy's address:
  the per-address budget is then a second global one (raise it there, [airrohr] in
  gateway.toml);
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
from sensorpipe.http_server import client_key
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
# The global budget of password checks (about 50 ms of CPU each): 20 at once, then two a
# second (a tenth of a core). Kits post every 145 s and are checked once per gateway start,
# so 1,000 kits starting together are all in within about eight minutes.
CHECKS_BURST = 20
CHECK_REFILL_S = 0.5
# Checks of a user with too many wrong passwords lately leave this many in the budget.
CHECKS_RESERVE = 10
# Each client address: 10 checks at once (a school's kits behind one router, all starting
# after a gateway restart), then one every 2 s: a quarter of the global refill.
CLIENT_CHECKS_BURST = 10
CLIENT_CHECK_REFILL_S = 2.0
_ALL = ""  # the global budget's key


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
    the budget of password checks is spent for now)."""

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
        checks_burst: int = CHECKS_BURST,
        check_refill_s: float = CHECK_REFILL_S,
        checks_reserve: int = CHECKS_RESERVE,
        client_checks_burst: int = CLIENT_CHECKS_BURST,
        client_check_refill_s: float = CLIENT_CHECK_REFILL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= checks_reserve < checks_burst:
            raise ValueError("checks_reserve must be at least 0 and below checks_burst")
        self._registry = registry
        self._remembered: set[bytes] = set()
        self._failures = RateLimiter(burst=failures_burst, refill_s=failure_refill_s, clock=clock)
        self._budget = RateLimiter(burst=checks_burst, refill_s=check_refill_s, clock=clock)
        self._per_client = RateLimiter(
            burst=client_checks_burst, refill_s=client_check_refill_s, clock=clock
        )
        self._reserve = checks_reserve
        self._checks = threading.BoundedSemaphore(_CHECKS_AT_ONCE)

    def check(self, authorization: str | None, client: str | None = None) -> AuthResult:
        """Who the `Authorization` header, sent from the address `client`, admits. May take
        one scrypt (~50 ms): call it from a worker thread."""
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
        guessed_at = self._failures.wait_s(user, take=False) > 0
        address = None if client is None else client_key(client)
        if address is not None:
            wait = self._per_client.wait_s(address, take=False)
            if wait > 0:
                why = f"too many password checks from {address}"
                return AuthResult(None, status=429, retry_after_s=wait, why=why)
        need = 1.0 + (self._reserve if guessed_at else 0)
        wait = self._budget.wait_s(_ALL, need=need)
        if address is not None and wait == 0:
            self._per_client.wait_s(address)
        if wait > 0:
            why = "too many password checks" + (
                f" (and wrong passwords for {user})" if guessed_at else ""
            )
            return AuthResult(None, status=429, retry_after_s=wait, why=why)
        with self._checks:
            right = verify_kit_password(password, entry.password_hash)
        if not right:
            self._failures.wait_s(user)
            return AuthResult(None, status=401, why=f"wrong password for {user}")
        if len(self._remembered) >= _REMEMBERED_MAX:
            self._remembered.clear()
        self._remembered.add(key)
        return AuthResult(user, entry)
