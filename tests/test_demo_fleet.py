"""The demo's fleet: hosts with the sensors people own (SHT3x/SHT4x, a soil probe on an
ADS1115, SPS30, SCD30/SCD41 beside the SDS011/PMS5003/BME280), each sensor showing its typical
faults now and then, counted on the device; and the agent's answer to a reading slower than the
others of its round, which goes in a message with an observation time of its own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sensorpipe.edge.sensorloop import PART_STEP_S
from sensorpipe.firmware_sim.fleet import Fleet, HostKit, _LooseProbe, _Now, sensirion_installed
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.protocol.codec import decode
from sensorpipe.protocol.messages import AirMessage
from sensorpipe.protocol.register import SENSOR_QUANTITIES
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.stack.demo import DEMO_KITS, demo_kits
from tests.test_agent_sensor_faults import FaultyDriver, _agent, _opener, _sent


def test_the_demo_kits_carry_every_new_sensor_with_faults_on() -> None:
    declared = {name for kit in DEMO_KITS for name in kit.declared()}
    assert {"sht4x", "sht3x", "soil_probe", "sps30", "scd4x", "scd30", "pms5003"} <= declared
    assert all(kit.faults for kit in DEMO_KITS)
    assert declared <= set(SENSOR_QUANTITIES)  # names the register knows
    # Without Sensirion's drivers the demo still runs, with what needs none.
    kits, line = demo_kits(sensirion=False)
    assert not any(k.sensirion for k in kits) and line is not None and "sensirion" in line
    assert all(k.declared() for k in kits)
    assert demo_kits(sensirion=True) == (list(DEMO_KITS), None)


def _credentials(n: int) -> list[DeviceCredentials]:
    private, public = generate_keypair()
    return [
        DeviceCredentials(f"d{i}", f"d{i}", "p", private_key=private, public_key=public)
        for i in range(n)
    ]


@pytest.mark.skipif(not sensirion_installed(), reason="needs the sensirion extra")
def test_the_fleet_builds_each_kits_sensors(tmp_path: Path) -> None:
    fleet = Fleet(
        _credentials(len(DEMO_KITS) + 1),
        broker_host="127.0.0.1",
        broker_port=1,
        workdir=tmp_path,
        kits=DEMO_KITS,
    )
    try:
        read = [sorted(slot.model for slot in host.agent._slots) for host in fleet.hosts]
    finally:
        fleet.stop()
    assert read == [
        ["bme280", "pms5003", "sds011"],
        ["bme280", "ds18b20", "sht4x", "soil_probe"],
        ["bme280", "scd4x", "sht3x"],
        ["bme280", "scd30", "sps30"],
        ["bme280", "sds011"],
        ["bme280", "pms5003", "sds011"],  # the kits repeat over the hosts
    ]


def test_a_gardens_faults_are_counted_while_it_is_read(tmp_path: Path) -> None:
    """The garden (SHT4x, soil probe): its probe loses contact for one reading in 30, its
    SHT4x's answers fail their CRC in bursts now and then; 90 rounds count both, and every
    other reading is taken."""
    garden = HostKit(sds011=False, sht4x=True, soil=True, faults=True)
    fleet = Fleet(
        _credentials(1), broker_host="127.0.0.1", broker_port=1, workdir=tmp_path, kits=[garden]
    )
    try:
        agent = fleet.hosts[0].agent
        for _ in range(90):
            agent.sample(agent._slots)
        health = {h.sensor: h for h in agent.sensor_health()}
    finally:
        fleet.stop()
    assert health["soil_probe"].reads_failed == 3 and health["soil_probe"].reads_ok == 87
    assert health["sht4x"].errors.get("checksum", 0) >= 1
    assert health["bme280"].errors == {}


def test_the_fault_wrappers_fire_at_their_rate() -> None:
    probe = _LooseProbe(3, moisture=lambda: 50.0, v_dry=2.6, v_wet=1.2)
    assert [round(probe(), 2) for _ in range(6)] == [1.9, 1.9, 3.3, 1.9, 1.9, 3.3]

    class Device:
        def __init__(self) -> None:
            self.written: list[bytes] = []
            self.faults = 0

        def i2c_write(self, data: bytes) -> None:
            self.written.append(data)

        def i2c_read(self, length: int) -> bytes:
            return bytes(length)

    device = Device()
    wrapped = _Now(device, 4, lambda d: setattr(d, "faults", d.faults + 1))
    for i in range(9):
        wrapped.i2c_write(bytes([i]))
    assert device.faults == 2 and len(device.written) == 9 and wrapped.i2c_read(2) == b"\0\0"


def test_a_reading_slower_than_its_round_gets_a_time_of_its_own() -> None:
    """A read that answers after group_wait_s: the round's other readings are queued first,
    the slow one in a second message observed a millisecond later, not at the same time (the
    ingest would keep one link point of the two, and the demo count a message lost)."""
    answer = threading.Event()

    def slow() -> dict[str, float]:
        answer.wait(10)
        return {"co2": 600.0}

    scd = FaultyDriver("scd4x", [slow])
    bme = FaultyDriver("bme280", [{"temperature": 20.0}])
    agent = _agent([_opener(scd), _opener(bme)])
    rnd = agent.start_round(agent._slots, group_wait_s=0.05)
    deadline = time.monotonic() + 10
    while not agent.collect() and time.monotonic() < deadline:
        time.sleep(0.01)  # the BME280's part, once the group wait is over
    answer.set()
    while rnd in agent._rounds and time.monotonic() < deadline:
        time.sleep(0.01)
        agent.collect()
    air = [m for m in map(decode, _sent(agent, agent.outbox)) if isinstance(m, AirMessage)]
    assert [[r.sensor for r in m.readings] for m in air] == [["bme280"], ["scd4x"]]
    first, second = (m.observed_at for m in air)
    assert (second - first).total_seconds() == pytest.approx(PART_STEP_S)


def test_the_demo_summary_names_the_faults_and_back_offs() -> None:
    from sensorpipe.cli.demo import sensor_faults_line
    from sensorpipe.stack.demo import DemoSummary

    summary = DemoSummary(devices=5, duration_s=60.0)
    assert sensor_faults_line(summary) == "sensor faults counted on the devices: none"
    summary.sensor_faults = {"scd4x": {"timeout": 4}, "sht4x": {"read": 1, "checksum": 2}}
    assert sensor_faults_line(summary) == (
        "sensor faults counted on the devices: scd4x timeout 4; sht4x checksum 2, read 1"
    )
    assert summary.as_dict()["backed_off"] == {}
