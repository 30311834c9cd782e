"""The ingest's Prometheus endpoint and its status points."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sensorpipe.ingest.metrics import IngestMetrics
from sensorpipe.ingest.stats import IngestStats
from tests.test_ingest_service import FakeInflux, _item, _service


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_metrics_endpoint_serves_the_counters_and_batch_latency() -> None:
    stats = IngestStats(received=12, stored_messages=9, write_retries=2, connected=True)
    stats.rejected_by_code.update({"bad_signature": 2, "too_old": 1})
    metrics = IngestMetrics(stats)
    port = metrics.serve(0, "127.0.0.1")
    try:
        metrics.batch_latency.observe(0.03)
        metrics.batch_latency.observe(0.7)
        got = _scrape(port)
        stats.received += 5  # read at scrape time: no second set of numbers to drift
        assert _scrape(port)["sensorpipe_ingest_received_total"] == 17
    finally:
        metrics.close()
    assert got["sensorpipe_ingest_received_total"] == 12
    assert got["sensorpipe_ingest_stored_messages_total"] == 9
    assert got["sensorpipe_ingest_write_retries_total"] == 2
    assert got["sensorpipe_ingest_rejected_total{reason=bad_signature}"] == 2
    assert got["sensorpipe_ingest_rejected_total{reason=too_old}"] == 1
    assert got["sensorpipe_ingest_connected"] == 1
    assert got["sensorpipe_ingest_batch_latency_seconds_count"] == 2
    assert got["sensorpipe_ingest_batch_latency_seconds_bucket{le=0.05}"] == 1


def test_the_service_measures_batches_and_writes_its_status_to_influxdb(tmp_path: Path) -> None:
    influx = FakeInflux()
    service = _service(tmp_path, influx, status_interval_s=60.0)
    assert service.process([_item("good", 1), _item("good", 2)])
    service._write_status()
    service._write_status()  # not due again yet
    status = [line for line in influx.lines if line.startswith("ingest_status,")]
    assert len(status) == 1
    assert "gateway=local" in status[0] and "worker=ingest" in status[0]
    assert "stored_messages=2i" in status[0] and "batches=1i" in status[0]
    samples = service.metrics.registry.get_sample_value(
        "sensorpipe_ingest_batch_latency_seconds_count"
    )
    assert samples == 1
