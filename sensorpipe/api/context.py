"""What every request handler shares: the configuration, the InfluxDB client, the registry
(read again when its file changes) and the register's statistics (reused for a short while).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from sensorpipe.api.config import ServeConfig
from sensorpipe.api.problems import ApiProblem
from sensorpipe.http_server import bearer_listed
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import Registry, load_registry
from sensorpipe.query.register import RegisterStats, register_stats

log = logging.getLogger(__name__)


@dataclass
class CachedStats:
    stats: RegisterStats
    computed_at: float  # time.monotonic()


class ApiContext:
    def __init__(
        self,
        config: ServeConfig,
        influx: InfluxClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: the time now (epoch seconds) that the crowding answers are of: their
        windows and the forecasts' origin hour."""
        self.config = config
        self.clock = clock
        s = config.influx
        self.influx = influx or InfluxClient(
            s.url,
            s.database,
            username=s.username,
            password=s.password,
            token=s.token,
            timeout_s=s.timeout_s,
        )
        self._registry: Registry | None = None
        self._registry_stamp: tuple[int, int] | None = None
        self._registry_lock = threading.Lock()
        self._stats: CachedStats | None = None
        self._stats_lock = threading.Lock()  # held while statistics are computed
        self._refresh_lock = threading.Lock()  # held only to start a background refresh
        self._refreshing = False
        # The calibration book as last read (all its assignments), and its file's stamp.
        self._book: Any = None
        self._book_stamp: tuple[int, int] | None = None
        self._book_lock = threading.Lock()
        # The saved forecast models (crowd.saved.ModelCache), loaded once; the forecasts of
        # the current origin hour: (kind, name, origin) -> (the model's stamp, (forecast,
        # note)), made again when its model was retrained.
        self._models: Any = None
        self._forecasts: dict[tuple[str, str, int], tuple[Any, tuple[Any, str | None]]] = {}
        self._forecast_lock = threading.Lock()
        # /api/v1/health's last check of the parts: (time.monotonic(), the check).
        self.health_checked: tuple[float, Any] | None = None
        self.health_lock = threading.Lock()

    def close(self) -> None:
        self.influx.close()

    # --- calibration ----------------------------------------------------------------------
    def calibration_book_path(self) -> Path | None:
        """The calibration book the config names (calibration_path); None: none (every value
        is then raw, and the register says no device is calibrated)."""
        configured = self.config.calibration_path
        return Path(configured) if configured else None

    def calibrations_now(self, device_ids: list[str]) -> dict[str, Any]:
        """Per device and quantity the calibration that applies now (calibration.status);
        nothing where there is no book. ApiProblem 503 where it cannot be read."""
        from sensorpipe.calibration.status import calibration_status

        now_ms = int(time.time() * 1000)
        return self.with_calibration_book(lambda book: calibration_status(book, device_ids, now_ms))

    def calibration_methods_in_use(self) -> set[str]:
        """The methods of the calibrations assigned to a device (the algorithm register's
        "in use"); none without a book."""
        return set(
            self.with_calibration_book(lambda book: book.methods_in_use() if book else set())
        )

    def with_calibration_book(self, read: Callable[[Any], Any]) -> Any:
        """`read(book)` of the calibration book, opened for it (None: there is none);
        ApiProblem 503 where it cannot be read."""
        import sqlite3

        from sensorpipe.calibration.store import open_book

        path = self.calibration_book_path()
        try:
            book = None if path is None else open_book(path, create=False)
            try:
                return read(book)
            finally:
                if book is not None:
                    book.close()
        except (OSError, sqlite3.Error) as exc:
            raise ApiProblem(503, f"the calibration book cannot be read: {exc}") from None

    # --- forecasts ------------------------------------------------------------------------
    def forecast(
        self,
        kind: str,
        name: str,
        compute: Callable[[Any, int], tuple[Any, str | None]],
        now_s: float | None = None,
    ) -> tuple[Any, str | None]:
        """(forecast, note) of a device or area made at `now_s` (default: the clock's now):
        `compute(models, origin)` with the models loaded once (crowd.saved.ModelCache), its
        answer kept for the origin hour while its model is the same training (a retraining,
        by hand or by the ingest's schedule, drops it)."""
        from sensorpipe.crowd.live import last_whole_hour
        from sensorpipe.crowd.saved import ModelCache

        if not self.config.models_path:
            return None, "this service has no forecast models: set models_path in serve.toml"
        origin = last_whole_hour(self.clock() if now_s is None else now_s)
        key = (kind, name, origin)
        with self._forecast_lock:
            if self._models is None:
                self._models = ModelCache(Path(self.config.models_path))
            stamp = self._models.stamp(kind, name)
            hit = self._forecasts.get(key)
            if hit is None or hit[0] != stamp:
                self._forecasts = {k: v for k, v in self._forecasts.items() if k[2] == origin}
                hit = (stamp, compute(self._models, origin))
                self._forecasts[key] = hit
            return hit[1]

    # --- registry -------------------------------------------------------------------------
    def registry(self) -> Registry:
        """The registry as its file is now; read again only when the file changed."""
        path = Path(self.config.registry_path)
        stamp = file_stamp(path)
        with self._registry_lock:
            if self._registry is None or stamp != self._registry_stamp:
                self._registry = load_registry(path) if stamp is not None else Registry()
                self._registry_stamp = stamp
            return self._registry

    # --- statistics -----------------------------------------------------------------------
    def stats(self, *, now: Callable[[], float] = time.monotonic) -> RegisterStats:
        """The register's statistics: computed when there are none, reused while younger
        than register_cache_s, and recomputed in the background (the stale ones answered
        meanwhile) once older, so one slow computation never holds every request up. With
        register_cache_s = 0, computed for every request."""
        ttl = self.config.register_cache_s
        if ttl == 0:
            return register_stats(self.influx)
        cached = self._stats
        if cached is not None and now() - cached.computed_at < ttl:
            return cached.stats
        if cached is not None:
            self._refresh_in_background()
            return cached.stats
        with self._stats_lock:
            if self._stats is None:
                self._stats = CachedStats(register_stats(self.influx), now())
            return self._stats.stats

    def keep_stats_fresh(self, stop: threading.Event) -> None:
        """Recompute the statistics every register_cache_s until `stop` is set (run in a
        thread by the app), so that requests find them computed: the first right after
        the service starts, the next before they are stale."""
        ttl = self.config.register_cache_s
        if ttl == 0:
            return
        while not stop.is_set():
            try:
                self._compute_unless_fresh(ttl * 0.8)
            except Exception:
                log.debug("register statistics not computed", exc_info=True)
            stop.wait(max(1.0, ttl * 0.8))

    def _compute_unless_fresh(self, younger_than: float) -> None:
        """Compute the statistics unless a request (or this thread) did so less than
        `younger_than` seconds ago. Under the lock a first request also takes, so the
        service's first answer and this thread never compute them twice over."""
        with self._stats_lock:
            cached = self._stats
            if cached is not None and time.monotonic() - cached.computed_at < younger_than:
                return
            self._stats = CachedStats(register_stats(self.influx), time.monotonic())

    def _refresh_in_background(self) -> None:
        with self._refresh_lock:
            if self._refreshing:
                return
            self._refreshing = True

        def work() -> None:
            try:
                self._stats = CachedStats(register_stats(self.influx), time.monotonic())
            except Exception:
                pass
            finally:
                self._refreshing = False

        threading.Thread(target=work, name="register-stats", daemon=True).start()

    # --- calibrations ----------------------------------------------------------------------
    def calibrations(self, devices: list[str]) -> Any:
        """What the calibration book says of `devices` (all: none given): a
        query.calibrated.Calibrations, or None where there is no book or nothing is assigned.
        The book is read again whenever its file changed (`calibrate fit` and `apply` write
        it), so a calibration applied a moment ago counts at the next request."""
        import sqlite3

        from sensorpipe.query.calibrated import Calibrations, from_book

        if not self.config.calibration_path:
            return None
        path = Path(self.config.calibration_path)
        try:
            stamp = file_stamp(path)
            with self._book_lock:
                if stamp != self._book_stamp or stamp is None:
                    self._book = from_book(path, []) if stamp is not None else None
                    self._book_stamp = stamp
                book = self._book
        except (OSError, sqlite3.Error) as exc:
            raise ApiProblem(
                503, f"the calibration book cannot be read ({exc}); values=raw answers without it"
            ) from None
        if book is None:
            return None
        wanted = set(devices)
        assignments = [a for a in book.assignments if not wanted or a.device_id in wanted]
        if not assignments:
            return None
        found = Calibrations(assignments, book.records)
        found.group_factors = book.group_factors  # read-only here: shared between requests
        return found

    # --- access ---------------------------------------------------------------------------
    def authorised(self, request: Request) -> bool:
        """Whether the request carries a bearer token listed (hashed) in the config."""
        return bearer_listed(request, self.config.token_hashes)

    def require_token(self, request: Request, what: str) -> None:
        if not self.authorised(request):
            if request.headers.get("authorization"):
                raise ApiProblem(401, f"{what} needs a valid bearer token; this one is not listed")
            raise ApiProblem(
                401,
                f"{what} needs a bearer token (Authorization: Bearer <token>) listed in the "
                f"service's config; the public data needs none",
            )


def file_stamp(path: Path) -> tuple[int, int] | None:
    """A file's modification time and size, to tell when it changed; None: no such file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def public_base(request: Request) -> str:
    """The service's address for links in answers, without a trailing '/': the configured
    public_url, else the address the connection was accepted on (the listening socket's, as
    the server reports it), with the app's root path. Never the Host header: any client can
    send one, and a link built from it would point the next reader to the client's server.
    Without a known address (a Unix socket), the links are relative: ''."""
    configured = context(request).config.public_url
    if configured:
        return configured
    scheme = request.scope.get("scheme", "http")
    server = request.scope.get("server")
    root = str(request.scope.get("root_path", "")).rstrip("/")
    if not server or server[1] is None:
        return root
    host, port = str(server[0]), int(server[1])
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    authority = host if port == default else f"{host}:{port}"
    return f"{scheme}://{authority}{root}"


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


async def context_dependency(request: Request) -> ApiContext:
    """`context` for Depends: async, so it needs no thread (a sync dependency waits for one of
    the threads the request handlers share)."""
    return context(request)
