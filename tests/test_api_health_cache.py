"""/api/v1/health checks its parts (InfluxDB, the broker, the ingest's heartbeat) at most once
per `health_cache_s`: a flood of anonymous calls costs one broker connection per period, not
one each. A listening socket stands in for the broker and counts the connections made to it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import BrokerSettings, InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.process import free_ports


@pytest.fixture
def broker() -> Iterator[socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(200)  # connections wait here, counted by accepting them afterwards
    yield listener
    listener.close()


def connections(listener: socket.socket) -> int:
    """The connections made to `listener` so far (each completed its handshake before
    `create_connection` returned, so each is waiting to be accepted)."""
    listener.setblocking(False)
    n = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def client(listener: socket.socket, **settings: Any) -> TestClient:
    (closed_port,) = free_ports(1)  # InfluxDB does not answer: degraded, but checked
    config = ServeConfig(
        registry_path="/nonexistent/registry.toml",
        influx=InfluxSettings(url=f"http://127.0.0.1:{closed_port}", database="x"),
        broker=BrokerSettings(host="127.0.0.1", port=listener.getsockname()[1]),
        **settings,
    )
    return TestClient(create_app(ApiContext(config)), raise_server_exceptions=False)


def test_a_flood_of_health_calls_connects_to_the_broker_once(broker: socket.socket) -> None:
    with client(broker, health_cache_s=60) as c:
        for _ in range(50):
            answer = c.get("/api/v1/health")
            assert answer.status_code == 503 and answer.json() == {"status": "degraded"}
    assert connections(broker) == 1


def test_without_the_cache_each_call_checks(broker: socket.socket) -> None:
    with client(broker, health_cache_s=0) as c:
        for _ in range(5):
            assert c.get("/api/v1/health").status_code == 503
    assert connections(broker) == 5
