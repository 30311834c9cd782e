"""Group calibrations kept up to date by the stack: the ingest's schedule (one timer thread for
the neighbour outlier and the calibration update), the update job over a book that is missing
or broken, `[calibration]` in ingest.toml, and the stack writing it. The real stack:
tests/integration/test_calibration_periodic.py."""

from __future__ import annotations

import sqlite3
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.calibration.updating import GroupUpdateJob
from sensorpipe.ingest.config import load_ingest_config
from sensorpipe.ingest.schedule import Schedule
from sensorpipe.protocol.configfile import ConfigError
from tests.helpers import one_line_config_error, wait_for


class Counting:
    """A job that counts its runs (and fails each one with `fail`)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.every_s = 0.01
        self.fail = fail
        self.runs = 0
        self.threads: set[str] = set()

    def run_once(self) -> None:
        self.runs += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise sqlite3.DatabaseError("file is not a database")


def test_both_jobs_share_one_thread_and_a_failing_one_is_counted_not_fatal() -> None:
    good, bad = Counting("neighbour outlier run"), Counting("calibration update", fail=True)
    errors: list[tuple[str, str]] = []
    schedule = Schedule([bad, good], on_error=lambda job, exc: errors.append((job.name, str(exc))))
    schedule.start()
    try:
        wait_for(lambda: good.runs >= 3 and bad.runs >= 3, what="three runs of each job")
    finally:
        schedule.stop()
    assert good.threads == bad.threads == {"ingest-schedule"}
    assert threading.current_thread().name not in good.threads
    assert errors[0] == ("calibration update", "file is not a database")
    assert len(errors) == bad.runs  # each failed run counted; the good job went on running


def test_a_job_waits_its_own_interval() -> None:
    """At monotonic time 0 both run; at 10 only the one every 10 s is due again."""
    now = [0.0]
    often, seldom = Counting("often"), Counting("seldom")
    often.every_s, seldom.every_s = 10.0, 3600.0
    schedule = Schedule([often, seldom], monotonic=lambda: now[0])
    due = {0: 0.0, 1: 0.0}
    schedule.run_due(due)
    now[0] = 10.0
    schedule.run_due(due)
    assert (often.runs, seldom.runs) == (2, 1)
    assert due == {0: 20.0, 1: 3600.0}


def _job(book: Path, note: list[Any] | None = None) -> GroupUpdateJob:
    def no_influx() -> Any:
        raise AssertionError("InfluxDB is not asked without group calibrations")

    return GroupUpdateJob(book, 60, no_influx, note=None if note is None else note.append)


def test_a_book_that_does_not_exist_yet_is_nothing_to_do(tmp_path: Path) -> None:
    notes: list[Any] = []
    job = _job(tmp_path / "state" / "calibrations.sqlite", notes)
    assert job.run_once() == []
    assert job.runs == 1 and notes == []
    assert not (tmp_path / "state").exists()  # not created by looking


def test_a_book_without_group_calibrations_asks_influxdb_nothing(tmp_path: Path) -> None:
    from sensorpipe.calibration.store import CalibrationBook

    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    book.add({"method": "linear", "quantity": "pm2_5", "sensor_model": "sds011"})
    book.close()
    notes: list[Any] = []
    assert _job(tmp_path / "calibrations.sqlite", notes).run_once() == []
    assert notes == [[]]


def test_a_broken_book_raises_for_the_schedule_to_count(tmp_path: Path) -> None:
    path = tmp_path / "calibrations.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        _job(path).run_once()


def test_an_update_reaches_back_no_further_than_catch_up(tmp_path: Path) -> None:
    """A calibration fitted long ago: the job's update starts `not_before_ms`, not at the
    calibration's period (years of hours)."""
    from sensorpipe.calibration.store import CalibrationBook

    asked: list[str] = []

    class Influx:
        def query(self, q: str) -> list[dict[str, Any]]:
            asked.append(q)
            return []

    book = CalibrationBook(tmp_path / "calibrations.sqlite")
    book.add(
        {
            "method": "group",
            "devices": ["g1"],
            "reference": "st",
            "quantity": "pm2_5",
            "group": {"min_members": 1},
            "period": {"from": "2019-08-18T00:00:00Z", "to": "2019-08-20T00:00:00Z"},
        }
    )
    book.close()
    hour = 3_600_000
    now = 1_764_763_200_000 + 1234  # 2025-12-03T12:00:01.234Z
    job = GroupUpdateJob(
        tmp_path / "calibrations.sqlite",
        60,
        lambda: Influx(),  # type: ignore[arg-type,return-value]
        catch_up_s=48 * 3600,
        clock=lambda: now / 1000,
    )
    (done,) = job.run_once()
    assert done.ok and done.written == 0, done
    start, end = now - now % hour - 48 * hour, now - now % hour
    assert asked and all(f"time >= {start}ms AND time < {end}ms" in q for q in asked)


def _ingest_toml(tmp_path: Path, calibration: str) -> Path:
    (tmp_path / "registry.toml").write_text("")
    path = tmp_path / "ingest.toml"
    path.write_text(
        'registry_path = "registry.toml"\n[broker]\npassword = "x"\n' + calibration,
        encoding="utf-8",
    )
    return path


def test_the_book_in_ingest_toml_is_relative_to_the_file(tmp_path: Path) -> None:
    path = _ingest_toml(tmp_path, '[calibration]\nbook = "state/cal.sqlite"\nupdate_every_s = 60\n')
    config = load_ingest_config(path)
    assert config.calibration.book == str(tmp_path / "state" / "cal.sqlite")
    assert config.calibration.update_every_s == 60 and config.calibration.enabled
    assert load_ingest_config(_ingest_toml(tmp_path, "")).calibration.book is None


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("update_every = 60", "calibration.update_every (line 5): unknown key"),
        ("update_every_s = 1", "calibration.update_every_s (line 5): "),
        ('enabled = "sometimes"', "calibration.enabled (line 5): "),
    ],
)
def test_a_bad_calibration_section_is_one_line(tmp_path: Path, section: str, expected: str) -> None:
    path = _ingest_toml(tmp_path, f"[calibration]\n{section}\n")
    with pytest.raises(ConfigError):
        load_ingest_config(path)
    line = one_line_config_error(load_ingest_config, path)
    assert expected in line and str(path) in line


def test_stack_up_names_its_book_and_keeps_the_operators_settings(tmp_path: Path) -> None:
    from sensorpipe.stack.configs import write_ingest_config

    ingest = tmp_path / "ingest"
    ingest.mkdir()
    (ingest / "ingest.toml").write_text(
        '[calibration]\nupdate_every_s = 600.0\nbook = "elsewhere.sqlite"\n', encoding="utf-8"
    )
    q, k, c = (tmp_path / f"{n}.sqlite" for n in ("quarantine", "keys", "calibration"))
    path = write_ingest_config(
        ingest, registry_path=tmp_path / "registry.toml", broker_port=1883, metrics_port=9100,
        influx_url="http://127.0.0.1:8086", password="p", quarantine_path=q, keys_path=k,
        calibration_path=c,
    )  # fmt: skip
    written = tomllib.loads(path.read_text())
    book = str(tmp_path / "calibration.sqlite")
    assert written["calibration"] == {"update_every_s": 600.0, "book": book}


def test_the_metrics_count_the_failed_runs_by_job_and_the_hours_written() -> None:
    from sensorpipe.ingest.metrics import IngestMetrics
    from sensorpipe.ingest.stats import IngestStats

    stats = IngestStats(calibration_hours_written=7)
    stats.periodic_errors["calibration update"] += 2
    registry = IngestMetrics(stats).registry
    failed = registry.get_sample_value(
        "sensorpipe_ingest_periodic_errors_total", {"job": "calibration update"}
    )
    assert failed == 2
    assert registry.get_sample_value("sensorpipe_ingest_calibration_hours_written_total") == 7


def test_update_all_without_a_book_is_nothing_to_do(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sensorpipe.cli.main import main

    result = CliRunner().invoke(main, ["calibrate", "update", "--all", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "no group calibrations in the book" in result.stderr
    assert not (tmp_path / "calibrations.sqlite").exists()
