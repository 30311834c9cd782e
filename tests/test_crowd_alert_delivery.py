"""Alert delivery (sensorpipe.crowd.delivery) against a real HTTP server on loopback: a webhook
that fails its first requests is retried with back-off until it takes the alert; one that always
fails gets every try, then the alert is a dead letter with the reason. Stored once, by id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.crowd.alerts import Alert
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.crowd.delivery import Delivery, Webhooks

ALERT = Alert("hall", "observed", 0.7, 0.74, 1_767_229_200_000)


class Hook(ThreadingHTTPServer):
    fail_first: int
    received: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.received.append(body)
        failing = len(self.server.received) <= self.server.fail_first
        self.send_response(503 if failing else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook(("127.0.0.1", 0), _Handler)
    server.fail_first, server.received = 0, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _delivery(tmp_path: Path, url: str, waits: list[float], attempts: int = 4) -> Delivery:
    """Delivery to the webhook at `url`; its waits between tries go into `waits`."""
    return Delivery(
        AlertStore(tmp_path / "alerts.sqlite"),
        webhooks=Webhooks([url], timeout_s=5.0, attempts=attempts, backoff_s=1.5),
        clock=lambda: 1_767_229_300.0,
        sleep=waits.append,
    )


def _to_hook(hook: Hook, tmp_path: Path, attempts: int = 4) -> tuple[Delivery, list[float]]:
    waits: list[float] = []
    url = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
    return _delivery(tmp_path, url, waits, attempts), waits


def test_a_webhook_that_fails_twice_gets_it_on_the_third_try(
    hook: Hook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook.fail_first = 2
    delivery, waits = _to_hook(hook, tmp_path)
    done = delivery.deliver([ALERT])
    assert (done.stored, done.posted, done.dead) == (1, 1, 0)
    assert waits == [1.5, 3.0]  # back-off doubles
    assert len(hook.received) == 3
    assert hook.received[-1]["id"] == ALERT.id
    assert hook.received[-1]["message"] == "hall: passed 70% at 2026-01-01 01:00 UTC (level 74%)"
    assert delivery.store.dead_letters() == []
    logged = [r.getMessage() for r in caplog.records if r.name == "sensorpipe.crowd.delivery"]
    assert logged == ["crowding alert: hall: passed 70% at 2026-01-01 01:00 UTC (level 74%)"]
    # The same alert again (a run repeated): stored once, not posted again.
    assert delivery.deliver([ALERT]).stored == 0
    assert len(hook.received) == 3
    assert [a["id"] for a in delivery.store.alerts()] == [ALERT.id]


def test_a_webhook_that_always_fails_makes_a_dead_letter(
    hook: Hook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook.fail_first = 1000
    delivery, waits = _to_hook(hook, tmp_path, attempts=3)
    url = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
    done = delivery.deliver([ALERT])
    assert (done.stored, done.posted, done.dead) == (1, 0, 1)
    assert len(hook.received) == 3
    assert waits == [1.5, 3.0]
    (letter,) = delivery.store.dead_letters()
    assert (letter.alert_id, letter.url, letter.attempts) == (ALERT.id, url, 3)
    assert any("dead-lettered" in r.getMessage() for r in caplog.records)
    assert letter.reason == "HTTP 503 Service Unavailable"
    assert letter.payload["threshold"] == 0.7
    # Still stored and listed: the webhook's failure loses it from nowhere else.
    assert [a["id"] for a in delivery.store.alerts(area="hall")] == [ALERT.id]


def test_a_webhook_nobody_listens_on(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.server_close()  # the port is free: connections are refused
    delivery = _delivery(tmp_path, f"http://127.0.0.1:{port}/", [], attempts=2)
    assert delivery.deliver([ALERT]).dead == 1
    (letter,) = delivery.store.dead_letters()
    assert letter.reason.startswith("ConnectError")
