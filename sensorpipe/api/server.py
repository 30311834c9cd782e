"""The HTTP server `sensorpipe serve` runs in: uvicorn with the deadline for each request and
the cap on connections per client address of sensorpipe.http_server."""

from __future__ import annotations

from typing import Any

import uvicorn

from sensorpipe.api.config import ServeConfig
from sensorpipe.http_server import uvicorn_config as _uvicorn_config


def uvicorn_config(app: Any, config: ServeConfig) -> uvicorn.Config:
    """uvicorn's settings for `app` served by `sensorpipe serve`."""
    return _uvicorn_config(
        app,
        tls_cert=config.tls_cert,
        tls_key=config.tls_key,
        request_timeout_s=config.request_timeout_s,
        max_connections_per_client=config.max_connections_per_client,
    )
