"""What every answer passes through: the bound on concurrent heavy requests and the security
headers.

Heavy requests are those that read InfluxDB: /api/v1 devices, air, counts, link and an
area's crowding, and SensorThings below its root. At most `max_heavy_requests` run at once; one
more is answered at once with a 503 problem and Retry-After, so a flood of them cannot queue
work (and memory) without bound, and the threads they would hold stay free for the rest.
/api/v1/health, the dashboard's files, /docs and /openapi.json are never held by the limit.

Every answer carries `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and a
Content-Security-Policy: scripts, styles, fonts and connections from the service itself only
(nothing inline), images also from the configured background map's tile server (its origin
alone, e.g. https://service.pdok.nl; none with `[map] basemap = "none"`), no frames of the
service on other sites (`frame-ancestors 'none'`). A route that sets its own policy (/docs,
with a nonce for its one inline script) keeps it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensorpipe.api.config import ServeConfig
from sensorpipe.api.problems import problem_response

_HEAVY = re.compile(
    r"^/(api/v1/((devices|air|counts|link)(/.*)?|areas/[^/]+/crowding)|sta/v1\.1/.+)$"
)


def is_heavy(path: str) -> bool:
    return _HEAVY.match(path) is not None


def tile_origin(tile_url: str) -> str | None:
    """The origin map tiles come from, as a CSP source: `https://tile.example.org`, or with
    a `{s}` subdomain placeholder `https://*.tile.example.org`. None: the service's own (a
    relative URL) or none."""
    if not tile_url or tile_url.startswith("/"):
        return None
    parts = urlsplit(tile_url.replace("{s}", "subdomain-placeholder"))
    host = (parts.netloc or "").replace("subdomain-placeholder", "*")
    # CSP takes a wildcard only as the host's first label (*.example.org).
    if not re.fullmatch(r"(\*\.)?[A-Za-z0-9.:\[\]-]+", host):
        return f"{parts.scheme}:"  # a placeholder elsewhere in the host: the scheme only
    return f"{parts.scheme}://{host}"


def content_security_policy(config: ServeConfig, *, script_nonce: str | None = None) -> str:
    images = ["'self'", "data:"]
    basemap = config.basemap()
    origin = tile_origin(basemap.tile_url) if basemap else None
    if origin:
        images.append(origin)
    scripts = ["'self'"] + ([f"'nonce-{script_nonce}'"] if script_nonce else [])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {' '.join(scripts)}",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class Guard:
    """ASGI middleware: the heavy-request limit and the security headers."""

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.limit = config.max_heavy_requests
        self.retry_after_s = config.busy_retry_after_s
        self.busy = 0  # heavy requests running; only touched on the event loop
        csp = content_security_policy(config)
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        self.csp = (b"content-security-policy", csp.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {bytes(k).lower() for k, _ in headers}
                headers += [h for h in self.headers if h[0] not in names]
                if self.csp[0] not in names:
                    headers.append(self.csp)
                message = {**message, "headers": headers}
            await send(message)

        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        if not is_heavy(path):
            await self.app(scope, receive, send_with_headers)
            return
        if self.busy >= self.limit:
            answer = problem_response(
                503,
                f"the service is busy: {self.limit} requests that read the time series store "
                f"are running; try again in {self.retry_after_s} s",
                headers={"Retry-After": str(self.retry_after_s)},
            )
            await answer(scope, receive, send_with_headers)
            return
        self.busy += 1
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self.busy -= 1
