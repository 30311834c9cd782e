"""Turns a validated message plus what the ingest observed into InfluxDB points.

With a `QualityChecker` (quality.checker), each air point also carries its quality flags: the
field `qc` (the check set's version) and `qc_<quantity>` where a flag is raised. What the
checker is told comes from the message: the relative humidity of the same message (its first
`relative_humidity` reading, whichever sensor gave it), the device's uptime when it took the
reading (`link.uptime_s` less the time from observation to sending; unknown for a reading
older than the uptime, taken before the last restart, and for kits, whose firmware sends
none) and whether its clock was synchronised. A kit (`link.kit`) has no clock of its own: its
time is the gateway's receive time or the network's (`kit.time_source`), not an
unsynchronised clock, so its readings are not flagged `clock`. Counts (`traffic` points) are
flagged too (`qc_count`: stuck, clock), an interval the counter did not run judged by none.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import cast

from sensorpipe.ingest.lineprotocol import FieldValue, Point
from sensorpipe.ingest.validate import epoch_ms
from sensorpipe.protocol import storage
from sensorpipe.protocol.messages import AirMessage, AnyMessage, CountMessage
from sensorpipe.protocol.provenance import EDGE, provenance_tags
from sensorpipe.quality.checker import QualityChecker, qc_fields
from sensorpipe.quality.flags import QC_VERSION


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the pipeline observed about one message."""

    gateway: str
    received_at_ms: int
    redelivered: bool
    seq_gap: int | None  # None: not known here (no earlier message seen, or a shared stream)
    # False for a message the ingest has seen before (a redelivery or a replay): its points
    # then leave out what only the first delivery can tell (receive time, latency, gap), and
    # InfluxDB keeps the first delivery's values, since a point written again with fewer
    # fields keeps the fields it leaves out.
    first_delivery: bool = True


def message_points(
    message: AnyMessage,
    site: str,
    receipt: Receipt,
    source: str = EDGE,
    quality: QualityChecker | None = None,
) -> list[Point]:
    """The points of `message` from a device registered with `source` (its provenance); air
    points flagged by `quality` where one is given."""
    t = epoch_ms(message.observed_at)
    base = {"device_id": message.device_id, "site": site, **provenance_tags(source)}
    points: list[Point] = []
    if isinstance(message, AirMessage):
        by_sensor: dict[str, dict[str, FieldValue]] = defaultdict(dict)
        for r in message.readings:
            by_sensor[r.sensor][r.quantity] = float(r.value)
        if quality is not None:
            _flag(quality, message, t, by_sensor)
        for sensor, fields in by_sensor.items():
            if message.location is not None:
                fields["lat"] = message.location.lat
                fields["lon"] = message.location.lon
            points.append(Point(storage.AIR, {**base, "sensor": sensor}, fields, t))
    elif isinstance(message, CountMessage):
        interval_s = (message.interval_end - message.observed_at).total_seconds()
        synced = message.clock_synced if message.link.kit is None else None
        for c in message.counts:
            tags = {**base, "class": c.count_class, "direction": c.direction}
            counted: dict[str, FieldValue] = {"count": c.count, "interval_s": interval_s}
            if quality is not None:
                flagged = quality.flag_count(
                    message.device_id,
                    c.count_class,
                    c.direction,
                    t,
                    interval_s,
                    c.count,
                    running_fraction=message.running_fraction,
                    clock_synced=synced,
                )
                if flagged:
                    counted["qc_count"] = flagged
                counted["qc"] = QC_VERSION
            points.append(Point(storage.TRAFFIC, tags, counted, t))
        counter: dict[str, FieldValue] = {
            "running_fraction": message.running_fraction,
            "frames": message.frames,
            "model_id": message.model_id,
            "interval_s": interval_s,
        }
        points.append(Point(storage.COUNTER, base, counter, t))
    else:
        for h in message.sensors:
            status: dict[str, FieldValue] = {
                "ok": h.ok,
                "reads_ok": h.reads_ok,
                "reads_failed": h.reads_failed,
                "frames_bad": h.frames_bad,
                "values_rejected": h.values_rejected,
            }
            if h.last_error:
                status["last_error"] = h.last_error
            if h.laser_hours is not None:
                status["laser_hours"] = h.laser_hours
            # Faults by kind, one integer field each (sensorpipe.query.health reads them back).
            for kind, n in h.errors.items():
                status[f"{storage.ERRORS_PREFIX}{kind}"] = n
            if h.backoff_s:
                status["backoff_s"] = float(h.backoff_s)
            points.append(Point(storage.SENSOR_STATUS, {**base, "sensor": h.sensor}, status, t))
    points.append(_link_point(message, base, receipt, t))
    return points


def _flag(
    quality: QualityChecker,
    message: AirMessage,
    t: int,
    by_sensor: dict[str, dict[str, FieldValue]],
) -> None:
    """Add each sensor's quality fields to its fields (still only its readings)."""
    humidity = next((r.value for r in message.readings if r.quantity == "relative_humidity"), None)
    uptime_s: float | None = None
    clock_synced: bool | None = None
    if message.link.kit is None:
        uptime_s = message.link.uptime_s - (message.sent_at - message.observed_at).total_seconds()
        if uptime_s < 0:  # taken before the device last started
            uptime_s = None
        clock_synced = message.clock_synced
    for sensor, fields in by_sensor.items():
        flagged = quality.flag(
            message.device_id,
            sensor,
            t,
            cast("dict[str, float]", fields).items(),  # only its readings, so far
            humidity=humidity,
            uptime_s=uptime_s,
            clock_synced=clock_synced,
        )
        if flagged:
            fields.update(qc_fields(flagged))
        fields["qc"] = QC_VERSION


def _link_point(message: AnyMessage, base: dict[str, str], receipt: Receipt, t: int) -> Point:
    link = message.link
    sent_ms = epoch_ms(message.sent_at)
    fields: dict[str, FieldValue] = {
        "seq": message.seq,
        "clock_synced": message.clock_synced,
        "sent_at_ms": sent_ms,
        "redelivered": receipt.redelivered or not receipt.first_delivery,
        "reconnects": link.reconnects,
        "outbox_depth": link.outbox_depth,
        "uptime_s": float(link.uptime_s),
        "firmware": link.firmware,
        "backlog": link.backlog,
        "outbox_dropped": link.outbox_dropped,
    }
    if link.rssi_dbm is not None:
        fields["rssi_dbm"] = link.rssi_dbm
    if message.vouched_by is not None:
        fields["vouched_by"] = message.vouched_by
    if link.kit is not None:
        for key, value in link.kit.model_dump(exclude_none=True).items():
            if key == "gateway_ids":
                if value:
                    fields[key] = ",".join(value)
            else:
                fields[key] = value
    if receipt.first_delivery:
        fields["received_at_ms"] = receipt.received_at_ms
        fields["latency_ms"] = receipt.received_at_ms - sent_ms
        fields["age_ms"] = receipt.received_at_ms - t
        if receipt.seq_gap is not None:
            fields["seq_gap"] = receipt.seq_gap
    tags = {**base, "kind": message.kind, "gateway": receipt.gateway}
    return Point(storage.LINK, tags, fields, t)
