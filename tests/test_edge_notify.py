"""The agent speaks systemd's notify protocol: a real unix datagram socket stands in for systemd."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from sensorpipe.edge.agent import Agent
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.registry import Bme280Config
from sensorpipe.edge.notify import Notifier
from sensorpipe.edge.outbox import MemoryOutbox
from sensorpipe.edge.publisher import Publisher
from tests.test_agent import PRIVATE, FakeDriver, FakePublisher


class Systemd:
    """The receiving end of $NOTIFY_SOCKET: every datagram, as a dict of its lines."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(10)

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def until(self, key: str) -> list[dict[str, str]]:
        seen = [self.next()]
        while key not in seen[-1]:
            seen.append(self.next())
        return seen

    def pending(self) -> list[dict[str, str]]:
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(
                    dict(x.split("=", 1) for x in self.sock.recv(4096).decode().splitlines())
                )
        except BlockingIOError:
            return out


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[str, Systemd]]:
    path = str(tmp_path / "notify")
    s = Systemd(path)
    yield path, s
    s.sock.close()


class SickPublisher(FakePublisher):
    """A publisher whose thread died; counts how often the agent asked."""

    asked = 0

    @property
    def alive(self) -> bool:
        SickPublisher.asked += 1
        return False


def _agent(notifier: Notifier, publisher: type[FakePublisher] = FakePublisher) -> Agent:
    config = EdgeConfig(
        device_id="d1",
        private_key=PRIVATE,
        mqtt=MqttConfig(username="d1", password="p"),
        sensors=[Bme280Config(driver="bme280")],
    )
    values: list[dict[str, float] | Exception] = [{"temperature": 20.5}] * 100
    return Agent(
        config,
        drivers=[(FakeDriver("bme280", values), 60.0)],
        outbox=MemoryOutbox(),
        publisher_factory=cast(Callable[..., Publisher], publisher),
        clock_synced=lambda: True,
        rssi=lambda: None,
        notifier=notifier,
    )


def _run(agent: Agent) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"drain_timeout_s": 0})
    thread.start()
    return stop, thread


def test_ready_status_watchdog_and_stopping(systemd: tuple[str, Systemd]) -> None:
    path, sd = systemd
    agent = _agent(Notifier(path, watchdog_usec=100_000))
    stop, thread = _run(agent)
    try:
        first = sd.next()
        assert first["READY"] == "1"
        assert first["STATUS"] == "queued 1 reading of bme280"  # what it last did
        pings = [m for m in sd.until("WATCHDOG") + sd.until("WATCHDOG") if "WATCHDOG" in m]
        assert [m["WATCHDOG"] for m in pings] == ["1", "1"]  # again and again from the loop
    finally:
        stop.set()
        thread.join(10)
    last = sd.until("STOPPING")[-1]
    assert last["STOPPING"] == "1"
    assert f"{agent.stats.readings} readings, 0 messages confirmed" in last["STATUS"]


def test_no_watchdog_ping_while_the_publisher_thread_is_dead(
    systemd: tuple[str, Systemd],
) -> None:
    path, sd = systemd
    SickPublisher.asked = 0
    agent = _agent(Notifier(path, watchdog_usec=100_000), SickPublisher)
    stop, thread = _run(agent)
    try:
        assert sd.next()["READY"] == "1"
        while SickPublisher.asked < 3:  # the loop asked three times, and was told "not healthy"
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    later = sd.pending()
    assert later and "STOPPING" in later[-1]
    assert not [m for m in later if "WATCHDOG" in m]


def test_abstract_socket_names_and_the_environment() -> None:
    name = f"sensorpipe-test-{os.getpid()}"
    sd = Systemd(b"\0" + name.encode())
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": "30000000"})
        assert notifier.watchdog_interval_s == 15.0
        assert notifier.status("reading")
        assert sd.next() == {"STATUS": "reading"}
    finally:
        sd.sock.close()
    # The watchdog is for another process: no pings from this one.
    other = Notifier.from_env(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other.watchdog_interval_s is None
    # Not started by systemd: nothing to do, nothing fails.
    assert not Notifier.from_env({}).ready("x")


def test_a_notify_socket_that_is_gone_does_not_stop_the_agent(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert not notifier.ready("x") and not notifier.watchdog()


def test_the_first_reading_and_a_summary_every_few_minutes_are_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sensorpipe.edge.agent")
    agent = _agent(Notifier(None))
    agent._summary_interval_s = 0.05
    stop, thread = _run(agent)
    try:
        while not any("outbox depth" in r.getMessage() for r in caplog.records):
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines[0].startswith("clock: ")  # whether it is synchronised, and by what
    assert lines[1] == "first reading queued: bme280 (temperature 20.5)"
    assert len([x for x in lines if x.startswith("first reading")]) == 1  # only the first
    summary = next(x for x in lines if "outbox depth" in x)
    assert re.fullmatch(
        r"\d+ readings, 0 messages confirmed by the ingest, outbox depth \d+", summary
    )
