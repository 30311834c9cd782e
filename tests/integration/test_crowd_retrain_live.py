"""Forecast models retrained by the real stack's ingest (`[forecast]` of ingest.toml, kept by
`stack up`): a model of two devices and one of a street area of both, trained by hand up to six
days ago on nine weeks of counts stored in the stack's InfluxDB; the ingest, retraining a model
two days behind the counts and looking every second, trains each again in a child process up
to the last complete hour; the API, running all along, then forecasts with the later training
(its hourly forecast made again), `crowd models` shows the retrainings and the ingest's stats
count them. A retraining under way when the stack stops is ended with the ingest, recorded as
stopped, and its model kept.

While the test holds the models folder's retraining lock (as another ingest worker would), the
ingest waits: the API's first answer is from the model trained by hand."""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sensorpipe.api.app import create_app
from sensorpipe.api.config import InfluxSettings, ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.crowd.live import last_whole_hour
from sensorpipe.crowd.retrain import LOCK_FILE, read_status
from sensorpipe.crowd.saved import read
from sensorpipe.crowd.series import HOUR_S, iso, parse_time
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import pid_alive
from sensorpipe.protocol.registry import DeviceEntry, load_registry, save_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.conftest import _require_binaries
from tests.integration.test_crowd_forecast_live import DEVICES, PLACE, _lines, _registry
from tests.test_crowd_forecast import synthetic

pytestmark = pytest.mark.integration


def _stats(stack: LocalStack) -> dict[str, Any]:
    try:
        return dict(json.loads((stack.directory / "ingest" / "stats.json").read_text()))
    except (OSError, ValueError):
        return {}


def test_the_ingest_retrains_a_saved_model_and_the_api_forecasts_with_it(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    _require_binaries()
    stack = LocalStack(tmp_path / "stack")
    toml = stack.directory / "ingest" / "ingest.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text(
        '[forecast]\nretrain_every = "2d"\ncheck_every_s = 1\n'
        "[quality.neighbours]\nenabled = false\n",
        encoding="utf-8",
    )
    models = stack.models_path
    models.mkdir(parents=True)
    lock = open(models / LOCK_FILE, "a")  # noqa: SIM115 (released halfway)
    fcntl.flock(lock, fcntl.LOCK_EX)
    stack.up(detach=False, serve=False)
    try:
        registry = load_registry(stack.registry_path)
        for device in DEVICES:
            registry.devices[device] = DeviceEntry(site="x", password_hash="x")
        registry.areas["strip"] = _registry().areas["strip"]  # a street of both devices
        save_registry(registry, stack.registry_path)
        info = stack.require_info()
        last = last_whole_hour(time.time())
        counts = synthetic(9, 2, start="2024-06-03T00:00", seed=3)
        with closing(InfluxClient(info.influx_url, info.database)) as client:
            client.write(_lines(counts.values, last - (counts.hours - 1) * HOUR_S))
        until = iso(last - 6 * 24 * HOUR_S)
        args = ["crowd", "train", "--dir", str(stack.directory), "--train-until", until, *PLACE]
        args += ["--horizon", "1h", "--json"]
        result = CliRunner().invoke(main, [*args, "--device", DEVICES[0], "--device", DEVICES[1]])
        assert result.exit_code == 0, result.output
        entry = Path(json.loads(result.stdout)["saved"]).name
        # an area's model: the ingest's child reads the area from the ingest's registry
        result = CliRunner().invoke(main, [*args, "--area", "strip"])
        assert result.exit_code == 0, result.output
        area_entry = Path(json.loads(result.stdout)["saved"]).name
        config = ServeConfig(
            registry_path=str(stack.registry_path),
            models_path=str(models),
            influx=InfluxSettings(url=info.influx_url, database=info.database),
        )
        api = TestClient(create_app(ApiContext(config)), raise_server_exceptions=False)
        path = f"/api/v1/devices/{DEVICES[0]}/crowding"
        assert api.get(path).json()["forecast"]["trained_until"] == until
        assert entry not in read_status(models)  # the ingest waited for the lock

        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        ended = wait_for(
            lambda: all(
                read_status(models).get(e, {}).get("result") in ("ok", "failed")
                for e in (entry, area_entry)
            ),
            timeout_s=300,
            interval_s=0.5,
            what="the ingest's retrainings to end",
        )
        assert ended
        status = read_status(models)[entry]
        assert status["result"] == "ok", status
        assert read_status(models)[area_entry]["result"] == "ok", read_status(models)
        area = api.get("/api/v1/areas/strip/crowding").json()["forecast"]
        assert area["trained_until"] == read_status(models)[area_entry]["trained_until"]
        assert parse_time(status["trained_until"]) > parse_time(until)
        assert status["trained_until"] == status["training_until"]
        forecast = api.get(path).json()["forecast"]
        assert forecast["trained_until"] == status["trained_until"]  # no restart of the API

        listing = ["crowd", "models", "--dir", str(stack.directory), "--json"]
        result = CliRunner().invoke(main, listing)
        assert result.exit_code == 0, result.output
        rows = {row["model"]: row for row in json.loads(result.stdout)["models"]}
        assert set(rows) == {entry, area_entry}
        assert rows[entry]["trained_until"] == status["trained_until"]
        assert rows[entry]["retrained"]["result"] == "ok"
        wait_for(
            lambda: _stats(stack).get("forecast_retrains") == 2,
            timeout_s=60,
            what="the ingest's stats to count the retraining",
        )
        assert _stats(stack)["forecast_retrain_failures"] == 0

        # A training under way when the ingest stops is ended; its model stays as it was.
        lock = open(models / LOCK_FILE, "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)  # the ingest waits while the test sets it up
        result = CliRunner().invoke(main, [*args, "--device", DEVICES[0]])
        assert result.exit_code == 0, result.output
        long = Path(json.loads(result.stdout)["saved"])
        meta = json.loads((long / "model.json").read_text())
        meta["settings"]["trees"] = 10**7  # its retraining would run for hours
        (long.resolve() / "model.json").write_text(json.dumps(meta))
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        wait_for(
            lambda: read_status(models).get(long.name, {}).get("result") == "running",
            timeout_s=60,
            what="the long retraining to start",
        )
        pid = read_status(models)[long.name]["pid"]
        assert pid_alive(pid)
        stack.down()
        assert not pid_alive(pid)  # ended with the ingest
        status = read_status(models)[long.name]
        assert status["result"] == "stopped", status
        assert status["trained_until"] == until and read(long).meta["settings"]["trees"] == 10**7
    finally:
        if not lock.closed:
            lock.close()
        stack.down()
