"""The local stack's error, in a module of its own: the CLI catches it for every command without
importing the stack (its processes, the ingest, InfluxDB's client) unless a command uses it."""

from __future__ import annotations


class StackError(RuntimeError):
    """The stack is not in a state for what was asked (not up, already up)."""
