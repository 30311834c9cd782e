"""Alert webhooks off the ingest's schedule thread (sensorpipe.crowd.webhookworker): a webhook
that blocks until the test releases it does not keep the schedule from running its next job, and
its alerts are delivered once released; the worker's tries and dead letter are delivery's; a
clean stop leaves what is not delivered pending in the alert store, and the next start takes it
up at the try it had reached (or dead-letters it when its webhook is no longer configured).
Real HTTP servers on loopback; events, never the clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.alertjob import AlertJob
from sensorpipe.crowd.alerts import Alert, LevelPoint
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.protocol.registry import AreaEntry, AreaLine, load_registry, save_registry
from tests.helpers import wait_for
from tests.test_crowd_alert_delivery import Hook, _Handler, hook  # noqa: F401 (the fixture)
from tests.test_ingest_service import FakeInflux, FakeMqtt, _service

ALERT = Alert("hall", "observed", 0.7, 0.74, 1_767_229_200_000)


class Blocking(Hook):
    """A webhook that holds each POST until `release` is set; `entered`: one has arrived."""

    entered: threading.Event
    release: threading.Event


class _Holding(_Handler):
    server: Blocking

    def do_POST(self) -> None:
        self.server.entered.set()
        self.server.release.wait(60)
        super().do_POST()


@pytest.fixture
def blocking() -> Iterator[Blocking]:
    server = Blocking(("127.0.0.1", 0), _Holding)
    server.entered, server.release = threading.Event(), threading.Event()
    server.fail_first, server.received = 0, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


class _Broker(FakeMqtt):
    """The ingest's broker link's client, for `start` and `stop` without a broker."""

    def connect_async(self, *args: Any, **kwargs: Any) -> None:
        pass

    def loop_start(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass

    def disconnect(self) -> None:
        pass


class _Influx(FakeInflux):
    def query(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


class Marker:
    """A job of the schedule that says when it ran."""

    name = "marker"
    every_s = 3600.0

    def __init__(self) -> None:
        self.ran = threading.Event()

    def run_once(self) -> None:
        self.ran.set()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/alerts"


def test_a_blocking_webhook_does_not_hold_up_the_schedule(
    tmp_path: Path, blocking: Blocking
) -> None:
    """The ingest's alert job raises two alerts (95 %: 70 % and 90 %) for a webhook that holds
    its first POST: the schedule's next job runs meanwhile; released, the webhook gets both."""
    service = _service(
        tmp_path,
        _Influx(),
        alerts={"webhooks": [_url(blocking)], "webhook_timeout_s": 60, "publish": False},
    )
    registry = load_registry(tmp_path / "registry.toml")
    registry.areas["hall"] = AreaEntry(
        name="Hall", kind="street", capacity=100, lines=[AreaLine(device="good")]
    )
    save_registry(registry, tmp_path / "registry.toml")
    service._link.client = _Broker()  # type: ignore[assignment]
    (job,) = [j for j in service._schedule.jobs if isinstance(j, AlertJob)]

    def levels(_i: object, _r: object, _a: object, start_ms: int, _e: datetime) -> list[Any]:
        return [LevelPoint(start_ms, 0.95)]

    job._levels = levels
    marker = Marker()
    service._schedule.jobs.append(marker)  # due with the alert job, run after it
    service.start()
    try:
        assert blocking.entered.wait(10), "the webhook got no alert"
        assert marker.ran.wait(10), "the schedule's next job waited for the webhook"
        assert blocking.received == []  # the first POST is still held
        blocking.release.set()
        wait_for(lambda: len(blocking.received) == 2, what="the second alert posted")
    finally:
        blocking.release.set()
        service.stop()
    assert [(a["area"], a["threshold"]) for a in blocking.received] == [
        ("hall", 0.7),
        ("hall", 0.9),
    ]
    store = AlertStore(tmp_path / "alerts.sqlite")
    assert [a["id"] for a in store.alerts()] == [a["id"] for a in blocking.received]
    assert store.pending() == [] and store.dead_letters() == []
    store.close()


def _worker(store: AlertStore, *urls: str, attempts: int = 3, backoff_s: float = 0.01) -> Any:
    from sensorpipe.crowd.delivery import Webhooks
    from sensorpipe.crowd.webhookworker import WebhookWorker

    return WebhookWorker(store, Webhooks(list(urls), 5.0, attempts, backoff_s))


def _drained(worker: Any) -> None:
    """Start `worker`, and stop it once every delivery put (or left pending) has ended."""
    worker.start()
    try:
        assert worker.wait_idle(20)
    finally:
        worker.stop()


def _deliver(store: AlertStore, worker: Any) -> None:
    from sensorpipe.crowd.delivery import Delivery

    done = Delivery(store, worker=worker).deliver([ALERT])
    assert (done.stored, done.queued, done.posted) == (1, len(worker.webhooks.urls), 0)


def test_the_worker_retries_then_dead_letters_as_delivery_does(
    tmp_path: Path,
    hook: Hook,  # noqa: F811
) -> None:
    hook.fail_first = 1000
    store = AlertStore(tmp_path / "alerts.sqlite")
    worker = _worker(store, _url(hook), attempts=3)
    _deliver(store, worker)  # before the start: taken up once, not twice
    _drained(worker)
    assert len(hook.received) == 3
    (letter,) = store.dead_letters()
    assert (letter.alert_id, letter.url, letter.attempts) == (ALERT.id, _url(hook), 3)
    assert letter.reason == "HTTP 503 Service Unavailable"
    assert letter.payload["threshold"] == 0.7
    assert store.pending() == []
    assert (worker.posted, worker.dead) == (0, 1)


def test_a_clean_stop_keeps_the_delivery_for_the_next_start(
    tmp_path: Path,
    hook: Hook,  # noqa: F811
) -> None:
    """Stopped in its back-off after a failed first try: pending, one try made; the next start
    takes it up with the tries it has left, and the webhook then takes it."""
    hook.fail_first = 1
    store = AlertStore(tmp_path / "alerts.sqlite")
    worker = _worker(store, _url(hook), attempts=3, backoff_s=600)  # a wait only stop ends
    worker.start()
    _deliver(store, worker)
    wait_for(lambda: store.pending() and store.pending()[0].tries == 1, what="the first try")
    worker.stop()
    (left,) = store.pending()
    assert (left.alert_id, left.url, left.tries, left.reason) == (
        ALERT.id,
        _url(hook),
        1,
        "HTTP 503 Service Unavailable",
    )
    store.close()
    listed = CliRunner().invoke(main, ["crowd", "alerts", "--store", str(store.path), "--pending"])
    assert listed.exit_code == 0, listed.output
    assert listed.output == f"{ALERT.id}  {_url(hook)}  1 tries so far: {left.reason}\n"
    # The ingest starts again.
    store = AlertStore(tmp_path / "alerts.sqlite")
    again = _worker(store, _url(hook), attempts=3)
    _drained(again)
    assert [r["id"] for r in hook.received] == [ALERT.id, ALERT.id]
    assert store.pending() == [] and store.dead_letters() == []
    assert again.posted == 1
    listed = CliRunner().invoke(main, ["crowd", "alerts", "--store", str(store.path), "--pending"])
    assert listed.output == "no webhook deliveries pending\n"


def test_a_delivery_whose_tries_are_used_up_is_a_dead_letter_at_the_start(
    tmp_path: Path,
    hook: Hook,  # noqa: F811
) -> None:
    """Left pending with its last try made (stopped right after it), or for a webhook taken
    out of [alerts] webhooks: each a dead letter when the worker starts, nothing posted."""
    store = AlertStore(tmp_path / "alerts.sqlite")
    assert store.add(ALERT, 0, webhooks=[_url(hook), "http://127.0.0.1:9/gone"])
    assert not store.add(ALERT, 0, webhooks=[_url(hook)])  # stored before: nothing added
    first = store.pending()[0]
    store.tried(first.n, 2, "HTTP 502 Bad Gateway")
    worker = _worker(store, _url(hook), attempts=2)
    _drained(worker)
    assert hook.received == []
    assert {(d.url, d.attempts, d.reason) for d in store.dead_letters()} == {
        ("http://127.0.0.1:9/gone", 0, "webhook no longer configured ([alerts] webhooks)"),
        (_url(hook), 2, "HTTP 502 Bad Gateway"),
    }
    assert store.pending() == []


def test_a_store_an_older_ingest_made_has_nothing_pending(tmp_path: Path) -> None:
    """Made before the pending deliveries were kept (no such table): listed as none."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "alerts.sqlite")
    db.execute("CREATE TABLE alerts (id TEXT PRIMARY KEY)")
    db.close()
    store = AlertStore(tmp_path / "alerts.sqlite", read_only=True)
    assert store.pending() == []
    store.close()


def test_a_blocked_webhook_does_not_delay_a_working_one(
    tmp_path: Path,
    blocking: Blocking,
    hook: Hook,  # noqa: F811
) -> None:
    """Each webhook has its own thread: while the first holds its delivery, the second takes
    the same alert; the first's is made once it is released."""
    store = AlertStore(tmp_path / "alerts.sqlite")
    worker = _worker(store, _url(blocking), _url(hook))
    worker.start()
    try:
        _deliver(store, worker)
        assert blocking.entered.wait(20)
        wait_for(lambda: len(hook.received) == 1, what="the working webhook's delivery")
        # Its delivery is marked done once its answer is back, a moment after it arrived.
        wait_for(
            lambda: [p.url for p in store.pending()] == [_url(blocking)],
            what="the working webhook's delivery marked done while the other is held",
        )
        assert blocking.received == [] and len(hook.received) == 1
        blocking.release.set()
        assert worker.wait_idle(20)
    finally:
        worker.stop()
    assert [r["id"] for r in blocking.received] == [ALERT.id]
    assert store.pending() == [] and (worker.posted, worker.dead) == (2, 0)
