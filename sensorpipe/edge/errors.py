"""Exceptions of the edge agent, each marked retryable or permanent.

A failed read raises `SensorError` or one of its kinds below; the agent counts failures per
sensor and `kind` (its sensor health's `errors`), so a driver should raise the most specific
one. `SensorError("...")` itself still works: its kind is "read" (a failed read the driver did
not classify). A driver may also name a kind of its own: `SensorError("...", kind="warming_up")`
(lower case letters, digits and `_`, at most 24 characters: protocol.messages'
ERROR_KIND_PATTERN).
"""

from __future__ import annotations

import errno

# What Linux's I2C drivers answer when no device acknowledges its address (i2c fault codes:
# EREMOTEIO from i2c-bcm2835 and most others, ENXIO from some).
NO_ANSWER_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO})


class EdgeError(Exception):
    retryable = False


class SensorError(EdgeError):
    """A read failed (timeout, malformed frames, bus error); the next interval tries again."""

    retryable = True
    kind = "read"

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        if kind is not None:
            self.kind = kind


class SensorChecksumError(SensorError):
    """A frame or word arrived with a checksum or CRC that does not match: the read is lost."""

    kind = "checksum"


class SensorTimeout(SensorError):
    """The sensor did not answer (in time): no frame, no data-ready flag, a NACK on the bus."""

    kind = "timeout"


class SensorIOError(SensorError):
    """The port or bus failed: a USB adapter unplugged, an I2C transfer error."""

    kind = "io"


class SensorOutOfRange(SensorError):
    """The sensor answered with a value outside its data sheet's range."""

    kind = "out_of_range"


class SensorConfigError(EdgeError):
    """The sensor cannot be opened as configured (wrong chip id, no such port, nothing at its
    address). The agent counts every such failure as "not_available"; `kind` says why, for
    `edge check`: "wrong_model" (another chip answers: an SHT3x configured as an SHT4x, a
    BMP280 as a BME280), "wrong_address" (nothing at that address, a sensor at another),
    "timeout" (nothing answers at all: power, wiring), "not_found" (a 1-Wire probe absent),
    "checksum" (its first answer failed its CRC), or "config" (anything else)."""

    retryable = False
    kind = "config"

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        if kind is not None:
            self.kind = kind


def i2c_error(exc: OSError, message: str) -> SensorError:
    """A read's failed I2C transfer: `SensorTimeout` for a NACK (nothing acknowledged the
    address: no power, loose wiring), else `SensorIOError` (another bus fault)."""
    if exc.errno in NO_ANSWER_ERRNOS:
        return SensorTimeout(message)
    return SensorIOError(message)
