"""`edge check`'s sensor lines: each way a sensor fails is named, with what to do about it.
Real drivers against the simulators (SDS011 on a pty, BME280 on the simulated I2C bus)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorpipe.edge.check import FAIL, OK, Probes, check_camera, check_sensor
from sensorpipe.edge.config import EdgeConfig, load_edge_config
from sensorpipe.edge.drivers.bme280 import I2CBus
from sensorpipe.edge.drivers.registry import Bme280Config, Sds011Config
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.resources import EXAMPLE_CONFIG_DIR


def _i2c(error: int | None = None, address: int = 0x76) -> Probes:
    def factory(bus_number: int) -> I2CBus:
        if error is not None:
            raise OSError(error, os.strerror(error), f"/dev/i2c-{bus_number}")
        bus = SimulatedI2CBus(bus_number)
        bus.attach(address, Bme280Device(Street(0).climate_now))
        return bus

    return Probes(i2c_bus_factory=factory)


BME = Bme280Config(driver="bme280", bus=1)


def test_a_bme280_that_answers_shows_its_values() -> None:
    check, ok = check_sensor(BME, _i2c())
    assert ok and check.status == OK
    assert check.detail.startswith("/dev/i2c-1 at 0x76: temperature ")


def test_i2c_permission_denied_names_the_group_to_join() -> None:
    check, ok = check_sensor(BME, _i2c(errno.EACCES))
    assert not ok and check.status == FAIL
    assert "permission denied" in check.detail and "`i2c` group" in check.detail


def test_no_i2c_bus_says_how_to_enable_it() -> None:
    check, _ = check_sensor(BME, _i2c(errno.ENOENT))
    assert "no such I2C bus" in check.detail and "raspi-config" in check.detail


def test_a_bme280_at_the_other_address_is_pointed_to_i2cdetect() -> None:
    check, _ = check_sensor(BME, _i2c(address=0x77))
    assert check.status == FAIL and "i2cdetect -y 1" in check.detail


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A serial port with nothing on the other end: a sensor without power."""
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_an_sds011_that_does_not_answer(silent_port: str) -> None:
    check, ok = check_sensor(
        Sds011Config(driver="sds011", port=silent_port, timeout_s=0.3), Probes()
    )
    assert not ok and check.detail.startswith(f"{silent_port}: timeout: no answer")
    assert "wiring" in check.detail


def test_an_sds011_whose_frames_fail_their_checksum() -> None:
    # Every data frame is bad; with this seed the first is whole but its checksum is wrong.
    device = Sds011Device(bad_frame_rate=1.0, seed=4)
    with Sds011Simulator(device) as sim:
        check, ok = check_sensor(
            Sds011Config(driver="sds011", port=sim.port, timeout_s=1.0), Probes()
        )
    assert not ok and "bad checksum" in check.detail


def test_the_camera_check_loads_the_model_and_takes_one_frame(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    for i in range(3):
        writer.write(np.full((240, 320, 3), 40 * i, np.uint8))
    writer.release()

    def config(source: str) -> EdgeConfig:
        text = (EXAMPLE_CONFIG_DIR / "edge-camera.example.toml").read_text()
        text = text.replace('kind = "picamera2"', f'kind = "video"\npath = "{source}"')
        (tmp_path / "edge.toml").write_text(text)
        return load_edge_config(tmp_path / "edge.toml")

    check = check_camera(config("clip.avi"), tmp_path)
    assert check.status == OK and check.detail == "one frame 320x240; the model loads"
    (tmp_path / "empty.avi").write_bytes(b"")  # a file no frame comes from
    broken = check_camera(config("empty.avi"), tmp_path)
    assert broken.status == FAIL and "empty.avi" in broken.detail
