"""The HTTP server the service runs in (uvicorn), with a deadline for request headers.

uvicorn closes a kept-alive connection that stays idle (timeout_keep_alive), but not one that
sends a request's line and headers a byte at a time: such a client holds a connection (and its
buffer) for as long as it likes, and a few hundred of them exhaust the server's file
descriptors. Here a client has `header_timeout_s` to send them, counted from the connection's
start or from its first byte after a kept-alive answer; then it gets a 408 and the connection
is closed. The body of a request (this service takes none) and the answer are not timed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sensorpipe.api.config import ServeConfig

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 40\r\n\r\nthe request's headers came too slowly.\r\n"
)
assert len(_TIMEOUT_ANSWER.split(b"\r\n\r\n", 1)[1]) == 40


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        # A new request after a kept-alive answer: its headers get the same time.
        if self._header_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's headers are all in
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            assert self._header_deadline is not None
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        # Only between requests or within a request's headers: no answer is being written.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def protocol_class(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    return type(
        "HeaderTimeoutProtocol",
        (HeaderTimeoutProtocol,),
        {"header_timeout_s": header_timeout_s},
    )


def uvicorn_config(app: Any, config: ServeConfig) -> uvicorn.Config:
    """uvicorn's settings for `app` served by `sensorpipe serve`."""
    return uvicorn.Config(
        app,
        log_level="warning",
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        proxy_headers=False,
        http=protocol_class(config.header_timeout_s),
    )
