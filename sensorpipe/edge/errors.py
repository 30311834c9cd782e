"""Exceptions of the edge agent, each marked retryable or permanent.

A failed read raises `SensorError` or one of its kinds below; the agent counts failures per
sensor and `kind` (its sensor health's `errors`), so a driver should raise the most specific
one. `SensorError("...")` itself still works: its kind is "read" (a failed read the driver did
not classify). A driver may also name a kind of its own: `SensorError("...", kind="warming_up")`
(lower case letters, digits and `_`, at most 24 characters: protocol.messages'
ERROR_KIND_PATTERN).
"""

from __future__ import annotations


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
    """The sensor is not what the configuration says (wrong chip id, no such port)."""

    retryable = False
