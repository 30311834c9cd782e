"""Exceptions of the edge agent, each marked retryable or permanent."""

from __future__ import annotations


class EdgeError(Exception):
    retryable = False


class SensorError(EdgeError):
    """A read failed (timeout, malformed frames, bus error); the next interval tries again."""

    retryable = True


class SensorConfigError(EdgeError):
    """The sensor is not what the configuration says (wrong chip id, no such port)."""

    retryable = False
