"""The saved forecast models retrained on a schedule by the ingest (`[forecast]` of ingest.toml:
`ForecastConfig`), and what the last retraining of each did (`retrain.json` in the models
folder, which `sensorpipe crowd models` shows).

Every saved model (crowd.saved) whose training ends `retrain_every` or more before the last
complete hour (one that ended SETTLE_S ago: its counts are in) is trained again on the same
devices or areas with its saved settings (horizons, place, excluded periods, trees, threads),
the training window moved forward: it ends at the last complete hour, and a window that began
at a given `train_from` keeps its length. The oldest due model goes first, one at a time.

Training takes minutes, so it never runs on the ingest's schedule thread: the job
(`RetrainJob.run_once`, on `ingest.schedule`) starts `python -m sensorpipe crowd train ...
--json` as a child process at a lower priority (`nice`) and returns at once; later turns see
whether it ended. It never starts a second while one runs (nor while another ingest worker's
runs: a lock in the models folder), stops one that runs past `timeout_s`, and `stop` (the
ingest stopping) ends it. The child saves atomically (crowd.saved), so a training that fails
or is killed leaves the previous model in place; the failure is logged in one line, counted
(`note`: the ingest's metrics) and recorded in retrain.json, and that model is tried again
`retry_after_s` later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sensorpipe.crowd.saved import ModelsError, SavedModel, entries, read
from sensorpipe.crowd.series import HOUR_S, iso, parse_time

log = logging.getLogger(__name__)
STATUS_FILE = "retrain.json"
LOCK_FILE = ".retrain.lock"
_PERIOD = re.compile(r"^\s*(\d+)\s*([hd])\s*$")
_UNIT_S = {"h": HOUR_S, "d": 86400}
# An hour's counts are all stored this long after it ended (the edge sends each minute's).
SETTLE_S = 600
STOP_WAIT_S = 5.0  # after SIGTERM, before SIGKILL (within `stack down`'s 10 s for the ingest)


def parse_period(text: str) -> int | None:
    """`retrain_every`: "7d", "12h" in seconds (at least an hour), or None for "off"."""
    if text.strip().lower() == "off":
        return None
    m = _PERIOD.match(text)
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)] if m else 0
    if seconds < HOUR_S:
        raise ValueError(
            f'{text!r}: give whole hours or days, at least 1h (e.g. "7d", "12h"), or "off"'
        )
    return seconds


class ForecastConfig(BaseModel):
    """`[forecast]` of ingest.toml: the saved forecast models retrained by the ingest."""

    model_config = ConfigDict(extra="forbid")

    # The models folder (`sensorpipe crowd train`; relative to ingest.toml); unset: the one
    # [alerts] models names. Without either, nothing is retrained.
    models: str | None = None
    # A saved model is retrained once its training ends this long before the last complete
    # hour: whole hours or days ("7d", "12h"); "off": never.
    retrain_every: str = "7d"
    # How often the ingest looks for a due model and at the training under way.
    check_every_s: float = Field(default=300.0, ge=1)
    # The niceness added to the training's (0-19): it runs behind the ingest.
    nice: int = Field(default=10, ge=0, le=19)
    # A training that runs longer is stopped (a failure: the previous model stays).
    timeout_s: float = Field(default=4 * 3600.0, ge=1)
    # After a failed training, that model is tried again this long after it failed.
    retry_after_s: float = Field(default=6 * 3600.0, ge=1)

    @field_validator("retrain_every")
    @classmethod
    def _a_period(cls, value: str) -> str:
        parse_period(value)
        return value

    @property
    def period_s(self) -> int | None:
        return parse_period(self.retrain_every)


@dataclass
class TrainingSource:
    """Where the child reads the counts: the ingest's InfluxDB (its credentials handed over in
    the environment, not on the command line) and its registry (an area's devices)."""

    influx_url: str
    database: str
    registry_path: str
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in (
            ("SENSORPIPE_INFLUX_USERNAME", self.username),
            ("SENSORPIPE_INFLUX_PASSWORD", self.password),
            ("SENSORPIPE_INFLUX_TOKEN", self.token),
        ):
            if value:
                env[key] = value
        return env


def last_complete_hour_end(now_s: float) -> int:
    """The end of the last complete hour, one that ended SETTLE_S ago at least (its counts
    are in): the retraining's --train-until."""
    return int(now_s - SETTLE_S) // HOUR_S * HOUR_S


def _time(text: Any) -> int | None:
    """A time retrain.json holds (None: none, or not one: a file edited by hand)."""
    try:
        return parse_time(text) if isinstance(text, str) else None
    except ValueError:
        return None


def train_command(saved: SavedModel, until: int, source: TrainingSource) -> list[str]:
    """`sensorpipe crowd train` of this saved model's series, with its saved settings, on the
    counts before `until` (a window that began at a given train_from moves along)."""
    meta = saved.meta
    argv = [sys.executable, "-m", "sensorpipe", "crowd", "train"]
    for name in saved.names:
        argv += [f"--{saved.kind}", name]
    argv += ["--models", str(saved.folder.parent)]
    argv += ["--influx-url", source.influx_url, "--database", source.database]
    if saved.kind == "area":
        argv += ["--registry", source.registry_path]
    argv += ["--train-until", iso(until), "--timezone", saved.where.timezone]
    argv += ["--country", str(saved.where.country)]
    if saved.where.subdiv:
        argv += ["--subdiv", saved.where.subdiv]
    if meta.get("train_from"):
        moved = parse_time(meta["train_from"]) + until - (saved.trained_until + HOUR_S)
        argv += ["--train-from", iso(moved)]
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(saved.where.timezone)
    for a, b in meta.get("excluded", []):  # local midnights, as --exclude-training took them
        days = [datetime.fromtimestamp(parse_time(t), zone).date().isoformat() for t in (a, b)]
        argv += ["--exclude-training", "/".join(days)]
    for h in saved.horizons:
        argv += ["--horizon", f"{h}h"]
    settings = meta.get("settings") or {}
    argv += ["--size", size_of(settings)]  # its learning rate and least hours a leaf
    for key in ("trees", "leaves", "threads"):
        if key in settings:
            argv += [f"--{key}", str(int(settings[key]))]
    return [*argv, "--json"]


def size_of(settings: dict[str, Any]) -> str:
    """The named size (crowd.forecast.SIZES) whose learning rate and least hours in a leaf a
    saved model's settings have ("small" for a model saved before sizes had names and
    min_leaf was recorded, which was trained so): `--size` brings them back, `--trees` and
    `--leaves` the rest."""
    from sensorpipe.crowd.forecast import SIZES

    rate = settings.get("learning_rate", 0.05)
    min_leaf = settings.get("min_leaf", SIZES["small"]["min_leaf"])
    for name, size in SIZES.items():
        if size["learning_rate"] == rate and size["min_leaf"] == min_leaf:
            return name
    return "default"


def read_status(models_dir: Path) -> dict[str, dict[str, Any]]:
    """retrain.json: per saved model's entry, its last retraining (none: {})."""
    try:
        status = json.loads((models_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def forget_status(models_dir: Path, entry: str) -> None:
    """Drop a removed model's record from retrain.json (nothing where it has none)."""
    status = read_status(models_dir)
    if status.pop(entry, None) is not None:
        _write_status(models_dir, status)


def _write_status(models_dir: Path, status: dict[str, dict[str, Any]]) -> None:
    tmp = models_dir / f".{STATUS_FILE}.tmp"
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, models_dir / STATUS_FILE)


@dataclass
class Running:
    """The training under way: its entry, process, output files and the hour it trains to."""

    entry: str
    process: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    until: int
    started: float  # time.monotonic()


# A finished retraining: (entry, ok, the one-line reason it failed).
Note = Callable[[str, bool, str | None], None]
Command = Callable[[SavedModel, int], list[str]]


class RetrainJob:
    """The ingest's job (`ingest.schedule`): every `check_every_s`, looks at the training under
    way or starts the next due one (see the module's docstring)."""

    name = "forecast retraining"

    def __init__(
        self,
        config: ForecastConfig,
        models_dir: Path | str,
        source: TrainingSource,
        *,
        command: Command | None = None,
        note: Note | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`command(saved, until)`: the child's argv (default `train_command`); `note`: told
        of each retraining that ended."""
        self.config = config
        self.models_dir = Path(models_dir)
        self.source = source
        self._command = command or (lambda saved, until: train_command(saved, until, source))
        self._note = note
        self._clock = clock
        self._monotonic = monotonic
        self.running: Running | None = None
        self._lock: IO[str] | None = None
        self._told: set[str] = set()
        # A turn (schedule thread) and `stop` (the ingest stopping) one at a time; once
        # stopped, no turn starts another training.
        self._turns = threading.Lock()
        self._stopped = False

    @property
    def every_s(self) -> float:
        return self.config.check_every_s

    def run_once(self) -> str:
        """What this turn did: "running" (a training under way), "idle" (none due), "busy"
        (another ingest worker's is), "started <entry>", or "stopped" (after `stop`)."""
        with self._turns:
            return "stopped" if self._stopped else self._turn()

    def _turn(self) -> str:
        if self.running is not None:
            if self.running.process.poll() is None:
                if self._monotonic() - self.running.started <= self.config.timeout_s:
                    return "running"
                self._end(f"stopped after {self.config.timeout_s:g}s (timeout_s)", "failed")
            else:
                self._finish()
        period = self.config.period_s
        if period is None:
            return "idle"
        now = self._clock()
        due = self.due(now, period)
        if not due:
            return "idle"
        if not self._take_lock():
            return "busy"
        try:
            self._start(due[0], last_complete_hour_end(now))
        except BaseException:
            self._release_lock()
            raise
        return f"started {due[0].folder.name}"

    def due(self, now: float, period: int) -> list[SavedModel]:
        """The saved models due for a retraining, the oldest training first."""
        until = last_complete_hour_end(now)
        status = read_status(self.models_dir)
        found = []
        for folder in entries(self.models_dir):
            try:
                saved = read(folder)
            except ModelsError as exc:
                self._tell(folder.name, f"forecast retraining: {exc}")
                continue
            if until - (saved.trained_until + HOUR_S) < period:
                continue
            last = status.get(folder.name, {})
            if last.get("result") == "running" and self._still_running(last, now):
                continue  # a child of an ingest that ended without stopping it
            failed_at = _time(last.get("finished")) if last.get("result") == "failed" else None
            if failed_at is not None and now - failed_at < self.config.retry_after_s:
                continue
            found.append(saved)
        return sorted(found, key=lambda s: (s.trained_until, s.folder.name))

    def _still_running(self, last: dict[str, Any], now: float) -> bool:
        """Whether a training an earlier ingest started may still run: its process is there,
        and it started less than timeout_s ago (a process id is reused in time)."""
        started = _time(last.get("started"))
        if started is None or now - started > self.config.timeout_s:
            return False
        return _alive(last.get("pid"))

    def _start(self, saved: SavedModel, until: int) -> None:
        argv = self._command(saved, until)
        # Read once it ended (a pipe nobody reads while it runs would stop it when full).
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=self.source.environment(), start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            out.close()
            err.close()
            raise RuntimeError(f"cannot start {argv[0]}: {exc}") from None
        _lower_priority(process.pid, self.config.nice)
        self.running = Running(saved.folder.name, process, out, err, until, self._monotonic())
        self._record(
            saved.folder.name,
            {
                "started": iso(int(self._clock())),
                "finished": None,
                "result": "running",
                "error": None,
                "training_until": iso(until),
                "trained_until": iso(saved.trained_until + HOUR_S),
                "pid": process.pid,
            },
        )
        log.info("forecast retraining of %s started, up to %s", saved.folder.name, iso(until))

    def _finish(self) -> None:
        """The training ended by itself: ok (exit 0) or failed, with its one-line reason."""
        run = self.running
        assert run is not None
        code = run.process.returncode
        if code == 0:
            self._end(None, "ok")
        elif code < 0:
            self._end(f"killed by signal {-code}", "failed")
        else:
            self._end(_last_line(run.err) or f"exit status {code}", "failed")

    def _end(self, error: str | None, result: str) -> None:
        run = self.running
        assert run is not None
        if run.process.poll() is None:
            _kill(run.process)
        run.out.close()
        run.err.close()
        self.running = None
        trained_until = None
        with contextlib.suppress(ModelsError):
            trained_until = iso(read(self.models_dir / run.entry).trained_until + HOUR_S)
        if result == "ok" and trained_until != iso(run.until):
            result, error = "failed", f"ended without saving a model up to {iso(run.until)}"
        if result != "ok":  # what a child killed while saving left (crowd.saved names it)
            for left in self.models_dir.glob(f".{run.entry}.v-*-{run.process.pid}.*"):
                if left.is_dir() and not left.is_symlink():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
        self._record(
            run.entry,
            {
                "finished": iso(int(self._clock())),
                "result": result,
                "error": error,
                "trained_until": trained_until,
                "pid": None,
            },
        )
        self._release_lock()  # recorded first: another worker sees how it ended
        if result == "ok":
            log.info("forecast model %s retrained up to %s", run.entry, trained_until)
        else:
            log.warning(
                "forecast retraining of %s %s: %s; the model trained until %s is kept",
                run.entry, result, error, trained_until,
            )  # fmt: skip
        if self._note is not None:
            self._note(run.entry, result == "ok", error)

    def stop(self) -> None:
        """End the training under way (the ingest stops): SIGTERM, then SIGKILL; no turn
        starts another."""
        with self._turns:
            self._stopped = True
            if self.running is not None:
                self._end("stopped: the ingest stopped before it finished", "stopped")

    def _record(self, entry: str, fields: dict[str, Any]) -> None:
        try:
            status = read_status(self.models_dir)
            status[entry] = {**status.get(entry, {}), **fields}
            _write_status(self.models_dir, status)
        except OSError as exc:
            self._tell(STATUS_FILE, f"forecast retraining: cannot write {STATUS_FILE}: {exc}")

    def _take_lock(self) -> bool:
        import fcntl

        if self._lock is not None:
            return True
        lock = open(self.models_dir / LOCK_FILE, "a")  # noqa: SIM115 (held across turns)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._lock = lock
        return True

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def _tell(self, key: str, message: str) -> None:
        if key not in self._told:
            self._told.add(key)
            log.warning("%s", message)


def _lower_priority(pid: int, nice: int) -> None:
    """The child's niceness: the ingest's plus `nice` (at most 19)."""
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, mine + nice))
    except OSError:  # already ended, or not allowed: it runs at the ingest's priority
        pass


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL if it has not ended STOP_WAIT_S later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_WAIT_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _last_line(stream: IO[bytes]) -> str:
    """The last non-empty line the child wrote to stderr (the CLI's one-line error)."""
    stream.seek(0)
    lines = [ln.strip() for ln in stream.read().decode("utf-8", "replace").splitlines()]
    last = next((ln for ln in reversed(lines) if ln), "")
    return last.removeprefix("Error: ")[:300]
