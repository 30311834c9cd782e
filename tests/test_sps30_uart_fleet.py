"""The simulated fleet (`sim fleet --sps30-uart`) can carry an SPS30 on its UART: the host's
agent reads it through Sensirion's UART driver on a pty, with its number concentrations, in
place of the SPS30 on I2C that `sensirion` gives."""

from __future__ import annotations

from pathlib import Path

from sensorpipe.edge.drivers.sensirion import Sps30Config
from sensorpipe.firmware_sim.fleet import Fleet
from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.protocol.codec import decode
from sensorpipe.protocol.signing import generate_keypair
from tests.test_agent import _sent


def _creds(n: int) -> list[DeviceCredentials]:
    out = []
    for i in range(n):
        private, public = generate_keypair()
        out.append(DeviceCredentials(f"sim-{i}", f"sim-{i}", "x", private, public))
    return out


def test_a_fleet_host_reads_its_sps30_over_its_uart(tmp_path: Path) -> None:
    fleet = Fleet(
        _creds(1),
        broker_host="127.0.0.1",
        broker_port=1,
        workdir=tmp_path,
        sds011=False,
        sensirion=True,
        sps30_uart=True,
    )
    try:
        (host,) = fleet.hosts
        assert host.sps30_uart is not None and host.kit.declared() == ["bme280", "sps30", "scd4x"]
        # One SPS30, on the UART: none on the I2C bus as well.
        (sps30,) = [s for s in host.agent.config.sensors if isinstance(s, Sps30Config)]
        assert sps30.port == host.sps30_uart.port and sps30.bus is None
        agent = host.agent
        agent.sample(agent._slots)
        health = {h.sensor: h for h in agent.sensor_health()}
        assert health["sps30"].ok and health["sps30"].reads_ok == 1
        assert host.sps30_uart.device.frames_received  # read over the pty
        readings = [
            r
            for payload in _sent(agent, agent.outbox)
            for r in getattr(decode(payload), "readings", [])
            if r.sensor == "sps30"
        ]
        quantities = {r.quantity for r in readings}
        assert {"pm2_5", "number_pm0_5", "number_pm10", "particle_size_typical"} <= quantities
    finally:
        fleet.stop()
