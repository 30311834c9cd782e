"""Where alerts are raised: the ingest's scheduled job (`ingest.schedule`, `[alerts]` of
ingest.toml: `AlertsConfig`) and, on demand, `sensorpipe crowd alerts check` over a past window.

Each run of the job, for each area of the registry: its whole intervals that ended (at least
`settle_s` ago, so late counts are in) since the last one it evaluated, at most
`lookback_intervals` of them (the first run: only the latest), read as observed levels
(`observed.area_crowding`) and fed to the area's alert state (`alerts.AreaAlerts`), which is
kept in the alert store between runs and restarts. What they raise is delivered
(`delivery.Delivery`). A forecast source (`forecasts`) may add forecast levels in the same way.

`check_window` evaluates a past window from a fresh state (every threshold armed) and returns
the alerts without storing or delivering them: looking back must not page anyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sensorpipe.crowd.alerts import Alert, AlertsConfig, AreaAlerts, LevelPoint, iso
from sensorpipe.crowd.delivery import Delivered, Delivery
from sensorpipe.crowd.observed import area_crowding
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.registry import AreaEntry, Registry, load_registry
from sensorpipe.query.series import parse_every

log = logging.getLogger(__name__)
ForecastSource = Callable[[str, AreaEntry, int], list[LevelPoint]]
# (influx, registry, area, start_ms, end): observed levels of the whole intervals in between.
LevelSource = Callable[[InfluxClient, Registry, AreaEntry, int, datetime], list[LevelPoint]]


def observed_points(
    influx: InfluxClient,
    registry: Registry,
    area: AreaEntry,
    start_ms: int,
    end: datetime,
) -> list[LevelPoint]:
    """The area's observed levels of its whole intervals from start_ms to `end`."""
    crowding = area_crowding(influx, registry, area, iso(start_ms), "now", now=end)
    return [LevelPoint(lv.start_ms, lv.level) for lv in crowding.levels]


def check_window(
    influx: InfluxClient,
    registry: Registry,
    area_id: str,
    start_ms: int,
    end: datetime,
    config: AlertsConfig,
) -> list[Alert]:
    """The alerts the area's observed levels from start_ms to `end` raise, from a fresh state."""
    area = registry.areas[area_id]
    points = observed_points(influx, registry, area, start_ms, end)
    return AreaAlerts(area_id, config.rules(area)).feed(points)


class AlertJob:
    """The ingest's job (`ingest.schedule`): every `every_s`, each area's intervals that ended
    since its last run, their alerts delivered."""

    name = "crowding alerts"

    def __init__(
        self,
        config: AlertsConfig,
        registry_path: Path | str,
        client: Callable[[], InfluxClient],
        delivery: Delivery,
        *,
        forecasts: ForecastSource | None = None,
        levels: LevelSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`levels`: where observed levels come from (default `observed_points`, InfluxDB);
        `forecasts`: forecast levels of an area at a time (ms), fed after the observed."""
        self.config = config
        self.registry_path = Path(registry_path)
        self._client = client
        self.delivery = delivery
        self._forecasts = forecasts
        self._levels = levels or observed_points
        self._clock = clock
        self.runs = 0
        self.last = Delivered()

    @property
    def every_s(self) -> float:
        return self.config.every_s

    def run_once(self) -> Delivered:
        registry = load_registry(self.registry_path, must_exist=True)
        now_ms = int((self._clock() - self.config.settle_s) * 1000)
        done = Delivered()
        store = self.delivery.store
        for area_id, area in sorted(registry.areas.items()):
            step = parse_every(area.interval) * 1000
            end_ms = now_ms - now_ms % step
            rules = self.config.rules(area)
            saved = store.state(area_id)
            state = (
                AreaAlerts(area_id, rules)
                if saved is None
                else AreaAlerts.from_state(area_id, rules, saved)
            )
            start_ms = end_ms - step if state.last_ms is None else state.last_ms + step
            start_ms = max(start_ms, end_ms - self.config.lookback_intervals * step)
            points: list[LevelPoint] = []
            if start_ms < end_ms:
                end = datetime.fromtimestamp(end_ms / 1000, UTC)
                points = self._levels(self._client(), registry, area, start_ms, end)
            if self._forecasts is not None:
                points += self._forecasts(area_id, area, int(self._clock() * 1000))
            if not points:
                continue
            # Delivered (and stored) before the state moves on: a run that fails in between
            # evaluates the same intervals again, and the store keeps each alert once.
            done.add(self.delivery.deliver(state.feed(points)))
            store.save_state(area_id, state.state())
        self.last = done
        self.runs += 1
        if done.stored:
            log.info("crowding alerts: %d raised", done.stored)
        return done
