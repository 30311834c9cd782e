"""What both HTTP services (`sensorpipe serve` and the kit gateway) share: the uvicorn settings
they run with, their bearer tokens (stored as hashes: `token_hash`, `check_token_hashes`,
`bearer_listed`) and a request body read no further than its limit (`body_up_to`). One module
rather than one per concept (aiomqtt's shape): each part is a few lines, and both services
need every one.

uvicorn closes a kept-alive connection that stays idle between requests (timeout_keep_alive),
but nothing else: a client that connects and sends nothing, sends a request's line and headers
a byte at a time, or announces a body (Content-Length, or chunked) and never sends it, holds its
connection for as long as it likes. A few hundred of those take every slot of uvicorn's
`limit_concurrency` (each later request answered 503) or the process's file descriptors. Here:

- every request has `request_timeout_s` to arrive whole (line, headers and body), counted from
  the connection's start, or from its first byte after a kept-alive answer. The deadline is
  disarmed only when h11 has the whole request; a connection still short of that at the
  deadline is closed, with a 408 if no answer to that request was started. A slow answer (the
  application's time) is not timed here;
- one client address (an IPv6 address: its /64) holds at most `max_connections_per_client`
  connections at once (0: no cap); a connection beyond it is answered 503 and closed at once,
  before a byte is read. Behind a reverse proxy every client has the proxy's address: set it
  to 0 there and bound connections at the proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

import h11
import uvicorn
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS_PER_CLIENT = 64
TOKEN_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
_LOG_EVERY_S = 60.0


def _answer(status: str, text: str) -> bytes:
    body = (text + "\r\n").encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


TIMEOUT_ANSWER = _answer("408 Request Timeout", "the request came too slowly.")
BUSY_ANSWER = _answer("503 Service Unavailable", "too many connections from this address.")


def client_key(host: str) -> str:
    """What a client is counted by: its address, or for IPv6 its /64 (one subscriber's
    network: anyone with one has 2**64 addresses to cycle through)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each whole request and a cap on the
    connections of one client address. `protocol_class` makes one per server, with the
    settings and the table of connections per address of that server."""

    request_timeout_s: ClassVar[float] = REQUEST_TIMEOUT_S
    max_connections_per_client: ClassVar[int] = MAX_CONNECTIONS_PER_CLIENT
    # Client address -> its connections open now (one event loop: no lock).
    per_client: ClassVar[dict[str, int]] = {}
    _refused_logged_at: ClassVar[list[float]] = [0.0]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._counted: str | None = None
        host = client_key(str(self.client[0])) if self.client else None
        if host is not None:
            cap = self.max_connections_per_client
            n = self.per_client.get(host, 0)
            if cap and n >= cap:
                self._refuse(host)
                return
            self.per_client[host] = n + 1
            self._counted = host
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have begun (or arrived whole)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        host = getattr(self, "_counted", None)
        if host is not None:
            self._counted = None
            left = self.per_client.get(host, 1) - 1
            if left > 0:
                self.per_client[host] = left
            else:
                self.per_client.pop(host, None)
        super().connection_lost(exc)

    # --- the deadline ---------------------------------------------------------------------
    def _follow(self) -> None:
        """Arm the deadline while a request is on its way in, disarm it once it is in."""
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            if self._deadline is None:
                self._arm()  # the first byte of a request after a kept-alive answer
        elif state is not h11.IDLE:  # DONE, or the connection is ending: the request is in
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._late)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        state = self.conn.their_state
        if self.transport.is_closing() or state not in (h11.IDLE, h11.SEND_BODY):
            return
        # The request on its way has a cycle (and maybe an answer begun) only once its
        # headers are in; while they are not, the cycle is the previous request's.
        answering = state is h11.SEND_BODY and self.cycle is not None
        if not (answering and self.cycle.response_started):
            self.transport.write(TIMEOUT_ANSWER)
        log.debug("closed a connection from %s: no whole request in time", self.client)
        self.transport.close()

    # --- the cap --------------------------------------------------------------------------
    def _refuse(self, host: str) -> None:
        now = time.monotonic()
        if now - self._refused_logged_at[0] >= _LOG_EVERY_S:
            self._refused_logged_at[0] = now
            log.warning(
                "refused a connection from %s: it has %d open, the most one address may have "
                "(max_connections_per_client); logged at most once a minute",
                host,
                self.max_connections_per_client,
            )
        self.transport.write(BUSY_ANSWER)
        self.transport.close()


def allow_open_files(connections: int) -> None:
    """Raise this process's soft limit of open files (often 1024, e.g. under systemd) towards
    its hard limit, so that `connections` connections at once meet uvicorn's 503, not a
    failing accept()."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 256  # the listening socket, files, the broker, threads
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            except (ValueError, OSError):
                log.warning("could not raise the limit of open files from %d to %d", soft, new)


def renamed_timeout(cls: Any, value: float | None) -> float | None:
    """A config's validator for `header_timeout_s`, the former name of request_timeout_s."""
    if value is not None:
        raise PydanticCustomError(
            "renamed_key",
            "renamed request_timeout_s: it now bounds the whole request (line, headers and "
            "body); write request_timeout_s = {value} instead",
            {"value": value},
        )
    return value


def protocol_class(
    *,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
) -> type[GuardedH11Protocol]:
    """A protocol class with these settings and a table of connections of its own."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "request_timeout_s": request_timeout_s,
            "max_connections_per_client": max_connections_per_client,
            "per_client": {},
            "_refused_logged_at": [0.0],
        },
    )


def uvicorn_config(
    app: Any,
    *,
    tls_cert: str | None,
    tls_key: str | None,
    request_timeout_s: float,
    max_connections_per_client: int,
    **settings: Any,
) -> uvicorn.Config:
    """uvicorn's settings for `app`: TLS when given, no trust in proxy headers (a client's
    address is the connection's), no WebSocket, the guarded protocol; `settings` adds
    uvicorn's own (limit_concurrency, timeout_keep_alive, server_header)."""
    return uvicorn.Config(
        app,
        log_level="warning",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        proxy_headers=False,
        ws="none",
        http=protocol_class(
            request_timeout_s=request_timeout_s,
            max_connections_per_client=max_connections_per_client,
        ),
        **settings,
    )


def token_hash(token: str) -> str:
    """What a config's token hashes hold for `token`: `sha256:` and its hex digest."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def check_token_hashes(hashes: list[str], *, how: str) -> list[str]:
    """A config's validator for a list of token hashes; `how` says how to make one."""
    for h in hashes:
        if not re.match(TOKEN_HASH_PATTERN, h):
            raise ValueError(f"{h[:20]!r}...: expected 'sha256:' and 64 hex digits; {how}")
    return hashes


def bearer_listed(request: Request, hashes: Iterable[str]) -> bool:
    """Whether the request carries a bearer token whose hash is one of `hashes`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    candidate = token_hash(token.strip())
    # Every hash compared, in constant time each: the answer takes as long for any token.
    matches = [hmac.compare_digest(candidate, h) for h in hashes]
    return any(matches)


async def body_up_to(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit` bytes."""
    length = request.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
