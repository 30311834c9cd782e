"""Time you can trust (issue 28, point 5): a reading taken before the clock is synchronised is
marked so (as the clock was when it was taken, not when it was queued); a clock set back
(a Pi without a real-time clock after a power cut, then NTP) neither reorders nor drops nor
holds up the outbox, with the clock injected; and the agent says at start, in one line,
whether the clock is synchronised and by what, never failing to start for it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from sensorpipe.edge import host
from sensorpipe.edge.agent import Agent, SensorOpener
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.registry import Bme280Config
from sensorpipe.edge.outbox import MemoryOutbox, Outbox, SqliteOutbox
from sensorpipe.edge.publisher import Publisher
from sensorpipe.protocol.codec import decode
from sensorpipe.protocol.signing import generate_keypair
from tests.test_agent import FakePublisher, _sent

PRIVATE, _PUBLIC = generate_keypair()
T0 = 1_790_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Driver:
    model = "bme280"
    frames_bad = 0

    def __init__(self, during_read: Callable[[], None] = lambda: None) -> None:
        self._during_read = during_read

    def read(self) -> dict[str, float]:
        self._during_read()
        return {"temperature": 20.0}

    def close(self) -> None:
        pass


def _agent(
    outbox: Outbox, clock: Callable[[], float], synced: Callable[[], bool], **kw: Any
) -> Agent:
    config = EdgeConfig(
        device_id="d1",
        private_key=PRIVATE,
        mqtt=MqttConfig(username="d1", password="p"),
        sensors=[Bme280Config(driver="bme280")],
    )
    return Agent(
        config,
        outbox=outbox,
        publisher_factory=cast(Callable[..., Publisher], FakePublisher),
        clock=clock,
        clock_synced=synced,
        rssi=lambda: None,
        **kw,
    )


def test_a_reading_taken_before_the_clock_was_synchronised_is_marked_so() -> None:
    """NTP steps the clock while the sensor is being read: the reading's time came from the
    unsynchronised clock, and its message says so; the next one is synchronised."""
    synced = [False]
    driver = Driver(during_read=lambda: synced.__setitem__(0, True))
    agent = _agent(MemoryOutbox(), Clock(T0), lambda: synced[0], drivers=[(driver, 60.0)])
    agent.sample(agent._slots)
    agent.sample(agent._slots)
    messages = [decode(p) for p in _sent(agent, agent.outbox)]
    assert [m.clock_synced for m in messages] == [False, True]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_clock_set_back_neither_reorders_nor_drops_nor_holds_up_the_outbox(
    tmp_path: Path, kind: str
) -> None:
    clock = Clock(T0)
    outbox: Outbox = (
        MemoryOutbox(clock=clock)
        if kind == "memory"
        else SqliteOutbox(tmp_path / "outbox.sqlite", clock=clock)
    )
    agent = _agent(outbox, clock, lambda: True, drivers=[(Driver(), 60.0)])
    agent.sample(agent._slots)
    (first,) = outbox.pending()
    outbox.mark_sent(first.id)  # the broker has it; the ingest's confirmation is awaited
    clock.now = T0 - DAY  # a power cut, no real-time clock: the clock starts a day behind
    agent.sample(agent._slots)
    agent.sample(agent._slots)
    outbox.requeue(sent_before=clock() - 60)  # the publisher's: unconfirmed for 60 s
    pending = outbox.pending()
    # Nothing dropped, in the order taken (sequence numbers), whatever the clock said; the
    # entry sent before the clock went back is offered again now, not a day later.
    assert [e.seq for e in pending] == [1, 2, 3]
    messages = [decode(p) for p in _sent(agent, outbox)]
    assert [m.seq for m in messages] == [1, 2, 3]
    assert [m.observed_at.timestamp() for m in messages] == [T0, T0 - DAY, T0 - DAY]
    assert outbox.depth() == 3
    outbox.confirm([1, 2, 3])
    assert outbox.depth() == 0 and outbox.dropped == 0
    outbox.close()


def test_the_agent_says_in_the_log_when_the_clock_was_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(T0)
    agent = _agent(MemoryOutbox(), clock, lambda: False)
    with caplog.at_level(logging.INFO, logger="sensorpipe.edge.agent"):
        agent._watch_clock(100.0)
        clock.now = T0 - 3600 + 1  # one second later by the monotonic clock
        agent._watch_clock(101.0)
        clock.now = T0 - 3600 + 2
        agent._watch_clock(102.0)  # as it should be: nothing to say
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("the clock was set back by 3600 s (not synchronised)")


def test_the_agent_says_at_start_whether_the_clock_is_synchronised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = _agent(
        MemoryOutbox(),
        Clock(T0),
        lambda: True,
        clock_line=lambda: host.clock_line(lambda: (True, 0.004), lambda: ["chrony"]),
        sensors=[SensorOpener("bme280", Driver, 60.0)],
    )
    stop = threading.Event()
    stop.set()
    with caplog.at_level(logging.INFO, logger="sensorpipe.edge.agent"):
        agent.run(stop, drain_timeout_s=0)
    lines = [r.getMessage() for r in caplog.records]
    assert "clock: synchronised by chrony (max error 4 ms)" in lines


def _raises() -> tuple[bool, float] | None:
    raise OSError("adjtimex: Operation not permitted")


@pytest.mark.parametrize(
    ("kernel", "services", "line"),
    [
        (
            lambda: (True, 0.0123),
            lambda: ["systemd-timesyncd"],
            "clock: synchronised by systemd-timesyncd (max error 12 ms)",
        ),
        (lambda: (True, 16.0), list, "clock: synchronised by an NTP client (max error unknown)"),
        (
            lambda: (False, 16.0),
            lambda: ["chrony"],
            "clock: not synchronised yet (chrony runs): readings are marked "
            "clock_synced=false until it is",
        ),
        (
            lambda: (False, 16.0),
            list,
            "clock: not synchronised, and no time service found (chrony, systemd-timesyncd, "
            "ntpd): readings are marked clock_synced=false; enable one (`timedatectl "
            "set-ntp true`) or fit a real-time clock",
        ),
        (
            lambda: None,
            list,
            "clock: synchronisation unknown (the kernel cannot be asked; no time service "
            "found): readings are marked clock_synced=false",
        ),
        (
            _raises,
            lambda: ["ntpd"],
            "clock: synchronisation unknown (the kernel cannot be asked; ntpd runs): "
            "readings are marked clock_synced=false",
        ),
    ],
)
def test_the_clock_line(
    kernel: Callable[[], tuple[bool, float] | None],
    services: Callable[[], list[str]],
    line: str,
) -> None:
    assert host.clock_line(kernel, services) == line


def test_time_services_are_found_by_process_name_and_timesyncd_s_file(tmp_path: Path) -> None:
    proc, run = tmp_path / "proc", tmp_path / "run"
    for pid, comm in (("1", "systemd"), ("412", "chronyd"), ("77", "ntpd")):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "comm").write_text(comm + "\n")
    assert host.time_services(proc, run) == ["chrony", "ntpd"]
    (run / "systemd" / "timesync").mkdir(parents=True)
    (run / "systemd" / "timesync" / "synchronized").touch()
    assert host.time_services(proc, run) == ["chrony", "ntpd", "systemd-timesyncd"]
    assert host.time_services(tmp_path / "none", tmp_path / "none") == []


def test_the_kernel_clock_is_asked_without_failing() -> None:
    state = host.kernel_clock()  # this host's: whatever it is, a pair or None, no exception
    assert state is None or (isinstance(state[0], bool) and state[1] >= 0)
    assert host.clock_synchronised() is (state is not None and state[0])
    assert host.clock_line().startswith("clock: ")
