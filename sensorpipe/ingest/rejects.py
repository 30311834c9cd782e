"""The ingest's rejected messages: kept as dead letters, or held back while the dead-letter
store cannot write.

What it guarantees: a rejected message is acknowledged and confirmed only once its dead letter
is committed (`keep`), so a rejected message is never lost silently while its letter can be
kept. A device over its dead-letter quota (or a store that is full) gets its further rejected
messages neither kept nor confirmed; they are acknowledged with their batch, so a device that
waits for confirmations still has them, and another sender's are lost (counted,
`deadletter_refused`, and said once a minute per device).

A dead-letter store that cannot write (its disk full) holds back only the rejected messages:
the rest of the batch is stored, confirmed and acknowledged as usual. A held-back message is
not confirmed to its device. Up to `hold_max` of them are kept unacknowledged (the broker keeps
them too) and dead-lettered as soon as the store writes again, for the batch path to confirm
and acknowledge (`tend`); beyond that they are handed back to be acknowledged without
confirmation, so that they never fill the broker's in-flight window and stop everyone: a
device that waits for confirmations sends them again (see `hold_back`). The store is tried
again every few seconds, never per message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sensorpipe.ingest.checks import Outcome, sender_and_seq
from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore, DeadLetterStoreUnavailable
from sensorpipe.ingest.link import Incoming
from sensorpipe.ingest.stats import IngestStats

# The ingest's rooms share the one logger name its lines have always had.
log = logging.getLogger("sensorpipe.ingest.service")
OUTAGE_REPORT_S = 60.0  # while the dead-letter store is unavailable: a summary line this often


class Rejects:
    """The rejected messages of one ingest worker, in its writer thread."""

    def __init__(
        self,
        config: IngestConfig,
        store: DeadLetterStore,
        stats: IngestStats,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stats = stats
        self._deadletters = store
        self._monotonic = monotonic
        # Rejected messages the store could not keep, held unacknowledged (`hold_back`): those
        # whose device a confirmation would name, and those too broken to name one.
        self._held_named: list[Outcome] = []
        self._held_unnamed: list[Outcome] = []
        # A quarter of the broker's in-flight window (Receive Maximum): the rest stays for
        # the batch being written and the next one.
        self.hold_max = max(1, config.batch_max // 2)
        self._next_outage_report = 0.0
        self._held_back_before_outage = 0
        self._left_before_outage = 0
        self._released_in_outage = False
        self._full_reported: dict[str, float] = {}  # device -> when to say it again (monotonic)
        self._note_store_state()

    def hold_back(self, rejected: list[Outcome]) -> list[Incoming]:
        """Rejected messages that the dead-letter store could not keep; none is confirmed.

        They are held unacknowledged, at most `hold_max`, and dead-lettered, confirmed and
        acknowledged once the store writes again (`tend`); a restart of the ingest
        loses none of them, the broker still has them. Those that do not fit are returned, to be
        acknowledged without confirmation, so that held messages never fill the broker's
        in-flight window and stop good traffic. A device that waits for confirmations (the
        edge agent does, by default) keeps them and sends them again after a reconnect or its
        confirm timeout; they are dead-lettered then. A sender that does not wait (an edge agent
        with `confirm = false`, a plain MQTT client) does not send them again: those are lost.
        The ingest cannot tell the two apart; all it lets go are counted (`left_to_sender`).
        So the room goes first to messages that no confirmation would name (too broken to name
        their device and number), and the newest named ones are let go first."""
        self.stats.held_back += len(rejected)
        for o in rejected:
            named = sender_and_seq(o) is not None
            (self._held_named if named else self._held_unnamed).append(o)
        released: list[Incoming] = []
        while len(self._held_named) + len(self._held_unnamed) > self.hold_max:
            released.append((self._held_named or self._held_unnamed).pop().item)
        self.stats.left_to_sender += len(released)
        self.stats.held_back_waiting = len(self._held_named) + len(self._held_unnamed)
        if released and not self._released_in_outage:
            self._released_in_outage = True
            log.warning(
                "more than %d rejected messages held back: acknowledging further ones to the "
                "broker unconfirmed; devices that wait for confirmations send them again, other "
                "senders do not",
                self.hold_max,
            )
        return released

    def tend(self, generation: int) -> tuple[list[Outcome], list[Outcome]]:
        """While the dead-letter store cannot write: let it try again when due (it paces
        itself, every few seconds), report the outage now and then, and once it writes again,
        keep the held-back messages. Returns those now dead-lettered, oldest first, and those
        of them refused by their device's quota, for the batch path to confirm (but the
        refused) and acknowledge; nothing else. `generation`: the connection now, whose
        messages are the only ones still held (the broker delivers the others again)."""
        if self._deadletters.available and not (self._held_named or self._held_unnamed):
            return [], []
        for held in (self._held_named, self._held_unnamed):
            held[:] = [o for o in held if o.item.generation == generation]
        self.stats.held_back_waiting = len(self._held_named) + len(self._held_unnamed)
        available = self._deadletters.probe()
        self._note_store_state()
        if available:
            return self._release_held()
        if time.monotonic() >= self._next_outage_report:
            self._next_outage_report = time.monotonic() + OUTAGE_REPORT_S
            s = self.stats
            log.error(
                "dead-letter store %s still cannot write (%s): %d rejected messages held back "
                "and not confirmed so far, %d of them waiting here, %d left to their senders",
                self._deadletters.path,
                self._deadletters.error,
                s.held_back - self._held_back_before_outage,
                s.held_back_waiting,
                s.left_to_sender - self._left_before_outage,
            )
        return [], []

    def _release_held(self) -> tuple[list[Outcome], list[Outcome]]:
        held = sorted(self._held_named + self._held_unnamed, key=lambda o: o.item.received_at)
        if not held:
            return [], []
        refused = self.keep(held)
        if refused is None:
            return [], []
        self._held_named.clear()
        self._held_unnamed.clear()
        self.stats.held_back_waiting = 0
        return held, refused

    def _note_store_state(self) -> None:
        """Copy the dead-letter store's state into the stats; log when it changes."""
        store, s = self._deadletters, self.stats
        was_available = s.deadletter_available
        s.deadletter_available = store.available
        s.deadletter_error = store.error
        s.deadletter_unavailable_since = store.unavailable_since
        if was_available and not store.available:
            self._held_back_before_outage = s.held_back
            self._left_before_outage = s.left_to_sender
            self._released_in_outage = False
            self._next_outage_report = time.monotonic() + OUTAGE_REPORT_S
            log.error(
                "dead-letter store %s cannot write: %s. Rejected messages are held back, not "
                "confirmed to their devices, until it can; trying again every %.0f s",
                store.path,
                store.error,
                store.probe_interval_s,
            )
        elif store.available and not was_available:
            log.warning(
                "dead-letter store %s writes again; %d rejected messages were held back",
                store.path,
                s.held_back - self._held_back_before_outage,
            )

    def keep(self, rejected: list[Outcome]) -> list[Outcome] | None:
        """Keep these rejected messages as dead letters. Returns those not kept because their
        device's dead-letter quota (or the whole store) is full, to be neither confirmed nor
        kept; None, keeping none, while the store cannot write (which it says at once,
        without trying, until its next try is due)."""
        if not rejected:
            return []
        letters = []
        for o in rejected:
            assert o.rejection is not None
            letters.append(
                DeadLetter(
                    o.item.received_at,
                    o.item.topic,
                    o.item.payload,
                    o.rejection.code,
                    o.rejection.detail,
                )
            )
        try:
            result = self._deadletters.add_many(letters)
        except DeadLetterStoreUnavailable:
            self._note_store_state()
            return None
        self._note_store_state()
        refused = [rejected[i] for i in result.refused]
        not_kept = {id(o) for o in refused}
        for o in rejected:  # counted once kept
            assert o.rejection is not None
            if id(o) in not_kept:
                continue
            self.stats.rejected += 1
            self.stats.rejected_by_code[o.rejection.code] += 1
        if refused:
            self.stats.deadletter_refused += len(refused)
            now = self._monotonic()
            for device in sorted({o.item.device for o in refused}):
                if now < self._full_reported.get(device, 0.0):
                    continue
                self._full_reported[device] = now + OUTAGE_REPORT_S
                log.error(
                    "device %s: its dead-letter quota is full (%s); its further rejected "
                    "messages are neither kept nor confirmed (%d so far, from all devices). "
                    "Look at its letters (`sensorpipe ingest rejects`), fix the device, then "
                    "replay or purge them",
                    device or "(none)",
                    self._quota_text(),
                    self.stats.deadletter_refused,
                )
        for device in result.near_full:
            u = self._deadletters.usage(device)
            log.warning(
                "device %s keeps %d dead letters (%d bytes), over %d %% of its quota (%s): "
                "beyond it, its rejected messages are no longer kept. Look at them "
                "(`sensorpipe ingest rejects`), fix the device, then replay or purge them",
                device or "(none)",
                u.letters,
                u.bytes,
                round(self._deadletters.warn_fraction * 100),
                self._quota_text(),
            )
            self.stats.deadletter_near_full.add(device)
        self.stats.deadletters_pruned = self._deadletters.pruned
        return refused

    def _quota_text(self) -> str:
        q = self.config.quota
        return f"{q.deadletters_per_device} letters or {q.deadletter_bytes_per_device} bytes"
