"""Exceptions of the ingest, each marked retryable or permanent at the boundary."""

from __future__ import annotations


class IngestError(Exception):
    retryable = False


class StorageUnavailable(IngestError):
    """InfluxDB did not answer, or answered 5xx or 429: keep the batch, back off, try again.

    `retry_after_s` is the server's Retry-After, when it sent one."""

    retryable = True

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageRejected(IngestError):
    """InfluxDB refused the write (HTTP 4xx, e.g. a field type conflict): retrying won't help."""

    retryable = False

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class QueryError(IngestError):
    """An InfluxQL query failed; the message is InfluxDB's own."""
