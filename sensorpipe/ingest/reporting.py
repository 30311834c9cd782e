"""The ingest's reporting: its counters as a stats file, an `ingest_status` point in InfluxDB,
and Prometheus metrics.

What it guarantees: nothing about the data. Reporting never holds up a batch and never stops
the ingest: a status point that InfluxDB does not take is skipped (not retried, not queued);
a stats file that cannot be written is said now and then while the ingest goes on. Only at
`start` is an unwritable stats file an error (a ConfigError naming `stats_path`), before
anything is received. What it reports can be lost; what it reports on cannot be lost by it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.errors import StorageRejected, StorageUnavailable
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import FieldValue, Point, to_line
from sensorpipe.ingest.metrics import IngestMetrics
from sensorpipe.ingest.stats import IngestStats
from sensorpipe.protocol.problems import RepeatedProblem

# The ingest's rooms share the one logger name its lines have always had.
log = logging.getLogger("sensorpipe.ingest.service")


class Reporting:
    """The stats file, the status point and the metrics of one ingest worker; called from the
    writer thread (`tend`), and once at `start` (`check_stats_file`, `serve_metrics`)."""

    def __init__(
        self,
        config: IngestConfig,
        stats: IngestStats,
        influx: InfluxClient,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stats = stats
        self.metrics = IngestMetrics(stats)
        self.metrics_port: int | None = None
        self._influx = influx
        self._clock = clock
        self._next_status = 0.0
        self._stats_trouble = RepeatedProblem(
            log,
            f"stats file {config.stats_path} not written",
            level=logging.ERROR,
            clock=monotonic,
        )

    def check_stats_file(self) -> None:
        """Write the stats file once; one that cannot be written is a ConfigError."""
        try:
            self.write_stats()
        except OSError as exc:
            path = Path(self.config.stats_path or "")
            missing = not path.parent.is_dir()
            raise self.config.key_error(
                "stats_path",
                f"the directory {path.parent} does not exist: create it or correct stats_path"
                if missing
                else f"{path} cannot be written: {exc.strerror or exc}",
            ) from None

    def serve_metrics(self) -> None:
        """Serve /metrics when a metrics_port is configured."""
        if self.config.metrics_port is None:
            return
        self.metrics_port = self.metrics.serve(self.config.metrics_port, self.config.metrics_bind)
        log.info("metrics on http://%s:%d/metrics", self.config.metrics_bind, self.metrics_port)

    def write_status(self) -> None:
        """Every status_interval_s, the counters as one `ingest_status` point in InfluxDB.

        Best effort: while InfluxDB is away the status is skipped, never retried or queued."""
        now = self._clock()
        if now < self._next_status:
            return
        self._next_status = now + self.config.status_interval_s
        s = self.stats
        fields: dict[str, FieldValue] = {
            "received": s.received,
            "stored_messages": s.stored_messages,
            "stored_points": s.stored_points,
            "rejected": s.rejected,
            "write_retries": s.write_retries,
            "internal_errors": s.internal_errors,
            "batches": s.batches,
            "connected": s.connected,
            "connect_failures": s.connect_failures,
            "deadletter_available": s.deadletter_available,
            "held_back": s.held_back,
            "held_back_waiting": s.held_back_waiting,
            "left_to_sender": s.left_to_sender,
        }
        for reason, n in s.rejected_by_code.items():
            fields[f"rejected_{reason}"] = n
        tags = {"gateway": self.config.gateway_id, "worker": self.config.broker.username}
        point = Point("ingest_status", tags, fields, round(now * 1000))
        try:
            self._influx.write([to_line(point)])
        except (StorageUnavailable, StorageRejected) as exc:
            log.warning("ingest status not written: %s", exc)

    def tend_stats(self) -> None:
        """Write the stats file; one that cannot be written (its directory gone, a full disk)
        is said now and then, and the ingest goes on without it."""
        try:
            self.write_stats()
        except OSError as exc:
            self._stats_trouble.report(exc.strerror or str(exc))
        else:
            self._stats_trouble.resolved(f"stats file {self.config.stats_path} written again")

    def write_stats(self) -> None:
        if self.config.stats_path is None:
            return
        path = Path(self.config.stats_path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stats.as_dict()))
        tmp.replace(path)

    def close(self) -> None:
        self.metrics.close()
