"""Each device's sensors' health, from what InfluxDB holds: the newest `sensor_status` point of
each sensor (ok or not, the last error), since when it has been so, and its uptime.

"Since" is the time of the first status point of the current run: a sensor whose newest
status says not ok, and whose last ok status was at T, is not ok since its first not-ok status
after T (since its first status at all, if it was never ok).

A sensor's uptime is counted like the device's (sensorpipe.query.register): the share of
5-minute windows with at least one reading of that sensor, from the device's first message (or
the period's start, if later). A sensor that never delivered a reading has 0 %: the device may
report every window with its other sensor, and still miss all of this one's. A reading is
counted by the field a known model always reports (PM2.5 for a particle sensor, temperature for
a BME280); for a model sensorpipe does not know, by its most-reported field.

The newest status point also says how often each kind of fault happened since the agent last
started (`errors`: checksum, timeout, io, out_of_range, not_available, ...) and how far apart
the agent now tries a sensor that keeps failing (`backoff_s`).

Every place that shows a device (the CLI's `devices list` and `stack status`, /api/v1/devices,
SensorThings, the dashboard) takes its sensors' health from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sensorpipe.protocol import storage
from sensorpipe.protocol.register import LASER_LIFE_H, SENSOR_QUANTITIES
from sensorpipe.protocol.registry import sensor_model

UPTIME_WINDOW_S = 300
NO_DATA_YET = "registered, no data yet"

Query = Callable[[str], list[dict[str, Any]]]


@dataclass
class SensorState:
    sensor: str
    ok: bool | None = None  # None: no status reported, only readings seen
    last_error: str | None = None  # the newest error the device reported for this sensor
    last_error_ms: int | None = None
    since_ms: int | None = None  # since when `ok` has been what it is
    reported_ms: int | None = None  # the newest status point
    # period name -> share of 5-minute windows with a reading of this sensor
    uptime: dict[str, float | None] = field(default_factory=dict)
    laser_hours: float | None = None  # a laser PM sensor's running hours, as last reported
    # From the newest status: faults by kind since the agent started, and the back-off.
    errors: dict[str, int] = field(default_factory=dict)
    backoff_s: float | None = None

    def note(self) -> str | None:
        """One line for a sensor that is not ok, e.g. `bme280 not ok since 2026-12-06 10:42
        UTC: bme280: no answer at 0x76 (errors: 12 io; tried every 10 min)`; None for a sensor
        that is ok (or never reported)."""
        if self.ok is not False:
            return None
        since = f" since {_hhmm(self.since_ms)}" if self.since_ms is not None else ""
        error = f": {self.last_error}" if self.last_error else ""
        counts = self.errors_text()
        tail = [f"errors: {counts}"] if counts else []
        if self.backoff_s:
            tail.append(f"tried every {_duration(self.backoff_s)}")
        more = f" ({'; '.join(tail)})" if tail else ""
        return f"{self.sensor} not ok{since}{error}{more}"

    def errors_text(self) -> str:
        """The faults by kind, most frequent first, e.g. `340 checksum, 2 timeout`."""
        ranked = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in ranked if n)

    def as_json(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "ok": self.ok,
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_ms),
            "since": iso(self.since_ms),
            "reported_at": iso(self.reported_ms),
            "uptime_24h": self.uptime.get("24h"),
            "uptime_7d": self.uptime.get("7d"),
            "laser_hours": self.laser_hours,
            "laser_life_h": (
                LASER_LIFE_H.get(sensor_model(self.sensor))
                if self.laser_hours is not None
                else None
            ),
            "errors": dict(self.errors),
            "backoff_s": self.backoff_s,
        }


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def not_ok_notes(health: Mapping[str, SensorState]) -> list[str]:
    """The notes of a device's sensors that are not ok, by sensor name."""
    return [n for _, s in sorted(health.items()) if (n := s.note()) is not None]


def window_share(windows: int, first_ms: int | None, now_ms: int, seconds: int) -> float | None:
    """The share of the 5-minute windows a device could have reported in during the last
    `seconds` (from its first message, or the period's start, if later) that `windows` is.
    None: the device has sent no message."""
    if first_ms is None:
        return None
    if windows == 0:
        return 0.0
    start_ms = max(first_ms, now_ms - seconds * 1000)
    possible = math.ceil((now_ms - start_ms) / (UPTIME_WINDOW_S * 1000)) or 1
    if start_ms > now_ms - seconds * 1000:
        # The window of the first message counted whole.
        aligned = start_ms - start_ms % (UPTIME_WINDOW_S * 1000)
        possible = math.ceil((now_ms - aligned) / (UPTIME_WINDOW_S * 1000)) or 1
    return min(1.0, windows / possible)


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def health_statements(now_ms: int, periods: Mapping[str, int]) -> dict[str, str]:
    """The queries sensor_health needs, to be run side by side with the register's."""
    status = _ident(storage.SENSOR_STATUS)
    air = _ident(storage.AIR)
    by = "GROUP BY device_id, sensor"
    out = {
        "h_newest": f"SELECT last(ok) FROM {status} {by}",
        "h_error": f"SELECT last(last_error) FROM {status} {by}",
        "h_laser": f"SELECT last(laser_hours) FROM {status} {by}",
    }
    for value in ("true", "false"):
        out[f"h_first_{value}"] = f"SELECT first(ok) FROM {status} WHERE ok = {value} {by}"
        out[f"h_last_{value}"] = f"SELECT last(ok) FROM {status} WHERE ok = {value} {by}"
    out["h_fields"] = f"SHOW FIELD KEYS FROM {air}"
    # The newest status point whole: its fault counts and back-off.
    out["h_counts"] = f"SELECT * FROM {status} {by} ORDER BY time DESC LIMIT 1"
    return out


def _counts(series: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[dict[str, int], float]]:
    """(device, sensor) -> its newest status's faults by kind, and its back-off (0: none)."""
    out: dict[tuple[str, str], tuple[dict[str, int], float]] = {}
    for s in series:
        tags = s.get("tags") or {}
        device, sensor = tags.get("device_id"), tags.get("sensor")
        columns, values = s.get("columns") or [], s.get("values") or []
        if not (device and sensor and values):
            continue
        row = dict(zip(columns, values[0], strict=False))
        errors = {
            name.removeprefix(storage.ERRORS_PREFIX): int(value)
            for name, value in row.items()
            if name.startswith(storage.ERRORS_PREFIX) and isinstance(value, int | float)
        }
        backoff = row.get("backoff_s")
        out[(device, sensor)] = (
            errors,
            float(backoff) if isinstance(backoff, int | float) else 0.0,
        )
    return out


def _rows(series: list[dict[str, Any]]) -> dict[tuple[str, str], list[Any]]:
    """The first row of each (device, sensor) series."""
    out: dict[tuple[str, str], list[Any]] = {}
    for s in series:
        tags = s.get("tags") or {}
        device, sensor = tags.get("device_id"), tags.get("sensor")
        if device and sensor and s.get("values"):
            out[(device, sensor)] = s["values"][0]
    return out


def sensor_health(
    results: Mapping[str, list[dict[str, Any]]],
    query: Query,
    *,
    now_ms: int,
    periods: Mapping[str, int],
    first_message_ms: Mapping[str, int],
    sensors_seen: Mapping[str, set[str]],
) -> dict[str, dict[str, SensorState]]:
    """device -> sensor -> its health, from the answers to health_statements (`results`);
    `query` answers the few follow-up queries for sensors whose state changed over time."""
    states: dict[str, dict[str, SensorState]] = {}

    def get(device: str, sensor: str) -> SensorState:
        return states.setdefault(device, {}).setdefault(sensor, SensorState(sensor))

    for device, seen in sensors_seen.items():
        for sensor in seen:
            get(device, sensor)
    firsts = {v: _rows(results[f"h_first_{v}"]) for v in ("true", "false")}
    lasts = {v: _rows(results[f"h_last_{v}"]) for v in ("true", "false")}
    for (device, sensor), row in _rows(results["h_newest"]).items():
        s = get(device, sensor)
        s.reported_ms = int(row[0])
        s.ok = bool(row[1])
        now_v, other_v = ("true", "false") if s.ok else ("false", "true")
        first = firsts[now_v].get((device, sensor))
        other_last = lasts[other_v].get((device, sensor))
        if other_last is None or (first is not None and int(first[0]) > int(other_last[0])):
            s.since_ms = int(first[0]) if first is not None else s.reported_ms
            continue
        # The state changed: since its first status after the newest one of the other state.
        answer = query(
            f"SELECT first(ok) FROM {_ident(storage.SENSOR_STATUS)} "
            f"WHERE device_id = {_literal(device)} AND sensor = {_literal(sensor)} "
            f"AND ok = {now_v} AND time > {int(other_last[0])}ms"
        )
        found = _rows(answer).get((device, sensor))
        if found is None and answer and answer[0].get("values"):
            found = answer[0]["values"][0]
        s.since_ms = int(found[0]) if found is not None else s.reported_ms
    for (device, sensor), row in _rows(results.get("h_laser", [])).items():
        if row[1] is not None:
            get(device, sensor).laser_hours = float(row[1])
    for (device, sensor), (errors, backoff_s) in _counts(results.get("h_counts", [])).items():
        s = get(device, sensor)
        s.errors = errors
        s.backoff_s = backoff_s
    for (device, sensor), row in _rows(results["h_error"]).items():
        s = get(device, sensor)
        s.last_error_ms = int(row[0])
        s.last_error = str(row[1]) if row[1] is not None else None
    # Windows with a reading, counted on one field per sensor: the one a known model always
    # reports (its PM2.5, its temperature); for a model sensorpipe does not know, every field,
    # the most-reported one counting. One field is far cheaper for InfluxDB than all of them.
    all_fields = [
        str(row[0])
        for series in results["h_fields"]
        for row in series.get("values") or []
        if row[0] not in _POSITION_FIELDS
    ]
    models = {sensor for seen in sensors_seen.values() for sensor in seen}
    mains = {m: main for m in models if (main := _main_field(m)) is not None}
    fields = sorted(set(mains.values()) | (set(all_fields) if len(mains) < len(models) else set()))
    statements = {
        (name, f): (
            f"SELECT count(n) FROM (SELECT count({_ident(f)}) AS n FROM {_ident(storage.AIR)} "
            f"WHERE time > {now_ms}ms - {seconds}s AND time <= {now_ms}ms "
            f"GROUP BY time({UPTIME_WINDOW_S}s), device_id, sensor fill(none)) "
            f"GROUP BY device_id, sensor"
        )
        for name, seconds in periods.items()
        for f in fields
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(query, q) for k, q in statements.items()}
        counted = {k: _rows(f.result()) for k, f in futures.items()}
    for name, seconds in periods.items():
        for device, of_device in states.items():
            for sensor, s in of_device.items():
                main = _main_field(sensor)
                windows = max(
                    (
                        int(found[1] or 0)
                        for f in ([main] if main else fields)
                        if (found := counted.get((name, f), {}).get((device, sensor)))
                    ),
                    default=0,
                )
                s.uptime[name] = window_share(
                    windows, first_message_ms.get(device), now_ms, seconds
                )
    return states


_POSITION_FIELDS = frozenset({"lat", "lon"})


# Sensor models that measure one of their table's quantities, whichever their configuration
# names (a DS18B20 probe buried for soil_temperature, or in the air for temperature).
ONE_OF_QUANTITIES = frozenset({"ds18b20"})


def _main_field(model: str) -> str | None:
    """The field a reading of a known sensor model always has; None for an unknown model or
    one whose quantity its configuration chooses (a tag `<model>.<name>`: its model's)."""
    model = sensor_model(model)
    quantities = SENSOR_QUANTITIES.get(model)
    if not quantities or model in ONE_OF_QUANTITIES:
        return None
    return "pm2_5" if "pm2_5" in quantities else quantities[0]
