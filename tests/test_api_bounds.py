"""The service's bounds that need no InfluxDB: settings, the CSP's tile origin, which paths
are heavy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sensorpipe.api.config import ServeConfig
from sensorpipe.api.guard import content_security_policy, is_heavy, tile_origin


def test_defaults() -> None:
    c = ServeConfig()
    assert (c.max_heavy_requests, c.busy_retry_after_s, c.request_timeout_s) == (8, 5, 10.0)
    assert c.max_connections_per_client == 64
    assert c.public_url == ""


@pytest.mark.parametrize(
    "url",
    ["ftp://x.org", "https://", "https://a.org/?x=1", "https://a.org/#f", "a.org", "//a.org"],
)
def test_public_url_must_be_an_http_address(url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        ServeConfig(public_url=url)


def test_public_url_loses_its_trailing_slash() -> None:
    assert ServeConfig(public_url="https://a.org/sensors/").public_url == "https://a.org/sensors"


@pytest.mark.parametrize(
    ("tile_url", "origin"),
    [
        ("https://tile.example.org/{z}/{x}/{y}.png", "https://tile.example.org"),
        ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "https://*.tile.example.org"),
        ("http://localhost:8081/{z}/{x}/{y}.png", "http://localhost:8081"),
        ("https://t{s}x.example.org/{z}/{x}/{y}.png", "https:"),
        ("/tiles/{z}/{x}/{y}.png", None),
        ("", None),
    ],
)
def test_tile_origin(tile_url: str, origin: str | None) -> None:
    assert tile_origin(tile_url) == origin


def test_csp_allows_nothing_inline_and_no_frames() -> None:
    csp = content_security_policy(ServeConfig())
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


@pytest.mark.parametrize(
    ("path", "heavy"),
    [
        ("/api/v1/air", True),
        ("/api/v1/counts", True),
        ("/api/v1/devices", True),
        ("/api/v1/devices/dev-1", True),
        ("/api/v1/link", True),
        ("/sta/v1.1/Things", True),
        ("/api/v1/health", False),
        ("/sta/v1.1", False),
        ("/sta/v1.1/", False),
        ("/", False),
        ("/static/dashboard.js", False),
        ("/docs", False),
        ("/openapi.json", False),
        ("/api/v1/airx", False),
    ],
)
def test_heavy_paths(path: str, heavy: bool) -> None:
    assert is_heavy(path) is heavy
