"""A small client for InfluxDB's v1-compatible HTTP API: `POST /write`, `/query`, `/ping`.

Served by InfluxDB 1.x (Debian ships 1.6.7), by 2.x (v1 compatibility, token auth) and by 3.x.
The v2 client library is not used because it cannot write to servers before 1.8.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from sensorpipe.ingest.errors import QueryError, StorageRejected, StorageUnavailable


def quiet_request_log() -> None:
    """httpx says every request at INFO, one line per InfluxDB write: only its warnings,
    unless the log is at DEBUG (`sensorpipe -vv`)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)


# InfluxQL's scanner ends a quoted string at a raw newline (a parse error) and reads `\n` as
# one, so a newline is written as that escape; backslashes and the quote are escaped too.
def string_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class InfluxClient:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = (username, password or "") if username else None
        self.url = url.rstrip("/")
        self.database = database
        self._http = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def ping(self, timeout_s: float | None = None) -> bool:
        """Whether InfluxDB answers /ping (within `timeout_s`, default the client's)."""
        try:
            timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
            return self._http.get("/ping", timeout=timeout).status_code == 204
        except httpx.HTTPError:
            return False

    def write(self, lines: Sequence[str], *, precision: str = "ms") -> None:
        """Write line-protocol lines; returns only when InfluxDB answered success (204)."""
        if not lines:
            return
        body = "\n".join(lines).encode()
        try:
            response = self._http.post(
                "/write", params={"db": self.database, "precision": precision}, content=body
            )
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code == 204:
            return
        message = _error_text(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise StorageUnavailable(
                f"InfluxDB answered {response.status_code}: {message}",
                _retry_after(response.headers.get("Retry-After")),
            )
        raise StorageRejected(
            f"InfluxDB refused the write ({response.status_code}): {message}", response.status_code
        )

    def query(self, q: str, *, database: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series of the first statement (name, tags, columns, values)."""
        params = {"q": q, "epoch": "ms"}
        db = database if database is not None else self.database
        if db:
            params["db"] = db
        try:
            response = self._http.post("/query", params=params)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise StorageUnavailable(
                f"InfluxDB answered {response.status_code}: {_error_text(response)}"
            )
        try:
            payload = response.json()
        except ValueError:
            raise QueryError(
                f"InfluxDB answered {response.status_code}: {response.text[:200]}"
            ) from None
        if "error" in payload:
            raise QueryError(payload["error"])
        results = payload.get("results", [])
        if not results:
            return []
        first = results[0]
        if "error" in first:
            raise QueryError(first["error"])
        return list(first.get("series", []))

    def delete(self, measurement: str, tags: Mapping[str, str], time_ms: int) -> None:
        """Delete the point with exactly these tags at this time (InfluxQL DELETE)."""
        where = [f"{identifier(k)} = {string_literal(v)}" for k, v in sorted(tags.items()) if v]
        where.append(f"time >= {int(time_ms)}ms AND time <= {int(time_ms)}ms")
        self.query(f"DELETE FROM {identifier(measurement)} WHERE {' AND '.join(where)}")

    def create_database(self) -> None:
        self.query(f'CREATE DATABASE "{self.database}"', database="")


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:500]
    except ValueError:
        return response.text[:500]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by InfluxDB and is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
