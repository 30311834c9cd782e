"""Every operation in the service's /openapi.json, fuzzed by Schemathesis against a live server
over a stack holding a day of history: no 5xx, and every answer has a documented status code,
a documented content type and a body that matches the documented schema.

Generated values are random, so a device id or site would almost never exist; half of the
generated cases have their device, site and path ids swapped for registered ones (half of
those also lose their generated time range), so that the 200 answers, and not only the 4xx
problems, are held against their schemas. Half of the cases
carry a valid bearer token, so both the 401 and the 200 answers of the token-only parts are
checked.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sensorpipe.api.app import create_app
from sensorpipe.api.config import ServeConfig, new_token
from sensorpipe.api.context import ApiContext
from sensorpipe.firmware_sim.history import (
    MINUTE_MS,
    history_devices,
    register_history_devices,
    write_history,
)
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import save_registry
from tests.helpers import running_stack, stack_serve_config
from tests.integration.live_server import live_server

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
DEVICES = history_devices(3, 2)
DEVICE_IDS = [d.device_id for d in DEVICES]
SITES = sorted({d.site for d in DEVICES})
TOKEN, TOKEN_HASH = new_token()


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stack(tmp_path_factory, "api-schema", serve=False) as (stack, info):
        registry = stack.registry()
        register_history_devices(registry, DEVICES)
        save_registry(registry, stack.registry_path)
        influx = InfluxClient(info.influx_url, info.database)
        end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
        write_history(influx, DEVICES, end_ms - 86_400_000, end_ms)
        influx.close()
        config = stack_serve_config(stack, token_hashes=[TOKEN_HASH])
        with live_server(create_app(ApiContext(config))) as url:
            yield url


def _known_values(query: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    """The generated query, or the same with registered devices and sites in it (and, half of
    those times, without its generated time range)."""
    if not query:
        return st.just(query)

    def known(devices: list[str], sites: list[str], device: str, default_times: bool) -> Any:
        replaced = dict(query)
        if isinstance(replaced.get("device"), list):
            replaced["device"] = devices
        elif "device" in replaced:  # /link takes one device
            replaced["device"] = device
        if "site" in replaced:
            replaced["site"] = sites
        if default_times:
            replaced.pop("from", None)
            replaced.pop("to", None)
        return replaced

    return st.one_of(
        st.just(query),
        st.builds(
            known,
            st.lists(st.sampled_from(DEVICE_IDS), min_size=1, max_size=2),
            st.lists(st.sampled_from(SITES), min_size=1, max_size=2),
            st.sampled_from(DEVICE_IDS),
            st.booleans(),
        ),
    )


def _openapi() -> dict[str, Any]:
    """The document the service serves at /openapi.json (it depends on the code only, so it
    is made here, before any stack runs; a test below checks the live one is the same)."""
    app = create_app(ApiContext(ServeConfig(registry_path="registry.toml")))
    document: dict[str, Any] = app.openapi()
    return document


# Loaded when the module is collected, so that each operation is a test of its own (with its
# own timeout); schemathesis.pytest.from_fixture, which would load it from the live server,
# does not run under pytest 9 (it sets Function._nodeid, which pytest 9 no longer has).
schema = schemathesis.openapi.from_dict(_openapi())


@schema.hook
def flatmap_query(
    _ctx: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    return _known_values(query)


@schema.hook
def flatmap_path_parameters(
    _ctx: schemathesis.HookContext, path: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path or "device_id" not in path:
        return st.just(path)
    return st.one_of(
        st.just(path), st.sampled_from(DEVICE_IDS).map(lambda d: {**path, "device_id": d})
    )


def test_the_live_service_serves_the_document_under_test(api_url: str) -> None:
    assert httpx.get(f"{api_url}/openapi.json", timeout=30).json() == _openapi()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],  # generation time on a busy machine
)
def test_every_answer_matches_the_openapi_document(api_url: str, case: schemathesis.Case) -> None:
    headers = None
    if random.Random(repr(case.query) + repr(case.path_parameters)).random() < 0.5:
        headers = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS, timeout=60)
