"""Crowding alerts: when an area's level crosses one of its thresholds going up (pure logic, no
I/O: unit-tested).

A level comes in as a `LevelPoint`: its time, its value (None: the interval has no level) and
whether it was observed or forecast (then also when the forecast was made and how far ahead).
Observed and forecast levels go through the same rules, each with a state of its own, so a
forecast is fed in exactly as an observed level is.

The rules (`AlertRules`), per area and per threshold (the area's, default 70 % and 90 %):

- a threshold is *armed* until a level reaches it (level >= threshold): then one alert, and it
  is disarmed;
- it is re-armed only when a level falls below threshold − `margin` (default 0.05: 5 points
  under the line), so a level hovering at 69–71 % alerts once, not every interval;
- optionally (`rearm_after_s`, default None: off) also once the level has stayed below the
  threshold, though not below the margin, for that long: a level that settles just under the
  line for hours alerts again when it next crosses;
- a jump over two thresholds at once raises one alert per threshold, both for that interval;
- a point without a level (no counter ran, a gap) neither alerts nor re-arms, and does not
  start or end the time `rearm_after_s` counts;
- a forecast alert is its own kind ("expected to pass 70 % at 15:00"): among the points of one
  forecast run (one `made_ms`) within `forecast_horizon_s`, the earliest one at or above the
  threshold raises it. Forecast thresholds re-arm as observed ones do, on the run's highest
  level within the horizon. No forecast alert is raised for a threshold the observed level has
  already passed (its observed alert said it, and is not re-armed yet).

An alert has a stable id (area, kind, threshold, and the interval's start, or for a forecast the
time it is expected at and when the run was made), so storing one twice keeps one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from sensorpipe.protocol.registry import AreaEntry

Kind = Literal["observed", "forecast"]
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class LevelPoint:
    """A level of an area at `time_ms` (an interval's start), observed or forecast."""

    time_ms: int
    level: float | None
    kind: Kind = "observed"
    made_ms: int | None = None  # forecast: when it was made
    horizon_s: int | None = None  # forecast: how far ahead of made_ms (time_ms - made_ms)


@dataclass(frozen=True)
class AlertRules:
    thresholds: tuple[float, ...] = (0.7, 0.9)
    margin: float = DEFAULT_MARGIN
    rearm_after_s: float | None = None
    forecast_horizon_s: int = 3 * 3600
    timezone: str | None = None  # the area's: its alerts' messages say the local time too


@dataclass(frozen=True)
class Alert:
    area: str
    kind: Kind
    threshold: float
    level: float
    time_ms: int  # the interval (observed) or the time it is expected to pass (forecast)
    made_ms: int | None = None
    horizon_s: int | None = None
    # The area's time zone, for the message (a control room reads local time); not in the
    # alert's id nor a field of its JSON.
    timezone: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        made = "" if self.made_ms is None else f":{self.made_ms}"
        return f"{self.area}:{self.kind}:{self.threshold:g}:{self.time_ms}{made}"

    @property
    def message(self) -> str:
        """`plaza: passed 70% at 2026-01-01 02:00 CET (01:00 UTC; level 75%)`: local time
        where the area's zone is known, UTC (only) where not."""
        at, utc = f"{_hhmm(self.time_ms)} UTC", ""
        local = None
        if self.timezone:
            local = datetime.fromtimestamp(self.time_ms / 1000, ZoneInfo(self.timezone))
        if local is not None and local.tzname() != "UTC":
            at = f"{local.strftime('%Y-%m-%d %H:%M')} {local.tzname()}"
            utc = f"{_hhmm(self.time_ms)[11:]} UTC; "
        if self.kind == "forecast":
            ahead = "" if self.horizon_s is None else f", {_ahead(self.horizon_s)} ahead"
            return (
                f"{self.area}: expected to pass {self.threshold:.0%} at {at} "
                f"({utc}forecast {self.level:.0%}{ahead})"
            )
        return f"{self.area}: passed {self.threshold:.0%} at {at} ({utc}level {self.level:.0%})"

    def payload(self) -> dict[str, Any]:
        """The alert as JSON (MQTT, webhooks, the list): see docs/crowding.md, "Alerts"."""
        out: dict[str, Any] = {"id": self.id, **asdict(self)}
        out["level"] = round(self.level, 4)
        out["time"] = iso(self.time_ms)
        out["made"] = None if self.made_ms is None else iso(self.made_ms)
        out["message"] = self.message
        del out["time_ms"], out["made_ms"], out["timezone"]
        return out


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _ahead(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"


@dataclass
class _Line:
    """One threshold's state for one kind of level."""

    armed: bool = True
    below_since_ms: int | None = None  # rearm_after_s: since when the level is under the line

    def see(self, t_ms: int, level: float, threshold: float, rules: AlertRules) -> bool:
        """Feed a level; True: it raises an alert."""
        if level >= threshold:
            self.below_since_ms = None
            if self.armed:
                self.armed = False
                return True
            return False
        if self.armed:
            return False
        if level < threshold - rules.margin:
            self.armed, self.below_since_ms = True, None
            return False
        if rules.rearm_after_s is not None:
            if self.below_since_ms is None:
                self.below_since_ms = t_ms
            elif t_ms - self.below_since_ms >= rules.rearm_after_s * 1000:
                self.armed, self.below_since_ms = True, None
        return False


@dataclass
class AreaAlerts:
    """An area's alert state: feed its levels in the order they became known; what they
    raise comes back. `state()`/`from_state` keep it between runs (the ingest's job)."""

    area: str
    rules: AlertRules = field(default_factory=AlertRules)
    lines: dict[str, _Line] = field(default_factory=dict)
    last_ms: int | None = None  # the last observed interval fed

    def _line(self, kind: Kind, threshold: float) -> _Line:
        return self.lines.setdefault(f"{kind}:{threshold:g}", _Line())

    def feed(self, points: Iterable[LevelPoint]) -> list[Alert]:
        """Observed points one by one; forecast points grouped by their run (`made_ms`)."""
        alerts: list[Alert] = []
        run: list[LevelPoint] = []
        for p in points:
            if p.kind == "forecast":
                if run and run[0].made_ms != p.made_ms:
                    alerts += self._forecast(run)
                    run = []
                run.append(p)
                continue
            if run:
                alerts += self._forecast(run)
                run = []
            alerts += self._observed(p)
        if run:
            alerts += self._forecast(run)
        return alerts

    def _observed(self, p: LevelPoint) -> list[Alert]:
        self.last_ms = p.time_ms if self.last_ms is None else max(self.last_ms, p.time_ms)
        if p.level is None:
            return []
        return [
            Alert(self.area, "observed", t, p.level, p.time_ms, timezone=self.rules.timezone)
            for t in sorted(self.rules.thresholds)
            if self._line("observed", t).see(p.time_ms, p.level, t, self.rules)
        ]

    def _forecast(self, run: Sequence[LevelPoint]) -> list[Alert]:
        horizon = self.rules.forecast_horizon_s * 1000
        made = run[0].made_ms
        ahead = sorted(
            (
                p
                for p in run
                if p.level is not None and (made is None or p.time_ms - made <= horizon)
            ),
            key=lambda p: p.time_ms,
        )
        if not ahead:
            return []
        peak = max(p.level for p in ahead if p.level is not None)
        alerts = []
        for t in sorted(self.rules.thresholds):
            line = self._line("forecast", t)
            first = next((p for p in ahead if p.level is not None and p.level >= t), None)
            at = first.time_ms if first is not None else ahead[-1].time_ms
            if not line.see(at, peak, t, self.rules) or first is None or first.level is None:
                continue
            if not self._line("observed", t).armed:
                continue  # the observed level is already past it: said by its own alert
            horizon_s = first.horizon_s
            if horizon_s is None and made is not None:
                horizon_s = (first.time_ms - made) // 1000
            alerts.append(
                Alert(
                    self.area,
                    "forecast",
                    t,
                    first.level,
                    first.time_ms,
                    made,
                    horizon_s,
                    self.rules.timezone,
                )
            )
        return alerts

    def state(self) -> dict[str, Any]:
        return {
            "last_ms": self.last_ms,
            "lines": {k: [v.armed, v.below_since_ms] for k, v in self.lines.items()},
        }

    @classmethod
    def from_state(cls, area: str, rules: AlertRules, state: dict[str, Any]) -> AreaAlerts:
        lines = {k: _Line(bool(armed), since) for k, (armed, since) in state["lines"].items()}
        return cls(area, rules, lines, state.get("last_ms"))


def evaluate(area: str, points: Iterable[LevelPoint], rules: AlertRules) -> list[Alert]:
    """The alerts `points` raise from a fresh state (every threshold armed)."""
    return AreaAlerts(area, rules).feed(points)


class AlertsConfig(BaseModel):
    """`[alerts]` of ingest.toml: crowding alerts (sensorpipe.crowd), on the ingest's schedule."""

    model_config = ConfigDict(extra="forbid")

    # false: no alerts are raised by the ingest (`crowd alerts check` still evaluates)
    enabled: bool = True
    # The alert store (alerts, dead letters, state), relative to ingest.toml; unset:
    # alerts.sqlite beside the ingest's deadletter_path (its state directory).
    store: str | None = None
    # How often the areas are evaluated; an area's interval that ended is evaluated at the
    # first run at least settle_s after its end.
    every_s: float = Field(default=300.0, ge=5)
    settle_s: float = Field(default=120.0, ge=0)
    # After an ingest that was away: at most this many intervals back are evaluated.
    lookback_intervals: int = Field(default=24, ge=1, le=10_000)
    # Re-armed below threshold - margin; and, if set, after this long under the threshold.
    margin: float = Field(default=DEFAULT_MARGIN, ge=0, lt=1)
    rearm_after_s: float | None = Field(default=None, gt=0)
    # A forecast crossing this far ahead, or nearer, raises a forecast alert.
    forecast_horizon_s: int = Field(default=3 * 3600, ge=60, le=7 * 86400)
    # The forecast models folder (`sensorpipe crowd train`; relative to ingest.toml): a
    # street area with a saved model gets forecast alerts. Unset: observed alerts only.
    models: str | None = None
    # Publish each alert on sensorpipe/alerts/v1/<area> (the ingest's broker account).
    publish: bool = True
    # Webhooks each alert is POSTed to as JSON, and how.
    webhooks: list[str] = Field(default_factory=list, max_length=20)
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    webhook_attempts: int = Field(default=4, ge=1, le=20)
    webhook_backoff_s: float = Field(default=2.0, ge=0, le=600)

    @field_validator("webhooks")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{url[:120]!r}: give the webhook's whole URL, with http:// or https:// "
                    "and its host (e.g. https://alerts.example.org/crowding)"
                )
        return urls

    def rules(self, area: AreaEntry) -> AlertRules:
        return AlertRules(
            tuple(area.thresholds),
            self.margin,
            self.rearm_after_s,
            self.forecast_horizon_s,
            area.timezone,
        )
