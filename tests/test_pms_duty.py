"""Duty cycling of laser PM sensors: the agent wakes a PMS5003 `wake_s` before each reading and
puts it to sleep after, with a fake clock, down to the command bytes the simulator receives;
warm-up readings are discarded; the laser's running hours are counted, reported in the sensor
health and kept across restarts."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from pydantic import ValidationError

from sensorpipe.edge import agent as agent_module
from sensorpipe.edge.agent import Agent, SensorOpener
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.pms5003 import Pms5003
from sensorpipe.edge.drivers.registry import Pms5003Config, Sds011Config, duty_cycle
from sensorpipe.edge.duty import DutyCycle, LaserHours
from sensorpipe.edge.errors import SensorError
from sensorpipe.edge.outbox import MemoryOutbox
from sensorpipe.edge.publisher import Publisher
from sensorpipe.firmware_sim.pms5003 import Pms5003Device
from sensorpipe.protocol.register import LASER_LIFE_H
from sensorpipe.protocol.signing import generate_keypair
from tests.test_agent import FakePublisher
from tests.test_pms5003 import FakeClock, LoopPort

PRIVATE, _ = generate_keypair()
WAKE, SLEEP, READ = "wake", "sleep", "read"


class FakeStop:
    """The agent's stop event: waiting advances the fake clock; set once it reaches `end`.

    The agent's sensors are read on their worker threads: a wait first lets the jobs under way
    finish (in real time, the fake clock advanced only by the sensor's own serial reads), so
    that fake time does not run on while a worker works."""

    def __init__(self, clock: FakeClock, end: float, agent: Agent) -> None:
        self.clock, self.end, self.agent = clock, end, agent

    def is_set(self) -> bool:
        return self.clock.t >= self.end

    def set(self) -> None:
        self.end = self.clock.t

    def wait(self, timeout: float | None = None) -> bool:
        deadline = time.perf_counter() + 10.0  # a bug, not a slow sensor: then fake time runs
        while time.perf_counter() < deadline and self._working():
            time.sleep(0.001)
        self.clock.t += max(timeout or 0.0, 0.01)
        return self.is_set()

    def _working(self) -> bool:
        in_flight = sum(s.in_flight for s in self.agent._slots)
        return in_flight > self.agent._answers.qsize()


class Recorder:
    """The commands a simulated PMS5003 receives, with the fake time they arrive."""

    def __init__(self, device: Pms5003Device, clock: FakeClock) -> None:
        self.events: list[tuple[float, str]] = []
        receive = device.receive

        def logged(data: bytes) -> bytes:
            names = {b"\xe4\x00\x01": WAKE, b"\xe4\x00\x00": SLEEP, b"\xe2\x00\x00": READ}
            if data[2:5] in names:
                self.events.append((clock.t, names[data[2:5]]))
            return receive(data)

        device.receive = logged  # type: ignore[method-assign]


def _run(
    clock: FakeClock,
    device: Pms5003Device,
    duty: DutyCycle,
    *,
    interval_s: float,
    seconds: float,
    monkeypatch: pytest.MonkeyPatch,
    driver: Callable[[], SensorDriver] | None = None,
) -> Agent:
    """An agent with one duty-cycled sensor (by default a PMS5003 on `device`), run on the
    fake clock for `seconds`."""
    monkeypatch.setattr(agent_module.time, "monotonic", clock)
    config = EdgeConfig(
        device_id="d1",
        private_key=PRIVATE,
        mqtt=MqttConfig(username="d1", password="p"),
        sensors=[Pms5003Config(driver="pms5003", port="/dev/ttyAMA0")],
        status_interval_s=10_000,
    )
    opener = SensorOpener(
        duty.model,
        driver or (lambda: Pms5003(LoopPort(device, clock), clock=clock)),
        interval_s,
        duty,
    )
    agent = Agent(
        config,
        sensors=[opener],
        outbox=MemoryOutbox(),
        publisher_factory=cast(Callable[..., Publisher], FakePublisher),
        clock=lambda: 1_790_000_000.0,
        clock_synced=lambda: True,
        rssi=lambda: None,
    )
    agent.run(FakeStop(clock, clock.t + seconds, agent))  # type: ignore[arg-type]
    return agent


def test_agent_wakes_before_each_reading_and_sleeps_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    device = Pms5003Device(clock=clock, read_pm=lambda: (15.0, 25.0), seed=2)
    recorder = Recorder(device, clock)
    start = clock.t
    duty = DutyCycle("pms5003", wake_s=30.0, warmup_s=30.0)
    agent = _run(clock, device, duty, interval_s=300.0, seconds=1000.0, monkeypatch=monkeypatch)
    reads = [t - start for t, what in recorder.events if what == READ]
    wakes = [t - start for t, what in recorder.events if what == WAKE]
    assert len(reads) == 4  # at 30, 330, 630, 930 s
    assert [round(b - a) for a, b in itertools.pairwise(reads)] == [300, 300, 300]
    # Each reading 30 s (and a few fake 0.1 s serial reads) after the wake before it.
    for read in reads:
        woke = max(w for w in wakes if w <= read)
        assert 30.0 <= read - woke < 31.0
    # Sleep follows each reading at once; between readings the sensor sleeps.
    kinds = [what for _, what in recorder.events]
    assert kinds[:3] == [WAKE, READ, SLEEP] and kinds[-2:] == [SLEEP, SLEEP]  # and on close
    assert all(kinds[i + 1] == SLEEP for i, k in enumerate(kinds[:-1]) if k == READ)
    assert device.sleeping
    # Every reading was taken warm: the simulator's unstable warm-up never reached a message.
    assert duty.discarded == 0
    assert agent.stats.readings == 4 * 9  # PM1, PM2.5, PM10 and six counts each
    (health,) = agent.sensor_health()
    assert health.laser_hours is not None
    # 4 wakes of ~30 s: the laser ran about 2 minutes of the 1000 s.
    assert health.laser_hours == pytest.approx(4 * 30 / 3600, abs=0.001)


def test_always_on_sensor_discards_warm_up_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    device = Pms5003Device(clock=clock, read_pm=lambda: (15.0, 25.0), seed=2)
    recorder = Recorder(device, clock)
    start = clock.t
    duty = DutyCycle("pms5003", wake_s=0.0, warmup_s=30.0)
    agent = _run(clock, device, duty, interval_s=10.0, seconds=65.0, monkeypatch=monkeypatch)
    reads = [round(t - start) for t, what in recorder.events if what == READ]
    assert reads == [0, 10, 20, 30, 40, 50, 60]  # 0, 10, ..., 60 s: never put to sleep in between
    assert SLEEP not in [what for _, what in recorder.events][:-1]
    assert duty.discarded == 3  # 0, 10 and 20 s
    assert agent.stats.readings == 4 * 9


def test_laser_hours_persist_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "laser-hours.json"
    clock = FakeClock()
    for run in range(2):
        device = Pms5003Device(clock=clock, seed=run)
        duty = DutyCycle("pms5003", wake_s=30.0, warmup_s=30.0, hours=LaserHours(path))
        agent = _run(clock, device, duty, interval_s=60.0, seconds=600.0, monkeypatch=monkeypatch)
        (health,) = agent.sensor_health()
        assert health.laser_hours is not None
        assert health.laser_hours == pytest.approx((run + 1) * 10 * 30 / 3600, rel=0.05)
    saved = json.loads(path.read_text())
    assert saved["pms5003"] == pytest.approx(20 * 30 / 3600, rel=0.05)


def test_laser_hours_survive_a_broken_file_and_count_always_on_time(tmp_path: Path) -> None:
    path = tmp_path / "laser-hours.json"
    path.write_text("{not json")
    hours = LaserHours(path)
    assert hours.hours("sds011", 0.0) == 0.0
    hours.on("sds011", 0.0)
    assert hours.hours("sds011", 7200.0) == pytest.approx(2.0)
    hours.checkpoint(7200.0)  # an always-on laser's hours reach the disk
    assert json.loads(path.read_text()) == {"sds011": 2.0}
    hours.off("sds011", 10800.0)
    assert LaserHours(path).hours("sds011", 0.0) == pytest.approx(3.0)
    assert LASER_LIFE_H["sds011"] == 8000.0 and LASER_LIFE_H["pms5003"] > 20_000


def test_duty_config_is_checked_and_builds_the_cycle(tmp_path: Path) -> None:
    config = Pms5003Config.model_validate(
        {"driver": "pms5003", "port": "/dev/ttyAMA0", "interval_s": 300, "duty": {"wake_s": 45}}
    )
    cycle = duty_cycle(config, LaserHours(None))
    assert cycle is not None and (cycle.wake_s, cycle.warmup_s) == (45.0, 30.0)
    sds = Sds011Config(driver="sds011", port="/dev/ttyUSB0")
    always_on = duty_cycle(sds, LaserHours(None))
    assert always_on is not None and always_on.wake_s == 0.0  # its hours are counted too
    with pytest.raises(ValidationError, match="the laser would never sleep"):
        Pms5003Config.model_validate(
            {"driver": "pms5003", "port": "/dev/x", "interval_s": 30, "duty": {"wake_s": 30}}
        )
    with pytest.raises(ValidationError, match="every reading would be taken warming up"):
        Pms5003Config.model_validate(
            {"driver": "pms5003", "port": "/dev/x", "interval_s": 300, "duty": {"wake_s": 10}}
        )
    with pytest.raises(ValidationError, match="Extra inputs"):
        Pms5003Config.model_validate(
            {"driver": "pms5003", "port": "/dev/x", "duty": {"wake_s": 30, "sleep_s": 1}}
        )


def test_an_sds011_is_duty_cycled_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from sensorpipe.edge.drivers.sds011 import Sds011
    from sensorpipe.firmware_sim.sds011 import Sds011Device

    clock = FakeClock()
    device = Sds011Device(read_pm=lambda: (8.0, 12.0))
    states: list[tuple[float, bool]] = []  # (time, asleep) at each query the sensor answers
    receive = device.receive

    def logged(data: bytes) -> bytes:
        if data[2] == 4:
            states.append((clock.t, device.sleeping))
        return receive(data)

    device.receive = logged  # type: ignore[method-assign]
    port = LoopPort(device, clock)  # type: ignore[arg-type]
    duty = DutyCycle("sds011", wake_s=30.0, warmup_s=0.0)
    start = clock.t
    agent = _run(
        clock,
        Pms5003Device(),  # not read
        duty,
        interval_s=120.0,
        seconds=450.0,
        monkeypatch=monkeypatch,
        driver=lambda: Sds011(port),
    )
    assert [round(t - start) for t, _ in states] == [30, 150, 270, 390]
    assert not any(asleep for _, asleep in states)  # awake at each reading ...
    assert device.sleeping  # ... and asleep after
    (health,) = agent.sensor_health()
    assert health.laser_hours == pytest.approx(4 * 30 / 3600, abs=0.001)


class DeafLaser:
    """A laser sensor's driver whose wake always fails (its adapter is gone)."""

    model = "pms5003"
    frames_bad = 0

    def __init__(self) -> None:
        self.wakes = self.reads = 0

    def wake(self) -> None:
        self.wakes += 1
        raise SensorError("pms5003: serial port lost (gone); will try to reopen it")

    def sleep(self) -> None:
        pass

    def read(self) -> dict[str, float]:
        self.reads += 1
        return {"pm2_5": 1.0}

    def close(self) -> None:
        pass


def test_a_failed_wake_is_one_failed_reading_per_period_not_a_spin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    deaf = DeafLaser()
    opened: list[float] = []

    def opener() -> SensorDriver:
        opened.append(clock.t)
        if len(opened) == 1:
            raise SensorError("pms5003: cannot open serial port /dev/ttyAMA0")
        return deaf

    duty = DutyCycle("pms5003", wake_s=30.0, warmup_s=30.0)
    agent = _run(
        clock, Pms5003Device(), duty, interval_s=300.0, seconds=1000.0,
        monkeypatch=monkeypatch, driver=opener,
    )  # fmt: skip
    # Opened at 0 s (failed), then at the next wake (300 s); woken at 600 and 900 s (failed).
    assert [round(t - opened[0]) for t in opened] == [0, 300]
    assert deaf.wakes == 2 and deaf.reads == 1  # read once, right after the (waking) open
    (health,) = agent.sensor_health()
    assert health.reads_failed == 3 and health.reads_ok == 1
