"""Taking one airrohr post: who sent it, whether it may, and what becomes of it.

`admit` runs before the body is read (credentials, then the kit's rate limit); `take` runs on
the body. Both block (a password check is a scrypt, a publish waits for the broker's PUBACK):
the HTTP layer calls them from worker threads. Every answer is counted by its status.

What a kit is answered:
- 200 once the broker has acknowledged the message (from then on the broker's persistent
  queue for the ingest holds it), whatever the post held that could not be taken: such values
  are in the dead-letter store, named in the answer;
- 400 for a body that is no airrohr post (kept as a dead letter);
- 401 for missing or wrong credentials (WWW-Authenticate: Basic), 403 for a kit's credentials
  used for another chip id or a kit registered to another gateway, 429 (Retry-After) over the
  kit's rate limit or over the budget of password checks (auth.py), 413 for a body over the
  limit (app.py);
- 403 for a quarantined kit, with the reason and the command that lifts it, checked first:
  before the password (no scrypt for it) and before the body is read. A kit answered 429 for
  its rate for a sustained period is quarantined (gateway.kits.quarantine);
- 503 (Retry-After) when the broker did not take the message: nothing of the post is stored
  or dead-lettered. The firmware does not send a refused post again; the sequence number it
  would have had stays unused, so the ingest shows the reading as a gap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sensorpipe.gateway.kits.airrohr import (
    AirrohrPost,
    PostError,
    Translation,
    chip_of_x_sensor,
    message_for,
    parse_post,
    translate,
)
from sensorpipe.gateway.kits.auth import AuthResult, KitAuthenticator, parse_basic
from sensorpipe.gateway.kits.context import KitContext, LetterNotKept
from sensorpipe.gateway.kits.limits import RateLimiter, retry_after
from sensorpipe.gateway.kits.publish import BrokerUnavailable
from sensorpipe.gateway.kits.quarantine import describe
from sensorpipe.protocol.registry import DeviceEntry, allowed_sensors

log = logging.getLogger(__name__)

KIT = "airrohr"
BROKER_RETRY_AFTER_S = 60
WWW_AUTHENTICATE = 'Basic realm="sensorpipe kits", charset="UTF-8"'
_DETAIL_MAX = 500


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Admitted:
    device_id: str
    entry: DeviceEntry


class AirrohrIntake:
    def __init__(
        self,
        ctx: KitContext,
        *,
        next_seq: Callable[[str], int],
        limiter: RateLimiter,
        authenticator: KitAuthenticator,
    ) -> None:
        self.ctx = ctx
        self._next_seq = next_seq
        self._limiter = limiter
        self._auth = authenticator
        self._kit_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Answer:
        self.ctx.counters.add(KIT, "posts", str(status))
        return Answer(status, body, headers or {})

    def admit(self, authorization: str | None, client: str | None = None) -> Admitted | Answer:
        """The kit the credentials admit, if it is not quarantined and its rate limit lets it
        post now. `client`: the address the post came from (its own budget of password
        checks)."""
        refused = self._quarantined(authorization)
        if refused is not None:
            return refused
        result: AuthResult = self._auth.check(authorization, client)
        if result.status == 401:
            log.info("airrohr post refused (401): %s", result.why)
            return self.answer(
                401, {"error": "unauthorized"}, {"WWW-Authenticate": WWW_AUTHENTICATE}
            )
        if result.device_id is None or result.entry is None:
            self.ctx.counters.add(KIT, "logins", "throttled")
            log.info("airrohr post refused (429): %s", result.why)
            return self.answer(
                429,
                {"error": "too many password checks lately; try again later"},
                {"Retry-After": retry_after(result.retry_after_s)},
            )
        if result.entry.gateway != self.ctx.gateway_id:
            # The broker would take the message (PUBACK) and drop it: its ACL lets a gateway
            # publish only for its own kits. Say so instead of answering 200 for nothing.
            why = (
                f"kit {result.device_id} is received by gateway {result.entry.gateway}, "
                f"not {self.ctx.gateway_id}"
            )
            log.warning("airrohr post refused (403): %s", why)
            return self.answer(403, {"error": why})
        wait = self._limiter.wait_s(result.device_id)
        if wait > 0:
            quarantine = self.ctx.quarantine
            if quarantine is not None:
                limit = (
                    f"answered 429 over its rate limit of {self._limiter.burst} posts, then one "
                    f"every {self._limiter.refill_s:g} s"
                )
                entry = quarantine.over_limit(KIT, result.device_id, limit)
                if entry is not None:
                    return self.answer(403, {"error": describe(entry)})
            return self.answer(
                429,
                {"error": f"kit {result.device_id} posts too often"},
                {"Retry-After": retry_after(wait)},
            )
        return Admitted(result.device_id, result.entry)

    def _quarantined(self, authorization: str | None) -> Answer | None:
        """403 for a quarantined kit's name, whatever the password: a dictionary lookup."""
        quarantine = self.ctx.quarantine
        credentials = parse_basic(authorization)
        if quarantine is None or credentials is None:
            return None
        why = quarantine.refusal(credentials[0][:64], KIT)
        if why is None:
            return None
        log.debug("airrohr post refused (403): %s", why)
        return self.answer(403, {"error": why})

    def take(
        self,
        kit: Admitted,
        body: bytes,
        *,
        x_sensor: str | None,
        received_at: datetime,
    ) -> Answer:
        """Publish what `body` holds for `kit`; dead-letter what cannot be taken."""
        chip = kit.entry.chip_id or ""
        try:
            post = parse_post(body)
        except PostError as exc:
            self._keep(kit, chip, body, exc.code, exc.detail)
            return self.answer(400, {"error": f"{exc.code}: {exc.detail}"})
        refused = self._other_chip(kit, post, x_sensor)
        if refused is not None:
            log.warning("airrohr post refused (403): %s", refused)
            return self.answer(403, {"error": refused})
        t = translate(post, allowed_sensors=allowed_sensors(kit.entry))
        with self._lock_for(kit.device_id):
            seq = self._next_seq(kit.device_id)
            message = message_for(kit.device_id, seq, received_at, post.software_version, t)
            try:
                self.ctx.publisher.publish(message, timeout_s=self.ctx.publish_timeout_s)
            except BrokerUnavailable as exc:
                log.warning("airrohr post of %s not taken (503): %s", kit.device_id, exc)
                return self.answer(
                    503,
                    {"error": "the broker did not take the reading; nothing was stored"},
                    {"Retry-After": str(BROKER_RETRY_AFTER_S)},
                )
        self._count_values(t)
        for code, items in t.problems.items():
            detail = (
                f"kit {kit.device_id} (chip {chip}), message {seq}: {'; '.join(items)} "
                f"({len(t.readings)} readings taken)"
            )
            self._keep(kit, chip, body, code, detail)
        return self.answer(
            200,
            {
                "device_id": kit.device_id,
                "seq": seq,
                "readings": len(t.readings),
                "dead_lettered": t.problems,
                "not_stored": t.not_stored,
            },
        )

    def _other_chip(self, kit: Admitted, post: AirrohrPost, x_sensor: str | None) -> str | None:
        chip = kit.entry.chip_id
        if post.chip_id != chip:
            return (
                f"the credentials of kit {kit.device_id} (chip {chip}) were used for chip "
                f"{post.chip_id}"
            )
        if x_sensor is not None and chip_of_x_sensor(x_sensor) != chip:
            return f"X-Sensor {x_sensor[:40]!r} is not kit {kit.device_id}'s chip {chip}"
        return None

    def _keep(self, kit: Admitted, chip: str, body: bytes, code: str, detail: str) -> None:
        if len(detail) > _DETAIL_MAX:
            detail = detail[: _DETAIL_MAX - 3] + "..."
        try:
            self.ctx.deadletters.keep(f"{KIT}:{chip}", body, code, detail, device_id=kit.device_id)
        except LetterNotKept as exc:
            # The readings (if any) are published; only the letter is lost. Counted and logged
            # loudly: the operator must free the disk.
            self.ctx.counters.add(KIT, "deadletters", "not_kept")
            log.error("dead letter (%s) of %s not kept: %s", code, kit.device_id, exc)
            return
        self.ctx.counters.add(KIT, "deadletters", code)

    def _count_values(self, t: Translation) -> None:
        counters = self.ctx.counters
        counters.add(KIT, "values", "stored", len(t.readings))
        if t.not_stored:
            counters.add(KIT, "values", "not_stored", len(t.not_stored))
        for code, items in t.problems.items():
            counters.add(KIT, "values", code, len(items))

    def _lock_for(self, device_id: str) -> threading.Lock:
        # One post of a kit at a time between numbering and publishing, so that the broker
        # gets each kit's messages in the order of their numbers.
        with self._locks_lock:
            return self._kit_locks.setdefault(device_id, threading.Lock())
