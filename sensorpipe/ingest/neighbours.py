"""The neighbour outlier over stored data: hourly means read from InfluxDB, judged
(`quality.neighbours`), and the flag `neighbour` merged into the outliers' readings.

A device's hour that is an outlier gets `neighbour` on every reading of that hour of the
quantity (those with a value), in its stored `qc_<quantity>` field: InfluxDB 1.x keeps a point
per measurement, tag set and time, and a write of that point with one field updates that field
alone, so the raw values and the other fields stay as they are. The field is read first and the
flag merged into the flags already there (`fog,humidity` -> `fog,humidity,neighbour`); a
reading that has it already is not written again. So a run is idempotent: the means come from
the raw values, which it never changes, and a second run finds every flag in place. Every
reader of the flags (query air, /api/v1/air, SensorThings' resultQuality, flagged_7d, the
dashboard) sees it as it sees the others. `qc` (the version of the checks applied as a point
was stored) is left as it is. A flag once written is not withdrawn by a later run.

Hours are UTC clock hours (InfluxDB's `GROUP BY time(1h)`), read a day at a time.
`NeighbourSchedule` is the job the ingest's schedule runs (`ingest.schedule`, the timer thread
it shares with the group calibrations' update; `[quality.neighbours]` of ingest.toml);
`sensorpipe quality neighbours` over any period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol import storage
from sensorpipe.protocol.registry import Registry, load_registry
from sensorpipe.quality import flags as F
from sensorpipe.quality.config import QualityConfig
from sensorpipe.quality.neighbours import Place, Verdicts, judge, neighbourhoods

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WRITE_BATCH = 5000
QC_PREFIX = "qc_"


def places_of(registry: Registry) -> dict[str, Place]:
    """The devices with a registered location; reference stations (source reference) marked."""
    return {
        device: Place(e.location.lat, e.location.lon, reference=e.source == "reference")
        for device, e in registry.devices.items()
        if e.location is not None
    }


@dataclass
class NeighbourRun:
    """What one run did: its verdicts, and the readings it flagged."""

    verdicts: Verdicts = field(default_factory=Verdicts)
    readings_flagged: int = 0  # readings given the flag now
    readings_already: int = 0  # readings of an outlier hour that had it already

    def lines(self, config: QualityConfig) -> list[str]:
        """The summary in words, for the command's output and the ingest's log."""
        n = config.neighbours
        v = self.verdicts
        out = [
            f"hours checked: {len(v.hours)}; devices judged: {len(v.devices)}; device-hours "
            f"judged: {v.judged}; outliers: {len(v.outliers)} device-hours, "
            f"{self.readings_flagged} readings flagged now ({self.readings_already} had the "
            f"flag already)"
        ]
        if v.too_few:
            devices = ", ".join(sorted(v.too_few_devices)[:10])
            more = f" and {len(v.too_few_devices) - 10} more" if len(v.too_few_devices) > 10 else ""
            out.append(
                f"not judged, too few neighbours: {v.too_few} device-hours with fewer than "
                f"{n.min_neighbours} neighbours within {n.radius_m:g} m ({devices}{more})"
            )
        if v.no_spread:
            out.append(
                f"not judged, neighbours all equal: {v.no_spread} device-hours (no min_scale "
                f"for the quantity)"
            )
        if v.no_location:
            out.append(
                f"not judged, no registered location: {', '.join(sorted(v.no_location)[:10])}"
            )
        if v.references:
            out.append(
                f"reference stations (neighbours, never flagged): {', '.join(sorted(v.references))}"
            )
        return out


def hourly_means(
    influx: InfluxClient, quantities: list[str], t0_ms: int, t1_ms: int
) -> dict[tuple[str, int], dict[tuple[str, str], float]]:
    """Per (quantity, hour): each (device, sensor)'s mean of the hour's raw readings."""
    select = ", ".join(f"mean({identifier(q)}) AS {identifier(q)}" for q in quantities)
    series = influx.query(
        f"SELECT {select} FROM {identifier(storage.AIR)} "
        f"WHERE time >= {t0_ms}ms AND time < {t1_ms}ms "
        f'GROUP BY time(1h), "device_id", "sensor" fill(none)'
    )
    out: dict[tuple[str, int], dict[tuple[str, str], float]] = {}
    for s in series:
        tags = s.get("tags") or {}
        key = (str(tags.get("device_id", "")), str(tags.get("sensor", "")))
        columns = s["columns"]
        for row in s.get("values") or []:
            for name, value in zip(columns[1:], row[1:], strict=True):
                if value is not None:
                    out.setdefault((name, int(row[0])), {})[key] = float(value)
    return out


def mark(
    influx: InfluxClient, outliers: Mapping[tuple[str, str, str, int], float]
) -> tuple[int, int]:
    """Merge `neighbour` into the stored flags of the outlier hours' readings; (readings
    flagged now, readings that had the flag already)."""
    per_series: dict[tuple[str, str], dict[int, set[str]]] = {}
    for device, sensor, quantity, hour in outliers:
        per_series.setdefault((device, sensor), {}).setdefault(hour, set()).add(quantity)
    written = already = 0
    lines: list[str] = []
    for (device, sensor), hours in sorted(per_series.items()):
        quantities = sorted({q for qs in hours.values() for q in qs})
        fields = [f for q in quantities for f in (q, QC_PREFIX + q)]
        # One window from the first to the last outlier hour (InfluxQL takes no OR of time
        # ranges); a run reads a day at a time, so at most a day of one sensor's readings.
        window = f"time >= {min(hours)}ms AND time < {max(hours) + HOUR_MS}ms"
        rows = influx.query(
            f"SELECT {', '.join(identifier(f) for f in fields)} FROM {identifier(storage.AIR)} "
            f"WHERE {identifier('device_id')} = {string_literal(device)} "
            f"AND {identifier('sensor')} = {string_literal(sensor)} AND {window} GROUP BY *"
        )
        for s in rows:
            # Every tag of the point (GROUP BY *), so the write lands on the same point.
            tags = {k: str(v) for k, v in (s.get("tags") or {}).items() if v}
            columns = s["columns"]
            for row in s.get("values") or []:
                values = dict(zip(columns, row, strict=True))
                t = int(values["time"])
                update: dict[str, str] = {}
                for q in hours.get(t - t % HOUR_MS, ()):
                    if values.get(q) is None:
                        continue
                    stored = values.get(QC_PREFIX + q)
                    if F.NEIGHBOUR in F.parse(stored):
                        already += 1
                        continue
                    update[QC_PREFIX + q] = F.joined((*F.parse(stored), F.NEIGHBOUR))
                if update:
                    written += len(update)
                    lines.append(to_line(Point(storage.AIR, tags, update, t)))
                if len(lines) >= WRITE_BATCH:
                    influx.write(lines)
                    lines = []
    influx.write(lines)
    return written, already


def run_neighbours(
    influx: InfluxClient,
    registry: Registry,
    config: QualityConfig,
    t0_ms: int,
    t1_ms: int,
    progress: Callable[[int, NeighbourRun], None] | None = None,
) -> NeighbourRun:
    """Judge the hours from `t0_ms` (rounded down to an hour) to `t1_ms` (rounded up) a day at
    a time, flag the outliers; `progress(end of the day done, so far)` after each day."""
    n = config.neighbours
    places = places_of(registry)
    nearby = neighbourhoods(places, n.radius_m)
    start = t0_ms - t0_ms % HOUR_MS
    end = t1_ms + (-t1_ms) % HOUR_MS
    done = NeighbourRun()
    while start < end:
        stop = min(end, start + DAY_MS)
        verdicts = judge(hourly_means(influx, list(n.quantities), start, stop), places, n, nearby)
        written, already = mark(influx, verdicts.outliers)
        done.verdicts.merge(verdicts)
        done.readings_flagged += written
        done.readings_already += already
        if progress is not None:
            progress(stop, done)
        start = stop
    return done


class NeighbourSchedule:
    """The stack's job (`ingest.schedule` runs it every `every_s`): the last `hours` finished
    hours, each once `settle_s` has passed since its end. A failed run is logged by the
    schedule and tried again at the next turn."""

    name = "neighbour outlier run"

    def __init__(
        self,
        config: QualityConfig,
        registry_path: Path | str,
        client: Callable[[], InfluxClient],
        *,
        owns_client: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`client` makes the InfluxDB client of one run, closed after it (`owns_client`)."""
        self.config = config
        self._owns_client = owns_client
        self.registry_path = Path(registry_path)
        self._client = client
        self._clock = clock
        self.runs = 0  # runs completed
        self.last: NeighbourRun | None = None

    @property
    def every_s(self) -> float:
        return self.config.neighbours.every_s

    def run_once(self) -> NeighbourRun:
        """One turn: the last finished hours. InfluxDB is not asked while no registered device
        has a location (nothing could be judged)."""
        n = self.config.neighbours
        now_ms = int(self._clock() * 1000)
        end = now_ms - int(n.settle_s * 1000)
        end -= end % HOUR_MS
        registry = load_registry(self.registry_path, must_exist=True)
        done = NeighbourRun()
        if places_of(registry):
            influx = self._client()
            try:
                done = run_neighbours(influx, registry, self.config, end - n.hours * HOUR_MS, end)
            finally:
                if self._owns_client:
                    influx.close()
        self.runs += 1
        self.last = done
        judged = done.verdicts.judged or done.verdicts.too_few
        log.log(
            logging.INFO if judged else logging.DEBUG,
            "neighbour outlier: %s",
            "; ".join(done.lines(self.config)),
        )
        return done
