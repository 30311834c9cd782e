"""The ingest runs the crowding alerts on its schedule (`[alerts]` of ingest.toml): the job is
there by default, with its store beside the dead letters and the ingest's broker link to
publish with; `enabled = false` leaves it out; a store that cannot be opened is a config error.
The job's runs (observed levels from a table, not InfluxDB: the integration test reads them
from a real one): it catches up after a pause, at most `lookback_intervals` back, a restart
repeats nothing, and forecast levels go the same way."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.crowd.alertjob import AlertJob
from sensorpipe.crowd.alerts import Alert, AlertsConfig, LevelPoint
from sensorpipe.crowd.alertstore import AlertStore
from sensorpipe.crowd.delivery import Delivery
from sensorpipe.ingest.config import ConfigError, load_ingest_config
from sensorpipe.protocol.registry import AreaEntry, AreaLine, DeviceEntry, Registry, save_registry
from tests.test_ingest_service import FakeInflux, FakeMqtt, _service


def test_the_ingest_runs_the_alert_job(tmp_path: Path) -> None:
    service = _service(tmp_path, FakeInflux())
    try:
        (job,) = [j for j in service._schedule.jobs if isinstance(j, AlertJob)]
        assert job.every_s == 300.0
        assert job.delivery.store.path == tmp_path / "alerts.sqlite"
        # It publishes with the ingest's own broker link.
        fake = FakeMqtt()
        service._link.client = fake  # type: ignore[assignment]
        job.delivery.deliver([Alert("hall", "observed", 0.7, 0.8, 0)])
        assert [t for t, _ in fake.published] == ["sensorpipe/alerts/v1/hall"]
    finally:
        service.close()


def test_alerts_can_be_switched_off(tmp_path: Path) -> None:
    service = _service(tmp_path, FakeInflux(), alerts={"enabled": False, "every_s": 60})
    try:
        assert not [j for j in service._schedule.jobs if isinstance(j, AlertJob)]
        assert not (tmp_path / "alerts.sqlite").exists()
    finally:
        service.close()


def test_a_store_that_cannot_be_opened_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "registry.toml").write_text("")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "ingest.toml").write_text(
        'registry_path = "registry.toml"\n[broker]\npassword = "x"\n[alerts]\nstore = "a-folder"\n'
    )
    config = load_ingest_config(tmp_path / "ingest.toml")
    with pytest.raises(ConfigError, match=r"alerts\.store.*cannot open the alert store"):
        _service_from(config)


def test_a_webhook_without_its_scheme_is_refused_with_its_line(tmp_path: Path) -> None:
    """`alerts.example.org/crowding` (no http://) would be tried and dead-lettered for every
    alert: the configuration is refused instead, naming the key and its line."""
    (tmp_path / "registry.toml").write_text("")
    (tmp_path / "ingest.toml").write_text(
        'registry_path = "registry.toml"\n[broker]\npassword = "x"\n[alerts]\n'
        'webhooks = ["https://ok.example.org/a", "alerts.example.org/crowding"]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_ingest_config(tmp_path / "ingest.toml")
    assert "alerts.webhooks (line 5): 'alerts.example.org/crowding': give the webhook's whole " in (
        str(err.value)
    )


def _service_from(config: object) -> None:
    from sensorpipe.ingest.service import IngestService

    IngestService(config, influx=FakeInflux()).close()  # type: ignore[arg-type]


H = 3600_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
LEVELS = [0.5, 0.6, 0.75, 0.6, 0.72, 0.95, 0.5, 0.5]  # hours from T0


class Levels:
    """Observed levels from LEVELS, and the windows asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def __call__(
        self, influx: object, registry: object, area: object, start_ms: int, end: datetime
    ) -> list[LevelPoint]:
        end_ms = int(end.timestamp() * 1000)
        self.asked.append(((start_ms - T0) // H, (end_ms - T0) // H))
        hours = range((start_ms - T0) // H, (end_ms - T0) // H)
        return [LevelPoint(T0 + h * H, LEVELS[h] if h < len(LEVELS) else 0.1) for h in hours]


def _job(tmp_path: Path, levels: Levels, clock: list[float], **config: Any) -> AlertJob:
    registry = Registry(
        devices={"gate": DeviceEntry(site="x", password_hash="x")},
        areas={
            "hall": AreaEntry(
                name="Hall", kind="street", capacity=100, lines=[AreaLine(device="gate")]
            )
        },
    )
    save_registry(registry, tmp_path / "registry.toml")
    delivery = Delivery(AlertStore(tmp_path / "alerts.sqlite"), clock=lambda: clock[0])
    return AlertJob(
        AlertsConfig(**config),
        tmp_path / "registry.toml",
        lambda: None,  # type: ignore[arg-type,return-value]
        delivery,
        levels=levels,
        clock=lambda: clock[0],
    )


def _at_end_of(hour: int) -> float:
    return (T0 + (hour + 1) * H) / 1000 + 120 + 1  # settle_s after the hour's end


def _stored(job: AlertJob) -> list[tuple[str, int, float]]:
    return [
        (a["kind"], (_ms(a["time"]) - T0) // H, a["threshold"]) for a in job.delivery.store.alerts()
    ]


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_job_catches_up_after_a_pause_and_a_restart_repeats_nothing(tmp_path: Path) -> None:
    levels, clock = Levels(), [_at_end_of(0)]
    job = _job(tmp_path, levels, clock)
    assert job.run_once().stored == 0  # the first run: only the latest interval (50 %)
    clock[0] = _at_end_of(5)  # away for four hours: hours 1 to 5 at once
    assert job.run_once().stored == 3
    assert levels.asked == [(0, 1), (1, 6)]
    # 75 % at 2; 60 % re-arms 70 %; 72 % at 4; 95 % at 5 passes 90 % (70 % still disarmed).
    assert _stored(job) == [("observed", 2, 0.7), ("observed", 4, 0.7), ("observed", 5, 0.9)]
    job.delivery.store.close()
    # Restarted: the state is read back; nothing is asked again or raised twice.
    again = _job(tmp_path, levels, clock)
    assert again.run_once().stored == 0
    assert levels.asked == [(0, 1), (1, 6)]
    clock[0] = _at_end_of(7)
    assert again.run_once().stored == 0
    assert levels.asked[-1] == (6, 8)
    again.delivery.store.close()


def test_after_a_long_pause_at_most_lookback_intervals(tmp_path: Path) -> None:
    levels, clock = Levels(), [_at_end_of(0)]
    job = _job(tmp_path, levels, clock, lookback_intervals=3)
    job.run_once()
    clock[0] = _at_end_of(29)
    job.run_once()
    assert levels.asked == [(0, 1), (27, 30)]
    job.delivery.store.close()


def test_forecast_levels_are_fed_as_observed_ones_are(tmp_path: Path) -> None:
    levels, clock = Levels(), [_at_end_of(0)]

    def forecasts(area_id: str, area: AreaEntry, now_ms: int) -> list[LevelPoint]:
        made = now_ms - now_ms % H
        return [LevelPoint(made + H, 0.6, "forecast", made, 3600),
                LevelPoint(made + 2 * H, 0.8, "forecast", made, 7200)]  # fmt: skip

    job = _job(tmp_path, levels, clock)
    job._forecasts = forecasts
    assert job.run_once().stored == 1
    assert _stored(job) == [("forecast", 3, 0.7)]  # made at 01:00, 80 % expected at 03:00
    assert job.run_once().stored == 0  # the same forecast again: no second alert
    job.delivery.store.close()
