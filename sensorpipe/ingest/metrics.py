"""The ingest's own health, for Prometheus (`/metrics`, text format) and for InfluxDB.

Counters are read from `IngestStats` when scraped, so there is one set of numbers; batch latency
(from a batch's first message arriving to its acknowledgement) is a histogram.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sensorpipe.ingest.stats import IngestStats

# Seconds; a batch waits up to batch_wait_ms to fill, then one write.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class _StatsCollector(Collector):
    def __init__(self, stats: IngestStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats
        for name, doc, value in (
            ("received", "Messages taken from the broker.", s.received),
            ("stored_messages", "Messages stored in InfluxDB.", s.stored_messages),
            ("stored_points", "Points written to InfluxDB.", s.stored_points),
            ("write_retries", "Writes retried while InfluxDB was unavailable.", s.write_retries),
            ("internal_errors", "Unexpected errors, caught and counted.", s.internal_errors),
            ("batches", "Batches written and acknowledged.", s.batches),
            ("deadletters_pruned", "Dead letters removed by the limits.", s.deadletters_pruned),
            (
                "connect_failures",
                "Attempts to connect to the broker that failed (unreachable, refused, unanswered).",
                s.connect_failures,
            ),
            (
                "held_back",
                "Rejected messages not confirmed: the dead-letter store could not keep them.",
                s.held_back,
            ),
            (
                "quarantines",
                "Devices this worker quarantined for exceeding their quota.",
                s.quarantines,
            ),
            (
                "broker_accounts_disabled",
                "Broker accounts of quarantined devices disabled by this worker.",
                s.broker_disabled,
            ),
            (
                "deadletter_refused",
                "Rejected messages not kept (nor confirmed): their device's dead-letter quota "
                "was full.",
                s.deadletter_refused,
            ),
            ("shed_bytes", "Bytes of the messages refused on arrival.", s.shed_bytes),
            (
                "left_to_sender",
                "Held-back messages acknowledged to the broker unconfirmed; only senders that "
                "wait for confirmations send them again.",
                s.left_to_sender,
            ),
            (
                "calibration_hours_written",
                "Hourly factors of group calibrations written by the ingest's periodic update.",
                s.calibration_hours_written,
            ),
            (
                "forecast_retrains",
                "Saved forecast models retrained by the ingest's schedule.",
                s.forecast_retrains,
            ),
            (
                "forecast_retrain_failures",
                "Scheduled retrainings of forecast models that failed or were stopped (the "
                "previous model kept).",
                s.forecast_retrain_failures,
            ),
        ):
            yield CounterMetricFamily(f"sensorpipe_ingest_{name}", doc, value=value)
        rejected = CounterMetricFamily(
            "sensorpipe_ingest_rejected",
            "Messages rejected and dead-lettered, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(s.rejected_by_code.items()):
            rejected.add_metric([reason], n)
        yield rejected
        shed = CounterMetricFamily(
            "sensorpipe_ingest_shed",
            "Messages refused on arrival, acknowledged unstored and unconfirmed: over their "
            "device's quota (over_rate, over_bytes) or from a quarantined device.",
            labels=["reason"],
        )
        for reason, n in sorted(dict(s.shed_by_reason).items()):
            shed.add_metric([reason], n)
        yield shed
        periodic = CounterMetricFamily(
            "sensorpipe_ingest_periodic_errors",
            "Runs of the ingest's periodic jobs that failed (logged, tried again), by job.",
            labels=["job"],
        )
        for job, n in sorted(dict(s.periodic_errors).items()):
            periodic.add_metric([job], n)
        yield periodic
        yield GaugeMetricFamily(
            "sensorpipe_ingest_connected", "1 while connected to the broker.", value=s.connected
        )
        yield GaugeMetricFamily(
            "sensorpipe_ingest_deadletter_available",
            "1 while the dead-letter store can write; 0 while rejected messages are held back.",
            value=s.deadletter_available,
        )
        yield GaugeMetricFamily(
            "sensorpipe_ingest_held_back_waiting",
            "Held-back messages kept unacknowledged until the dead-letter store writes again.",
            value=s.held_back_waiting,
        )


class IngestMetrics:
    def __init__(self, stats: IngestStats) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats))
        self.batch_latency = Histogram(
            "sensorpipe_ingest_batch_latency_seconds",
            "From a batch's first message arriving to its acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server: object | None = None

    def serve(self, port: int, bind: str) -> int:
        """Serve /metrics; returns the port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=bind, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._server = None
