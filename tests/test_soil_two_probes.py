"""Two soil probes on one ADS1115 (`soil_probe` on AIN0, `soil_probe.bed2` on AIN1), read at the
same time from the agent's threads, each read their own input: a conversion of one is never
restarted for the other."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from sensorpipe.edge.drivers.registry import SoilProbeConfig, open_driver
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus

READS = 15


def two_probe_bus() -> SimulatedI2CBus:
    """I2C bus 1 with an ADS1115 at 0x48: a probe in 35 % soil on AIN0, one in 60 % on AIN1."""
    bus = SimulatedI2CBus(1)
    probes: dict[int, Callable[[], float]] = {
        channel: SoilProbe(functools.partial(float, moisture), v_dry=2.6, v_wet=1.2)
        for channel, moisture in ((0, 35.0), (1, 60.0))
    }
    bus.attach(0x48, Ads1115Device(probes))
    return bus


def test_two_probes_on_one_chip_read_in_parallel_each_read_their_own_input() -> None:
    bus = two_probe_bus()
    drivers = [
        open_driver(
            SoilProbeConfig(
                driver="soil_ads1115", channel=channel, v_dry=2.6, v_wet=1.2, sensor=tag
            ),
            i2c_bus_factory=lambda _n: bus,
        )
        for channel, tag in ((0, "soil_probe"), (1, "soil_probe.bed2"))
    ]
    seen: dict[int, list[float]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def read(i: int) -> None:
        start.wait()
        for _ in range(READS):
            seen[i].append(round(drivers[i].read()["soil_moisture"]))

    threads = [threading.Thread(target=read, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == {0: [35] * READS, 1: [60] * READS}
