"""Child processes sensorpipe starts itself: free loopback ports, readiness, clean stops.

- `ManagedProcess`: one child with its log file; `start` returns once the caller's `ready()`
  holds, or raises `ProcessStartError` quoting the log; `stop` sends SIGTERM, then SIGKILL;
- `free_port(s)`, `port_open`, `port_holders`/`describe_holder`: loopback ports, and who holds
  one that is taken;
- `pid_alive`, `runs`, `find_processes`, `stop_pid`: processes found again by id or command
  line (Linux /proc). A process id written down earlier is signalled only while it still runs
  the command line it was recorded with.

Why here, at the package's top, beside `http_server` and `resources`: the managed broker
(`gateway.broker`), the throw-away influxd (`ingest.influxd`), the local stack (`stack.local`),
the tests and the benchmarks all start processes with it, so it belongs to none of them. In
`stack/` the components would reach up into the local stack to run; in `protocol/` it would
break that package's promise of pure functions without sockets or processes. It imports
nothing of sensorpipe, so every component may import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


class ProcessStartError(RuntimeError):
    """A managed process exited or never became ready. The message quotes its log."""


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` different free ports: each stays bound until all are chosen, so none repeats."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie child counts as gone.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def process_argv(pid: int) -> list[str] | None:
    """The command line process `pid` runs (Linux /proc); None when there is no such process,
    it is a zombie, or it cannot be read."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None  # a zombie or a kernel thread
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return [os.fsdecode(arg) for arg in raw.split(b"\0")]


def same_command(actual: Sequence[str], expected: Sequence[str]) -> bool:
    """The same arguments and a program of the same name (`mosquitto` from PATH or in full;
    any Python for a `python -m` module)."""

    def program(path: str) -> str:
        name = Path(path).name
        return "python" if name.startswith("python") else name

    return list(actual[1:]) == list(expected[1:]) and program(actual[0]) == program(expected[0])


def runs(pid: int, argv: Sequence[str]) -> bool:
    """Whether process `pid` is alive and runs `argv`. A process id written down earlier may
    belong to anything by now (after a reboot, or once ids wrap): check before trusting it."""
    actual = process_argv(pid)
    return actual is not None and same_command(actual, argv)


def find_processes(commands: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """For each name, the ids of the live processes that run its command line."""
    found: dict[str, list[int]] = {name: [] for name in commands}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for pid in sorted(int(entry) for entry in entries if entry.isdigit()):
        actual = process_argv(pid)
        if actual is None:
            continue
        for name, argv in commands.items():
            if same_command(actual, argv):
                found[name].append(pid)
    return found


def stop_pid(pid: int, timeout_s: float = 10.0, *, argv: Sequence[str] | None = None) -> None:
    """SIGTERM (which lets Mosquitto save its persistence file), SIGKILL after the timeout.
    With `argv`, only while the process still runs that command line: a process id that has
    gone to another process is left alone."""

    def ours() -> bool:
        return pid_alive(pid) if argv is None else runs(pid, argv)

    if argv is not None and not runs(pid, argv):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass  # not our child: poll instead
        if not ours():
            return
        time.sleep(0.05)
    if ours():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver them. Ctrl-C raised
    inside `subprocess.Popen`, after the fork, would lose the child: no handle to stop it
    and no process id for anyone to find. Only the main thread receives Python's signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: held.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        # An ignored signal (`nohup`) stays ignored, for the child too; a handler set
        # outside Python cannot be put back, so it stays as well.
        if signal.getsignal(sig) not in (signal.SIG_IGN, None)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in held:
            signal.raise_signal(signum)


class ManagedProcess:
    """One child process with its log file; `start` returns when `ready()` holds."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where the log stood when the process last started
        # Called with the new process id as soon as it is spawned, before `start` waits for
        # it to be ready: whoever must be able to stop it later records it there.
        self.on_spawn: Callable[[int], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(
        self, ready: Callable[[], bool], *, timeout_s: float = 30.0, detach: bool = False
    ) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log, _signals_held():
            self._log_start = log.tell()  # what this start writes: the tail shown on failure
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=detach,
                )
            except FileNotFoundError:
                raise ProcessStartError(
                    f"{self.name}: {self.argv[0]} not found; run `make setup` as root "
                    f"or install it (apt-get install mosquitto influxdb)"
                ) from None
            if self.on_spawn is not None:
                self.on_spawn(self.proc.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ProcessStartError(f"{self.name} not ready after {timeout_s} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid, timeout_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, for tests of what survives a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` of what the process wrote since its last start (not an earlier
        run's errors, which the appended log keeps)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def port_holders(port: int) -> list[tuple[int, str]]:
    """The processes that listen on TCP `port` (any address, IPv4 or IPv6): (pid, command
    line), found from /proc/net/tcp{,6} and the sockets in /proc/<pid>/fd. Processes of other
    users whose fds cannot be read are missing: an empty list means "another process"."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEXADDR:HEXPORT; state 0A is LISTEN.
            listening = len(fields) > 9 and fields[3] == "0A"
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders: list[tuple[int, str]] = []
    try:
        entries = sorted(int(e) for e in os.listdir("/proc") if e.isdigit())
    except OSError:
        return []
    for pid in entries:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                argv = process_argv(pid)
                holders.append((pid, " ".join(argv) if argv else "?"))
                break
    return holders


def describe_holder(port: int) -> str:
    """`pid 12 (mosquitto -c /etc/mosquitto/mosquitto.conf)`, or "another process"."""
    holders = port_holders(port)
    if not holders:
        return "another process"
    return ", ".join(f"pid {pid} ({_short(cmd)})" for pid, cmd in holders)


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."
