"""A failing sensor never stops the agent (issue 28, point 3), with a fault-injecting fake
driver: its faults are counted per sensor and kind, it is backed off (exponentially, capped,
reset by a good read), a hanging read neither delays another sensor's readings nor holds the
loop (bounded by its read timeout), and a checksum storm is counted and summed up in the log,
not written line by line. The counts travel in the status message's sensor health."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pydantic import ValidationError

from sensorpipe.edge.agent import Agent, SensorOpener, SensorSlot
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.registry import Bme280Config
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorError,
    SensorIOError,
    SensorOutOfRange,
    SensorTimeout,
)
from sensorpipe.edge.outbox import MemoryOutbox
from sensorpipe.edge.publisher import Publisher
from sensorpipe.edge.sensorloop import Round, backoff_delay, error_kind
from sensorpipe.protocol.codec import decode
from sensorpipe.protocol.messages import AirMessage, SensorHealth, StatusMessage
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.query.health import SensorState, _counts
from tests.helpers import wait_for
from tests.test_agent import FakePublisher, _sent

PRIVATE, _PUBLIC = generate_keypair()
Step = dict[str, float] | BaseException | Callable[[], dict[str, float]]


class FaultyDriver:
    """Plays a script of outcomes: values, an exception to raise, or a callable (to block, or
    to add bad frames); the last step repeats."""

    def __init__(self, model: str, script: Sequence[Step], *, frames_per_read: int = 0) -> None:
        self.model = model
        self.frames_bad = 0
        self.reads = 0
        self._script = script
        self._frames_per_read = frames_per_read

    def read(self) -> dict[str, float]:
        step = self._script[min(self.reads, len(self._script) - 1)]
        self.reads += 1
        self.frames_bad += self._frames_per_read
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return step

    def close(self) -> None:
        pass


def _agent(sensors: list[SensorOpener], **kwargs: Any) -> Agent:
    config = EdgeConfig(
        device_id="d1",
        private_key=PRIVATE,
        mqtt=MqttConfig(username="d1", password="p"),
        sensors=[Bme280Config(driver="bme280")],
        status_interval_s=kwargs.pop("status_interval_s", 3600.0),
    )
    return Agent(
        config,
        sensors=sensors,
        outbox=MemoryOutbox(),
        publisher_factory=cast(Callable[..., Publisher], FakePublisher),
        clock_synced=lambda: True,
        rssi=lambda: None,
        clock_line=lambda: "clock: as the test says",
        **kwargs,
    )


def _opener(driver: FaultyDriver, interval_s: float = 60.0, **kw: Any) -> SensorOpener:
    return SensorOpener(driver.model, lambda: driver, interval_s, **kw)


def _round(agent: Agent, slots: list[SensorSlot]) -> Round:
    """One round of reads, waited for, as the loop would (keeping the round to look at)."""
    rnd = agent.start_round(slots, group_wait_s=math.inf)
    while rnd in agent._rounds:
        agent._answered.wait(0.05)
        agent._answered.clear()
        agent.collect()
    return rnd


def _health(agent: Agent, model: str) -> SensorHealth:
    return next(h for h in agent.sensor_health() if h.sensor == model)


def test_faults_are_counted_per_sensor_and_kind() -> None:
    pm = {"pm2_5": 5.0, "pm10": 8.0}
    bad = FaultyDriver(
        "sds011",
        [
            SensorChecksumError("sds011: checksum 0x12, expected 0x34"),
            SensorTimeout("sds011: no answer within 3 s"),
            SensorTimeout("sds011: no answer within 3 s"),
            SensorIOError("sds011: serial port lost"),
            SensorOutOfRange("sds011: 1200 µg/m³ is beyond its range"),
            SensorError("sds011: warming up", kind="warming_up"),
            SensorError("sds011: something the driver did not classify"),
            OSError(5, "Input/output error"),
            TimeoutError("read timed out"),
            ZeroDivisionError("a driver bug"),
            {"pm2_5": 6553.5, "pm10": 8.0},  # pm2_5 beyond the plausible range: dropped
            pm,
        ],
        frames_per_read=2,
    )
    good = FaultyDriver("bme280", [{"temperature": 20.0}])
    agent = _agent([_opener(bad), _opener(good)])
    for _ in range(12):
        agent.sample(agent._slots)
    h = _health(agent, "sds011")
    assert h.errors == {
        "checksum": 1 + 2 * 12,  # the failed read, and the frames skipped on every read
        "timeout": 2 + 1,
        "io": 1 + 1,
        "out_of_range": 1 + 1,  # the driver's, and the value the agent dropped
        "warming_up": 1,
        "read": 1,
        "bug": 1,
    }
    assert (h.reads_ok, h.reads_failed, h.frames_bad, h.values_rejected) == (2, 10, 24, 1)
    assert _health(agent, "bme280").errors == {}
    # Every round still queued the BME280's reading: 12 air messages.
    air = [m for m in map(decode, _sent(agent, agent.outbox)) if isinstance(m, AirMessage)]
    assert len(air) == 12
    # ... and the status message carries the counts.
    agent.queue_status()
    (status,) = [m for m in map(decode, _sent(agent, agent.outbox)) if isinstance(m, StatusMessage)]
    assert {s.sensor: s.errors for s in status.sensors}["sds011"]["checksum"] == 25


def test_an_open_that_fails_is_counted_as_not_available() -> None:
    def fails() -> FaultyDriver:
        raise OSError(2, "No such file or directory: '/dev/ttyUSB0'")

    agent = _agent([SensorOpener("sds011", fails, 60.0)], reopen_after_s=0.0)
    agent.sample(agent._slots)
    agent.sample(agent._slots)
    assert _health(agent, "sds011").errors == {"not_available": 2}


def test_a_sensor_that_cannot_be_opened_is_tried_less_often_until_it_opens() -> None:
    attempts: list[float] = []
    driver = FaultyDriver("sds011", [{"pm2_5": 1.0, "pm10": 2.0}])

    def open_sds011() -> FaultyDriver:
        attempts.append(1)
        if len(attempts) <= 4:
            raise OSError(2, "No such file or directory: '/dev/ttyUSB0'")
        return driver

    agent = _agent([SensorOpener("sds011", open_sds011, 60.0)], max_backoff_s=200.0)
    (slot,) = agent._slots
    waits, reported = [], []
    for _ in range(5):
        rnd = _round(agent, [slot])
        waits.append(round(slot.next_open - rnd.started))
        reported.append(_health(agent, "sds011").backoff_s)
        slot.next_open = 0.0  # as if that time had passed
    # reopen_after_s (60), then doubling, at most max_backoff_s; opened: on schedule again.
    assert waits[:4] == [60, 120, 200, 200] and reported == [0.0, 120.0, 200.0, 200.0, 0.0]
    assert driver.reads == 1 and _health(agent, "sds011").errors == {"not_available": 4}


def _wrapping(cause: OSError) -> SensorError:
    """A plain SensorError raised `from` a bus error (a driver that does not classify it)."""
    try:
        raise SensorError("sht4x: no answer at 0x44") from cause
    except SensorError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (SensorError("x"), "read"),
        (SensorError("x", kind="Not A Kind!"), "read"),  # would not validate: not sent so
        (SensorChecksumError("x"), "checksum"),
        (TimeoutError(), "timeout"),
        (OSError(121, "Remote I/O error"), "timeout"),  # a NACK: nothing answered
        (OSError(5, "Input/output error"), "io"),
        (_wrapping(OSError(121, "Remote I/O error")), "timeout"),  # a driver's plain error
        (_wrapping(OSError(5, "Input/output error")), "io"),
        (KeyError("k"), "bug"),
    ],
)
def test_error_kind(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


def test_a_failing_sensor_is_backed_off_exponentially_capped_and_reset_by_a_good_read() -> None:
    ok = {"temperature": 20.0}
    fault = SensorIOError("bme280: I2C error: [Errno 121] Remote I/O error")
    driver = FaultyDriver("bme280", [fault] * 6 + [ok, fault, fault])
    agent = _agent([_opener(driver, interval_s=60.0)], max_backoff_s=300.0)
    (slot,) = agent._slots
    waits, reported = [], []
    for _ in range(9):
        rnd = _round(agent, [slot])
        waits.append(slot.next_due - rnd.started)
        reported.append(_health(agent, "bme280").backoff_s)
        slot.next_due = 0.0  # as if that time had passed
    # One failure: the next interval; then 2, 4, ... intervals, at most max_backoff_s; a good
    # read puts it back on schedule (its next_due is the loop's, here 0), and counting starts over.
    assert waits[:6] == [60.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    assert reported[:6] == [0.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    assert waits[6] <= 0 and reported[6] == 0.0
    assert waits[7:] == [60.0, 120.0]
    assert backoff_delay(600.0, 5, cap_s=300.0) == 600.0  # never below the interval


def test_a_hanging_sensor_does_not_delay_another_s_readings() -> None:
    """The SDS011's read hangs (until released); the BME280, due every 50 ms, is read and its
    readings queued meanwhile, each round at its own time; the hang counts as one timeout
    once its read_timeout_s passed, the loop goes on, and the sensor is read again once its
    call returns."""
    release = threading.Event()
    hanging = threading.Event()
    hang_began: list[datetime] = []

    def hang() -> dict[str, float]:
        hang_began.append(datetime.fromtimestamp(round(time.time(), 3), UTC))
        hanging.set()
        release.wait(30)
        return {"pm2_5": 1.0, "pm10": 2.0}

    sds = FaultyDriver("sds011", [hang, {"pm2_5": 3.0, "pm10": 4.0}])
    bme = FaultyDriver("bme280", [{"temperature": 20.0}])
    agent = _agent(
        [
            _opener(sds, interval_s=0.05, read_timeout_s=0.3),
            _opener(bme, interval_s=0.05),
        ]
    )
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"drain_timeout_s": 0})
    runner.start()
    try:
        assert hanging.wait(10)

        def bme_read_during_the_hang() -> list[datetime]:
            air = [m for m in map(decode, _sent(agent, agent.outbox)) if isinstance(m, AirMessage)]
            assert all(r.sensor == "bme280" for m in air for r in m.readings)
            times = [m.observed_at for m in air]
            assert len(set(times)) == len(times)  # each round at its own time
            return [t for t in times if t > hang_began[0]]

        # While the SDS011 still hangs, the BME280's readings are taken and queued.
        wait_for(lambda: len(bme_read_during_the_hang()) >= 5, what="BME280 readings")
        wait_for(lambda: _health(agent, "sds011").errors.get("timeout") == 1, what="a timeout")
        assert not release.is_set() and sds.reads == 1
        health = _health(agent, "sds011")
        assert not health.ok and "the read hangs" in (health.last_error or "")
        release.set()
        wait_for(lambda: sds.reads >= 2, what="the SDS011 read again after its call returned")
        wait_for(lambda: _health(agent, "sds011").ok, what="the SDS011 ok again")
    finally:
        release.set()
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert _health(agent, "sds011").errors == {"timeout": 1}  # the hang, counted once


def test_a_checksum_storm_is_counted_and_summed_up_not_logged_line_by_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pm = {"pm2_5": 5.0, "pm10": 8.0}
    # 50 reads fail on a checksum, then they work; every read skips 40 bad frames.
    fails = SensorChecksumError("pms5003: checksum 0x0102, expected 0x0201")
    storm = FaultyDriver("pms5003", [fails] * 50 + [pm], frames_per_read=40)
    agent = _agent([_opener(storm)])
    (slot,) = agent._slots
    with caplog.at_level(logging.INFO, logger="sensorpipe.edge"):
        for _ in range(200):
            agent.sample(agent._slots)
        lines = [r.getMessage() for r in caplog.records if "checksum" in r.getMessage()]
        assert _health(agent, "pms5003").errors == {"checksum": 50 + 40 * 200}
        assert len(lines) == 1, lines  # the first, at once; the rest wait for the summary
        assert lines[0].startswith("sensor pms5003: 41 checksum errors (bad frames)")
        slot.next_storm_line = 0.0  # as if STORM_LINE_S had passed
        agent.sample(agent._slots)
        lines = [r.getMessage() for r in caplog.records if "checksum" in r.getMessage()]
    assert len(lines) == 2
    assert "sensor pms5003: 8049 checksum errors in the last" in lines[1]
    assert "8090 since the start" in lines[1]
    assert "reads ok 151, failed 50" in lines[1]


def test_sensor_health_validates_its_error_kinds() -> None:
    base = {"sensor": "sds011", "ok": True, "reads_ok": 1, "reads_failed": 0, "frames_bad": 0}
    old = SensorHealth.model_validate(base)  # an older agent's: no errors, no back-off
    assert old.errors == {} and old.backoff_s == 0.0
    with pytest.raises(ValidationError):
        SensorHealth.model_validate({**base, "errors": {"Check Sum": 1}})
    with pytest.raises(ValidationError):
        SensorHealth.model_validate({**base, "errors": {"checksum": -1}})


def test_the_central_health_reads_the_counts_back_and_names_them_in_the_note() -> None:
    series = [
        {
            "name": "sensor_status",
            "tags": {"device_id": "d1", "sensor": "pms5003"},
            "columns": ["time", "backoff_s", "errors_checksum", "errors_timeout", "ok", "site"],
            "values": [[1, 480.0, 340, 2, False, "balcony"]],
        }
    ]
    ((key, (errors, backoff)),) = _counts(series).items()
    assert key == ("d1", "pms5003") and errors == {"checksum": 340, "timeout": 2}
    state = SensorState("pms5003", ok=False, last_error="pms5003: checksum", errors=errors)
    state.backoff_s = backoff
    assert state.note() == (
        "pms5003 not ok: pms5003: checksum (errors: 340 checksum, 2 timeout; tried every 8 min)"
    )
    assert state.as_json()["errors"] == {"checksum": 340, "timeout": 2}


def test_a_failed_read_keeps_the_sensor_on_the_others_schedule() -> None:
    """Backed off from the round's start (a moment after it was due), a sensor drifted off the
    others' schedule: read microseconds after them in a round of its own, whose message had
    their message's time to the millisecond (the ingest kept one: 'lost' in the demo)."""
    sds = FaultyDriver("sds011", [SensorTimeout("sds011: no answer"), {"pm2_5": 5.0}])
    bme = FaultyDriver("bme280", [{"temperature": 20.0}])
    agent = _agent([_opener(sds), _opener(bme)])
    now = time.monotonic()
    rnd = agent.start_round(agent._slots)
    for slot in agent._slots:  # as the loop does once the round is started
        slot.next_due = now + slot.interval_s
    while rnd in agent._rounds:
        agent._answered.wait(0.05)
        agent._answered.clear()
        agent.collect()
    assert _health(agent, "sds011").errors == {"timeout": 1}
    sds_slot, bme_slot = agent._slots
    assert sds_slot.next_due == bme_slot.next_due  # read together again
