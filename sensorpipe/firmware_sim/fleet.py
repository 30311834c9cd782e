"""A fleet of simulated Raspberry Pi sensor hosts, each running the real edge agent.

Every device gets its own simulated street, an SDS011 on a pty (read through pyserial by the
real driver), a BME280 on a simulated I2C bus, a SQLite outbox and its own broker account.

With `pms5003=N` the first N hosts also carry a Plantower PMS5003 on a pty (passive mode, read
by the real driver), whose line garbles a burst of frames now and then as a Pi's mini-UART does.
With `sht4x=True` a host also has an SHT4x (0x44) on its I2C bus, and with `soil=True` an
ADS1115 (0x48) with a capacitive soil probe on AIN0 (`soil_probe`, moisture drying slowly and
watered again), each read by its real driver; register such a device with those sensors
declared (or none, so that any known model is taken). With `ds18b20=True` a host also has a
DS18B20 soil temperature probe on a simulated 1-Wire bus (a sysfs-like folder in `workdir`,
converted on a thread; a short burst of CRC errors now and then), read by its real driver.

With `sds011=False` a host has only the BME280: no pty, no serial port. A pty-backed SDS011
costs a host about a dozen file descriptors, and pyserial and paho wait on them with select(),
which cannot watch descriptors above 1023; fleets of a hundred hosts in one process need this.

With `sensirion=True` a host also has an SPS30 and an SCD41 on its I2C bus (the SCD41 takes
its pressure from the BME280 there), read through Sensirion's drivers (the `sensirion` extra).
Their clocks run faster when the fleet reads more often than every 5 s (the SCD41's period), so
a quick fleet is not held up by them. With `sps30_uart=True` the SPS30 is on a serial port
instead (SEL left open: the SHDLC simulator on a pty, `driver = "sps30"` with `port`), read by
Sensirion's UART driver with its number concentrations; alone, a host gets just that SPS30 (and
its BME280), no SCD41.

With `kits=` each host carries its own mix instead (`HostKit`: a street, a garden, a classroom;
the list is repeated over the hosts), each sensor with `faults=True` showing its typical faults
now and then: bad frames and CRC bursts, a soil probe that loses contact for a reading, an SHT3x
whose heater is on at power-up, a CO2 sensor that goes silent for a few seconds (and is backed
off). The demo's fleet is `DEMO_KITS` (sensorpipe.stack.demo).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorpipe.edge.agent import Agent
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.registry import (
    Bme280Config,
    Ds18b20Config,
    Pms5003Config,
    Sds011Config,
    SensorConfig,
    Sht3xConfig,
    Sht4xConfig,
    SoilProbeConfig,
    open_driver,
)
from sensorpipe.edge.outbox import SqliteOutbox
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.pms5003 import ChecksumBursts, Pms5003Device, Pms5003Simulator
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.firmware_sim.sensirion import SCD4X_ADDRESS, SCD30_ADDRESS, SPS30_ADDRESS
from sensorpipe.firmware_sim.sht import Sht3xDevice, Sht4xDevice
from sensorpipe.gateway.devices import DeviceCredentials

if TYPE_CHECKING:
    from sensorpipe.firmware_sim.sps30_uart import Sps30UartSimulator


def _air_of(street: Street) -> Callable[[], tuple[float, float]]:
    """The street's temperature and humidity, as an SHT4x beside the BME280 measures them."""

    def now() -> tuple[float, float]:
        temperature, humidity, _pressure = street.climate_now()
        return temperature, humidity

    return now


def _garden(seed: int) -> Callable[[], float]:
    """Soil moisture (% of the probe's span) that dries by one point a minute from 60 to 30 %,
    then is watered back; `seed` starts each garden elsewhere in that cycle."""
    t0 = time.monotonic() - (seed % 30) * 60.0
    return lambda: 60.0 - ((time.monotonic() - t0) / 60.0) % 30.0


@dataclass(frozen=True)
class HostKit:
    """What one simulated host carries (a BME280 always), and whether its sensors show their
    typical faults at a low rate (`faults`)."""

    sds011: bool = True
    pms5003: bool = False
    sht4x: bool = False
    sht3x: bool = False
    soil: bool = False  # a capacitive soil probe on an ADS1115 (AIN0)
    sps30: bool = False
    sps30_uart: bool = False  # its SPS30 on a serial port (a pty), not on the I2C bus
    scd4x: bool = False
    scd30: bool = False
    ds18b20: bool = False  # a DS18B20 soil thermometer on a simulated 1-Wire bus
    faults: bool = False

    def declared(self) -> list[str]:
        """The sensor models to register the host with (protocol.register's names)."""
        names = {
            "sds011": self.sds011,
            "pms5003": self.pms5003,
            "bme280": True,
            "sht4x": self.sht4x,
            "sht3x": self.sht3x,
            "soil_probe": self.soil,
            "ds18b20": self.ds18b20,
            "sps30": self.sps30 or self.sps30_uart,
            "scd4x": self.scd4x,
            "scd30": self.scd30,
        }
        return [name for name, has in names.items() if has]

    @property
    def sensirion(self) -> bool:
        """Whether it needs Sensirion's drivers (the `sensirion` extra)."""
        return self.sps30 or self.sps30_uart or self.scd4x or self.scd30


def sensirion_installed() -> bool:
    """Whether Sensirion's drivers (the `sensirion` extra) can be imported here."""
    import importlib.util

    return importlib.util.find_spec("sensirion_i2c_driver") is not None


class _Now:
    """A fault that comes back every `every`-th time the host talks to the device."""

    def __init__(self, device: Any, every: int, fault: Callable[[Any], None]) -> None:
        self.device, self.every, self.fault, self.count = device, every, fault, 0

    def i2c_write(self, data: bytes) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.fault(self.device)
        self.device.i2c_write(data)

    def i2c_read(self, length: int) -> bytes:
        data: bytes = self.device.i2c_read(length)
        return data


class _LooseProbe(SoilProbe):
    """A soil probe whose plug loses contact for one conversion in `every`: it reads the rail."""

    def __init__(self, every: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.every, self.count = every, 0

    def __call__(self) -> float:
        self.count += 1
        return self.rail_v if self.count % self.every == 0 else super().__call__()


def _soil_temperature(seed: int) -> Callable[[], float]:
    """Soil at 10 cm: 11 °C, a day's swing of ±2 °C (in an hour here, so a quick fleet sees
    it move); `seed` starts each garden elsewhere in that cycle."""
    t0 = time.monotonic() - (seed % 60) * 60.0
    return lambda: 11.0 + 2.0 * math.sin(2 * math.pi * (time.monotonic() - t0) / 3600.0)


def _always(bus: SimulatedI2CBus) -> Callable[[int], SimulatedI2CBus]:
    """An I2C bus factory that hands out the simulated bus whatever bus number is asked."""
    return lambda _number: bus


def _sensirion_speed(interval_s: float) -> float:
    """How much faster than the wall clock the Sensirion simulators' clocks run."""
    return max(1.0, 5.0 / interval_s)


def _sensirion_sensors(
    bus: SimulatedI2CBus, street: Street, interval_s: float, kit: HostKit
) -> list[SensorConfig]:
    from sensorpipe.edge.drivers.sensirion import Scd4xConfig, Scd30Config, Sps30Config
    from sensorpipe.firmware_sim.sensirion import Scd4xDevice, Scd30Device, Sps30Device

    speed = _sensirion_speed(interval_s)

    def device_time() -> float:
        return time.monotonic() * speed

    def air() -> tuple[float, float, float]:
        temperature, humidity, _pressure = street.climate_now()
        return 420.0 + 4.0 * street.pm_now()[0], temperature, humidity  # CO2 follows traffic

    def attach(address: int, device: Any, every: int, fault: Callable[[Any], None]) -> None:
        bus.attach(address, _Now(device, every, fault) if kit.faults else device)

    sensors: list[SensorConfig] = []
    if kit.sps30 and not kit.sps30_uart:
        # A disturbed bus: one answer in a few hundred fails its CRC.
        sps = Sps30Device(street.pm_now, now=device_time)
        attach(SPS30_ADDRESS, sps, 90, lambda d: d.crc_burst(1))
        sensors.append(Sps30Config(driver="sps30", bus=1, interval_s=interval_s))
    if kit.scd4x:
        # The classroom's CO2 sensor loses power for 4 s (of its own time, which runs faster)
        # now and then: a few reads fail in a row and the agent backs it off.
        scd = Scd4xDevice(air, now=device_time)
        scd.powered_at -= scd.power_up_s
        attach(SCD4X_ADDRESS, scd, 150, lambda d: d.go_silent(4.0 * speed))
        sensors.append(Scd4xConfig(driver="scd4x", bus=1, interval_s=interval_s, altitude_m=5))
    if kit.scd30:
        scd30 = Scd30Device(air, now=device_time)
        scd30.powered_at -= scd30.power_up_s
        attach(SCD30_ADDRESS, scd30, 75, lambda d: d.crc_burst(1))
        sensors.append(Scd30Config(driver="scd30", bus=1, interval_s=interval_s))
    return sensors


@dataclass
class SimulatedHost:
    credentials: DeviceCredentials
    sds011: Sds011Simulator | None
    bme280: Bme280Device
    agent: Agent
    pms5003: Pms5003Simulator | None = None
    kit: HostKit = field(default_factory=HostKit)
    w1: W1Bus | None = None
    sps30_uart: Sps30UartSimulator | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Parts:
    """One host's sensors as built: what the agent reads and what the fleet stops."""

    sensors: list[SensorConfig]
    bus: SimulatedI2CBus
    bme: Bme280Device
    sds: Sds011Simulator | None
    pms: Pms5003Simulator | None
    w1: W1Bus | None = None
    sps30_uart: Sps30UartSimulator | None = None


class Fleet:
    def __init__(
        self,
        devices: list[DeviceCredentials],
        *,
        broker_host: str,
        broker_port: int,
        workdir: Path,
        interval_s: float = 1.0,
        status_interval_s: float = 10.0,
        bad_frame_rate: float = 0.02,
        seed: int = 0,
        confirm_timeout_s: float = 600.0,
        sds011: bool = True,
        max_messages_per_s: float | None = None,
        sensirion: bool = False,
        sps30_uart: bool = False,
        pms5003: int = 0,
        sht4x: bool = False,
        soil: bool = False,
        ds18b20: bool = False,
        kits: Sequence[HostKit] = (),
    ) -> None:
        """`max_messages_per_s`: each agent's sending pace; by default twice what its sensors
        produce (one message per sensor per interval), and at least the edge default, so that
        a backlog drains. `kits`: each host's sensors, repeated over the hosts; without, every
        host has what the flags before it say."""
        self.hosts: list[SimulatedHost] = []
        self.interval_s = interval_s
        self.bad_frame_rate = bad_frame_rate
        self.seed = seed
        self.workdir = workdir
        pace = max_messages_per_s or max(10.0, 4.0 / interval_s)
        for i, creds in enumerate(devices):
            if kits:
                kit = kits[i % len(kits)]
            else:
                kit = HostKit(
                    sds011=sds011,
                    pms5003=i < pms5003,
                    sht4x=sht4x,
                    soil=soil,
                    ds18b20=ds18b20,
                    sps30=sensirion,
                    sps30_uart=sps30_uart,
                    scd4x=sensirion,
                )
            host = self._host(i, creds, kit)
            config = EdgeConfig(
                device_id=creds.device_id,
                private_key=creds.private_key,
                mqtt=MqttConfig(
                    host=broker_host,
                    port=broker_port,
                    username=creds.username,
                    password=creds.password,
                    confirm_timeout_s=confirm_timeout_s,
                    max_messages_per_s=pace,
                ),
                outbox_path=str(workdir / f"{creds.device_id}.outbox.sqlite"),
                status_interval_s=status_interval_s,
                sensors=host.sensors,
            )
            drivers = [
                (open_driver(s, i2c_bus_factory=_always(host.bus)), s.interval_s)
                for s in config.sensors
            ]
            agent = Agent(
                config,
                drivers=drivers,
                outbox=SqliteOutbox(config.outbox_path, max_entries=config.outbox_max_entries),
                clock_synced=lambda: True,
            )
            self.hosts.append(
                SimulatedHost(
                    creds,
                    host.sds,
                    host.bme,
                    agent,
                    host.pms,
                    kit=kit,
                    w1=host.w1,
                    sps30_uart=host.sps30_uart,
                )
            )

    def _host(self, i: int, creds: DeviceCredentials, kit: HostKit) -> _Parts:
        """The simulated sensors of host `i` and the configuration that reads them."""
        interval_s, seed = self.interval_s, self.seed + i
        street = Street(seed)
        sensors: list[SensorConfig] = []
        sds: Sds011Simulator | None = None
        if kit.sds011:
            sds_device = Sds011Device(
                read_pm=street.pm_now, bad_frame_rate=self.bad_frame_rate, seed=seed
            )
            sds = Sds011Simulator(sds_device)
            sds.start()
            sensors.append(
                Sds011Config(driver="sds011", port=sds.port, interval_s=interval_s, timeout_s=1.0)
            )
        pms: Pms5003Simulator | None = None
        if kit.pms5003:
            pms_device = Pms5003Device(read_pm=street.pm_now, warmup_s=0.0, seed=seed)
            pms_device.checksum_bursts = ChecksumBursts(every=50, length=2)
            pms = Pms5003Simulator(pms_device)
            pms.start()
            sensors.append(
                Pms5003Config(driver="pms5003", port=pms.port, interval_s=interval_s, timeout_s=1.0)
            )
        sensors.append(Bme280Config(driver="bme280", bus=1, interval_s=interval_s))
        bme = Bme280Device(street.climate_now)
        bus = SimulatedI2CBus(1)
        bus.attach(0x76, bme)
        if kit.sensirion:
            sensors += _sensirion_sensors(bus, street, interval_s, kit)
        uart: Sps30UartSimulator | None = None
        if kit.sps30_uart:
            from sensorpipe.edge.drivers.sensirion import Sps30Config
            from sensorpipe.firmware_sim.sps30_uart import Sps30ShdlcDevice, Sps30UartSimulator

            speed = _sensirion_speed(interval_s)
            uart = Sps30UartSimulator(
                Sps30ShdlcDevice(street.pm_now, now=lambda: time.monotonic() * speed, seed=seed)
            )
            uart.start()
            sensors.append(Sps30Config(driver="sps30", port=uart.port, interval_s=interval_s))
        # SHT CRC bursts: a burst of 2 starts on about one answer in 60.
        rate = 1 / 60 if kit.faults else 0.0
        if kit.sht4x:
            bus.attach(
                0x44, Sht4xDevice(_air_of(street), seed=seed, burst_rate=rate, burst_length=2)
            )
            sensors.append(Sht4xConfig(driver="sht4x", interval_s=interval_s))
        if kit.sht3x:
            # A cheap board whose heater is on at power-up: the driver turns it off at open.
            sht3x = Sht3xDevice(
                _air_of(street),
                heater_at_power_up=kit.faults,
                seed=seed,
                burst_rate=rate,
                burst_length=2,
            )
            address = 0x45 if kit.sht4x else 0x44
            bus.attach(address, sht3x)
            sensors.append(Sht3xConfig(driver="sht3x", address=address, interval_s=interval_s))
        if kit.soil:
            moisture = _garden(seed)
            probe = (
                _LooseProbe(30, moisture=moisture, v_dry=2.6, v_wet=1.2)
                if kit.faults
                else SoilProbe(moisture, v_dry=2.6, v_wet=1.2)
            )
            bus.attach(0x48, Ads1115Device({0: probe}))
            sensors.append(
                SoilProbeConfig(driver="soil_ads1115", v_dry=2.6, v_wet=1.2, interval_s=interval_s)
            )
        w1: W1Bus | None = None
        if kit.ds18b20:
            w1 = W1Bus(self.workdir / f"{creds.device_id}.w1")
            serial = f"28-{0x3C01D607E400 + i:012x}"
            w1.attach(
                Ds18b20Probe(
                    serial, _soil_temperature(seed), burst_rate=0.01, burst_length=2, seed=seed
                )
            )
            w1.start(period_s=min(0.5, interval_s / 2))
            sensors.append(
                Ds18b20Config(driver="ds18b20", w1_root=str(w1.root), interval_s=interval_s)
            )
        return _Parts(sensors, bus, bme, sds, pms, w1, uart)

    def start(self) -> None:
        for host in self.hosts:
            host.thread = threading.Thread(
                target=host.agent.run,
                args=(host.stop,),
                kwargs={"drain_timeout_s": 30.0},
                name=f"agent {host.credentials.device_id}",
                daemon=True,
            )
            host.thread.start()

    def stop(self) -> int:
        """Stop sampling; each agent drains its outbox (up to 30 s). Returns what is left."""
        for host in self.hosts:
            host.stop.set()
        for host in self.hosts:
            if host.thread is not None:
                host.thread.join(timeout=40)
            if host.sds011 is not None:
                host.sds011.stop()
            if host.pms5003 is not None:
                host.pms5003.stop()
            if host.w1 is not None:
                host.w1.stop()
            if host.sps30_uart is not None:
                host.sps30_uart.stop()
        left = self.pending()
        for host in self.hosts:
            host.agent.outbox.close()
        return left

    def queued(self) -> int:
        return sum(h.agent.stats.messages_queued for h in self.hosts)

    def acked(self) -> int:
        return sum(h.agent.publisher.acked for h in self.hosts)

    def pending(self) -> int:
        return sum(h.agent.outbox.depth() for h in self.hosts)
