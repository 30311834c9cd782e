"""The edge agent's sampling and message building, with fake drivers and no broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from sensorpipe.edge.agent import Agent
from sensorpipe.edge.config import EdgeConfig, LocationConfig, MqttConfig
from sensorpipe.edge.drivers.registry import Bme280Config
from sensorpipe.edge.errors import SensorError
from sensorpipe.edge.outbox import MemoryOutbox
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.protocol.codec import canonical_bytes, decode
from sensorpipe.protocol.messages import AirMessage, StatusMessage
from sensorpipe.protocol.signing import Signer, Verifier, generate_keypair

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

    def notify(self) -> None:
        self.notified += 1


def _agent(drivers: list[FakeDriver], **config: Any) -> tuple[Agent, MemoryOutbox]:
    outbox = MemoryOutbox()
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
        outbox=outbox,
        publisher_factory=cast(Callable[..., Publisher], FakePublisher),
        clock=lambda: 1_790_000_000.1234,
        clock_synced=lambda: True,
        rssi=lambda: -55,
    )
    return agent, outbox


def _sent(agent: Agent, outbox: MemoryOutbox, backlog: bool = False) -> list[bytes]:
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


def test_an_outbox_with_no_room_at_all_costs_a_reading_not_the_agent() -> None:
    from sensorpipe.edge.outbox import OutboxFull

    sds = FakeDriver("sds011", [{"pm2_5": 10.0, "pm10": 15.0}, {"pm2_5": 11.0, "pm10": 16.0}])
    agent, outbox = _agent([sds])

    def no_room(topic: str, body: bytes, *, seq: int | None = None) -> int:
        raise OutboxFull("database or disk is full")

    real_put = outbox.put
    outbox.put = no_room  # type: ignore[method-assign]
    assert agent.sample(agent._slots) is None  # no exception: counted and logged
    assert agent.stats.messages_dropped == 1
    outbox.put = real_put  # type: ignore[method-assign]
    assert agent.sample(agent._slots) is not None
    (payload,) = _sent(agent, outbox)
    message = decode(payload)
    assert message.seq == 2  # the lost reading leaves a visible gap
    assert message.link.outbox_dropped == 0
