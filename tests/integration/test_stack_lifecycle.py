"""`stack up` leaves nothing running when it does not finish, `stack down` finds whatever runs
from the directory, and a process id in stack.json is trusted only while it runs that
component: real Mosquitto, influxd and ingest processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.stack.local import LocalStack
from tests.helpers import run_sensorpipe, wait_for

pytestmark = pytest.mark.integration


def processes_in(directory: Path) -> dict[int, str]:
    """Every process whose command line names `directory`: read from /proc here, not through
    the code under test."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"{directory}/" in cmdline:
            found[int(entry)] = cmdline
    return found


_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _as_from_a_terminal() -> None:
    """In the child before `stack up` runs: the signals that stop it as a shell would leave
    them (default, not blocked), whatever the test worker's own state is. `stack up` keeps an
    ignored signal ignored (as under `nohup`), so an inherited SIG_IGN or blocked mask would
    test something else."""
    for sig in _STOPPING:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)


def start_up(directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sensorpipe", "stack", "up", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_as_from_a_terminal,
    )


def read_until(up: subprocess.Popen[bytes], text: bytes) -> None:
    assert up.stdout is not None
    for line in up.stdout:
        if text in line:
            return
    raise AssertionError(f"`stack up` ended before printing {text!r}")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "st"  # not the `stack` fixture's directory
    yield d
    for pid in processes_in(d):  # whatever a failing test left behind
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("error", [KeyboardInterrupt, BrokenPipeError])
def test_up_stops_what_it_started_when_it_is_cut_short(
    directory: Path, error: type[BaseException]
) -> None:
    def progress(message: str) -> None:
        if message == "starting the ingest":
            assert len(processes_in(directory)) == 2  # influxd and mosquitto answer
            raise error()

    with pytest.raises(error):
        LocalStack(directory).up(detach=True, progress=progress)
    assert processes_in(directory) == {}
    assert not (directory / "stack.json").exists()


def test_up_with_its_output_closed_stops_what_it_started(directory: Path) -> None:
    up = start_up(directory)  # as `sensorpipe stack up | head -2`
    assert up.stdout is not None and up.stderr is not None
    up.stdout.readline()
    up.stdout.readline()
    up.stdout.close()
    error = up.stderr.read().decode()
    assert up.wait(timeout=60) != 0
    assert "Error: output closed: stopped what had started; nothing runs from" in error
    assert "Traceback" not in error and "Exception ignored" not in error
    assert processes_in(directory) == {}
    down = run_sensorpipe("stack", "down", "--dir", str(directory))
    assert down.stdout == "stopped: nothing was running\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_up_interrupted_stops_what_it_started(directory: Path, signum: int) -> None:
    up = start_up(directory)
    read_until(up, b"starting the ingest")
    assert processes_in(directory)
    up.send_signal(signum)  # Ctrl-C, `kill`, its terminal closed
    _, error = up.communicate(timeout=60)
    assert up.returncode != 0
    assert b"Error: interrupted: stopped what had started; nothing runs from" in error
    assert processes_in(directory) == {}
    assert not (directory / "stack.json").exists()


def test_down_finds_what_a_killed_up_left_and_up_never_starts_a_second_stack(
    directory: Path,
) -> None:
    up = start_up(directory)
    read_until(up, b"starting the ingest")
    wait_for(
        lambda: "ingest" in json.loads((directory / "stack.json").read_text())["pids"],
        what="the ingest's pid in stack.json",
    )
    up.kill()  # nothing can clean up after SIGKILL
    up.wait()
    left = processes_in(directory)
    assert len(left) == 3, left
    recorded = json.loads((directory / "stack.json").read_text())["pids"]
    assert set(recorded.values()) == set(left)

    again = run_sensorpipe("stack", "up", "--dir", str(directory))
    assert again.returncode == 1 and "a stack is already running from" in again.stderr
    (directory / "stack.json").unlink()  # lost: up and down find the processes all the same
    again = run_sensorpipe("stack", "up", "--dir", str(directory))
    assert again.returncode == 1 and "a stack is already running from" in again.stderr
    assert processes_in(directory) == left

    status = run_sensorpipe("stack", "status", "--dir", str(directory))
    assert status.returncode == 1 and "stack down --dir" in status.stderr

    down = run_sensorpipe("stack", "down", "--dir", str(directory))
    assert down.returncode == 0
    for name in ("ingest", "mosquitto", "influxd"):
        assert name in down.stdout
    assert processes_in(directory) == {}


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_pids_of_other_processes_in_stack_json_are_not_trusted(
    stack: LocalStack, directory: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """After a reboot, stack.json's ids may belong to anything: here another stack's
    components, and an unrelated program as the broker (SIGHUP would end it)."""
    other = stack.require_info().pids
    directory.mkdir()
    state = {
        "directory": str(directory),
        "mqtt": {"host": "127.0.0.1", "port": stack.require_info().broker_port},
        "influx": {"url": stack.require_info().influx_url, "database": "sensorpipe"},
        "pids": {**other, "mosquitto": sleeper.pid},
    }
    (directory / "stack.json").write_text(json.dumps(state))
    d = str(directory)

    status = run_sensorpipe("stack", "status", "--dir", d)
    assert status.returncode == 3, status.stderr
    assert status.stdout.count("NOT RUNNING") == 3
    assert run_sensorpipe("devices", "add", "pi-1", "--dir", d).returncode == 0  # no SIGHUP
    down = run_sensorpipe("stack", "down", "--dir", d)
    assert down.stdout == "stopped: nothing was running\n"

    (directory / "stack.json").write_text(json.dumps(state))
    up = run_sensorpipe("stack", "up", "--dir", d)
    assert up.returncode == 0, up.stderr
    try:
        status = run_sensorpipe("stack", "status", "--dir", d)
        assert status.returncode == 0 and "NOT RUNNING" not in status.stdout
    finally:
        down = run_sensorpipe("stack", "down", "--dir", d)
    assert down.returncode == 0 and processes_in(directory) == {}

    assert sleeper.poll() is None
    running = {name: pids for name, pids in stack.running().items() if pids}
    assert running == {name: [pid] for name, pid in other.items()}  # the fixture runs no API
