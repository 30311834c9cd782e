"""Synthetic history: days of 1-minute readings and counts from many devices, written straight
into InfluxDB as the points the ingest would have stored, so a week of a city's network loads
in seconds instead of a week.

Air devices carry an SDS011 (pm2_5, pm10) and a BME280 (temperature, relative_humidity,
pressure); counting devices count five classes in two directions. Both send a link point per
message with sequence numbers, gaps and delivery latency, like the ingest writes. Each device
has an outage (a stretch of minutes with no messages, and for counters a stretch when the
counter ran only part of each interval) so gaps and uptime below 100 % show.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.lineprotocol import FieldValue, Point, to_line
from sensorpipe.protocol import storage
from sensorpipe.protocol.counting import COUNT_CLASSES
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.provenance import EDGE, provenance_tags
from sensorpipe.protocol.registry import DEFAULT_DIRECTIONS, Registry

MINUTE_MS = 60_000
# The centre of the simulated network (Utrecht) and how far devices spread from it.
CENTRE = (52.0907, 5.1214)
SPREAD_DEG = 0.04
_CLASS_RATE = {
    "pedestrian": 6.0,
    "cyclist": 9.0,
    "car": 4.0,
    "motorcycle": 0.4,
    "heavy_vehicle": 0.3,
}


@dataclass(frozen=True)
class HistoryDevice:
    device_id: str
    site: str
    lat: float
    lon: float
    counting: bool


def history_devices(
    air: int, counting: int, *, per_site: int = 5, seed: int = 1
) -> list[HistoryDevice]:
    """`air` air-quality devices (hist-air-000, ...) and `counting` counting cameras
    (hist-count-000, ...), `per_site` to a site, placed around the centre."""
    rng = random.Random(seed)
    out = []
    for kind, n in (("air", air), ("count", counting)):
        for i in range(n):
            out.append(
                HistoryDevice(
                    device_id=f"hist-{kind}-{i:03d}",
                    site=f"{kind}-site-{i // per_site:02d}",
                    lat=CENTRE[0] + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
                    lon=CENTRE[1] + rng.uniform(-SPREAD_DEG * 1.6, SPREAD_DEG * 1.6),
                    counting=kind == "count",
                )
            )
    return out


def _outage(device: HistoryDevice, start_ms: int, end_ms: int) -> tuple[int, int]:
    """One stretch without messages: 1 % of the span, somewhere in it."""
    rng = random.Random(device.device_id)
    span = end_ms - start_ms
    length = max(MINUTE_MS, span // 100)
    begin = start_ms + int(rng.uniform(0.1, 0.8) * span)
    if length >= 3_600_000:
        # From a whole hour on, so that at least one hour has no report at all, whatever
        # minute of the hour the history ends at.
        begin -= begin % 3_600_000
    return begin, begin + length


def _link(
    device: HistoryDevice, kind: str, t: int, seq: int, gap: int, rng: random.Random
) -> Point:
    latency = int(rng.lognormvariate(5.5, 0.4))  # a few hundred milliseconds
    fields: dict[str, FieldValue] = {
        "seq": seq,
        "clock_synced": True,
        "sent_at_ms": t + 200,
        "received_at_ms": t + 200 + latency,
        "latency_ms": latency,
        "age_ms": 200 + latency,
        "redelivered": False,
        "reconnects": 0,
        "outbox_depth": 0,
        "uptime_s": float(seq * 60),
        "firmware": "sensorpipe-history",
        "backlog": False,
        "outbox_dropped": 0,
        "rssi_dbm": -60 - rng.randint(0, 20),
    }
    if gap:
        fields["seq_gap"] = gap
    tags = {
        "device_id": device.device_id,
        "site": device.site,
        **provenance_tags(EDGE),
        "kind": kind,
        "gateway": "history",
    }
    return Point(storage.LINK, tags, fields, t)


def device_points(
    device: HistoryDevice, start_ms: int, end_ms: int, *, step_ms: int = MINUTE_MS
) -> Iterator[Point]:
    """The points one device's messages from `start_ms` to `end_ms` became."""
    rng = random.Random(device.device_id + ":values")
    off_from, off_to = _outage(device, start_ms, end_ms)
    base = {"device_id": device.device_id, "site": device.site, **provenance_tags(EDGE)}
    seq = 0
    missed = 0
    level = rng.uniform(6, 14)
    t = start_ms - start_ms % step_ms
    while t < end_ms:
        seq += 1
        if off_from <= t < off_to:
            missed += 1  # the device counted on, but nothing arrived
            t += step_ms
            continue
        hour = (t / 3_600_000) % 24
        if device.counting:
            partial = off_to <= t < off_to + 30 * MINUTE_MS  # a camera that recovers slowly
            running = 0.5 if partial else 1.0
            rush = (
                1.0
                + 2.0 * math.exp(-((hour - 8) ** 2) / 2)
                + 1.5 * math.exp(-((hour - 17) ** 2) / 3)
            )
            night = 0.15 if hour < 6 or hour >= 23 else 1.0
            for cls in COUNT_CLASSES:
                for direction in DEFAULT_DIRECTIONS:
                    mean = _CLASS_RATE[cls] * rush * night * running / 2
                    count = int(rng.expovariate(1 / mean) + 0.5) if mean > 0 else 0
                    tags = {**base, "class": cls, "direction": direction}
                    yield Point(
                        storage.TRAFFIC, tags, {"count": count, "interval_s": step_ms / 1000}, t
                    )
            counter: dict[str, FieldValue] = {
                "running_fraction": running,
                "frames": int(running * step_ms / 1000 * 5),
                "model_id": "street-detector",
                "interval_s": step_ms / 1000,
            }
            yield Point(storage.COUNTER, base, counter, t)
            yield _link(device, "count", t, seq, missed, rng)
        else:
            level += rng.gauss(0, 0.3) + (10 - level) * 0.01
            pm25 = max(0.5, level * (1 + 0.4 * math.sin((hour - 7) / 24 * 2 * math.pi)))
            yield Point(
                storage.AIR,
                {**base, "sensor": "sds011"},
                {"pm2_5": round(pm25, 1), "pm10": round(pm25 * 1.6 + rng.uniform(0, 2), 1)},
                t,
            )
            temperature = 8 + 5 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.2)
            yield Point(
                storage.AIR,
                {**base, "sensor": "bme280"},
                {
                    "temperature": round(temperature, 2),
                    "relative_humidity": round(min(100.0, 80 - 2 * (temperature - 8)), 1),
                    "pressure": round(1013 + rng.gauss(0, 0.5), 1),
                },
                t,
            )
            yield _link(device, "air", t, seq, missed, rng)
        missed = 0
        t += step_ms


def register_history_devices(registry: Registry, devices: list[HistoryDevice]) -> None:
    """Add the devices to `registry` (those not there yet), with their sensors and places."""
    from sensorpipe.gateway.devices import add_device

    for d in devices:
        if d.device_id in registry.devices:
            continue
        add_device(
            registry,
            d.device_id,
            site=d.site,
            owner="sensorpipe history simulation",
            purpose=(
                "counts passers-by on a street (simulated history)"
                if d.counting
                else "PM2.5/PM10 and climate in a street (simulated history)"
            ),
            sensors=["camera"] if d.counting else ["sds011", "bme280"],
            location=Location(lat=d.lat, lon=d.lon),
        )


def write_history(
    influx: InfluxClient,
    devices: list[HistoryDevice],
    start_ms: int,
    end_ms: int,
    *,
    batch_points: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every device's history in batches of line protocol; the points written."""
    written = 0
    batch: list[str] = []
    for device in devices:
        for point in device_points(device, start_ms, end_ms):
            batch.append(to_line(point))
            if len(batch) >= batch_points:
                influx.write(batch)
                written += len(batch)
                batch = []
                if progress is not None:
                    progress(written)
    if batch:
        influx.write(batch)
        written += len(batch)
        if progress is not None:
            progress(written)
    return written
