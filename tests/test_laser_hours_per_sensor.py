"""Laser running hours per sensor, not per model: two PMS5003s on one Pi keep their own count,
a file kept per model is taken over without losing an hour, and each Plantower model's expected
life is the one a source gives (or unknown)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensorpipe.edge.drivers.registry import Pms5003Config, Sds011Config, duty_cycle
from sensorpipe.edge.duty import LaserHours
from sensorpipe.protocol.register import LASER_LIFE_H
from sensorpipe.query.health import SensorState

H = 3600.0


def _pms(port: str, model: str = "pms5003") -> Pms5003Config:
    return Pms5003Config.model_validate(
        {"driver": "pms5003", "model": model, "port": port, "interval_s": 300, "duty": {}}
    )


def test_two_pms5003s_on_one_pi_count_their_own_hours(tmp_path: Path) -> None:
    path = tmp_path / "laser-hours.json"
    hours = LaserHours(path)
    uart, usb = duty_cycle(_pms("/dev/ttyAMA0"), hours), duty_cycle(_pms("/dev/ttyUSB0"), hours)
    assert uart is not None and usb is not None
    uart.woke(0.0)
    usb.woke(0.0)
    usb.slept(1 * H)
    uart.slept(3 * H)
    assert (uart.running_hours(5 * H), usb.running_hours(5 * H)) == pytest.approx((3.0, 1.0))
    assert json.loads(path.read_text()) == {
        "pms5003@/dev/ttyAMA0": 3.0,
        "pms5003@/dev/ttyUSB0": 1.0,
    }
    again = LaserHours(path)
    assert again.hours("pms5003@/dev/ttyUSB0", 0.0) == pytest.approx(1.0)


def test_a_per_model_file_is_taken_over_without_losing_hours(tmp_path: Path) -> None:
    path = tmp_path / "laser-hours.json"
    path.write_text(json.dumps({"pms5003": 120.5, "sds011": 40.0}))  # before per-sensor keys
    hours = LaserHours(path)
    first = duty_cycle(_pms("/dev/ttyAMA0"), hours)
    second = duty_cycle(_pms("/dev/ttyUSB0"), hours)
    sds = duty_cycle(Sds011Config(driver="sds011", port="/dev/ttyUSB1"), hours)
    assert first is not None and second is not None and sds is not None
    # The first configured PMS5003 takes the model's count; the second starts from 0 (the
    # count they shared cannot be split); the SDS011 keeps its own.
    assert first.running_hours(0.0) == 120.5 and second.running_hours(0.0) == 0.0
    assert sds.running_hours(0.0) == 40.0
    # Not saved yet: a crash now leaves the old file, which the next start takes over again.
    assert json.loads(path.read_text()) == {"pms5003": 120.5, "sds011": 40.0}
    first.woke(0.0)
    first.slept(0.5 * H)
    saved = json.loads(path.read_text())
    assert saved == {
        "pms5003@/dev/ttyAMA0": 121.0,
        "sds011@/dev/ttyUSB1": 40.0,
    }
    assert sum(saved.values()) == 120.5 + 40.0 + 0.5  # not an hour lost, none counted twice


def test_a_sensor_with_its_own_count_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "laser-hours.json"
    path.write_text(json.dumps({"pms5003@/dev/ttyAMA0": 7.0, "pms5003": 99.0}))
    cycle = duty_cycle(_pms("/dev/ttyAMA0"), LaserHours(path))
    assert cycle is not None and cycle.running_hours(0.0) == 7.0


def test_each_plantower_models_expected_life_or_unknown() -> None:
    # PMSA003 data manual V2.5: MTTF >= 3 years; no source read gives the PMS7003's.
    assert LASER_LIFE_H["pmsa003"] == LASER_LIFE_H["pms5003"] == 3 * 8760.0
    assert "pms7003" not in LASER_LIFE_H
    seen = {
        model: SensorState(model, laser_hours=10.0).as_json()["laser_life_h"]
        for model in ("pmsa003", "pms7003")
    }
    assert seen == {"pmsa003": 26280.0, "pms7003": None}


def _sds011_run(path: Path, port: str, device_id: int, monkeypatch: pytest.MonkeyPatch) -> float:
    """The agent duty-cycles an SDS011 (device id `device_id`) configured on `port`, with its
    hours in `path`, for 450 s (four readings of 30 s awake); its hours as reported."""
    from sensorpipe.edge.drivers.sds011 import Sds011
    from sensorpipe.firmware_sim.pms5003 import Pms5003Device
    from sensorpipe.firmware_sim.sds011 import Sds011Device
    from tests.test_pms5003 import FakeClock, LoopPort
    from tests.test_pms_duty import _run

    clock = FakeClock()
    device = Sds011Device(read_pm=lambda: (8.0, 12.0), device_id=device_id)
    config = Sds011Config.model_validate(
        {"driver": "sds011", "port": port, "interval_s": 120, "duty": {"wake_s": 30}}
    )
    duty = duty_cycle(config, LaserHours(path))
    assert duty is not None
    agent = _run(
        clock,
        Pms5003Device(),  # not read
        duty,
        interval_s=120.0,
        seconds=450.0,
        monkeypatch=monkeypatch,
        driver=lambda: Sds011(LoopPort(device, clock)),  # type: ignore[arg-type]
    )
    (health,) = agent.sensor_health()
    assert health.laser_hours is not None
    return health.laser_hours


def test_an_sds011s_hours_follow_its_device_id_not_its_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "laser-hours.json"
    path.write_text(json.dumps({"sds011@/dev/ttyUSB0": 100.0}))  # counted by port before
    run = 4 * 30 / 3600  # four wakes of 30 s
    # The sensor says its id (A1 60 in every frame): it takes over its port's count.
    assert _sds011_run(path, "/dev/ttyUSB0", 0xA160, monkeypatch) == pytest.approx(
        100 + run, abs=1e-3
    )
    assert json.loads(path.read_text()) == pytest.approx({"sds011#A160": 100 + run}, abs=1e-3)
    # Another SDS011 swapped in on that port starts from 0; the first keeps its count.
    assert _sds011_run(path, "/dev/ttyUSB0", 0x0B0B, monkeypatch) == pytest.approx(run, abs=1e-3)
    # The first, moved to another adapter, goes on from its own count.
    moved = _sds011_run(path, "/dev/ttyUSB1", 0xA160, monkeypatch)
    assert moved == pytest.approx(100 + 2 * run, abs=1e-3)
    assert json.loads(path.read_text()) == pytest.approx(
        {"sds011#A160": 100 + 2 * run, "sds011#0B0B": run}, abs=1e-3
    )


def test_the_sds011_driver_reads_its_device_id_from_its_frames() -> None:
    from sensorpipe.edge.drivers.sds011 import Sds011
    from sensorpipe.firmware_sim.sds011 import Sds011Device
    from tests.test_pms5003 import FakeClock, LoopPort

    clock = FakeClock()
    driver = Sds011(LoopPort(Sds011Device(device_id=0x1F2E), clock))  # type: ignore[arg-type]
    assert driver.serial_number == "1F2E"  # from the replies to its settings at open
    driver.read()
    assert driver.serial_number == "1F2E"
