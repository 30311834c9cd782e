"""Delivering an alert (`alerts.Alert`), each new one in this order:

1. stored (`alertstore.AlertStore`): listed by `sensorpipe crowd alerts` and /api/v1/alerts;
   one stored before (the same id) is not delivered again;
2. logged (WARNING, `sensorpipe.crowd.delivery`), its message;
3. published on MQTT, topic `sensorpipe/alerts/v1/<area>`, QoS 1, not retained (an alert is an
   event, not the area's state: a retained one would greet every new subscriber with an old
   alert as if it were new; a subscriber that must not miss one keeps a persistent session);
4. POSTed as JSON to each configured webhook (httpx), `attempts` tries each with `timeout_s`,
   waiting `backoff_s`, then twice as long, ... between them. A 2xx answer is delivered; any
   other answer or a connection error is tried again; after the last try the alert goes to the
   store's dead letters with the URL, the number of tries and the last reason
   (`sensorpipe crowd alerts --dead-letters`).

Steps 1 to 3 are done at once, on the caller's thread (the ingest's schedule thread). So is
step 4 where no worker is given (a script, the tests). The ingest gives one, a `WebhookWorker`
(`webhookworker`): each (alert, webhook) is then stored as a pending delivery in the same
transaction as the alert (1.) and handed to the worker's thread, so a slow webhook and its
retries hold up neither the schedule's other jobs nor the next alert check. The tries, the
back-off and the dead letter are the same either way (`post`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from sensorpipe.crowd.alerts import Alert
from sensorpipe.crowd.alertstore import AlertStore, DeadLetter, Pending
from sensorpipe.protocol.topics import ALERT_TOPIC_PREFIX

log = logging.getLogger(__name__)
# Waits `seconds` between webhook tries; a true answer means "stop trying now" (the worker
# is stopping: the delivery stays pending for the next start).
Sleep = Callable[[float], object]


def alert_topic(area: str) -> str:
    return f"{ALERT_TOPIC_PREFIX}/{area}"


@dataclass(frozen=True)
class Webhooks:
    urls: Sequence[str] = ()
    timeout_s: float = 5.0
    attempts: int = 4
    backoff_s: float = 2.0
    headers: dict[str, str] = field(default_factory=dict)


class Worker(Protocol):
    """Where webhook deliveries go to be posted (`webhookworker.WebhookWorker`)."""

    @property
    def webhooks(self) -> Webhooks: ...

    def put(self, pending: Sequence[Pending]) -> None: ...


@dataclass
class Delivered:
    stored: int = 0  # new alerts
    published: int = 0
    posted: int = 0  # (alert, webhook) pairs that took it
    dead: int = 0  # (alert, webhook) pairs dead-lettered
    queued: int = 0  # (alert, webhook) pairs handed to the webhook worker

    def add(self, other: Delivered) -> None:
        self.stored += other.stored
        self.published += other.published
        self.posted += other.posted
        self.dead += other.dead
        self.queued += other.queued


@dataclass(frozen=True)
class Posted:
    """How a delivery to one webhook ended: `taken`, after `tries` in all (those made before
    included), the last failure's `reason`; `stopped`: not ended, the caller stopped it."""

    taken: bool
    tries: int
    reason: str
    stopped: bool = False


def post(
    url: str,
    body: bytes,
    hooks: Webhooks,
    *,
    sleep: Sleep,
    tried: int = 0,
    failed: Callable[[int, str], None] | None = None,
) -> Posted:
    """POST `body` to `url`: tries `tried + 1` to `hooks.attempts`, with `sleep` between them
    (`backoff_s`, then twice as long, ...); `failed(tries, reason)` after each failed one."""
    reason = ""
    headers = {"content-type": "application/json", **hooks.headers}
    tries = tried
    with httpx.Client(timeout=hooks.timeout_s) as client:
        while tries < hooks.attempts:
            tries += 1
            try:
                answer = client.post(url, content=body, headers=headers)
                if answer.is_success:
                    return Posted(True, tries, "")
                reason = f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if failed is not None:
                failed(tries, reason)
            if tries < hooks.attempts and sleep(hooks.backoff_s * 2 ** (tries - 1)):
                return Posted(False, tries, reason, stopped=True)
    return Posted(False, tries, reason)


def dead_letter_said(alert_id: str, url: str, tries: int, reason: str) -> None:
    log.error(
        "alert %s not taken by %s after %d tries (%s): dead-lettered", alert_id, url, tries, reason
    )


class Delivery:
    """Stores, logs, publishes and posts alerts. `publish(topic, payload)` sends QoS 1 (the
    ingest's broker link); `sleep` waits between webhook tries. With a `worker` (the ingest's
    `webhookworker.WebhookWorker`), the webhooks are its own and posted on its thread."""

    def __init__(
        self,
        store: AlertStore,
        *,
        publish: Callable[[str, bytes], None] | None = None,
        webhooks: Webhooks = Webhooks(),
        clock: Callable[[], float] = time.time,
        sleep: Sleep = time.sleep,
        worker: Worker | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self.webhooks = webhooks if worker is None else worker.webhooks
        self._clock = clock
        self._sleep = sleep
        self.worker = worker

    def deliver(self, alerts: Sequence[Alert]) -> Delivered:
        done = Delivered()
        now_ms = int(self._clock() * 1000)
        queued = self.webhooks.urls if self.worker is not None else ()
        for alert in alerts:
            if not self.store.add(alert, now_ms, webhooks=queued):
                continue
            done.stored += 1
            log.warning("crowding alert: %s", alert.message)
            body = json.dumps(alert.payload()).encode()
            if self._publish is not None:
                try:
                    self._publish(alert_topic(alert.area), body)
                    done.published += 1
                except Exception as exc:  # the broker link is away: stored and posted still
                    log.warning("alert %s not published: %s", alert.id, exc)
            if self.worker is not None:
                pending = self.store.pending(alert.id)
                self.worker.put(pending)
                done.queued += len(pending)
                continue
            for url in self.webhooks.urls:
                if self._post(url, alert, body):
                    done.posted += 1
                else:
                    done.dead += 1
        return done

    def _post(self, url: str, alert: Alert, body: bytes) -> bool:
        posted = post(url, body, self.webhooks, sleep=self._sleep)
        if posted.taken:
            return True
        dead_letter_said(alert.id, url, posted.tries, posted.reason)
        at_ms = int(self._clock() * 1000)
        letter = DeadLetter(alert.id, url, posted.tries, posted.reason, at_ms, alert.payload())
        self.store.add_dead_letter(letter)
        return False
