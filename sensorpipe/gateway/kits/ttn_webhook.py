"""The Things Stack's webhook integration: `POST /ttn/v3/{application}/uplink`.

In the console (Integrations, Webhooks, Custom webhook, format JSON): base URL
`https://<gateway>/ttn/v3/<application id>@<tenant id>`, uplink message path `/uplink`, and an
additional header `Authorization` with the value `Bearer <token>`; the token's SHA-256 goes
into the application's `webhook_token_hashes` (`sensorpipe devices add-kit ttn --webhook`
makes both). The body is the same ApplicationUp JSON the MQTT integration publishes.

Answers: 200 once the uplink is published to the broker (acknowledged; `"published": true`,
which the ingest may still reject) and/or kept as a dead letter (the body says which), or
dropped on purpose (`dropped`: over the node's rate limit, its kit is quarantined, or the
application's budget for letters of unregistered nodes is used up; an error status would
count against the webhook's health, and The Things Stack suspends an unhealthy webhook for
every node of the application); 401 for a missing or wrong token, or an application this
gateway does not take (the same answer: no way to probe for application names); 413 for a
body over the limit (read no further); 503 with Retry-After when the broker or the dead-letter
store did not take it: nothing is half stored, and The Things Stack's webhook retries (on
Cloud and Enterprise) or the bridge's gap filling from the Storage Integration bring it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sensorpipe.gateway.kits.publish import BrokerUnavailable
from sensorpipe.gateway.kits.ttn_receiver import DeadLettersUnavailable, TtnReceiver
from sensorpipe.http_server import bearer_listed, body_up_to
from sensorpipe.http_server import token_hash as token_hash  # what webhook_token_hashes hold

log = logging.getLogger(__name__)

KIT = "ttn"
WEBHOOK_PATH = "/ttn/v3/{application}/uplink"
# An uplink is a few KiB, with many gateways perhaps 20; far larger is not The Things Stack.
MAX_BODY_BYTES = 128 * 1024
RETRY_AFTER_S = 60


class Counting(Protocol):
    def add(self, kit: str, what: str, key: str, n: int = 1) -> None: ...


def webhook_url_path(application: str) -> str:
    return WEBHOOK_PATH.format(application=application)


def webhook_router(
    receivers: Mapping[str, TtnReceiver],
    *,
    counters: Counting | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> APIRouter:
    """The webhook endpoint for the applications in `receivers` (by `app@tenant`) that have
    webhook tokens."""
    router = APIRouter()

    def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        if counters is not None:
            counters.add(KIT, "posts", str(status))
        return JSONResponse(body, status_code=status, headers=headers)

    @router.post(WEBHOOK_PATH, include_in_schema=False)
    async def uplink(application: str, request: Request) -> Any:
        receiver = receivers.get(application)
        if receiver is None or not bearer_listed(request, receiver.app.webhook_token_hashes):
            log.info(
                "TTN webhook for %r refused (401): %s",
                application[:80],
                "no such application" if receiver is None else "missing or wrong token",
            )
            return answer(
                401,
                {"error": "a valid bearer token for this application is needed"},
                {"WWW-Authenticate": "Bearer"},
            )
        body = await body_up_to(request, max_body_bytes)
        if body is None:
            return answer(413, {"error": f"body over {max_body_bytes} bytes"})
        try:
            handled = await run_in_threadpool(receiver.handle, body)
        except (BrokerUnavailable, DeadLettersUnavailable) as exc:
            log.warning("TTN webhook uplink of %s not taken (503): %s", application, exc)
            return answer(
                503,
                {"error": "the uplink was not taken; nothing was stored"},
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        return answer(
            200,
            {
                "device_id": handled.device_id,
                # Published to the broker: the ingest may still reject it (its dead letters).
                "published": handled.message is not None,
                "seq": handled.message.seq if handled.message is not None else None,
                "dead_lettered": handled.codes,
                "duplicate": handled.duplicate,
                "dropped": handled.dropped,
            },
        )

    return router
