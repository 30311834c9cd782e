"""The ingest runs the crowding alerts on its schedule (`[alerts]` of ingest.toml): the job is
there by default, with its store beside the dead letters and the ingest's broker link to
publish with; `enabled = false` leaves it out; a store that cannot be opened is a config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.crowd.alertjob import AlertJob
from sensorpipe.crowd.alerts import Alert
from sensorpipe.ingest.config import ConfigError, load_ingest_config
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


def _service_from(config: object) -> None:
    from sensorpipe.ingest.service import IngestService

    IngestService(config, influx=FakeInflux()).close()  # type: ignore[arg-type]
