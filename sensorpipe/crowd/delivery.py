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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from sensorpipe.crowd.alerts import Alert
from sensorpipe.crowd.alertstore import AlertStore, DeadLetter
from sensorpipe.protocol.topics import ALERT_TOPIC_PREFIX

log = logging.getLogger(__name__)


def alert_topic(area: str) -> str:
    return f"{ALERT_TOPIC_PREFIX}/{area}"


@dataclass(frozen=True)
class Webhooks:
    urls: Sequence[str] = ()
    timeout_s: float = 5.0
    attempts: int = 4
    backoff_s: float = 2.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delivered:
    stored: int = 0  # new alerts
    published: int = 0
    posted: int = 0  # (alert, webhook) pairs that took it
    dead: int = 0  # (alert, webhook) pairs dead-lettered

    def add(self, other: Delivered) -> None:
        self.stored += other.stored
        self.published += other.published
        self.posted += other.posted
        self.dead += other.dead


class Delivery:
    """Stores, logs, publishes and posts alerts. `publish(topic, payload)` sends QoS 1 (the
    ingest's broker link); `sleep` waits between webhook tries."""

    def __init__(
        self,
        store: AlertStore,
        *,
        publish: Callable[[str, bytes], None] | None = None,
        webhooks: Webhooks = Webhooks(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self._publish = publish
        self.webhooks = webhooks
        self._clock = clock
        self._sleep = sleep

    def deliver(self, alerts: Sequence[Alert]) -> Delivered:
        done = Delivered()
        now_ms = int(self._clock() * 1000)
        for alert in alerts:
            if not self.store.add(alert, now_ms):
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
            for url in self.webhooks.urls:
                if self._post(url, alert, body):
                    done.posted += 1
                else:
                    done.dead += 1
        return done

    def _post(self, url: str, alert: Alert, body: bytes) -> bool:
        hooks = self.webhooks
        reason = ""
        headers = {"content-type": "application/json", **hooks.headers}
        with httpx.Client(timeout=hooks.timeout_s) as client:
            for attempt in range(1, hooks.attempts + 1):
                try:
                    answer = client.post(url, content=body, headers=headers)
                    if answer.is_success:
                        return True
                    reason = f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                if attempt < hooks.attempts:
                    self._sleep(hooks.backoff_s * 2 ** (attempt - 1))
        log.error(
            "alert %s not taken by %s after %d tries (%s): dead-lettered",
            alert.id,
            url,
            hooks.attempts,
            reason,
        )
        self.store.add_dead_letter(
            DeadLetter(
                alert.id, url, hooks.attempts, reason, int(self._clock() * 1000), alert.payload()
            )
        )
        return False
