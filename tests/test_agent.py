"""The edge agent's sampling and message building, with fake drivers and no broker."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from sensorpipe.edge.agent import Agent, SensorOpener
from sensorpipe.edge.config import EdgeConfig, LocationConfig, MqttConfig
from sensorpipe.edge.counting.loop import CountingLoop
from sensorpipe.edge.drivers.registry import Bme280Config
from sensorpipe.edge.errors import SensorConfigError, SensorError
from sensorpipe.edge.outbox import DISK_HEADROOM_BYTES, MemoryOutbox, Outbox, SqliteOutbox
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.protocol.codec import canonical_bytes, decode
from sensorpipe.protocol.messages import AirMessage, CountMessage, StatusMessage
from sensorpipe.protocol.signing import Signer, Verifier, generate_keypair
from tests.test_outbox import SmallDisk

PRIVATE, PUBLIC = generate_keypair()


class FakeDriver:
    def __init__(self, model: str, values: list[dict[str, float] | Exception]) -> None:
        self.model = model
        self.frames_bad = 0
        self._values = values
        self.closed = False

    def read(self) -> dict[str, float]:
        value = self._values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    def close(self) -> None:
        self.closed = True


class FakePublisher:
    def __init__(self, **kwargs: Any) -> None:
        self.finalize = kwargs["finalize"]
        self.notified = 0

    def start(self) -> None:
        pass

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        pass

    def notify(self) -> None:
        self.notified += 1


def _agent(
    drivers: list[FakeDriver],
    *,
    outbox: Outbox | None = None,
    sensors: Sequence[SensorOpener] = (),
    counter: CountingLoop | None = None,
    reopen_after_s: float = 60.0,
    **config: Any,
) -> tuple[Agent, Outbox]:
    outbox = outbox or MemoryOutbox()
    cfg = EdgeConfig(
        device_id="d1",
        private_key=PRIVATE,
        mqtt=MqttConfig(username="d1", password="p"),
        sensors=[Bme280Config(driver="bme280")],
        **config,
    )
    agent = Agent(
        cfg,
        drivers=[(d, 60.0) for d in drivers],
        sensors=sensors,
        outbox=outbox,
        counter=counter,
        reopen_after_s=reopen_after_s,
        publisher_factory=cast(Callable[..., Publisher], FakePublisher),
        clock=lambda: 1_790_000_000.1234,
        clock_synced=lambda: True,
        rssi=lambda: -55,
    )
    return agent, outbox


def _sent(agent: Agent, outbox: Outbox, backlog: bool = False) -> list[bytes]:
    state = LinkState(reconnects=1, outbox_depth=outbox.depth(), backlog=backlog)
    return [agent._finalize(e, state) for e in outbox.pending()]


def test_one_message_per_sample_signed_at_send_time() -> None:
    sds = FakeDriver("sds011", [{"pm2_5": 10.04, "pm10": 15.0}])
    bme = FakeDriver(
        "bme280", [{"temperature": 20.123456, "relative_humidity": 50.0, "pressure": 1012.5}]
    )
    agent, outbox = _agent([sds, bme])
    agent.sample(agent._slots)
    (payload,) = _sent(agent, outbox, backlog=True)
    message = decode(payload)
    assert isinstance(message, AirMessage)
    assert message.seq == 1 and message.device_id == "d1" and message.clock_synced
    assert message.observed_at.isoformat() == "2026-09-21T14:13:20.123000+00:00"
    assert [(r.sensor, r.quantity, r.value) for r in message.readings] == [
        ("sds011", "pm2_5", 10.04),
        ("sds011", "pm10", 15.0),
        ("bme280", "temperature", 20.123),
        ("bme280", "relative_humidity", 50.0),
        ("bme280", "pressure", 1012.5),
    ]
    assert message.link.rssi_dbm == -55 and message.link.backlog and message.link.reconnects == 1
    obj = json.loads(payload)
    assert Verifier(PUBLIC).verify(canonical_bytes(obj), obj["sig"])


def test_failed_reads_and_implausible_values_are_counted_not_sent() -> None:
    sds = FakeDriver("sds011", [SensorError("sds011: no answer"), {"pm2_5": 6553.5, "pm10": 30.0}])
    agent, outbox = _agent([sds])
    assert agent.sample(agent._slots) is None  # nothing read: nothing queued
    agent.sample(agent._slots)
    (payload,) = _sent(agent, outbox)
    message = decode(payload)
    assert isinstance(message, AirMessage)
    assert [r.quantity for r in message.readings] == ["pm10"]
    (health,) = agent.sensor_health()
    assert (health.reads_ok, health.reads_failed, health.values_rejected) == (1, 1, 1)
    assert health.ok and "plausible" in (health.last_error or "")


def test_status_message_reports_sensor_health() -> None:
    sds = FakeDriver("sds011", [SensorError("sds011: timeout")])
    sds.frames_bad = 4
    agent, outbox = _agent([sds])
    agent.sample(agent._slots)
    agent.queue_status()
    (payload,) = _sent(agent, outbox)
    status = decode(payload)
    assert isinstance(status, StatusMessage)
    (h,) = status.sensors
    assert not h.ok and h.frames_bad == 4 and h.last_error == "sds011: timeout"


def test_sequence_numbers_count_up_across_kinds_and_location_is_rounded() -> None:
    sds = FakeDriver("sds011", [{"pm2_5": 1.0}, {"pm2_5": 2.0}])
    agent, outbox = _agent(
        [sds], location=LocationConfig(lat=52.090712, lon=5.105531, precision_decimals=2)
    )
    agent.sample(agent._slots)
    agent.queue_status()
    agent.sample(agent._slots)
    messages = [decode(p) for p in _sent(agent, outbox)]
    assert [m.seq for m in messages] == [1, 2, 3]
    assert messages[0].location is not None
    assert (messages[0].location.lat, messages[0].location.lon) == (52.09, 5.11)


def test_signer_rejects_a_bad_key() -> None:
    with pytest.raises(ValueError, match="base64"):
        Signer("not-a-key")


def test_a_reading_the_outbox_cannot_keep_shows_as_a_gap_and_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is full: the reading is lost, but its number stays used and every later
    message reports the loss in `outbox_dropped`; the log says so, and when it is over."""
    path = tmp_path / "outbox.sqlite"
    disk = SmallDisk(path, DISK_HEADROOM_BYTES + 10_000_000)
    outbox = SqliteOutbox(path, free_bytes=disk)
    sds = FakeDriver("sds011", [{"pm2_5": float(i), "pm10": 15.0} for i in range(6)])
    agent, _ = _agent([sds], outbox=outbox)
    assert agent.sample(agent._slots) is not None
    (first,) = outbox.pending()
    outbox.mark_sent(first.id)  # the broker has it
    disk.capacity = 0  # full: the database may not grow, and cannot make room

    def disk_full(*args: Any) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(outbox, "_insert", disk_full)
    with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.agent"):
        assert agent.sample(agent._slots) is None  # no exception: counted and logged
        assert agent.sample(agent._slots) is None
        assert agent.stats.messages_dropped == 2
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1  # the same reason again is not logged at once
        assert "disk is full" in errors[0].getMessage()
        assert "air message 2 lost" in errors[0].getMessage()
        monkeypatch.undo()
        disk.capacity = DISK_HEADROOM_BYTES + 10_000_000  # space again
        assert agent.sample(agent._slots) is not None
        assert "keeps messages again" in caplog.records[-1].getMessage()
        assert "sequence numbers 2-3" in caplog.records[-1].getMessage()
    (payload,) = _sent(agent, outbox)
    message = decode(payload)
    assert message.seq == 4  # 2 and 3 are a visible gap ...
    assert message.link.outbox_dropped == 2  # ... and a count in the next message
    outbox.close()


def test_a_sensor_that_cannot_be_opened_is_reported_and_tried_again_while_others_are_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sds = FakeDriver("sds011", [{"pm2_5": float(i), "pm10": 15.0} for i in range(4)])
    bme = FakeDriver("bme280", [{"temperature": 21.5}])
    attempts: list[int] = []

    def open_bme280() -> FakeDriver:
        attempts.append(1)
        if len(attempts) < 3:
            raise SensorConfigError("bme280: cannot open I2C bus 1: [Errno 2] No such file")
        return bme

    agent, outbox = _agent(
        [sds], sensors=[SensorOpener("bme280", open_bme280, 60.0)], reopen_after_s=0.0
    )
    with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.agent"):
        agent.sample(agent._slots)
        agent.sample(agent._slots)
        agent.queue_status()
        agent.sample(agent._slots)  # the bus is there now
    messages = [decode(p) for p in _sent(agent, outbox)]
    air = [m for m in messages if isinstance(m, AirMessage)]
    assert [[r.sensor for r in m.readings] for m in air] == [
        ["sds011", "sds011"],
        ["sds011", "sds011"],
        ["sds011", "sds011", "bme280"],
    ]
    (status,) = [m for m in messages if isinstance(m, StatusMessage)]
    bme_health = next(h for h in status.sensors if h.sensor == "bme280")
    assert not bme_health.ok and bme_health.reads_failed == 2 and bme_health.reads_ok == 0
    assert "cannot open I2C bus 1" in (bme_health.last_error or "")
    lines = [r.getMessage() for r in caplog.records]
    # Said once (the same reason again waits), with what happens next; and when it is over.
    assert len([x for x in lines if "cannot open I2C bus 1" in x]) == 1
    assert "trying again every 0 s, meanwhile sds011 is read" in lines[0]
    assert "sensor bme280" in lines[0]
    assert "sensor bme280 opened" in lines[-1]
    assert len(attempts) == 3


def _unavailable(model: str) -> SensorOpener:
    def open_sensor() -> FakeDriver:
        raise SensorConfigError(f"{model}: no such port")

    return SensorOpener(model, open_sensor, 60.0)


def _available(model: str) -> SensorOpener:
    return SensorOpener(model, lambda: FakeDriver(model, [{"temperature": 20.0}] * 3), 60.0)


@pytest.mark.parametrize(
    ("sensors", "counting", "said"),
    [
        # Opened after the one that fails, in the same round: it is read all the same.
        (
            ["sds011 fails", "bme280"],
            False,
            "sensor sds011: not available: no such port; trying again every 60 s, "
            "meanwhile bme280 is read",
        ),
        (
            ["sds011 fails", "bme280 fails"],
            False,
            "sensor sds011: not available: no such port; trying again every 60 s; "
            "no sensor can be read, so nothing is measured until one opens",
        ),
        (
            ["sds011 fails"],
            True,
            "sensor sds011: not available: no such port; trying again every 60 s; "
            "no sensor can be read meanwhile, counting goes on",
        ),
    ],
)
def test_a_sensor_that_cannot_be_opened_says_what_is_measured_meanwhile(
    caplog: pytest.LogCaptureFixture, sensors: list[str], counting: bool, said: str
) -> None:
    openers = [
        _unavailable(name.split()[0]) if name.endswith(" fails") else _available(name)
        for name in sensors
    ]
    counter = cast(CountingLoop, object()) if counting else None  # sample() only asks if any
    agent, _outbox = _agent([], sensors=openers, counter=counter)
    with caplog.at_level(logging.WARNING, logger="sensorpipe.edge.agent"):
        agent.sample(agent._slots)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == said
    assert not any("other sensors are read" in line for line in lines)
    if len(sensors) == 2 and sensors[1].endswith(" fails"):
        assert lines[1].endswith("no sensor can be read, so nothing is measured until one opens")


def test_a_driver_fault_costs_that_sensor_s_reading_only() -> None:
    sds = FakeDriver("sds011", [{"pm2_5": 3.0, "pm10": 4.0}])
    broken = FakeDriver("bme280", [ZeroDivisionError("bug")])
    agent, outbox = _agent([broken, sds])
    agent.sample(agent._slots)
    (payload,) = _sent(agent, outbox)
    message = decode(payload)
    assert isinstance(message, AirMessage)
    assert [r.sensor for r in message.readings] == ["sds011", "sds011"]
    assert "ZeroDivisionError" in (agent.sensor_health()[0].last_error or "")


def test_a_video_that_ends_ends_the_agent_after_its_last_counts_are_queued() -> None:
    from sensorpipe.edge.counting.detector import Detector
    from sensorpipe.edge.counting.pipeline import CountingPipeline
    from sensorpipe.firmware_sim.camera import SyntheticCamera
    from sensorpipe.firmware_sim.count_eval import DEFAULT_MODEL, DIRECTIONS, SHIPPED_CLASS_MAP
    from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, Scene

    detector = Detector(DEFAULT_MODEL, list(DETECTOR_CLASSES), threads=1)
    pipeline = CountingPipeline(detector, SHIPPED_CLASS_MAP, directions=DIRECTIONS, interval_s=10)
    # 25 s of street from a whole minute on: two whole intervals and a 5 s one.
    camera = SyntheticCamera(Scene(1001, duration_s=25.0), fps=5.0, realtime=False, start=600.0)
    agent, outbox = _agent([], counter=CountingLoop(pipeline, camera), status_interval_s=3600)
    stop = threading.Event()
    result: list[str | None] = []
    runner = threading.Thread(target=lambda: result.append(agent.run(stop)))
    runner.start()
    runner.join(timeout=60)
    still_running = runner.is_alive()
    stop.set()
    runner.join()
    assert not still_running, "the agent kept running after its video ended"
    assert result == ["the frame source ended after 125 frames"]
    counts = [m for m in map(decode, _sent(agent, outbox)) if isinstance(m, CountMessage)]
    assert [(m.observed_at.timestamp(), m.interval_end.timestamp()) for m in counts] == [
        (600.0, 610.0),
        (610.0, 620.0),
        (620.0, 624.8),  # the last, partial interval was flushed before the agent ended
    ]
