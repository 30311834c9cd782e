"""The ingest service: MQTT in, InfluxDB out, dead letters aside.

This module is the batch path (check -> store -> dead-letter -> confirm -> acknowledge) and the
writer thread that runs it. `IngestService` puts the ingest's rooms together, each opening
with what it guarantees:

- `ingest.link`: the link to the broker (connect, subscribe, receive, acknowledge);
- `ingest.guard`: per-device quotas, quarantine, the broker's admin account;
- `ingest.checks`: each message checked, numbered and made into points; key enrollment;
- `ingest.rejects`: rejected messages dead-lettered, or held back while the store cannot write;
- `ingest.reporting`: the stats file, the `ingest_status` point, the metrics.

Delivery guarantee: at least once, end to end. The subscription is QoS 1 on a persistent
session with manual acknowledgement; a message is acknowledged only after the InfluxDB write
that contains it returned success (or, when rejected, after its dead letter was committed).
If the ingest dies before that, the broker redelivers, and the redelivery overwrites the same
points (same measurement, tags and observation time), so nothing is counted twice. Then each
device is told which of its messages are kept (protocol.ack), and only then drops them from
its outbox: a broker that dies before saving what it acknowledged loses nothing either.

Runtime errors from one message never stop the loop: it is rejected with a reason. A storage
outage stops acknowledgements, so the broker holds the backlog; the batch is retried with
backoff until InfluxDB is back. A dead-letter store that cannot write holds back only the
rejected messages (`ingest.rejects`): the rest of the batch is stored, confirmed and
acknowledged as usual.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sensorpipe.calibration.updating import GroupUpdateJob, Updated
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.crowd.retrain import RetrainJob, TrainingSource
from sensorpipe.ingest.checks import Checked, Checker, Checks, Outcome, sender_and_seq
from sensorpipe.ingest.config import ConfigError, IngestConfig
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore
from sensorpipe.ingest.errors import QueryError, StorageRejected, StorageUnavailable
from sensorpipe.ingest.fair import FairQueue
from sensorpipe.ingest.guard import Guard
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import Point
from sensorpipe.ingest.link import BrokerLink, Incoming
from sensorpipe.ingest.neighbours import NeighbourSchedule
from sensorpipe.ingest.rejects import Rejects
from sensorpipe.ingest.reporting import Reporting
from sensorpipe.ingest.schedule import Job, Schedule
from sensorpipe.ingest.stats import IngestStats
from sensorpipe.ingest.validate import RegistryView, Rejection
from sensorpipe.protocol.ack import SetAside, ack_topic, encode_ack
from sensorpipe.protocol.enrollment import KeyStore
from sensorpipe.protocol.problems import RepeatedProblem

if TYPE_CHECKING:
    from sensorpipe.crowd.webhookworker import WebhookWorker

log = logging.getLogger(__name__)
BATCH_ATTEMPTS = 3  # unexpected failures of one batch before it is split (or dead-lettered)
RETRY_CAP_S = 10.0  # longest backoff between write attempts while InfluxDB is away


@dataclass
class ReplayResult:
    stored: int = 0
    still_rejected: Counter[str] = field(default_factory=Counter)


class IngestService:
    def __init__(
        self,
        config: IngestConfig,
        *,
        influx: InfluxClient | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` dates what arrives (epoch s); `monotonic` times the pauses between lines
        about a problem that keeps happening."""
        self.config = config
        self.stats = IngestStats()
        self._clock = clock
        self._monotonic = monotonic
        self._keys = KeyStore(config.keys_path)
        self._registry = RegistryView(config.registry_path, self._keys)
        self._influx = influx or InfluxClient(
            config.influx.url,
            config.influx.database,
            username=config.influx.username,
            password=config.influx.password,
            token=config.influx.token,
            timeout_s=config.influx.timeout_s,
        )
        try:
            self._deadletters = DeadLetterStore(
                config.deadletter_path,
                max_payload_bytes=config.deadletter_max_payload_bytes,
                max_letters=config.deadletter_max_letters,
                max_age_s=None
                if config.deadletter_max_age_days is None
                else config.deadletter_max_age_days * 86400.0,
                per_device_letters=config.quota.deadletters_per_device,
                per_device_bytes=config.quota.deadletter_bytes_per_device,
            )
        except (OSError, sqlite3.Error) as exc:
            self._influx.close()
            raise config.key_error(
                "deadletter_path",
                f"cannot open the dead-letter store {config.deadletter_path}: {exc}",
            ) from None
        self._rejects = Rejects(config, self._deadletters, self.stats, monotonic=monotonic)
        self._reporting = Reporting(
            config, self.stats, self._influx, clock=clock, monotonic=monotonic
        )
        self.metrics = self._reporting.metrics
        self._queue: FairQueue[Incoming] = FairQueue()
        self._stop = threading.Event()
        try:
            self._guard = Guard(config, self._registry, self.stats, self._stop, monotonic=monotonic)
        except ConfigError:
            self._deadletters.close()
            self._influx.close()
            raise
        self._worker = threading.Thread(target=self._work, name="ingest-writer", daemon=True)
        self._loop_trouble = RepeatedProblem(
            log, "ingest writer loop error", level=logging.ERROR, clock=monotonic
        )
        self._link = BrokerLink(
            config,
            self.stats,
            self._stop,
            admit=self._guard.admit,
            lanes=self._queue,
            clock=clock,
            monotonic=monotonic,
        )
        self._checker = Checker(
            config, self._registry, self._keys, publish=self._link.publish, clock=clock
        )
        # The periodic jobs (ingest.schedule), on a timer thread of their own: the neighbour
        # outlier over the last hours, the group calibrations' hourly factors and the crowding
        # alerts (their webhooks are posted on the alert webhook worker's thread, so a slow
        # one holds up neither these jobs nor the message path). The message path never
        # waits for them. They share the service's client (its connection pool
        # serves both threads; the jobs do not close it).
        jobs: list[Job] = []
        if config.quality.enabled and config.quality.neighbours.enabled:
            jobs.append(
                NeighbourSchedule(
                    config.quality,
                    config.registry_path,
                    lambda: self._influx,
                    owns_client=False,
                    clock=clock,
                )
            )
        cal = config.calibration
        if cal.enabled and cal.book is not None:
            jobs.append(
                GroupUpdateJob(
                    cal.book,
                    cal.update_every_s,
                    lambda: self._influx,
                    catch_up_s=cal.catch_up_s,
                    note=self._note_calibration_update,
                    clock=clock,
                )
            )
        self._alerts: AlertStore | None = None
        self._webhooks: WebhookWorker | None = None
        if config.alerts.enabled:
            jobs.append(self._alert_job(config, clock))
        self._retrain = self._retrain_job(config, clock)
        if self._retrain is not None:
            jobs.append(self._retrain)
        self._schedule = Schedule(jobs, on_error=self._note_periodic_error)

    def _retrain_job(self, config: IngestConfig, clock: Callable[[], float]) -> RetrainJob | None:
        """The saved forecast models retrained on a schedule (crowd.retrain): with a models
        folder ([forecast] models, else [alerts] models) and retrain_every not "off"."""
        models = config.forecast.models or config.alerts.models
        if models is None or config.forecast.period_s is None:
            return None
        if not Path(models).is_dir():  # a mistyped path would retrain nothing, unsaid
            log.warning(
                "forecast models folder %s does not exist (yet): nothing is retrained until "
                "`sensorpipe crowd train --models %s` saves a model there ([forecast] models)",
                models,
                models,
            )
        i = config.influx
        source = TrainingSource(
            i.url, i.database, config.registry_path, i.username, i.password, i.token
        )
        return RetrainJob(config.forecast, models, source, note=self._note_retrain, clock=clock)

    def _note_retrain(self, entry: str, ok: bool, error: str | None) -> None:
        if ok:
            self.stats.forecast_retrains += 1
        else:
            self.stats.forecast_retrain_failures += 1
            self.stats.forecast_retrain_last_error = f"{entry}: {error}"

    def _alert_job(self, config: IngestConfig, clock: Callable[[], float]) -> Job:
        """Crowding alerts (crowd.alertjob), published with the ingest's own broker link."""
        from sensorpipe.crowd.alertjob import AlertJob
        from sensorpipe.crowd.delivery import Delivery, Webhooks
        from sensorpipe.crowd.webhookworker import WebhookWorker

        a = config.alerts
        store = a.store or str(Path(config.deadletter_path).with_name("alerts.sqlite"))
        try:
            self._alerts = AlertStore(store)
        except (OSError, sqlite3.Error) as exc:
            self._deadletters.close()
            self._influx.close()
            raise config.key_error(
                "alerts.store", f"cannot open the alert store {store}: {exc}"
            ) from None
        hooks = Webhooks(a.webhooks, a.webhook_timeout_s, a.webhook_attempts, a.webhook_backoff_s)
        self._webhooks = WebhookWorker(self._alerts, hooks, clock=clock)
        delivery = Delivery(
            self._alerts,
            publish=self._link.publish if a.publish else None,
            clock=clock,
            worker=self._webhooks,
        )
        from sensorpipe.crowd.live import saved_forecasts

        forecasts = saved_forecasts(a.models, config.registry_path, lambda: self._influx)
        return AlertJob(
            a,
            config.registry_path,
            lambda: self._influx,
            delivery,
            forecasts=forecasts,
            clock=clock,
        )

    def start(self) -> None:
        """Connect, subscribe and store until `stop`. A stats file that cannot be written is
        a ConfigError before anything starts (`close` the service then)."""
        self._reporting.check_stats_file()
        self._checker.seed_last_seq(self._influx)
        self._link.start()
        self._guard.start()
        self._reporting.serve_metrics()
        self._worker.start()
        if self._webhooks is not None:  # before the alert job can hand it a delivery
            self._webhooks.start()
        self._schedule.start()

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect. Unacknowledged messages stay queued;
        alert webhook deliveries not made stay pending in the alert store."""
        self._stop.set()
        if self._retrain is not None:  # first: the schedule may be busy with another job
            self._retrain.stop()  # a training under way ends; the previous model stays
        self._schedule.stop()
        if self._webhooks is not None:  # after the job that hands it deliveries
            self._webhooks.stop()
        self._worker.join(timeout=30)
        self._link.stop()
        self._checker.close()
        self._deadletters.close()
        if self._alerts is not None:
            self._alerts.close()
        self._influx.close()
        self._reporting.close()

    def _note_calibration_update(self, done: list[Updated]) -> None:
        self.stats.calibration_update_runs += 1
        self.stats.calibration_updates += sum(u.ok for u in done)
        self.stats.calibration_hours_written += sum(u.written for u in done)

    def _note_periodic_error(self, job: Job, exc: Exception) -> None:
        self.stats.periodic_errors[job.name] += 1
        self.stats.periodic_last_error = f"{job.name}: {exc}"
        self.stats.periodic_last_error_at = time.time()

    # --- writer thread ---------------------------------------------------------------------
    def _work(self) -> None:
        """The writer loop. Nothing may end it but `stop`: every error is caught, counted and
        logged. A batch that fails unexpectedly is tried again, then message by message, and a
        message that still fails is dead-lettered (`internal_error`, raw bytes kept), so one
        poisonous message never blocks the stream.

        With `validate_threads` above 1, the next batch (what has already arrived) is checked
        in the pool while one is stored, so signature checks overlap the InfluxDB write."""
        pending: list[list[Incoming]] = []
        ahead: Checks | None = None  # checks under way for a batch further down `pending`
        failures = 0
        while not self._stop.is_set():
            try:
                if not pending:
                    batch = self._collect()
                    self.stats.received += len(batch)
                    if batch:
                        pending.append(batch)
                        failures = 0
                if pending:
                    head = pending[0]
                    checked = None
                    if ahead is not None and ahead.batch is head:
                        checked = ahead.results()
                        ahead = None
                    elif ahead is not None:  # finished before `process` refreshes the registry
                        ahead.results()
                    if (
                        self.config.validate_threads > 1
                        and ahead is None
                        and len(pending) == 1
                        and failures == 0
                    ):
                        if checked is None:  # head first: the refresh below must not overlap
                            self._refresh_registry()
                            checked = self._checker.start(head).results()
                        following = self._collect(wait=False)
                        if following:
                            self.stats.received += len(following)
                            pending.append(following)
                            self._refresh_registry()
                            ahead = self._checker.start(following)
                    try:
                        self.process(head, checked)
                        pending.pop(0)
                        failures = 0
                    except Exception as exc:
                        failures += 1
                        self.stats.internal_errors += 1
                        log.exception(
                            "unexpected error in a batch of %d (attempt %d)",
                            len(head),
                            failures,
                        )
                        if failures >= BATCH_ATTEMPTS:
                            pending.pop(0)
                            if len(head) > 1:  # split: the good ones go on, the bad one shows
                                pending[:0] = [[item] for item in head]
                            else:
                                self._give_up(head[0], exc)
                            failures = 0
                        else:
                            self._stop.wait(min(1.0 * failures, 5.0))
                self._tend_deadletters()
                self._guard.tend()
                self._link.tend()
                self._tend_stats()
                self._write_status()
                self._loop_trouble.resolved("ingest writer loop runs again")
            except Exception as exc:  # the loop's own steps (the queue, ...): never die of them
                self.stats.internal_errors += 1
                # Not a traceback a second: the reason now and then, the traceback with -vv.
                self._loop_trouble.report(repr(exc), "; carrying on")
                log.debug("ingest writer loop error", exc_info=True)
                self._stop.wait(1.0)

    def _give_up(self, item: Incoming, exc: Exception) -> None:
        """Dead-letter a message that failed BATCH_ATTEMPTS times on its own, then ack it."""
        outcome = Outcome(
            item, rejection=Rejection("internal_error", f"could not be processed: {exc!r}"[:500])
        )
        log.info("rejected %s: %s", item.topic, outcome.rejection)
        refused: list[Outcome] | None
        try:
            refused = self._rejects.keep([outcome])
        except Exception:
            log.exception("could not dead-letter %s either; holding it back", item.topic)
            refused = None
        if refused is None:  # not kept, so not confirmed
            self._link.ack(self._rejects.hold_back([outcome]))
            return
        if not refused:
            self._confirm([outcome])  # first, as in `process`
        self._link.ack([item])

    def _collect(self, *, wait: bool = True) -> list[Incoming]:
        """Up to `batch_max` messages, one per device in turn (`ingest.fair`): waiting for the
        first (up to 0.5 s) and then up to `batch_wait_ms` for more, or, with wait=False, only
        those already here."""
        if not wait:
            return self._queue.take(self.config.batch_max)
        return self._queue.get_batch(
            self.config.batch_max, first_timeout_s=0.5, fill_s=self.config.batch_wait_ms / 1000
        )

    def process(self, batch: list[Incoming], checked: list[Checked] | None = None) -> bool:
        """Validate, store, dead-letter and acknowledge one batch. False if stopped midway.
        `checked`: the batch's check results when they were made ahead (`Checker.start`)."""
        if checked is None:
            self._refresh_registry()
        outcomes = self._checker.evaluate_all(batch, checked)
        accepted = [o for o in outcomes if o.rejection is None]
        if not self._store_part(accepted):
            return False  # stopping with the batch unwritten: the broker will redeliver it
        rejected = [o for o in outcomes if o.rejection is not None]
        for o in rejected:
            log.info("rejected %s: %s", o.item.topic, o.rejection)
            if o.item.device:
                self._guard.rejected(o.item.device)
        refused = self._rejects.keep(rejected)
        # Counted once the whole batch is kept, so a batch written again after an error is not
        # counted twice. An enrolled key (no message) is not a stored message.
        stored = [o for o in accepted if o.rejection is None and o.message is not None]
        self.stats.stored_messages += len(stored)
        self.stats.stored_points += sum(len(o.lines) for o in stored)
        self.stats.batches += 1
        # The devices' confirmations go out before the broker's acknowledgements (paho sends in
        # the order asked). Killed in between, the ingest gets the batch again and confirms it
        # again; the other way round, the broker would forget the batch while the devices,
        # never told, kept it until their confirm timeout.
        if refused is not None:
            # Letters over their device's quota were not kept: not confirmed either, so a
            # device that waits for confirmations still has them.
            not_kept = {id(o.item) for o in refused}
            self._confirm([o for o in outcomes if id(o.item) not in not_kept])
            self._link.ack(batch)  # in arrival order, as MQTT asks of acknowledgements
        else:  # the dead-letter store cannot write: the rejected ones are held back
            self._confirm(stored)
            released = self._rejects.hold_back(rejected)
            held = {id(o.item) for o in rejected}
            self._link.ack([item for item in batch if id(item) not in held] + released)
        self.metrics.batch_latency.observe(max(0.0, self._clock() - batch[0].received_at))
        return True

    def _tend_deadletters(self) -> None:
        """Held-back rejected messages that the dead-letter store keeps again: confirmed and
        acknowledged now (`ingest.rejects`)."""
        held, refused = self._rejects.tend(self._link.generation)
        if not held:
            return
        not_kept = {id(o.item) for o in refused}
        self._confirm([o for o in held if id(o.item) not in not_kept])
        self._link.ack([o.item for o in held])
        log.warning("%d held-back messages dead-lettered, confirmed and acknowledged", len(held))

    def _confirm(self, outcomes: list[Outcome]) -> None:
        """Tell each device which of its messages are now kept, stored or dead-lettered
        (protocol.ack), so that it can drop them from its outbox. QoS 1; a confirmation lost
        on the way only makes the device send the message again, which is stored once."""
        kept: dict[str, set[int]] = {}
        aside: dict[str, list[SetAside]] = {}
        for o in outcomes:
            claim = sender_and_seq(o)
            if claim is not None:
                kept.setdefault(claim[0], set()).add(claim[1])
                if o.rejection is not None:
                    detail = str(o.rejection)[:300]
                    code = o.rejection.code[:40]
                    aside.setdefault(claim[0], []).append(
                        SetAside(seq=claim[1], code=code, detail=detail)
                    )
        for device, seqs in kept.items():
            payload = encode_ack(seqs, aside.get(device, ()))
            self._link.publish(ack_topic(device), payload)
            self.stats.confirmations += 1

    def close(self) -> None:
        """Release the stores of a service that was never started (e.g. after `replay`)."""
        self._checker.close()
        self._deadletters.close()
        if self._alerts is not None:
            self._alerts.close()
        self._influx.close()
        self._reporting.close()

    def storage_reachable(self) -> bool:
        """Whether InfluxDB answers its ping now."""
        return self._influx.ping()

    def replay(self, letters: list[DeadLetter]) -> ReplayResult:
        """Feed dead letters through validation again, e.g. after registering a forgotten
        device: those that pass are stored and leave the dead-letter store; the others stay,
        with the reason they fail for now. Needs no broker connection."""
        self._refresh_registry()
        result = ReplayResult()
        for start in range(0, len(letters), self.config.batch_max):
            chunk = letters[start : start + self.config.batch_max]
            items = [
                Incoming(-1, -1, d.topic, d.payload, dup=True, received_at=d.received_at)
                for d in chunk
            ]
            outcomes = self._checker.evaluate_all(items)
            if not self._store_part([o for o in outcomes if o.rejection is None]):
                break  # stopped while InfluxDB was away; what is left stays dead-lettered
            stored = []
            for letter, outcome in zip(chunk, outcomes, strict=True):
                if outcome.rejection is None:
                    stored.append(letter.id)
                else:
                    code, detail = outcome.rejection.code, outcome.rejection.detail
                    self._deadletters.update_reason(letter.id, code, detail)
                    result.still_rejected[code] += 1
            self._deadletters.remove(stored)
            result.stored += len(stored)
        return result

    def _store_part(self, part: list[Outcome]) -> bool:
        """Write these messages; when InfluxDB refuses (4xx: bad line, type conflict), split in
        halves until the refused messages are found, which get InfluxDB's own error text as
        their rejection. False only if the service stopped while InfluxDB was away."""
        if not part:
            return True
        try:
            return self._write_retrying([line for o in part for line in o.lines])
        except StorageRejected as exc:
            if len(part) > 1:
                log.warning("batch of %d refused (%s); splitting it", len(part), exc)
                middle = len(part) // 2
                return self._store_part(part[:middle]) and self._store_part(part[middle:])
            only = part[0]
            only.rejection = Rejection("storage_rejected", str(exc))
            # A refused write can be partial: a rejected message leaves no points.
            return self._retrying(partial(self._remove_points, only.points))

    def _remove_points(self, points: list[Point]) -> None:
        for p in points:
            try:
                self._influx.delete(p.measurement, p.tags, p.time_ms)
            except QueryError as exc:  # e.g. a time InfluxDB cannot even delete at
                log.warning("could not remove a point of a refused message: %s", exc)

    def _write_retrying(self, lines: list[str]) -> bool:
        return self._retrying(lambda: self._influx.write(lines))

    def _retrying(self, operation: Callable[[], None]) -> bool:
        """Run until it succeeds (True) or the service stops (False); 4xx errors propagate."""
        delay = 0.2
        while True:
            try:
                operation()
                return True
            except StorageUnavailable as exc:
                self.stats.write_retries += 1
                self._tend_stats()  # `stack status` shows the retries while they go on
                # Full jitter: many workers coming back at once do not hit InfluxDB together.
                wait = random.uniform(delay / 2, delay)
                if exc.retry_after_s is not None:
                    wait = max(wait, exc.retry_after_s)
                log.warning("%s; retrying in %.1f s", exc, wait)
                if self._stop.wait(wait):
                    return False
                delay = min(delay * 2, RETRY_CAP_S)

    # --- the registry ------------------------------------------------------------------------
    def _refresh_registry(self) -> None:
        """Re-read a changed registry; what depended on the old one is forgotten."""
        if self._checker.refresh_registry():
            self._guard.refresh_limits()

    @property
    def hold_max(self) -> int:
        """How many rejected messages are held back at most while the dead-letter store cannot
        write (`ingest.rejects`)."""
        return self._rejects.hold_max

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on, once started (None without a metrics_port)."""
        return self._reporting.metrics_port

    def _write_status(self) -> None:
        self._reporting.write_status()

    def _tend_stats(self) -> None:
        self._reporting.tend_stats()
