"""Shared helpers for the test suite: polling instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sensorpipe.protocol.enrollment import JoinCode

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval_s)
        last = probe()
    return last


def one_line_config_error(load: Callable[[Path], object], path: Path) -> str:
    """The ConfigError `load(path)` raises, checked to be one line that starts with the file."""
    from sensorpipe.protocol.configfile import ConfigError

    try:
        load(path)
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{path} loaded without an error")
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# What `sensorpipe edge check` prints, first two words a line, when everything a Pi with an
# SDS011 and a BME280 needs works.
EDGE_CHECK_ALL_OK = [
    ["ok", "sds011"],
    ["ok", "bme280"],
    ["ok", "clock"],
    ["ok", "outbox"],
    ["ok", "broker"],
    ["ok", "delivery"],
]


def join_code(**changes: object) -> JoinCode:
    """A join code for device pi-1 at sensors.example.nl:8883 (TLS), with `changes`."""
    from sensorpipe.protocol.enrollment import JoinCode

    values: dict[str, object] = {
        "device_id": "pi-1",
        "host": "sensors.example.nl",
        "port": 8883,
        "tls": True,
        "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "username": "pi-1",
        "password": "s3cret-password",
        "sensors": ["sds011", "bme280"],
    }
    return JoinCode.model_validate({**values, **changes})
