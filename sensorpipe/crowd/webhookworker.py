"""The webhook worker: posts the crowding alerts to their webhooks on threads of their own,
one per webhook. A slow or failing webhook (up to `webhook_attempts` tries of
`webhook_timeout_s` each, with back-off between them: about 35 s with the defaults) thus holds
up neither the ingest's schedule thread (`ingest.schedule`: the neighbour outlier, the
calibration factors, the next alert check), nor the alerts' MQTT publication, nor the other
webhooks: each alert reaches a working webhook at once while a failing one is still retried.

`delivery.Delivery` stores each new alert together with one pending delivery per webhook
(`alertstore.Pending`, in the same transaction) and hands them to the worker (`put`); the job
returns once the alert is stored and published. Each webhook's thread posts its deliveries one
after another, in the order they were raised, with the same tries, back-off and dead letter as
before (`delivery.post`): a delivery leaves the store when its webhook took it (2xx) or as a
dead letter after the last try. Each failed try is written to the store (`tries`, the reason).

Stopping (`stop`, with the ingest): a try under way ends (it is bounded by `webhook_timeout_s`),
a back-off wait ends at once, and the threads end. What is not delivered stays pending in the
store and is taken up by the next start, resuming at the try it had reached: a clean stop or a
crash loses no delivery. A webhook may therefore receive an alert twice (the ingest stopped
between its answer and the store's note of it): the alert's `id` is stable, for it to tell.
A delivery pending for a webhook that is no longer configured becomes a dead letter at the
start, with that reason.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sensorpipe.crowd.alertstore import AlertStore, DeadLetter, Pending
from sensorpipe.crowd.delivery import Webhooks, dead_letter_said, post

log = logging.getLogger(__name__)
NOT_CONFIGURED = "webhook no longer configured ([alerts] webhooks)"
# What `stop` waits for beyond the try under way.
STOP_SLACK_S = 5.0


class WebhookWorker:
    """Posts pending deliveries to `webhooks`, a thread for each, from `start` until `stop`."""

    def __init__(
        self, store: AlertStore, webhooks: Webhooks, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.webhooks = webhooks
        self._clock = clock
        self._queues: dict[str, queue.Queue[Pending | None]] = {
            url: queue.Queue() for url in dict.fromkeys(webhooks.urls)
        }
        self._stop = threading.Event()
        self._busy = threading.Condition()
        self._in_hand: set[int] = set()  # deliveries put and not yet ended (Pending.n)
        self._threads = [
            threading.Thread(target=self._loop, args=(q,), name=f"alert-webhook-{i}", daemon=True)
            for i, q in enumerate(self._queues.values(), start=1)
        ]
        self.posted = 0  # deliveries a webhook took
        self.dead = 0  # deliveries dead-lettered

    def start(self) -> None:
        """Take up what an earlier run left pending, then start the thread."""
        left = [p for p in self.store.pending() if p.n not in self._in_hand]
        urls = set(self.webhooks.urls)
        for p in left:
            if p.url not in urls:
                self._dead_letter(p, p.tries, NOT_CONFIGURED)
        again = [p for p in left if p.url in urls]
        if again:
            log.warning("%d alert webhook deliveries left pending earlier: taken up", len(again))
        self.put(again)
        for thread in self._threads:
            thread.start()

    def put(self, pending: Sequence[Pending]) -> None:
        """Post these (stored as pending) after those put before."""
        with self._busy:
            self._in_hand.update(p.n for p in pending)
        for p in pending:
            self._queues[p.url].put(p)

    def stop(self) -> None:
        """End the try under way (at most `timeout_s`) and the thread; what is not delivered
        stays pending in the store, for the next start."""
        self._stop.set()
        for q in self._queues.values():
            q.put(None)
        deadline = time.monotonic() + self.webhooks.timeout_s + STOP_SLACK_S
        for thread in self._threads:  # together: each ends its own try
            if thread.ident is not None:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every delivery put has ended (taken or dead-lettered); False: not yet."""
        with self._busy:
            return self._busy.wait_for(lambda: not self._in_hand, timeout=timeout_s)

    def _loop(self, deliveries: queue.Queue[Pending | None]) -> None:
        while not self._stop.is_set():
            item = deliveries.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._deliver(item)
            except Exception as exc:  # the store: left pending, taken up at the next start
                log.error("webhook delivery of alert %s to %s: %s", item.alert_id, item.url, exc)
            with self._busy:
                self._in_hand.discard(item.n)
                self._busy.notify_all()

    def _deliver(self, p: Pending) -> None:
        def failed(tries: int, reason: str) -> None:
            self.store.tried(p.n, tries, reason)

        body = json.dumps(p.payload).encode()
        posted = post(
            p.url, body, self.webhooks, sleep=self._stop.wait, tried=p.tries, failed=failed
        )
        if posted.stopped:
            return  # still pending: the next start goes on from here
        if posted.taken:
            self.store.delivered(p.n)
            with self._busy:
                self.posted += 1
            return
        self._dead_letter(p, posted.tries, posted.reason or p.reason)

    def _dead_letter(self, p: Pending, tries: int, reason: str) -> None:
        dead_letter_said(p.alert_id, p.url, tries, reason)
        at_ms = int(self._clock() * 1000)
        letter = DeadLetter(p.alert_id, p.url, tries, reason, at_ms, p.payload)
        self.store.add_dead_letter(letter, pending=p.n)
        with self._busy:
            self.dead += 1
