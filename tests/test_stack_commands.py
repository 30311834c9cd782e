"""The local stack's commands without a broker or database: which processes count as the
stack's, what `stack status` exits with, the lock, the stack directory, what `stack up` and
`sim fleet` refuse before starting or registering anything, and the reserved account names.

Real processes here are `sleep`s standing in for unrelated programs whose ids a stale
stack.json might hold; tests/integration/test_stack_lifecycle.py starts the real stack."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.gateway.devices import ProvisioningError, add_device, add_reader
from sensorpipe.process import (
    ManagedProcess,
    find_processes,
    process_argv,
    runs,
    same_command,
    stop_pid,
)
from sensorpipe.protocol.registry import DeviceEntry, Registry, load_registry, save_registry
from sensorpipe.stack.local import LocalStack, default_directory
from sensorpipe.stack.registration import StackRegistrar
from tests.helpers import wait_for

SLEEP = ["sleep", f"300.{os.getpid()}"]  # a command line no other process on the machine has


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process: what a recorded process id may belong to after a reboot."""
    proc = subprocess.Popen(SLEEP)
    # Until the child has exec'd, /proc shows the parent's command line, or none at all.
    wait_for(lambda: process_argv(proc.pid) == SLEEP, what="sleep to start")
    yield proc
    proc.kill()
    proc.wait()


def _state(directory: Path, pids: dict[str, int], port: int = 9) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "directory": str(directory),
        "mqtt": {"host": "127.0.0.1", "port": port},
        "influx": {"url": "http://127.0.0.1:9", "database": "sensorpipe"},
        "pids": pids,
    }
    (directory / "stack.json").write_text(json.dumps(state))
    return directory


def _still_running(proc: subprocess.Popen[bytes]) -> bool:
    """Alive half a second on: long enough for a signal it was sent to have ended it."""
    try:
        proc.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        return True
    return False


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# --- which process is which -----------------------------------------------------------------


def test_a_process_is_recognised_by_its_command_line(sleeper: subprocess.Popen[bytes]) -> None:
    assert process_argv(sleeper.pid) == SLEEP
    assert runs(sleeper.pid, ["/usr/bin/sleep", SLEEP[1]])  # the program by name, not by path
    assert not runs(sleeper.pid, ["sleep", "301"])
    assert not runs(sleeper.pid, ["mosquitto", SLEEP[1]])
    assert find_processes({"s": SLEEP, "m": ["mosquitto", "-c", "x"]}) == {
        "s": [sleeper.pid],
        "m": [],
    }
    assert process_argv(0) is None and process_argv(-1) is None


def test_the_stack_recognises_the_command_lines_its_components_run(tmp_path: Path) -> None:
    from sensorpipe.gateway.broker import Broker
    from sensorpipe.ingest.influxd import Influxd

    stack = LocalStack(tmp_path)
    commands = stack.commands()
    influxd = Influxd(tmp_path / "influxdb", http_port=1, rpc_port=2, database="sensorpipe")
    broker = Broker(tmp_path / "broker", Registry(), port=1)
    assert same_command(influxd.process.argv, commands["influxd"])
    assert same_command(broker.process.argv, commands["mosquitto"])
    assert commands["ingest"][-2:] == ["--config", str(tmp_path / "ingest" / "ingest.toml")]


def test_any_python_runs_a_python_module() -> None:
    ingest = ["/opt/venv/bin/python", "-m", "sensorpipe", "ingest", "run", "--config", "/s/i.toml"]
    assert same_command(["/usr/bin/python3.12", *ingest[1:]], ingest)
    assert not same_command(["/usr/bin/python3.12", *ingest[1:-1], "/t/i.toml"], ingest)


def test_a_zombie_runs_nothing() -> None:
    proc = subprocess.Popen(["true"])
    try:
        # Not waited for: it stays a zombie, whose id is still taken.
        def state() -> str:
            return Path(f"/proc/{proc.pid}/stat").read_text().rsplit(") ", 1)[1][0]

        wait_for(lambda: state() == "Z", what="`true` to exit")
        assert not runs(proc.pid, ["true"])
    finally:
        proc.wait()


def test_stop_pid_leaves_a_process_that_runs_something_else(
    sleeper: subprocess.Popen[bytes],
) -> None:
    stop_pid(sleeper.pid, timeout_s=1, argv=["mosquitto", "-c", "/s/broker/mosquitto.conf"])
    assert _still_running(sleeper)
    stop_pid(sleeper.pid, timeout_s=5, argv=SLEEP)
    sleeper.wait(timeout=5)  # ended (reaped by stop_pid, so its status is lost)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C as in an interactive session (Python's own handler, not blocked), whatever
    state the test worker's process is in; put back afterwards."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_while_a_process_is_spawned_leaves_it_stoppable(tmp_path: Path) -> None:
    process = ManagedProcess("sleep", SLEEP, tmp_path / "sleep.log")
    recorded: list[int] = []

    def on_spawn(pid: int) -> None:
        signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came while Popen was returning
        recorded.append(pid)

    process.on_spawn = on_spawn
    with pytest.raises(KeyboardInterrupt):
        process.start(lambda: True)
    try:
        assert process.pid is not None and recorded == [process.pid] and process.running
    finally:
        process.stop()
    assert find_processes({"sleep": SLEEP}) == {"sleep": []}


# --- stale process ids ------------------------------------------------------------------------


def test_stale_pids_are_not_running_and_not_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    d = _state(
        tmp_path / "st",
        {"influxd": sleeper.pid, "mosquitto": sleeper.pid, "ingest": sleeper.pid},
    )
    status = _invoke("stack", "status", "--dir", str(d))
    assert status.exit_code == 3, status.output
    assert status.output.count("NOT RUNNING") == 3
    assert f"pid {sleeper.pid}" in status.output
    as_json = _invoke("stack", "status", "--dir", str(d), "--json")
    assert as_json.exit_code == 3
    assert not any(c["running"] for c in json.loads(as_json.output)["components"].values())

    # A device added while the stack is down does not SIGHUP the recorded broker id.
    added = _invoke("devices", "add", "pi-1", "--dir", str(d))
    assert added.exit_code == 0, added.output

    down = _invoke("stack", "down", "--dir", str(d))
    assert down.exit_code == 0 and "stopped: nothing was running" in down.output
    assert _still_running(sleeper)  # neither SIGHUP nor SIGTERM reached it
    assert not (d / "stack.json").exists()


def test_status_exits_3_when_only_some_components_run(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _state(tmp_path / "st", {"influxd": 11, "mosquitto": 12, "ingest": 13})
    monkeypatch.setattr(
        LocalStack, "running", lambda self: {"influxd": [11], "mosquitto": [12], "ingest": []}
    )
    result = _invoke("stack", "status", "--dir", str(d))
    assert result.exit_code == 3
    lines = result.output.splitlines()
    assert any("influxd" in line and line.endswith(" running") for line in lines)
    assert any("ingest" in line and "NOT RUNNING" in line for line in lines)

    monkeypatch.setattr(
        LocalStack, "running", lambda self: {"influxd": [11], "mosquitto": [12], "ingest": [13]}
    )
    assert _invoke("stack", "status", "--dir", str(d)).exit_code == 0


def test_status_without_state_names_processes_that_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "st").mkdir()
    monkeypatch.setattr(
        LocalStack, "running", lambda self: {"influxd": [], "mosquitto": [42], "ingest": []}
    )
    result = _invoke("stack", "status", "--dir", str(tmp_path / "st"))
    assert result.exit_code == 1
    assert "no stack.json in" in result.output and "mosquitto pid 42 run" in result.output
    assert "stack down --dir" in result.output


def test_status_counts_devices_in_the_singular(tmp_path: Path) -> None:
    d = _state(tmp_path / "st", {})
    assert _invoke("devices", "add", "pi-1", "--dir", str(d)).exit_code == 0
    assert "1 device registered" in _invoke("stack", "status", "--dir", str(d)).output
    assert _invoke("devices", "add", "pi-2", "--dir", str(d)).exit_code == 0
    assert "2 devices registered" in _invoke("stack", "status", "--dir", str(d)).output


# --- one `up` or `down` at a time -------------------------------------------------------------


def test_up_and_down_refuse_while_another_holds_the_lock(tmp_path: Path) -> None:
    d = tmp_path / "st"
    d.mkdir()
    try:
        with open(d / "stack.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for command in ("up", "down"):
                result = _invoke("stack", command, "--dir", str(d))
                assert result.exit_code == 1
                assert "another `sensorpipe stack up` or `stack down` is at work on" in (
                    result.output
                )
        assert not (d / "stack.json").exists() and not (d / "registry.toml").exists()
    finally:
        LocalStack(d).down()  # should `up` have started anything


# --- the stack directory ----------------------------------------------------------------------


def test_an_empty_sensorpipe_dir_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSORPIPE_DIR", "")
    assert default_directory() == Path(".sensorpipe")
    monkeypatch.delenv("SENSORPIPE_DIR")
    assert default_directory() == Path(".sensorpipe")
    monkeypatch.setenv("SENSORPIPE_DIR", "/srv/stack")
    assert default_directory() == Path("/srv/stack")


def test_up_cannot_create_its_directory_under_proc() -> None:
    result = _invoke("stack", "up", "--dir", "/proc/sensorpipe-stack")
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: /proc/sensorpipe-stack: cannot create the stack directory ("
    )
    assert len(result.output.splitlines()) == 1


# --- reserved account names -------------------------------------------------------------------


def test_the_ingest_account_name_is_never_a_device_id() -> None:
    with pytest.raises(ProvisioningError, match="'ingest' is the name of a reading account"):
        add_device(Registry(), "ingest", site="a")
    registry = Registry()
    add_reader(registry, "auditor")
    with pytest.raises(ProvisioningError, match="'auditor' is the name of a reading account"):
        add_device(registry, "auditor", site="a")
    with pytest.raises(ProvisioningError, match="already a device or the ingest"):
        add_reader(Registry(), "ingest")


def test_devices_add_refuses_ingest_before_the_stack_ever_ran(tmp_path: Path) -> None:
    result = _invoke("devices", "add", "ingest", "--dir", str(tmp_path))
    assert result.exit_code == 1 and "'ingest' is the name of a reading account" in result.output
    assert not load_registry(tmp_path / "registry.toml").devices


def test_up_reports_a_device_named_ingest_in_one_line(tmp_path: Path) -> None:
    registry = Registry()
    registry.devices["ingest"] = DeviceEntry(site="a", public_key="k", password_hash="h")
    save_registry(registry, tmp_path / "registry.toml")  # as an older version let it be
    result = _invoke("stack", "up", "--dir", str(tmp_path))
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: {tmp_path}/registry.toml: 'ingest' is registered as a device")
    assert "register it under another id" in line
    assert not (tmp_path / "stack.json").exists()


# --- sim fleet --------------------------------------------------------------------------------


def test_sim_fleet_registers_nothing_when_the_broker_is_down(
    tmp_path: Path, listening_port: int
) -> None:
    # Something answers on the recorded port, but it is not the stack's Mosquitto.
    d = _state(tmp_path / "st", {"mosquitto": 0}, port=listening_port)
    result = _invoke("sim", "fleet", "--dir", str(d), "--devices", "2", "--duration", "1")
    assert result.exit_code == 1
    assert f"the stack's broker (127.0.0.1:{listening_port}) does not run or answer" in (
        result.output
    )
    assert "no devices registered" in result.output
    assert not load_registry(d / "registry.toml").devices


@pytest.mark.parametrize("option", ["--sensirion", "--sps30-uart"])
def test_sim_fleet_without_sensirions_drivers_says_which_extra(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    import sensorpipe.firmware_sim.fleet as fleet

    monkeypatch.setattr(fleet, "sensirion_installed", lambda: False)
    d = _state(tmp_path / "st", {"mosquitto": 0}, port=listening_port)
    result = _invoke("sim", "fleet", "--dir", str(d), "--devices", "1", option)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line == (
        f"Error: {option} needs Sensirion's drivers, which are not installed: "
        "pip install 'sensorpipe[sensirion]' (no devices registered)"
    )
    assert not load_registry(d / "registry.toml").devices


class _FleetThatCouldNotSend:
    def __init__(self, devices: list[Any], **_kwargs: Any) -> None:
        self.devices = devices

    def start(self) -> None:
        pass

    def queued(self) -> int:
        return 3

    def acked(self) -> int:
        return 1

    def stop(self) -> int:
        return 2


def test_sim_fleet_fails_when_messages_are_left_in_outboxes(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sensorpipe.firmware_sim.fleet

    d = _state(tmp_path / "st", {}, port=listening_port)
    monkeypatch.setattr(sensorpipe.firmware_sim.fleet, "Fleet", _FleetThatCouldNotSend)
    monkeypatch.setattr(
        LocalStack, "running", lambda self: {"influxd": [], "mosquitto": [1], "ingest": []}
    )
    monkeypatch.setattr(StackRegistrar, "reload_broker", lambda self, registry, **_: None)
    result = _invoke("sim", "fleet", "--dir", str(d), "--devices", "1", "--duration", "1")
    assert result.exit_code == 1
    assert "done: 1 message acknowledged by the broker, 2 still in outboxes" in result.output
    assert "Error: 2 messages were never sent: still in the simulated devices' outboxes" in (
        result.output
    )


def test_quarantine_and_lift_without_a_running_stack(tmp_path: Path) -> None:
    """The book is the record: a quarantine made while nothing runs is applied by the next
    `stack up` (test_broker_security checks the broker), and says so."""
    from sensorpipe.protocol.quarantine import QuarantineBook

    directory = tmp_path / "st"
    registry = Registry(devices={"pi-1": DeviceEntry(site="s", source="import")})
    save_registry(registry, directory / "registry.toml")
    runner = CliRunner()
    where = ["--dir", str(directory)]
    out = runner.invoke(main, ["devices", "quarantine", "pi-1", *where, "--reason-text", "loop"])
    assert out.exit_code == 0, out.output
    assert "quarantined pi-1 (" in out.output and "devices lift pi-1" in out.output
    book = QuarantineBook(directory / "quarantine.sqlite")
    (entry,) = book.active().values()
    assert (entry.reason, entry.detail) == ("manual", "loop") and entry.by.startswith("operator")
    book.close()
    listed = runner.invoke(main, ["devices", "list", *where])
    assert "QUARANTINED(manual since" in listed.output
    out = runner.invoke(main, ["devices", "lift", "pi-1", *where])
    assert out.exit_code == 0, out.output
    assert "lifted the quarantine of pi-1 (manual since" in out.output
    assert "no broker runs; `sensorpipe stack up` starts it" in out.output
    again = runner.invoke(main, ["devices", "lift", "pi-1", *where])
    assert again.exit_code == 1 and "pi-1 is not quarantined" in again.output
    book = QuarantineBook(directory / "quarantine.sqlite")
    assert [e.event for e in book.events(device_id="pi-1")] == ["lifted", "quarantined"]
    book.close()


def test_with_the_broker_down_and_the_rest_running_lift_says_stack_down_then_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stack up` refuses while any part of the stack runs: with only the broker gone,
    quarantine and lift say to take the stack down first."""
    from sensorpipe.stack.local import COMPONENTS, LocalStack

    directory = tmp_path / "st"
    registry = Registry(devices={"pi-1": DeviceEntry(site="s", public_key="k", password_hash="h")})
    save_registry(registry, directory / "registry.toml")
    running = {name: [] if name == "mosquitto" else [4242] for name in COMPONENTS}
    monkeypatch.setattr(LocalStack, "running", lambda self: running)
    runner = CliRunner()
    where = ["--dir", str(directory)]
    out = runner.invoke(main, ["devices", "quarantine", "pi-1", *where, "--reason-text", "x"])
    assert out.exit_code == 0, out.output
    assert "no broker runs; `sensorpipe stack down` then `sensorpipe stack up` start it" in (
        out.output
    )
    out = runner.invoke(main, ["devices", "lift", "pi-1", *where])
    assert out.exit_code == 0, out.output
    assert "no broker runs; `sensorpipe stack down` then `sensorpipe stack up` start it" in (
        out.output
    )


def test_stack_up_keeps_the_operators_serve_settings(tmp_path: Path) -> None:
    """serve.toml is written anew at every `stack up` (new ports); what an operator set there,
    the service's bounds and public address included, is kept."""
    import tomllib

    import tomli_w

    from sensorpipe.stack.local import SERVE_KEPT, LocalStack

    stack = LocalStack(tmp_path / "st")
    path = stack._write_serve_config(1883, "http://127.0.0.1:8086", 8080)
    mine = {
        "token_hashes": ["a" * 64],
        "tile_url": "https://tiles.example.org/{z}/{x}/{y}.png",
        "tile_attribution": "© example",
        "map": {"basemap": "osm"},
        "max_points": 5000,
        "register_cache_s": 60.0,
        "max_heavy_requests": 3,
        "busy_retry_after_s": 9,
        "health_cache_s": 5.0,
        "request_timeout_s": 4.0,
        "max_connections_per_client": 0,
        "public_url": "https://data.example.org/sensors",
    }
    assert set(mine) == set(SERVE_KEPT)
    old = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps({**old, **mine}))
    rewritten = stack._write_serve_config(1884, "http://127.0.0.1:8087", 8081)
    again = tomllib.loads(rewritten.read_text())
    assert {k: again[k] for k in mine} == mine
    assert again["broker"]["port"] == 1884
    # request_timeout_s was header_timeout_s: an operator's value under the old name is kept.
    old = {k: v for k, v in again.items() if k != "request_timeout_s"}
    rewritten.write_text(tomli_w.dumps({**old, "header_timeout_s": 7.0}))
    again = tomllib.loads(
        stack._write_serve_config(1885, "http://127.0.0.1:8088", 8082).read_text()
    )
    assert again["request_timeout_s"] == 7.0 and "header_timeout_s" not in again


def test_the_stacks_ingest_toml_says_what_a_restart_keeps(tmp_path: Path) -> None:
    """`stack up` writes ingest.toml at each start: the file says so, and an operator's
    [alerts] settings survive the rewrite (their comments do not, which the header says)."""
    from sensorpipe.stack.configs import write_ingest_config

    def write() -> Path:
        return write_ingest_config(
            tmp_path, registry_path=tmp_path / "r.toml", quarantine_path=tmp_path / "q",
            keys_path=tmp_path / "k", broker_port=1, influx_url="http://x", password="x",
            metrics_port=0,
        )  # fmt: skip

    path = write()
    with path.open("a") as f:
        f.write('\n[alerts]\n# paged at night\nwebhooks = ["https://ops.example.org/a"]\n')
    text = write().read_text()
    assert text.startswith("# Written by `sensorpipe stack up` at each start")
    assert "comments and other\n# changes are not" in text
    assert 'webhooks = [\n    "https://ops.example.org/a",\n]' in text or (
        'webhooks = ["https://ops.example.org/a"]' in text
    )
    assert "# paged at night" not in text


def test_a_stopped_stack_is_said_to_be_stopped_not_missing(tmp_path: Path) -> None:
    # `stack down` removes stack.json and keeps the registry and the data.
    d = tmp_path / "st"
    d.mkdir()
    save_registry(Registry(), d / "registry.toml")
    result = _invoke("sim", "fleet", "--dir", str(d), "--devices", "1")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the stack in {d} is stopped (its data and devices are kept): start it with "
        f"`sensorpipe stack up --dir {d}`\n"
    )
    never = _invoke("sim", "fleet", "--dir", str(tmp_path / "none"), "--devices", "1")
    assert never.exit_code == 1 and "no stack in" in never.output
    # and the commands that read its InfluxDB
    for args in (["query", "air"], ["query", "counts"]):
        read = _invoke(*args, "--dir", str(d))
        assert read.exit_code == 1
        assert f"the stack in {d} is stopped (its data and devices are kept)" in read.output
