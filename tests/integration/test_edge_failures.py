"""The edge agent under failures of its own host: a full disk, a message too large for the
broker, a sensor that cannot be opened. Real agent, Mosquitto, ingest and InfluxDB; what each
test claims is read back from InfluxDB."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.edge.agent import Agent, SensorOpener
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import Bme280Config, Sds011Config, open_driver
from sensorpipe.edge.outbox import OutboxEntry, SqliteOutbox
from sensorpipe.edge.publisher import LinkState, Publisher
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.small_disk import fill
from tests.small_disk import small_disk as mounted_small_disk


def _bme280(interval_s: float) -> SensorOpener:
    """A simulated BME280 on a simulated I2C bus, opened through the real driver."""
    bus = SimulatedI2CBus(1)
    bus.attach(0x76, Bme280Device(Street(0).climate_now))
    config = Bme280Config(driver="bme280", bus=1, interval_s=interval_s)
    return SensorOpener(
        "bme280", functools.partial(open_driver, config, i2c_bus_factory=lambda _n: bus), interval_s
    )


class RunningAgent:
    """A real edge agent in a thread, against the stack's broker."""

    def __init__(
        self,
        stack: LocalStack,
        creds: DeviceCredentials,
        outbox_path: Path,
        sensors: list[SensorOpener],
        *,
        status_interval_s: float = 3600.0,
        publisher_factory: Callable[..., Publisher] = Publisher,
        reopen_after_s: float = 60.0,
    ) -> None:
        config = EdgeConfig(
            device_id=creds.device_id,
            private_key=creds.private_key,
            mqtt=MqttConfig(
                port=stack.require_info().broker_port,
                username=creds.username,
                password=creds.password,
            ),
            outbox_path=str(outbox_path),
            status_interval_s=status_interval_s,
            sensors=[Bme280Config(driver="bme280")],  # what is read comes from `sensors`
        )
        self.outbox = SqliteOutbox(outbox_path)
        self.agent = Agent(
            config,
            sensors=sensors,
            outbox=self.outbox,
            publisher_factory=publisher_factory,
            clock_synced=lambda: True,
            reopen_after_s=reopen_after_s,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.agent.run, args=(self._stop,), kwargs={"drain_timeout_s": 30.0}
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()

    def close(self) -> None:
        if self._thread.is_alive():
            self.stop()
        with contextlib.suppress(Exception):
            self.outbox.close()


def _stored_seqs(influx: InfluxClient, device_id: str) -> list[int]:
    series = influx.query(f"SELECT seq FROM link WHERE device_id = '{device_id}'")
    return sorted(int(v[1]) for s in series for v in s["values"])


def _link(influx: InfluxClient, device_id: str, fields: str) -> list[list[Any]]:
    series = influx.query(f"SELECT {fields} FROM link WHERE device_id = '{device_id}'")
    return [v for s in series for v in s["values"]]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own, to be filled up."""
    with mounted_small_disk(tmp_path / "disk", size_kib=16 * 1024) as disk:
        yield disk


def test_readings_a_full_disk_costs_show_centrally_and_the_agent_recovers_by_itself(
    stack: LocalStack,
    influx: InfluxClient,
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The device is offline and its disk fills up: the readings it cannot keep are lost,
    but each one stays a visible hole in InfluxDB (a sequence gap, and the count in
    `outbox_dropped`), the log says so, and once there is room again the agent keeps and
    delivers readings without being restarted."""
    (creds,) = stack.add_devices([("full-disk", {"site": "f"})])
    assert stack.broker is not None
    caplog.set_level(logging.WARNING, logger="sensorpipe.edge")
    edge = RunningAgent(stack, creds, small_disk / "outbox.sqlite", [_bme280(0.1)])
    try:
        wait_for(lambda: len(_stored_seqs(influx, "full-disk")) >= 5, what="first readings")
        stack.broker.stop()  # offline: readings pile up in the outbox ...
        filler = fill(small_disk)  # ... on a disk with no room left
        wait_for(lambda: edge.outbox.dropped >= 20, timeout_s=60, what="readings lost")
        os.remove(filler)
        queued = edge.agent.stats.messages_queued
        wait_for(
            lambda: edge.agent.stats.messages_queued >= queued + 10,
            what="readings kept again once the disk has room",
        )
        stack.broker.start()
        wait_for(
            lambda: edge.outbox.depth() < 20 and edge.agent.publisher.confirmed > 0,
            timeout_s=60,
            what="the backlog delivered after the broker returned",
        )
        edge.stop()
        last = edge.outbox.next_seq() - 1  # every number the agent handed out
        dropped = edge.outbox.dropped
        wait_for(
            lambda: len(_stored_seqs(influx, "full-disk")) >= last - dropped,
            timeout_s=30,
            what="every reading that was kept stored",
        )
    finally:
        edge.close()

    stored = _stored_seqs(influx, "full-disk")
    missing = sorted(set(range(1, last + 1)) - set(stored))
    # A gap for each lost reading (one given up may still have been on its way in paho's
    # memory and arrived: the count is the most that was lost, the gap what was).
    assert missing and len(missing) <= dropped
    gaps = _link(influx, "full-disk", "seq, seq_gap, outbox_dropped")
    assert sum(int(g[2] or 0) for g in gaps) == len(missing)
    # ... and the count in the link metadata of what got out afterwards.
    after_hole = [g for g in gaps if g[1] > missing[-1]]
    assert after_hole, "nothing stored after the hole: the agent did not recover"
    assert max(g[3] for g in after_hole) == dropped
    # The log said what was lost, and how to find it.
    lost_lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "outbox" in r.getMessage()
    ]
    assert lost_lines and all("outbox_dropped" in line for line in lost_lines)


def test_a_message_too_large_for_the_broker_is_set_aside_once_and_the_rest_flows(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker refuses packets over 65 KiB by disconnecting the sender, and paho sends a
    message again after every reconnect. The agent refuses it itself, once: logged, counted,
    out of the outbox, a gap centrally; the readings around it are stored."""
    (creds,) = stack.add_devices([("big-message", {"site": "b"})])

    def oversized_third(**kwargs: Any) -> Publisher:
        finalize = kwargs.pop("finalize")

        def grow(entry: OutboxEntry, link: LinkState) -> bytes:
            payload = finalize(entry, link)
            # Still valid JSON, still correctly signed: only too large.
            return payload + b" " * 70_000 if entry.seq == 3 else payload

        return Publisher(finalize=grow, **kwargs)

    caplog.set_level(logging.WARNING, logger="sensorpipe.edge")
    edge = RunningAgent(
        stack,
        creds,
        tmp_path / "outbox.sqlite",
        [_bme280(0.2)],
        publisher_factory=oversized_third,
    )
    try:
        wait_for(
            lambda: _stored_seqs(influx, "big-message")[:7] == [1, 2, 4, 5, 6, 7, 8],
            timeout_s=30,
            what="the readings around the large one stored",
        )
        publisher = edge.agent.publisher
        assert publisher.reconnects == 0  # the broker never had a reason to disconnect
        assert publisher.refused == 1
        ((entry, reason),) = edge.outbox.rejected()
        assert entry.seq == 3 and reason.startswith("too large: ")
    finally:
        edge.close()
    seq_4 = influx.query(
        "SELECT seq_gap, outbox_dropped FROM link WHERE device_id = 'big-message' AND seq = 4"
    )[0]["values"][0]
    assert seq_4[1:] == [1, 1]  # a gap of one, and one reading given up
    (line,) = [r.getMessage() for r in caplog.records if "too large" in r.getMessage()]
    assert "sequence number 3" in line and "set aside" in line


def test_a_sensor_that_cannot_be_opened_is_reported_while_the_other_is_stored(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    """No I2C bus for the BME280: the SDS011 is read and stored all the same, the BME280's
    trouble is in `sensor_status`, and once the bus is there its readings follow."""
    (creds,) = stack.add_devices([("half-open", {"site": "h"})])
    sds = Sds011Simulator(Sds011Device(read_pm=Street(1).pm_now, bad_frame_rate=0.0))
    sds.start()
    bus_present = threading.Event()
    bus = SimulatedI2CBus(1)
    bus.attach(0x76, Bme280Device(Street(1).climate_now))

    def i2c(number: int) -> SimulatedI2CBus:
        if not bus_present.is_set():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/i2c-1")
        return bus

    def open_bme280() -> SensorDriver:
        return open_driver(Bme280Config(driver="bme280"), i2c_bus_factory=i2c)

    sds_config = Sds011Config(driver="sds011", port=sds.port, timeout_s=1.0)
    edge = RunningAgent(
        stack,
        creds,
        tmp_path / "outbox.sqlite",
        [
            SensorOpener("sds011", functools.partial(open_driver, sds_config), 0.3),
            SensorOpener("bme280", open_bme280, 0.3),
        ],
        status_interval_s=1.0,
        reopen_after_s=0.5,
    )

    def count(quantity: str) -> int:
        series = influx.query(f"SELECT count({quantity}) FROM air WHERE device_id = 'half-open'")
        return int(series[0]["values"][0][1]) if series else 0

    try:
        wait_for(lambda: count("pm2_5") >= 5, what="SDS011 readings stored")
        status = wait_for(
            lambda: influx.query(
                "SELECT ok, last_error FROM sensor_status "
                "WHERE device_id = 'half-open' AND sensor = 'bme280'"
            ),
            what="the BME280's status stored",
        )
        first = status[0]["values"][0]
        assert first[1] is False and "cannot open I2C bus 1" in first[2]
        assert count("temperature") == 0
        bus_present.set()  # the bus is there now: the agent opens the sensor by itself
        wait_for(lambda: count("temperature") >= 3, what="BME280 readings after it opened")
    finally:
        edge.close()
        sds.stop()
