"""The simulated fleet (and so the demo) can carry PMS5003s: a host's agent reads one through
the real driver on a pty, next to its SDS011 and BME280."""

from __future__ import annotations

from pathlib import Path

from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.stack.demo import DEMO_KITS


def test_a_fleet_host_reads_its_pms5003(tmp_path: Path) -> None:
    creds = []
    for i in range(2):
        private, public = generate_keypair()
        creds.append(DeviceCredentials(f"sim-{i}", f"sim-{i}", "x", private, public))
    fleet = Fleet(creds, broker_host="127.0.0.1", broker_port=1, workdir=tmp_path, pms5003=1)
    try:
        with_pms, without = fleet.hosts
        assert with_pms.pms5003 is not None and without.pms5003 is None
        agent = with_pms.agent
        agent.sample(agent._slots)
        health = {h.sensor: h for h in agent.sensor_health()}
        assert health["pms5003"].ok and health["pms5003"].reads_ok == 1
        assert agent.stats.readings == 2 + 9 + 3  # SDS011, PMS5003 (PM and counts), BME280
        assert with_pms.pms5003.device.passive
    finally:
        fleet.stop()
    assert any(kit.pms5003 for kit in DEMO_KITS)  # the demo's fleet includes one
