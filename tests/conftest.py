"""Test-run order and the kit gateway's port, for `make test`'s workers (pytest-xdist), and
the fixtures test files share.

The files below take a minute or more each. They are collected first, so that the workers start
them first and finish together, instead of one worker running a long file while the others
wait at the end. They are also marked `slow`: `make check` leaves them out (with
tests/integration) for the inner loop. The list only orders the run: a file missing from it is
still run, just not first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from sensorpipe.stack.ports import KITS_PORT_ENV

# A new stack's kit gateway takes 8090 where it is free: the workers' stacks, up at the same
# time, would race for it. Here each takes a free port (subprocesses inherit this).
os.environ[KITS_PORT_ENV] = "0"


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port something listens on (and never answers), for the test's length."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def hashed_kit_passwords(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords the kit gateway checks against a stored hash from now on, in order (each
    check is still made): what tells a costly check from a refusal that cost nothing."""
    from sensorpipe.gateway.kits import auth

    hashed: list[str] = []
    real = auth.verify_kit_password

    def counting(password: str, stored: str) -> bool:
        hashed.append(password)
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_kit_password", counting)
    return hashed


SLOW_FILES = (  # the longest first
    "tests/integration/test_installed_wheel.py",
    "tests/test_real_counting.py",
    "tests/integration/test_fault_suite.py",
    "tests/integration/test_cli_and_demo.py",
    "tests/integration/test_isolation.py",
    "tests/test_count_eval.py",
    "tests/integration/test_counting_pipeline.py",
    "tests/test_cli_edge.py",
    "tests/integration/test_deadletter_disk_full.py",
    "tests/integration/test_edge_join.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(SLOW_FILES)}

    def order(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::")[0], len(SLOW_FILES))

    items.sort(key=order)  # stable: within a file, and among the rest, collection order
    for item in items:
        if order(item) < len(SLOW_FILES):
            item.add_marker(pytest.mark.slow)
