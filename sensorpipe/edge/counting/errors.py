"""Exceptions of the counting pipeline."""

from __future__ import annotations

from sensorpipe.edge.errors import EdgeError


class ModelError(EdgeError):
    """The model file cannot be used as configured (layout, input shape, classes). Permanent."""


class SourceUnavailable(EdgeError):
    """A frame source cannot start: missing optional package, no camera. Permanent."""
