"""The HTTP service's configuration file (TOML). See config/serve.example.toml.

Every setting has a default, so `sensorpipe serve` runs against a local stack without a file.
Access tokens are stored as SHA-256 hashes only: the file can be read by operators who must
not learn the tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensorpipe.http_server import (
    MAX_CONNECTIONS_PER_CLIENT,
    REQUEST_TIMEOUT_S,
    check_token_hashes,
    renamed_timeout,
)
from sensorpipe.http_server import token_hash as hash_token  # the API's name for it
from sensorpipe.ingest.config import InfluxConfig
from sensorpipe.protocol.configfile import ConfigError, load_model, resolve_tls_files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InfluxSettings(InfluxConfig):
    """The ingest's [influx] keys, for the database it writes; a query waits longer."""

    timeout_s: float = Field(default=30.0, gt=0, le=600)


class BrokerSettings(_Strict):
    """The broker whose reachability /api/v1/health reports (a TCP connect, nothing sent)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)


@dataclass(frozen=True)
class Basemap:
    """A background map for the dashboard: a tile URL template (XYZ, 256 px tiles in Web
    Mercator) and the attribution its licence asks for, shown on the map."""

    name: str
    tile_url: str
    attribution: str
    min_zoom: int = 0
    max_zoom: int = 19
    # [[south, west], [north, east]]: no tile is asked for outside it (None: anywhere).
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None


_PDOK = (
    "https://service.pdok.nl/brt/achtergrondkaart/wmts/v2_0/{layer}/EPSG:3857/{{z}}/{{x}}/{{y}}.png"
)
_KADASTER = 'Kaartgegevens &copy; <a href="https://www.kadaster.nl/">Kadaster</a>'
# The Netherlands with a margin: PDOK's BRT-Achtergrondkaart covers it and nothing else, so
# no tile outside it is asked for.
_NL_BOUNDS = ((50.5, 3.0), (54.0, 7.5))
# The base maps `[map] basemap` names. PDOK's BRT-Achtergrondkaart is the Dutch government's
# free base map (Kadaster's BRT, CC BY 4.0); its raster tiles start at zoom 6. OpenStreetMap's
# standard tiles are served under its tile usage policy (a visible attribution, a Referer).
BASEMAPS: dict[str, Basemap] = {
    "pdok": Basemap(
        "pdok", _PDOK.format(layer="standaard"), _KADASTER, min_zoom=6, bounds=_NL_BOUNDS
    ),
    "pdok-grijs": Basemap(
        "pdok-grijs", _PDOK.format(layer="grijs"), _KADASTER, min_zoom=6, bounds=_NL_BOUNDS
    ),
    "osm": Basemap(
        "osm",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    ),
}


def _check_tile_url(url: str) -> str:
    if url and not (url.startswith(("http://", "https://", "/")) and "{z}" in url):
        raise ValueError(f"{url!r}: expected an http(s) URL with {{z}}, {{x}} and {{y}}")
    return url


class MapSettings(_Strict):
    """[map]: the dashboard's background map. `basemap` names one (pdok: the Dutch government's
    BRT-Achtergrondkaart; pdok-grijs: its grey version; osm: OpenStreetMap; none: no
    background, for offline use), or `tile_url` (with `attribution`) gives your own."""

    basemap: Literal["pdok", "pdok-grijs", "osm", "none", "custom"] = "pdok"
    tile_url: str = ""
    # Shown on the map as text, but for links written as <a href="https://...">text</a>
    # (an http(s) href only; other attributes dropped) and character references (&copy;).
    attribution: str = ""

    _tiles = field_validator("tile_url")(_check_tile_url)

    @model_validator(mode="after")
    def _custom(self) -> MapSettings:
        if self.tile_url and "basemap" in self.model_fields_set and self.basemap != "custom":
            raise ValueError(
                f"basemap = {self.basemap!r} and a tile_url: give one of them (a tile_url is "
                f'basemap "custom")'
            )
        if self.tile_url:
            self.basemap = "custom"
        elif self.basemap == "custom":
            raise ValueError('basemap = "custom" needs a tile_url (and its attribution)')
        return self

    def resolved(self) -> Basemap | None:
        """The background map to draw; None: none."""
        if self.basemap == "custom":
            return Basemap("custom", self.tile_url, self.attribution)
        return BASEMAPS.get(self.basemap)


class ServeConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Off loopback the service needs TLS (cert and key, PEM) or allow_plaintext: a bearer
    # token would otherwise cross the network readable by anyone on it.
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_plaintext: bool = False
    registry_path: str = "registry.toml"
    # The ingest's stats file (its heartbeat): /api/v1/health reports the ingest alive while
    # it is fresh. Unset: the health check leaves the ingest out.
    ingest_stats_path: str | None = None
    # The calibration book (calibrations.sqlite, written by `sensorpipe calibrate`):
    # /api/v1/air?values=calibrated calibrates with it when read. Unset, or no such file:
    # every value is raw (and labelled so).
    calibration_path: str | None = None
    # The alert store the ingest writes ([alerts] store of ingest.toml): /api/v1/alerts lists
    # it. Unset: /api/v1/alerts answers 404.
    alerts_path: str | None = None
    # The forecast models folder `sensorpipe crowd train` writes (the stack's forecast/):
    # /api/v1/.../crowding forecasts with its models. Unset: `forecast` is null.
    models_path: str | None = None
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    broker: BrokerSettings | None = None
    # SHA-256 hashes of bearer tokens that may see exact locations and per-message link
    # metadata (`sensorpipe serve token` makes one).
    token_hashes: list[str] = Field(default_factory=list)
    # The dashboard's background map ([map]); by default PDOK's BRT-Achtergrondkaart.
    map: MapSettings = Field(default_factory=MapSettings)
    # The former place of [map] tile_url and attribution, still read: a tile_url here is
    # [map] basemap "custom" with that URL (and tile_attribution its attribution).
    tile_url: str = ""
    tile_attribution: str = ""
    # The most values (rows x columns) one answer may hold; a request for more is refused
    # with a 400 that says how to narrow it.
    max_points: int = Field(default=100_000, ge=100, le=10_000_000)
    # How long the register's statistics (uptime, gaps, latency) are reused before they are
    # computed again from InfluxDB.
    register_cache_s: float = Field(default=30.0, ge=0, le=3600)
    # Requests that read InfluxDB (/api/v1 devices, air, counts, link; SensorThings below its
    # root) served at once; one more is answered 503 with Retry-After at once, so a flood
    # cannot queue work without bound. /api/v1/health, the dashboard's files and /docs are
    # never held by it.
    max_heavy_requests: int = Field(default=8, ge=1, le=1000)
    # The Retry-After (seconds) of that 503.
    busy_retry_after_s: int = Field(default=5, ge=1, le=3600)
    # /api/v1/health checks InfluxDB, the broker (a TCP connection) and the ingest's heartbeat
    # at most once per this many seconds; calls in between get that check's result, so a
    # flood of /health costs one check per period (0: every call checks).
    health_cache_s: float = Field(default=2.0, ge=0, le=60)
    # The service's public address, e.g. "https://data.example.org" or with a path prefix
    # "https://example.org/sensors": links in answers (SensorThings selfLink and nextLink,
    # /api/v1/link's next) start with it. Empty: the address the service listens on (never
    # the request's Host header, which any client can forge).
    public_url: str = ""
    # A client has this long (seconds) to send a whole request (line, headers and body), from
    # connecting or from its first byte after a kept-alive answer; then the connection is
    # closed (sensorpipe.http_server).
    request_timeout_s: float = Field(default=REQUEST_TIMEOUT_S, gt=0, le=300)
    # Connections one client address may hold at once; one more is answered 503 and closed.
    # 0: no cap (behind a reverse proxy, where every client has the proxy's address).
    max_connections_per_client: int = Field(default=MAX_CONNECTIONS_PER_CLIENT, ge=0, le=100_000)
    # The former name of request_timeout_s, which bounded the headers only: refused with a
    # message that names the new key, rather than taken with a wider meaning unnoticed.
    header_timeout_s: float | None = Field(default=None, exclude=True)

    _renamed = field_validator("header_timeout_s")(renamed_timeout)

    @field_validator("token_hashes")
    @classmethod
    def _hashes(cls, hashes: list[str]) -> list[str]:
        return check_token_hashes(hashes, how="make one with `sensorpipe serve token`")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        if not url:
            return url
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or any(c in url for c in " \"'<>\\")
        ):
            raise ValueError(
                f"{url[:80]!r}: expected the service's address as http(s)://host[:port][/path], "
                f"e.g. https://data.example.org"
            )
        return url.rstrip("/")

    _tiles = field_validator("tile_url")(_check_tile_url)

    @model_validator(mode="after")
    def _legacy_tiles(self) -> ServeConfig:
        if not self.tile_url:
            return self
        if self.map.model_fields_set:
            raise ValueError(
                "tile_url is set both at the top and in [map]: keep [map] (basemap, or "
                "tile_url and attribution) and remove the top-level tile_url"
            )
        self.map = MapSettings(tile_url=self.tile_url, attribution=self.tile_attribution)
        return self

    def basemap(self) -> Basemap | None:
        """The dashboard's background map; None: none (offline)."""
        return self.map.resolved()


def new_token() -> tuple[str, str]:
    """A new bearer token and the hash that goes into the config."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def load_serve_config(path: Path | str) -> ServeConfig:
    """The config in `path`, its relative paths resolved against the file's folder."""
    path = Path(path)
    config = load_model(path, ServeConfig)
    base = path.resolve().parent
    config.registry_path = str(base / config.registry_path)
    if config.ingest_stats_path:
        config.ingest_stats_path = str(base / config.ingest_stats_path)
    if config.calibration_path:
        config.calibration_path = str(base / config.calibration_path)
    if config.alerts_path:
        config.alerts_path = str(base / config.alerts_path)
    if config.models_path:
        config.models_path = str(base / config.models_path)
    resolve_tls_files(path, config)
    return config


def check_public_bind(config: ServeConfig, source: str) -> None:
    """The broker's rule: off loopback only with TLS or an explicit allow_plaintext."""
    from sensorpipe.gateway.mosquitto import ListenerError, check_bind, is_loopback

    try:
        check_bind(config.host)
    except ListenerError as exc:
        raise ConfigError(source, str(exc)) from None
    if not is_loopback(config.host) and config.tls_cert is None and not config.allow_plaintext:
        raise ConfigError(
            source,
            f"host {config.host!r} is not loopback: give tls_cert and tls_key, or set "
            f"allow_plaintext (--allow-plaintext) if a proxy in front of it does TLS",
        )
