"""What InfluxDB tells about each device, for the public register: first and last seen (of any
data stored for it: its messages, readings, counts, counter and sensor status, imported
history included), uptime,
messages missing by sequence gaps, median delivery latency, the sensors seen reporting, the
latest PM2.5, each sensor's health (ok or not, last error, since when, uptime per sensor:
sensorpipe.query.health), and per quality flag how many readings carried it in the last 7 days.

Uptime is the share of 5-minute windows with at least one message from the device, counted
from when it was first seen (or the start of the period, if later): a device that reports at
least every 5 minutes and never misses a window has 100 %.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sensorpipe.ingest.influx import InfluxClient, identifier
from sensorpipe.protocol import storage
from sensorpipe.query.health import (
    UPTIME_WINDOW_S,
    SensorState,
    health_statements,
    iso,
    sensor_health,
    window_share,
)

# Besides `link`, what holds a device's data (`imports` records files, not observations).
_DATA_MEASUREMENTS = (storage.AIR, storage.TRAFFIC, storage.COUNTER, storage.SENSOR_STATUS)
PERIODS = {"24h": 86_400, "7d": 7 * 86_400}


@dataclass
class DeviceStats:
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    # period name -> share of 5-minute windows with a message (None: not seen in the period)
    uptime: dict[str, float | None] = field(default_factory=dict)
    messages_7d: int = 0
    missing_7d: int = 0  # messages missing by sequence gaps in the last 7 days
    median_latency_ms_7d: float | None = None
    sensors: set[str] = field(default_factory=set)
    counting: bool = False
    latest_pm2_5: float | None = None
    latest_pm2_5_ms: int | None = None
    # sensor -> its health (sensorpipe.query.health): ok or not, last error, since, uptime
    health: dict[str, SensorState] = field(default_factory=dict)
    # quality flag -> how many of its readings (a value of one quantity, or a count) carried
    # it in the last 7 days (sensorpipe.quality); a flag none carried is not listed
    flagged_7d: dict[str, int] = field(default_factory=dict)

    def activity(self) -> dict[str, Any]:
        """The register's figures of the device's activity, times in ISO 8601 (the API's
        device list and `devices export` alike)."""
        return {
            "first_seen": iso(self.first_seen_ms),
            "last_seen": iso(self.last_seen_ms),
            "uptime_24h": self.uptime.get("24h"),
            "uptime_7d": self.uptime.get("7d"),
            "messages_7d": self.messages_7d,
            "missing_7d": self.missing_7d,
            "median_latency_ms_7d": self.median_latency_ms_7d,
            "flagged_7d": dict(sorted(self.flagged_7d.items())),
        }


@dataclass
class RegisterStats:
    devices: dict[str, DeviceStats]
    computed_at_ms: int

    def of(self, device_id: str) -> DeviceStats:
        return self.devices.get(device_id) or DeviceStats()


def _by_device(series: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The first row of each device's series."""
    out: dict[str, list[Any]] = {}
    for s in series:
        device = (s.get("tags") or {}).get("device_id")
        if device and s.get("values"):
            out[device] = s["values"][0]
    return out


def _series_tags(key: str) -> dict[str, str]:
    """Tags of a series key as SHOW SERIES writes it: `air,device_id=a,sensor=b,site=c`."""
    parts: list[str] = []
    current = ""
    escaped = False
    for ch in key:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return dict(p.split("=", 1) for p in parts[1:] if "=" in p)


def register_stats(influx: InfluxClient, *, now_ms: int | None = None) -> RegisterStats:
    """Every device's statistics, from a handful of queries that run side by side."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    link = identifier(storage.LINK)
    window = f"{UPTIME_WINDOW_S}s"
    statements: dict[str, str] = {
        "first": f"SELECT first(seq) FROM {link} GROUP BY device_id",
        "last": f"SELECT last(seq) FROM {link} GROUP BY device_id",
        "week": (
            f"SELECT count(seq), sum(seq_gap), median(latency_ms) FROM {link} "
            f"WHERE time > {now_ms}ms - 7d AND time <= {now_ms}ms GROUP BY device_id"
        ),
        "air_series": f"SHOW SERIES FROM {identifier(storage.AIR)}",
        "counters": f"SHOW TAG VALUES FROM {identifier(storage.COUNTER)} WITH KEY = device_id",
        "pm": (
            f"SELECT last(pm2_5) FROM {identifier(storage.AIR)} "
            f"WHERE time > {now_ms}ms - 7d AND time <= {now_ms}ms GROUP BY device_id"
        ),
    }
    # First and last seen are of any data stored for the device, not only its live messages: a
    # device whose history was imported has no `link` points at all. One point per device and
    # end, from each measurement that holds a device's data.
    for measurement in _DATA_MEASUREMENTS:
        m = identifier(measurement)
        for end, order in (("first", "ASC"), ("last", "DESC")):
            statements[f"{end}_{measurement}"] = (
                f"SELECT * FROM {m} GROUP BY device_id ORDER BY time {order} LIMIT 1"
            )
    for name, seconds in PERIODS.items():
        statements[f"up_{name}"] = (
            f"SELECT count(n) FROM (SELECT count(seq) AS n FROM {link} "
            f"WHERE time > {now_ms}ms - {seconds}s AND time <= {now_ms}ms "
            f"GROUP BY time({window}), device_id fill(none)) GROUP BY device_id"
        )
    statements.update(health_statements(now_ms, PERIODS))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(influx.query, q) for k, q in statements.items()}
        results = {k: f.result() for k, f in futures.items()}

    devices: dict[str, DeviceStats] = {}

    def get(device: str) -> DeviceStats:
        return devices.setdefault(device, DeviceStats())

    # Uptime counts windows with a message from the first message on (not from imported data).
    first_message_ms: dict[str, int] = {}
    for device, row in _by_device(results["first"]).items():
        get(device).first_seen_ms = first_message_ms[device] = int(row[0])
    for device, row in _by_device(results["last"]).items():
        get(device).last_seen_ms = int(row[0])
    for measurement in _DATA_MEASUREMENTS:
        for device, row in _by_device(results[f"first_{measurement}"]).items():
            d = get(device)
            t = int(row[0])
            d.first_seen_ms = t if d.first_seen_ms is None else min(d.first_seen_ms, t)
        for device, row in _by_device(results[f"last_{measurement}"]).items():
            d = get(device)
            t = int(row[0])
            d.last_seen_ms = t if d.last_seen_ms is None else max(d.last_seen_ms, t)
    for device, row in _by_device(results["week"]).items():
        d = get(device)
        d.messages_7d = int(row[1] or 0)
        d.missing_7d = int(row[2] or 0)
        d.median_latency_ms_7d = float(row[3]) if row[3] is not None else None
    for s in results["air_series"]:
        for (key,) in s.get("values") or []:
            tags = _series_tags(str(key))
            if "device_id" in tags and "sensor" in tags:
                get(tags["device_id"]).sensors.add(tags["sensor"])
    for s in results["counters"]:
        for _, device in s.get("values") or []:
            get(str(device)).counting = True
    for device, row in _by_device(results["pm"]).items():
        d = get(device)
        d.latest_pm2_5_ms = int(row[0])
        d.latest_pm2_5 = float(row[1]) if row[1] is not None else None
    for name, seconds in PERIODS.items():
        up = _by_device(results[f"up_{name}"])
        for device, d in devices.items():
            windows = int(up[device][1]) if device in up and up[device][1] is not None else 0
            d.uptime[name] = window_share(windows, first_message_ms.get(device), now_ms, seconds)
    health = sensor_health(
        results,
        influx.query,
        now_ms=now_ms,
        periods=PERIODS,
        first_message_ms=first_message_ms,
        sensors_seen={device: d.sensors for device, d in devices.items()},
    )
    for device, sensors in health.items():
        get(device).health = sensors
    for device, counts in flag_counts(influx, now_ms, PERIODS["7d"]).items():
        get(device).flagged_7d = counts
    return RegisterStats(devices, now_ms)


def flag_counts(influx: InfluxClient, now_ms: int, seconds: int) -> dict[str, dict[str, int]]:
    """Per device and quality flag, the readings that carried it in the `seconds` before
    `now_ms`: over every `qc_<quantity>` field of `air` and `qc_count` of `traffic` (a value
    with two flags counts for each). One query per field and flag, side by side; fields that
    InfluxDB holds none of are not asked."""
    from sensorpipe.quality.flags import ALL_FLAGS
    from sensorpipe.query.flagged import QC_PREFIX, FlagFilter

    statements = []
    for measurement in (storage.AIR, storage.TRAFFIC):
        m = identifier(measurement)
        for s in influx.query(f"SHOW FIELD KEYS FROM {m}"):
            for row in s.get("values") or []:
                name = str(row[0])
                if not name.startswith(QC_PREFIX):
                    continue
                for flag in ALL_FLAGS:
                    condition = FlagFilter("include", (flag,)).condition(name[len(QC_PREFIX) :])
                    statements.append(
                        (
                            flag,
                            f"SELECT count({identifier(name)}) FROM {m} WHERE time > "
                            f"{now_ms}ms - {seconds}s AND time <= {now_ms}ms AND {condition} "
                            f"GROUP BY device_id",
                        )
                    )
    counts: dict[str, dict[str, int]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = [(flag, pool.submit(influx.query, q)) for flag, q in statements]
        for flag, answer in answers:
            for device, row in _by_device(answer.result()).items():
                if row[1]:
                    per_flag = counts.setdefault(device, {})
                    per_flag[flag] = per_flag.get(flag, 0) + int(row[1])
    return counts


def sources_seen(influx: InfluxClient) -> dict[str, list[str]]:
    """For each device, the provenance (`source` tag) of the data stored for it: a kit's own
    readings and its imported archive are both listed."""
    from sensorpipe.protocol.provenance import SOURCE_TAG

    seen: dict[str, set[str]] = {}
    for measurement in (storage.AIR, storage.TRAFFIC, storage.SENSOR_STATUS):
        q = f"SHOW SERIES FROM {identifier(measurement)} LIMIT 100000"
        for s in influx.query(q):
            for (key,) in s.get("values") or []:
                tags = _series_tags(str(key))
                device = tags.get("device_id")
                if device:
                    # Points stored before provenance tags existed came from edge devices.
                    seen.setdefault(device, set()).add(tags.get(SOURCE_TAG, "edge"))
    return {device: sorted(sources) for device, sources in seen.items()}
