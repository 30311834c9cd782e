"""Forecast models retrained on the ingest's schedule (sensorpipe.crowd.retrain) with a fake
child command: started once and not again while it runs, a failure recorded in retrain.json,
counted and the old model kept, a stop that kills it, a timeout; the saved settings become the
`crowd train` command line; saving a training is atomic (crowd.saved); the API's and the
alerts job's caches take the new training without a restart; `crowd models`; [forecast] of
ingest.toml; `crowd train` takes the ingest's InfluxDB credentials from the environment."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.forecast import Forecaster, HorizonModel, Where, sized
from sensorpipe.crowd.retrain import (
    ForecastConfig,
    RetrainJob,
    TrainingSource,
    read_status,
    train_command,
)
from sensorpipe.crowd.saved import ModelCache, find, read, save, settings_dict
from sensorpipe.crowd.series import HOUR_S, iso, parse_time

NOW = parse_time("2026-12-06T10:20:00Z")
UNTIL = parse_time("2026-12-06T10:00:00Z")  # the end of the last complete hour at NOW
OLD = parse_time("2026-11-20T00:00:00Z")  # the saved model's training ends here
SOURCE = TrainingSource("http://127.0.0.1:9", "x", "/etc/sensorpipe/registry.toml")
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class FakeBooster:
    def __init__(self, text: str = "tree") -> None:
        self.text = text

    def model_to_string(self) -> str:
        return self.text


def _forecaster(end: int, names: list[str] | None = None, text: str = "tree") -> Forecaster:
    fc = Forecaster(names or ["d1", "d2"], Where("Pacific/Auckland", "NZ", "AUK"), end - HOUR_S)
    fc.models = {h: HorizonModel(h, FakeBooster(text), -1.0 * h, 1.0 * h) for h in (1, 3)}
    return fc


def _saver(models: Path) -> list[str]:
    """A child that saves a model of d1, d2 trained up to its --train-until (as `crowd train`
    would), then exits 0."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from sensorpipe.crowd.series import parse_time
        from tests.test_crowd_retrain import _forecaster
        from sensorpipe.crowd.saved import save
        fc = _forecaster(parse_time(sys.argv[1]), text="new")
        save(fc, Path({str(models)!r}), "device")
        print('{{"saved": "yes"}}')
        """
    )
    return [sys.executable, "-c", code]


class Calls:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.calls: list[tuple[str, int]] = []

    def __call__(self, saved: Any, until: int) -> list[str]:
        self.calls.append((saved.folder.name, until))
        return [*self.argv, iso(until)]


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "forecast"
    folder.mkdir()
    save(_forecaster(OLD), folder, "device", {"settings": {"trees": 40, "threads": 1}})
    return folder


def _job(models: Path, argv: list[str], **config: Any) -> tuple[RetrainJob, Calls, list[Any]]:
    calls, notes = Calls(argv), []
    job = RetrainJob(
        ForecastConfig(retrain_every="7d", check_every_s=1, **config), models, SOURCE,
        command=calls, note=lambda *a: notes.append(a), clock=lambda: NOW,
    )  # fmt: skip
    return job, calls, notes


def _entry(models: Path) -> str:
    saved = find(models, "device", "d1")
    assert saved is not None
    return saved.folder.name


def test_a_due_model_is_started_once_and_not_again_while_it_runs(models: Path) -> None:
    job, calls, _ = _job(models, SLEEP)
    try:
        assert job.run_once() == f"started {_entry(models)}"
        assert job.run_once() == "running" and job.run_once() == "running"
        assert calls.calls == [(_entry(models), UNTIL)]
        last = read_status(models)[_entry(models)]
        assert last["result"] == "running" and last["training_until"] == iso(UNTIL)
        assert last["started"] == iso(NOW) and last["pid"] == job.running.process.pid  # type: ignore[union-attr]
        # another ingest worker's job finds the lock taken
        other, other_calls, _ = _job(models, SLEEP)
        (models / "retrain.json").unlink()  # as if the first had recorded nothing
        assert other.run_once() == "busy" and other_calls.calls == []
    finally:
        job.stop()


def test_a_failure_is_recorded_counted_and_the_old_model_kept(models: Path) -> None:
    before = read(models / _entry(models))
    fail = [sys.executable, "-c", "import sys; print('training', file=sys.stderr); "
            "sys.exit('Error: InfluxDB: connection refused')"]  # fmt: skip
    job, calls, notes = _job(models, fail, retry_after_s=3600)
    assert job.run_once().startswith("started")
    job.running.process.wait()  # type: ignore[union-attr]
    assert job.run_once() == "idle"  # ended: recorded; not tried again before retry_after_s
    last = read_status(models)[_entry(models)]
    assert last["result"] == "failed" and last["error"] == "InfluxDB: connection refused"
    assert last["trained_until"] == iso(OLD) and last["finished"] == iso(NOW)
    assert notes == [(_entry(models), False, "InfluxDB: connection refused")]
    after = read(models / _entry(models))
    assert after.stamp == before.stamp and after.trained_until == before.trained_until
    assert len(calls.calls) == 1
    job._clock = lambda: NOW + 3600  # retry_after_s later it is tried again
    assert job.run_once().startswith("started")
    job.stop()


def test_a_retraining_that_ends_well_saves_the_new_model(models: Path) -> None:
    job, _, notes = _job(models, _saver(models))
    entry = _entry(models)
    assert job.run_once() == f"started {entry}"
    job.running.process.wait()  # type: ignore[union-attr]
    assert job.run_once() == "idle"  # recorded, and trained up to the last hour: not due
    last = read_status(models)[entry]
    assert (last["result"], last["error"], last["trained_until"]) == ("ok", None, iso(UNTIL))
    assert notes == [(entry, True, None)]
    assert read(models / entry).trained_until + HOUR_S == UNTIL
    assert (read(models / entry).source / "h1.txt").read_text() == "new"  # type: ignore[operator]


def test_stop_kills_the_training_and_keeps_the_model(models: Path) -> None:
    job, _, notes = _job(models, SLEEP)
    job.run_once()
    process = job.running.process  # type: ignore[union-attr]
    job.stop()
    assert process.returncode is not None and process.returncode < 0  # killed
    assert job.running is None
    last = read_status(models)[_entry(models)]
    assert last["result"] == "stopped" and last["error"].startswith("stopped: the ingest stopped")
    assert notes == [(_entry(models), False, last["error"])]
    assert read(models / _entry(models)).trained_until + HOUR_S == OLD
    job.stop()  # nothing under way: nothing to do
    assert job.run_once() == "stopped"  # and no turn starts another
    again, _, _ = _job(models, SLEEP)  # a stopped one is due again at once (a restart)
    assert again.run_once().startswith("started")
    again.stop()


def test_a_training_past_its_timeout_is_stopped(models: Path) -> None:
    job, _, notes = _job(models, SLEEP, timeout_s=5)
    ticks = iter([0.0, 1.0, 100.0])
    job._monotonic = lambda: next(ticks)
    job.run_once()
    assert job.run_once() == "running"
    assert job.run_once() == "idle"  # stopped, recorded as failed, not due before retry
    assert read_status(models)[_entry(models)]["error"] == "stopped after 5s (timeout_s)"
    assert notes[0][1] is False


def test_a_model_not_due_yet_and_off(models: Path, tmp_path: Path) -> None:
    job, calls, _ = _job(models, SLEEP)
    job._clock = lambda: OLD + 7 * 86400 + 599  # the 7th day's last hour not settled yet
    assert job.run_once() == "idle" and calls.calls == []
    job._clock = lambda: OLD + 7 * 86400 + 600
    assert job.run_once().startswith("started")
    assert calls.calls == [(_entry(models), OLD + 7 * 86400)]
    job.stop()
    job, calls, _ = _job(models, SLEEP)
    hand_edited = {_entry(models): {"result": "failed", "finished": "?"}}
    (models / "retrain.json").write_text(json.dumps(hand_edited))
    assert job.run_once().startswith("started")  # a file edited by hand: no wait
    job.stop()
    job, calls, _ = _job(models, SLEEP)
    off, calls, _ = _job(models, SLEEP)
    off.config = ForecastConfig(retrain_every="off")
    assert off.run_once() == "idle" and calls.calls == []
    empty, calls, _ = _job(tmp_path / "none", SLEEP)
    assert empty.run_once() == "idle"


def test_the_saved_settings_make_the_crowd_train_command(tmp_path: Path) -> None:
    extra = {
        "settings": {"trees": 40, "threads": 2},
        "train_from": "2024-01-01T00:00:00Z",
        "excluded": [["2020-03-25T11:00:00Z", "2020-05-13T12:00:00Z"]],
    }
    save(_forecaster(OLD, ["hall", "strip"]), tmp_path, "area", extra)
    saved = find(tmp_path, "area", "hall")
    assert saved is not None
    argv = train_command(saved, UNTIL, SOURCE)
    assert argv[:5] == [sys.executable, "-m", "sensorpipe", "crowd", "train"]
    text = " ".join(argv[5:])
    assert text == (
        f"--area hall --area strip --models {tmp_path} --influx-url http://127.0.0.1:9 "
        "--database x --registry /etc/sensorpipe/registry.toml --train-until "
        "2026-12-06T10:00:00Z --timezone Pacific/Auckland --country NZ --subdiv AUK "
        # the window keeps its length: it moved as far as its end
        f"--train-from {iso(parse_time('2024-01-01T00:00:00Z') + UNTIL - OLD)} "
        # a model saved before sizes were named and min_leaf recorded was "small"'s
        "--exclude-training 2020-03-26/2020-05-14 --horizon 1h --horizon 3h --size small "
        "--trees 40 --threads 2 --json"
    )
    large = sized("large", trees=70)
    extra["settings"] = settings_dict(large)
    save(_forecaster(OLD, ["hall", "strip"]), tmp_path, "area", extra)
    saved = find(tmp_path, "area", "hall")
    assert saved is not None
    text = " ".join(train_command(saved, UNTIL, SOURCE))
    assert text.endswith("--size large --trees 70 --leaves 127 --threads 1 --json")
    env = TrainingSource("u", "d", "r", token="secret").environment()
    assert env["SENSORPIPE_INFLUX_TOKEN"] == "secret" and "secret" not in argv


def test_saving_again_replaces_the_model_in_one_rename(tmp_path: Path) -> None:
    entry = save(_forecaster(OLD, text="one"), tmp_path, "device")
    first = read(entry)
    assert entry.is_symlink() and first.source is not None and first.source.name.startswith(".")
    save(_forecaster(OLD + HOUR_S, text="two"), tmp_path, "device")
    second = read(entry)
    assert second.stamp != first.stamp and (entry / "h1.txt").read_text() == "two"
    # a reader that resolved the entry before still reads the training it started with
    assert (first.source / "h1.txt").read_text() == "one"
    save(_forecaster(OLD + 2 * HOUR_S, text="three"), tmp_path, "device")
    assert not first.source.exists()  # the training before the last is removed
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock"))
    assert len(names) == 3 and names[-1] == entry.name  # two trainings and the entry


def test_a_save_that_fails_before_its_rename_keeps_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = save(_forecaster(OLD, text="one"), tmp_path, "device")
    real = os.replace

    def fail_on_the_link(src: Any, dst: Any) -> None:
        if str(src).endswith(".link"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_the_link)
    with pytest.raises(OSError):
        save(_forecaster(OLD + HOUR_S, text="two"), tmp_path, "device")
    assert (entry / "h1.txt").read_text() == "one"
    assert read(entry).trained_until == OLD - HOUR_S
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".link"))]


def test_a_folder_saved_before_entries_were_links_is_replaced(tmp_path: Path) -> None:
    entry = save(_forecaster(OLD, text="one"), tmp_path, "device")
    real = entry.resolve()
    entry.unlink()
    os.replace(real, entry)  # as an older sensorpipe saved it: a plain folder
    save(_forecaster(OLD + HOUR_S, text="two"), tmp_path, "device")
    assert entry.is_symlink() and (entry / "h1.txt").read_text() == "two"


def test_the_api_and_the_alerts_job_drop_their_forecast_after_a_retrain(tmp_path: Path) -> None:
    from sensorpipe.api.config import ServeConfig
    from sensorpipe.api.context import ApiContext
    from sensorpipe.crowd.live import SavedForecasts
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.protocol.registry import AreaEntry, AreaLine

    save(_forecaster(OLD), tmp_path, "device")
    ctx = ApiContext(
        ServeConfig(models_path=str(tmp_path)),
        InfluxClient("http://127.0.0.1:9", "x"),
        clock=lambda: NOW,  # the three asked in one hour, none ending among them
    )
    made: list[Any] = []

    def compute(models: ModelCache, origin: int) -> tuple[Any, str | None]:
        made.append(models.stamp("device", "d1"))
        return {"n": len(made)}, None

    assert ctx.forecast("device", "d1", compute) == ({"n": 1}, None)
    assert ctx.forecast("device", "d1", compute) == ({"n": 1}, None)  # kept for the hour
    save(_forecaster(OLD + HOUR_S), tmp_path, "device")  # retrained
    assert ctx.forecast("device", "d1", compute) == ({"n": 2}, None)
    assert made[0] != made[1]

    save(_forecaster(OLD, ["a1"]), tmp_path, "area")
    points: list[int] = []

    class Source(SavedForecasts):
        def _points(self, area_id: str, area: Any, origin: int) -> list[Any]:
            points.append(origin)
            return []

    source = Source(ModelCache(tmp_path), lambda *a: None)  # type: ignore[arg-type]
    street = AreaEntry(name="a", kind="street", capacity=10, lines=[AreaLine(device="d1")])
    source("a1", street, NOW * 1000)
    source("a1", street, NOW * 1000 + 60_000)
    assert len(points) == 1  # once per origin hour
    save(_forecaster(OLD + HOUR_S, ["a1"]), tmp_path, "area")
    source("a1", street, NOW * 1000 + 120_000)
    assert len(points) == 2  # and again after a retrain


def test_crowd_models_lists_each_model_and_its_last_retraining(models: Path) -> None:
    job, _, _ = _job(models, [sys.executable, "-c", "import sys; sys.exit('Error: no counts')"])
    job.run_once()
    job.running.process.wait()  # type: ignore[union-attr]
    job.run_once()
    (models / "device-broken").mkdir()
    (models / "device-broken" / "model.json").write_text("{")
    result = CliRunner().invoke(main, ["crowd", "models", "--models", str(models), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["models"]
    broken, good = sorted(rows, key=lambda r: "error" not in r)
    assert broken["model"] == "device-broken" and "not a saved model" in broken["error"]
    assert good["kind"] == "device" and good["series"] == ["d1", "d2"]
    assert good["trained_until"] == iso(OLD) and good["horizons"] == ["1h", "3h"]
    assert good["retrained"]["result"] == "failed" and good["retrained"]["error"] == "no counts"
    result = CliRunner().invoke(main, ["crowd", "models", "--models", str(models)])
    assert result.exit_code == 0, result.output
    assert f"device d1, d2; trained until {iso(OLD)}; horizons 1h 3h" in result.stdout
    assert f"last retraining: {iso(NOW)} (failed: no counts)" in result.stdout
    # A model of an area that is gone is removed, with its record: the ingest retrains it no
    # more, and nothing of it is left beside the others.
    name = good["model"]
    result = CliRunner().invoke(
        main, ["crowd", "models", "--models", str(models), "--remove", name]
    )
    assert result.exit_code == 0 and result.stdout == f"{name}: removed from {models}\n"
    assert not (models / name).exists() and not list(models.glob(f".{name}*"))
    assert name not in read_status(models)
    again = CliRunner().invoke(main, ["crowd", "models", "--models", str(models), "--remove", name])
    assert again.exit_code == 1 and f"{name}: no saved model in {models}" in again.output


def test_the_ingest_config_and_service(tmp_path: Path) -> None:
    from sensorpipe.ingest.config import ConfigError, load_ingest_config
    from tests.test_ingest_service import FakeInflux, _service

    (tmp_path / "registry.toml").write_text("")
    toml = tmp_path / "ingest.toml"
    base = 'registry_path = "registry.toml"\n[broker]\npassword = "x"\n'
    toml.write_text(base + '[forecast]\nmodels = "fc"\nretrain_every = "12h"\n')
    config = load_ingest_config(toml)
    assert config.forecast.models == str(tmp_path.resolve() / "fc")
    assert config.forecast.period_s == 12 * HOUR_S
    toml.write_text(base + '[forecast]\nretrain_every = "30m"\n')
    with pytest.raises(ConfigError, match=r"retrain_every.*'30m': give whole hours or days"):
        load_ingest_config(toml)
    service = _service(tmp_path, FakeInflux(), alerts={"models": str(tmp_path / "fc")})
    try:
        (job,) = [j for j in service._schedule.jobs if isinstance(j, RetrainJob)]
        assert job.models_dir == tmp_path / "fc"
        service._note_retrain("device-x", False, "no counts")
        text = service.metrics.registry.get_sample_value(
            "sensorpipe_ingest_forecast_retrain_failures_total"
        )
        assert text == 1 and service.stats.forecast_retrain_last_error == "device-x: no counts"
    finally:
        service.close()
    service = _service(tmp_path / "b", FakeInflux())  # no models folder: nothing retrained
    try:
        assert not [j for j in service._schedule.jobs if isinstance(j, RetrainJob)]
    finally:
        service.close()


def test_what_a_killed_child_left_while_saving_is_removed(models: Path) -> None:
    job, _, _ = _job(models, SLEEP)
    job.run_once()
    pid = job.running.process.pid  # type: ignore[union-attr]
    half = models / f".{_entry(models)}.v-18f0-{pid}.tmp"
    half.mkdir()
    (half / "h1.txt").write_text("half")
    other = models / f".{_entry(models)}.v-18f0-{pid + 1}.tmp"  # another training's
    other.mkdir()
    job.stop()
    assert not half.exists() and other.exists()
    assert (models / _entry(models) / "h1.txt").read_text() == "tree"


def test_a_training_an_earlier_ingest_started_is_not_started_twice(models: Path) -> None:
    import subprocess

    entry = _entry(models)
    child = subprocess.Popen(SLEEP)
    try:
        record = {"result": "running", "started": iso(NOW - 60), "pid": child.pid}
        (models / "retrain.json").write_text(json.dumps({entry: record}))
        job, calls, _ = _job(models, SLEEP)
        assert job.run_once() == "idle" and calls.calls == []  # its child still runs
        job._clock = lambda: NOW + 5 * 3600  # started longer than timeout_s ago: not it
        assert job.run_once().startswith("started")
        job.stop()
    finally:
        child.kill()
        child.wait()
    record = {"result": "running", "started": iso(NOW - 60), "pid": child.pid}  # ended
    (models / "retrain.json").write_text(json.dumps({entry: record}))
    job, calls, _ = _job(models, SLEEP)
    assert job.run_once().startswith("started")
    job.stop()


def test_stack_status_shows_the_retrainings(capsys: pytest.CaptureFixture[str]) -> None:
    from sensorpipe.cli.stack import _echo_periodic

    _echo_periodic({"forecast_retrains": 0, "forecast_retrain_failures": 0})
    assert capsys.readouterr().out == ""
    _echo_periodic({"forecast_retrains": 3, "forecast_retrain_failures": 0})
    assert capsys.readouterr().out == "  forecast models: 3 retrained, 0 retrainings failed\n"
    last = "device-x: InfluxDB: connection refused"
    _echo_periodic({"forecast_retrains": 3, "forecast_retrain_failures": 1,
                    "forecast_retrain_last_error": last})  # fmt: skip
    assert capsys.readouterr().out == (
        f"  forecast models: 3 retrained, 1 retrainings failed (last: {last}; "
        "`sensorpipe crowd models`)\n"
    )


def test_stack_status_shows_a_failed_retraining_after_a_restart(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ingest's counters start again at 0 with the ingest; retrain.json keeps the last
    retraining of each model, and `stack status` says from it which one failed."""
    from sensorpipe.cli.stack import _echo_models, _models

    assert _models(models.parent / "none") is None
    _echo_models(_models(models))
    assert capsys.readouterr().out == f"  forecast models: 1 saved in {models}\n"
    job, _, _ = _job(models, [sys.executable, "-c", "import sys; sys.exit('Error: no counts')"])
    job.run_once()
    job.running.process.wait()  # type: ignore[union-attr]
    job.run_once()
    _echo_models(_models(models))
    assert capsys.readouterr().out == (
        f"  forecast models: 1 saved in {models}; {_entry(models)}'s last retraining FAILED: "
        "no counts; `sensorpipe crowd models`\n"
    )


def test_crowd_train_takes_the_influxdb_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sensorpipe.crowd.live
    import sensorpipe.ingest.influx
    from sensorpipe.crowd.series import CountsInputError

    made: list[dict[str, Any]] = []

    class Client:
        def __init__(self, url: str, database: str, **auth: Any) -> None:
            made.append({"url": url, **auth})

        def close(self) -> None:
            pass

    def no_counts(*args: Any) -> None:
        raise CountsInputError("no counts stored")

    monkeypatch.setattr(sensorpipe.ingest.influx, "InfluxClient", Client)
    monkeypatch.setattr(sensorpipe.crowd.live, "device_counts", no_counts)
    env = TrainingSource("http://db:8086", "x", "r", "ingest", "pw", None).environment()
    args = ["crowd", "train", "--device", "d1", "--influx-url", "http://db:8086"]
    args += ["--train-until", "2024-01-02", "--timezone", "Pacific/Auckland", "--country", "NZ"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1 and "no counts stored" in result.output
    assert made == [
        {"url": "http://db:8086", "username": "ingest", "password": "pw", "token": None}
    ]


def test_a_models_folder_that_does_not_exist_is_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mistyped [forecast] models path would retrain nothing without a word: the ingest
    says so when it starts (and retrains once a model is saved there)."""
    from tests.test_ingest_service import FakeInflux, _service

    missing = tmp_path / "nowhere"
    service = _service(tmp_path, FakeInflux(), forecast={"models": str(missing)})
    try:
        assert service._retrain is not None
    finally:
        service.close()
    assert f"forecast models folder {missing} does not exist (yet)" in caplog.text
    caplog.clear()
    missing.mkdir()
    _service(tmp_path, FakeInflux(), forecast={"models": str(missing)}).close()
    assert "does not exist" not in caplog.text
