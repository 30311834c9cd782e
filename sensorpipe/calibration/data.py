"""What a fit reads from InfluxDB: each device's hourly means and counts of a quantity and of
relative humidity, the readings' times (for the median interval), its sensor model, and the
reference's hourly values (`training_pairs` for a fit, `group_inputs` for a group calibration).
Only the fields needed are selected, by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sensorpipe.calibration.group import GroupHours
from sensorpipe.calibration.methods import CalibrationError
from sensorpipe.calibration.pairing import (
    Pairs,
    median_interval_ms,
    minimum_count,
    pair_hours,
)
from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage

RH = "relative_humidity"
# How many of a device's first readings its median interval is taken from.
INTERVAL_SAMPLE = 10_000


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass
class Window:
    start_ms: int
    end_ms: int

    def where(self, device: str) -> str:
        return (
            f"{identifier('device_id')} = {string_literal(device)} "
            f"AND time >= {self.start_ms}ms AND time < {self.end_ms}ms"
        )


def reference_window(
    influx: InfluxClient,
    reference: str,
    quantity: str,
    start: datetime | None,
    end: datetime | None,
) -> Window:
    """The period to fit on: --from/--to, or where not given the reference's first and last
    hour of `quantity`."""
    first_ms = _first_time(influx, reference, quantity, "ASC")
    last_ms = _first_time(influx, reference, quantity, "DESC")
    if first_ms is None or last_ms is None:
        raise CalibrationError(
            f"reference {reference!r}: InfluxDB holds no {quantity} of it; import it first "
            "(`sensorpipe import reference ...`) or check the device id"
        )
    return Window(
        _ms(start) if start else first_ms,
        _ms(end) if end else last_ms + 3_600_000,
    )


def _first_time(influx: InfluxClient, device: str, quantity: str, order: str) -> int | None:
    where = f"{identifier('device_id')} = {string_literal(device)}"
    series = influx.query(
        # Only rows with the field are answered when it alone is selected.
        f"SELECT {identifier(quantity)} FROM {identifier(storage.AIR)} WHERE {where} "
        f"ORDER BY time {order} LIMIT 1"
    )
    values = series[0]["values"] if series else []
    return int(values[0][0]) if values else None


def hourly(
    influx: InfluxClient, device: str, field: str, window: Window
) -> dict[int, tuple[float, int]]:
    """Hour (ms, its start) -> (mean, count) of `field` of `device`."""
    series = influx.query(
        f"SELECT mean({identifier(field)}), count({identifier(field)}) "
        f"FROM {identifier(storage.AIR)} WHERE {window.where(device)} "
        "GROUP BY time(1h) fill(none)"
    )
    return {
        int(t): (float(mean), int(count))
        for s in series
        for t, mean, count in s["values"]
        if mean is not None
    }


def reading_times(influx: InfluxClient, device: str, field: str, window: Window) -> list[int]:
    series = influx.query(
        f"SELECT {identifier(field)} FROM {identifier(storage.AIR)} WHERE {window.where(device)} "
        f"LIMIT {INTERVAL_SAMPLE}"
    )
    return [int(row[0]) for s in series for row in s["values"]]


def sensor_models(influx: InfluxClient, device: str, field: str, window: Window) -> list[str]:
    """The sensor models whose readings of `field` the device holds in the window."""
    series = influx.query(
        f"SELECT count({identifier(field)}) FROM {identifier(storage.AIR)} "
        f"WHERE {window.where(device)} GROUP BY {identifier('sensor')}"
    )
    return sorted((s.get("tags") or {}).get("sensor", "") for s in series if s["values"][0][1])


@dataclass
class Training:
    pairs: Pairs
    sensor_model: str
    needed: dict[str, int]  # per device: the readings an hour needs to count
    window: Window


def training_pairs(
    influx: InfluxClient,
    devices: Sequence[str],
    reference: str,
    quantity: str,
    start: datetime | None,
    end: datetime | None,
) -> Training:
    """The hourly pairs of every device against the reference."""
    window = reference_window(influx, reference, quantity, start, end)
    ref_hours = {h: v for h, (v, _) in hourly(influx, reference, quantity, window).items()}
    ref_rh = {h: v for h, (v, _) in hourly(influx, reference, RH, window).items()}
    pairs = Pairs()
    models: dict[str, list[str]] = {}
    needed: dict[str, int] = {}
    for device in devices:
        models[device] = sensor_models(influx, device, quantity, window)
        if not models[device]:
            raise CalibrationError(
                f"device {device!r}: InfluxDB holds no {quantity} of it in the period "
                f"{_iso(window.start_ms)} .. {_iso(window.end_ms)}; check the id, --from and --to"
            )
        needed[device] = minimum_count(
            median_interval_ms(reading_times(influx, device, quantity, window))
        )
        device_rh = {h: v for h, (v, _) in hourly(influx, device, RH, window).items()}
        pairs.extend(
            pair_hours(
                device,
                hourly(influx, device, quantity, window),
                needed[device],
                ref_hours,
                device_rh,
                ref_rh,
            )
        )
    distinct = sorted({m for ms in models.values() for m in ms})
    if len(distinct) != 1:
        listed = "; ".join(f"{d}: {', '.join(m)}" for d, m in models.items())
        raise CalibrationError(
            f"the devices report {quantity} from {len(distinct)} sensor models ({listed}): "
            "a calibration is for one model; fit each model on its own"
        )
    return Training(pairs, distinct[0], needed, window)


def _iso(ms: int) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def complete_hours(
    influx: InfluxClient, device: str, field: str, window: Window
) -> tuple[dict[int, float], int]:
    """The device's hourly means of `field` with at least the readings its median interval
    says an hour needs (as a fit counts them), and that number."""
    needed = minimum_count(median_interval_ms(reading_times(influx, device, field, window)))
    means = {h: m for h, (m, n) in hourly(influx, device, field, window).items() if n >= needed}
    return means, needed


@dataclass
class GroupInputs(GroupHours):
    """What a group calibration reads (`GroupHours`), with the members' sensor model and the
    readings an hour needs per member."""

    sensor_model: str = ""
    needed: dict[str, int] = field(default_factory=dict)


def group_inputs(
    influx: InfluxClient,
    devices: Sequence[str],
    reference: str,
    quantity: str,
    window: Window,
    *,
    require_all: bool = True,
) -> GroupInputs:
    """The group's and the station's hours in `window`; all members must report `quantity`
    from one sensor model. With `require_all` false (an update), a member without readings
    in the window is no error: it has no hours."""
    models = {d: sensor_models(influx, d, quantity, window) for d in devices}
    missing = [d for d, m in models.items() if not m]
    if missing and require_all:
        raise CalibrationError(
            f"device {missing[0]!r}: InfluxDB holds no {quantity} of it in the period "
            f"{_iso(window.start_ms)} .. {_iso(window.end_ms)}; check the id, --from and --to"
        )
    distinct = sorted({m for ms in models.values() for m in ms})
    if len(distinct) > 1 or (require_all and not distinct):
        listed = "; ".join(f"{d}: {', '.join(m)}" for d, m in models.items())
        raise CalibrationError(
            f"the group's devices report {quantity} from {len(distinct)} sensor models "
            f"({listed}): a group is of one model; give --device or --sensor"
        )
    members: dict[str, dict[int, float]] = {}
    needed: dict[str, int] = {}
    for device in devices:
        members[device], needed[device] = complete_hours(influx, device, quantity, window)
    return GroupInputs(
        members=members,
        reference={h: v for h, (v, _) in hourly(influx, reference, quantity, window).items()},
        station_rh={h: v for h, (v, _) in hourly(influx, reference, RH, window).items()},
        member_rh={
            d: {h: v for h, (v, _) in hourly(influx, d, RH, window).items()} for d in devices
        },
        sensor_model=distinct[0] if distinct else "",
        needed=needed,
    )
