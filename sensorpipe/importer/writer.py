"""Writes batches of line protocol to InfluxDB on a thread of its own, so that parsing goes on
while a batch is on its way (the parser and InfluxDB then share the machine's cores).

At most `depth` batches wait; `submit` blocks while the queue is full, so memory stays bounded
by the batch size. A batch InfluxDB cannot take now (unreachable, 5xx, 429) is tried again
after `backoff_s`, doubling, `retries` times; then the writer fails and every later call
raises `WriteFailed`. A batch InfluxDB refuses (400: a point it will not store, e.g. a field
type conflict) is split in halves until the refused lines are found: they are handed back by
`wait` with InfluxDB's reason, the others are written (InfluxDB 1.x stores the rest of a
refused batch anyway, and writing a point again overwrites it).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sensorpipe.ingest.errors import StorageRejected, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient


class WriteFailed(RuntimeError):
    """InfluxDB could not be written (after retries), or refused every point as a whole
    (database missing, no permission): nothing more is written."""


@dataclass(frozen=True)
class Refused:
    line_no: int  # the file line the point came from
    line: str
    reason: str


_Batch = tuple[list[str], list[int]]


class BatchWriter:
    def __init__(
        self,
        influx: InfluxClient,
        *,
        depth: int = 2,
        retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._influx = influx
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=depth)
        self._refused: list[Refused] = []
        self._error: str | None = None
        self.points = 0  # written so far
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self._thread.start()

    def submit(self, lines: list[str], line_nos: list[int]) -> None:
        """Queue a batch (the lists are the writer's from now on)."""
        self._raise_if_failed()
        if lines:
            self._queue.put((lines, line_nos))

    def wait(self) -> list[Refused]:
        """Return once every batch submitted so far is written: the lines InfluxDB refused
        since the last call. Raises WriteFailed."""
        self._queue.join()
        self._raise_if_failed()
        refused, self._refused = self._refused, []
        return refused

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriteFailed(self._error)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._error is None:  # after a failure, batches are only drained
                    self._write(*batch)
            except WriteFailed as exc:
                self._error = str(exc)
            except Exception as exc:  # a bug must not leave wait() blocked forever
                self._error = f"writing to InfluxDB failed: {type(exc).__name__}: {exc}"
            finally:
                self._queue.task_done()

    def _write(self, lines: list[str], line_nos: list[int]) -> None:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                self._influx.write(lines)
            except StorageUnavailable as exc:
                if attempt == self._retries:
                    raise WriteFailed(f"{exc} (tried {self._retries + 1} times)") from exc
                self._sleep(exc.retry_after_s or delay)
                delay *= 2
                continue
            except StorageRejected as exc:
                if exc.status != 400:  # the database, not a point: no point would be taken
                    raise WriteFailed(str(exc)) from exc
                self._split(lines, line_nos, str(exc))
                return
            self.points += len(lines)
            return

    def _split(self, lines: list[str], line_nos: list[int], reason: str) -> None:
        if len(lines) == 1:
            self._refused.append(Refused(line_nos[0], lines[0], reason))
            return
        half = len(lines) // 2
        self._write(lines[:half], line_nos[:half])
        self._write(lines[half:], line_nos[half:])
