"""`edge check` names the kind of each sensor fault in its FAIL line (`<where>: <kind>:
<cause>`, one line; `kind` in --json): every sensor's typical faults, simulated, through the real
drivers. And the counts the agent last reported (sensor-health.json) join each sensor's line."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from sensorpipe.edge.check import FAIL, Probes, as_json, check_sensor, run_checks
from sensorpipe.edge.config import EdgeConfig, MqttConfig
from sensorpipe.edge.drivers.registry import Pms5003Config, Sds011Config, SensorConfig
from sensorpipe.edge.healthfile import HEALTH_FILE, write_health
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.pms5003 import ChecksumBursts, Pms5003Device, Pms5003Simulator
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.firmware_sim.sensirion import Scd4xDevice, Scd30Device, Sps30Device
from sensorpipe.firmware_sim.sht import Sht3xDevice, Sht4xDevice
from sensorpipe.process import free_port
from sensorpipe.protocol.signing import generate_keypair

SPEED = 20.0  # the Sensirion simulators' clock: an SCD4x's 5 s period passes in 0.25 s


def _fast() -> float:
    return time.monotonic() * SPEED


def _sensirion(cls: Any) -> Any:
    device = cls(now=_fast)
    device.powered_at -= device.power_up_s
    return device


def _soil(**probe: Any) -> Ads1115Device:
    return Ads1115Device({0: SoilProbe(lambda: 40.0, **probe)})


def _set(device: Any, **attributes: Any) -> Any:
    for name, value in attributes.items():
        setattr(device, name, value)
    return device


def _crc(device: Any, n: int = 1000) -> Any:
    device.crc_burst(n)
    return device


SOIL = {"driver": "soil_ads1115", "v_dry": 2.6, "v_wet": 1.2}

# (configuration, {address: the simulated device}, the kind, a word of the cause)
I2C_FAULTS: list[tuple[dict[str, Any], Callable[[], dict[int, Any]], str, str]] = [
    ({"driver": "bme280"}, lambda: {}, "timeout", "no device answers at I2C address 0x76"),
    ({"driver": "bme280"}, lambda: {0x76: Bme280Device(chip_id=0x58)}, "wrong_model", "BMP280"),
    ({"driver": "sht4x"}, lambda: {0x44: _crc(Sht4xDevice())}, "checksum", "CRC"),
    ({"driver": "sht4x"}, lambda: {0x44: _set(Sht4xDevice(), silent=True)}, "timeout", "0x44"),
    ({"driver": "sht4x"}, lambda: {0x45: Sht4xDevice()}, "wrong_address", "set address = 0x45"),
    ({"driver": "sht4x"}, lambda: {0x44: Sht3xDevice()}, "wrong_model", "SHT3X"),
    (
        {"driver": "sht4x"},
        lambda: {0x44: _set(Sht4xDevice(), out_of_range=True)},
        "out_of_range",
        "125 °C",
    ),
    ({"driver": "sht3x"}, lambda: {0x44: _crc(Sht3xDevice())}, "checksum", "CRC"),
    ({"driver": "sht3x"}, lambda: {0x44: Sht4xDevice()}, "wrong_model", "SHT4X"),
    (SOIL, lambda: {0x48: _soil(disconnected=True)}, "disconnected", "disconnected"),
    (SOIL, lambda: {0x48: _soil(v_dry=0.0, v_wet=0.0)}, "disconnected", "no power"),
    (SOIL, lambda: {0x48: _set(_soil(), never_finishes=True)}, "timeout", "did not finish"),
    (SOIL, lambda: {}, "timeout", "no ADS1115 answers"),
    *[
        (cfg, make, kind, word)
        for name, cls, address in (
            ("sps30", Sps30Device, 0x69),
            ("scd30", Scd30Device, 0x61),
            ("scd4x", Scd4xDevice, 0x62),
        )
        for cfg, make, kind, word in (
            (
                {"driver": name, "bus": 1},
                lambda c=cls, a=address: {a: _crc(_sensirion(c))},
                "checksum",
                "",
            ),
            (
                {"driver": name, "bus": 1},
                lambda c=cls, a=address: {a: _silent(_sensirion(c))},
                "timeout",
                "no answer",
            ),
            (
                {"driver": name, "bus": 1},
                lambda c=cls, a=address: {a: _set(_sensirion(c), out_of_range=True)},
                "out_of_range",
                "range",
            ),
            (
                {"driver": name, "bus": 1},
                lambda c=cls, a=address: {a + 1: _sensirion(c)},
                "timeout",
                "0x",
            ),
        )
    ],
]


def _silent(device: Any) -> Any:
    device.go_silent(3600.0)
    return device


@pytest.mark.parametrize(
    ("raw", "devices", "kind", "word"),
    I2C_FAULTS,
    ids=[f"{c['driver']}-{k}-{i}" for i, (c, _d, k, _w) in enumerate(I2C_FAULTS)],
)
def test_each_i2c_sensor_fault_names_its_kind(
    raw: dict[str, Any], devices: Callable[[], dict[int, Any]], kind: str, word: str
) -> None:
    attached = devices()

    def factory(bus_number: int) -> SimulatedI2CBus:
        bus = SimulatedI2CBus(bus_number)
        for address, device in attached.items():
            bus.attach(address, device)
        return bus

    config = TypeAdapter(SensorConfig).validate_python(raw)
    check, ok = check_sensor(config, Probes(i2c_bus_factory=factory))
    assert not ok and check.status == FAIL and check.kind == kind, check.line()
    where = f"/dev/i2c-1 at {hex(config.address)}"  # type: ignore[union-attr]
    assert check.detail.startswith(f"{where}: {kind}: "), check.line()
    assert word in check.detail and "\n" not in check.line()


@pytest.mark.parametrize(
    ("error", "kind"), [(errno.ENOENT, "no_bus"), (errno.EACCES, "permission")]
)
def test_a_missing_or_forbidden_bus_is_named(error: int, kind: str) -> None:
    def factory(bus_number: int) -> SimulatedI2CBus:
        raise OSError(error, os.strerror(error), f"/dev/i2c-{bus_number}")

    config = TypeAdapter(SensorConfig).validate_python({"driver": "sht4x"})
    check, ok = check_sensor(config, Probes(i2c_bus_factory=factory))
    assert not ok and check.kind == kind and f": {kind}: " in check.detail


@pytest.fixture
def silent_port() -> Iterator[str]:
    leader, follower = os.openpty()
    try:
        yield os.ttyname(follower)
    finally:
        os.close(leader)
        os.close(follower)


def test_serial_sensor_faults_name_their_kind(silent_port: str) -> None:
    cases: list[tuple[SensorConfig, str, str]] = [
        (Sds011Config(driver="sds011", port=silent_port, timeout_s=0.3), "timeout", "no answer"),
        (Sds011Config(driver="sds011", port="/dev/no-such-tty"), "no_port", "USB adapter"),
        (Pms5003Config(driver="pms5003", port=silent_port, timeout_s=0.3), "timeout", "no answer"),
    ]
    for config, kind, word in cases:
        check, ok = check_sensor(config, Probes())
        assert not ok and check.kind == kind and f": {kind}: " in check.detail, check.line()
        assert word in check.detail
    # Every data frame is bad; with this seed the first is whole but its checksum is wrong.
    with Sds011Simulator(Sds011Device(bad_frame_rate=1.0, seed=4)) as sim:
        sds = Sds011Config(driver="sds011", port=sim.port, timeout_s=1.0)
        check, ok = check_sensor(sds, Probes())
    assert not ok and check.kind == "checksum" and ": checksum: bad checksum" in check.detail


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("storm", "checksum"), ("range", "out_of_range")],
)
def test_pms5003_faults_name_their_kind(fault: str, kind: str) -> None:
    dev = Pms5003Device(read_pm=lambda: (11.0, 17.0), warmup_s=0.0)
    if fault == "storm":
        dev.checksum_bursts = ChecksumBursts(every=1, length=1)
    else:
        dev.out_of_range = True
    with Pms5003Simulator(dev) as sim:
        config = Pms5003Config(driver="pms5003", port=sim.port, timeout_s=1.0)
        check, ok = check_sensor(config, Probes())
    assert not ok and check.kind == kind and f": {kind}: " in check.detail, check.line()
    assert json.loads(as_json([check]))["checks"][0]["kind"] == kind


def test_the_agents_counts_join_each_sensors_line(tmp_path: Path) -> None:
    """The agent saves each status message's sensor health next to its outbox; `edge check`
    (run with the agent stopped) shows what it had counted, for sensors that pass and fail."""
    private, _ = generate_keypair()
    config = EdgeConfig(
        device_id="garden-1",
        private_key=private,
        # Nothing listens there: the broker check fails at once, delivery is skipped.
        mqtt=MqttConfig(host="127.0.0.1", port=free_port(), username="garden-1", password="p"),
        outbox_path=str(tmp_path / "outbox.sqlite"),
        sensors=[
            TypeAdapter(SensorConfig).validate_python(raw) for raw in ({"driver": "sht4x"}, SOIL)
        ],
    )
    write_health(
        tmp_path / HEALTH_FILE,
        [
            {"sensor": "sht4x", "errors": {"checksum": 340, "timeout": 2}, "backoff_s": 0.0},
            {"sensor": "soil_probe", "errors": {"disconnected": 5}, "backoff_s": 240.0},
        ],
        1_765_000_000.0,  # 2025-12-06 05:46:40 UTC
    )

    def factory(bus_number: int) -> SimulatedI2CBus:
        bus = SimulatedI2CBus(bus_number)
        bus.attach(0x44, Sht4xDevice())
        bus.attach(0x48, _soil(disconnected=True))
        return bus

    probes = Probes(i2c_bus_factory=factory, clock_synced=lambda: True)
    sht, soil = run_checks(config, probes)[:2]
    assert sht.status == "ok" and sht.detail.endswith(
        "; the agent counted checksum 340, timeout 2 since it last started "
        "(up to 2025-12-06 05:46 UTC)"
    )
    assert soil.status == FAIL and soil.kind == "disconnected"
    assert soil.detail.endswith(
        "; the agent counted disconnected 5 since it last started (up to 2025-12-06 05:46 UTC, "
        "backed off to one try every 240 s)"
    )
    # No file (an agent that never ran here), or a broken one: the lines say nothing more.
    (tmp_path / HEALTH_FILE).write_text("{broken")
    sht, soil = run_checks(config, probes)[:2]
    assert "agent counted" not in sht.detail + soil.detail


def test_the_agent_saves_the_health_of_each_status_message(tmp_path: Path) -> None:
    """... with the faults counted by the kinds `edge check` names: the real SHT and ADS1115
    drivers over simulated buses, each fault raised as its kind (a bad CRC counted once)."""
    from sensorpipe.edge.agent import SensorOpener
    from sensorpipe.edge.drivers.ads1115 import Ads1115
    from sensorpipe.edge.drivers.ads1115 import SoilProbe as SoilDriver
    from sensorpipe.edge.drivers.sht import Sht4x
    from sensorpipe.edge.healthfile import read_health
    from tests.test_agent_sensor_faults import _agent

    sht_device, adc_device = Sht4xDevice(), _soil(disconnected=True)
    bus = SimulatedI2CBus(1)
    bus.attach(0x44, sht_device)
    bus.attach(0x48, adc_device)
    sht = Sht4x(bus, 0x44)
    soil = SoilDriver(Ads1115(bus, 0x48), 0, v_dry=2.6, v_wet=1.2)
    opener = [SensorOpener(d.model, lambda d=d: d, 60.0) for d in (sht, soil)]  # type: ignore[misc]
    agent = _agent(opener, health_path=tmp_path / HEALTH_FILE)
    sht_device.silent = True
    agent.sample(agent._slots)
    sht_device.silent = False
    sht_device.crc_burst(1)
    agent.sample(agent._slots)
    agent.sample(agent._slots)
    agent.queue_status()
    written, counted = read_health(tmp_path / HEALTH_FILE)
    assert written is not None
    assert counted["sht4x"].errors == {"timeout": 1, "checksum": 1}
    assert counted["soil_probe"].errors == {"disconnected": 3}


def test_an_open_failure_is_named_by_the_kind_its_driver_gives_not_by_its_words() -> None:
    from sensorpipe.edge.check import failure_kind
    from sensorpipe.edge.errors import SensorConfigError, SensorTimeout

    config = TypeAdapter(SensorConfig).validate_python({"driver": "sht4x"})
    said = SensorConfigError("sht4x: something else answers there", kind="wrong_model")
    assert failure_kind(config, said, None) == "wrong_model"
    # Words that once named a kind say nothing: a config error is "config".
    assert failure_kind(config, SensorConfigError("is it an SHT3X? chip id 0x58 at"), None) == (
        "config"
    )
    # A driver's failed first answer: the kind of that answer.
    try:
        raise SensorConfigError("sps30: no answer on /dev/ttyUSB0") from SensorTimeout("x")
    except SensorConfigError as exc:
        assert failure_kind(config, exc, None) == "timeout"
