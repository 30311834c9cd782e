"""`edge join --port`: a declared sensor wired to another serial port, and an SPS30 on its UART
(`driver = "sps30"` with `port`, SEL left open) in place of its I2C section. The configuration
written loads, and the real UART driver reads the simulated sensor on the port it names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sensorpipe.edge.config import load_edge_config
from sensorpipe.edge.drivers.registry import open_driver
from sensorpipe.edge.drivers.sensirion import Sps30Config
from sensorpipe.edge.join import JoinError, Layout, join
from sensorpipe.firmware_sim.sps30_uart import Sps30ShdlcDevice, Sps30UartSimulator
from tests.test_edge_join_files import _answer, _code


def _fast() -> float:
    return time.monotonic() * 20.0


def test_an_sps30_given_a_port_is_written_on_its_uart_and_read_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    device = Sps30ShdlcDevice(lambda: (12.0, 20.0), now=_fast)
    device.warmup_s = 0.0
    with Sps30UartSimulator(device) as sim:
        code = _code(sensors=["sps30", "bme280"], tls=False, ca_pem=None)
        join(code, Layout(tmp_path), ports={"sps30": sim.port})
        path = tmp_path / "etc" / "sensorpipe" / "edge.toml"
        text = path.read_text()
        assert f'driver = "sps30"\nport = "{sim.port}"\n' in text
        config = load_edge_config(path)
        sps30 = next(s for s in config.sensors if isinstance(s, Sps30Config))
        assert sps30.port == sim.port and sps30.bus is None
        bme280 = next(s for s in config.sensors if s.driver == "bme280")
        assert bme280.bus == 1  # the others keep their usual wiring
        driver = open_driver(sps30)
        try:
            reading = driver.read()
        finally:
            driver.close()
    assert reading["pm2_5"] == 12.0 and reading["pm10"] == 20.0
    assert device.frames_received  # it came over the pty, not I2C


def test_a_uart_sensor_gets_the_port_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, None)
    code = _code(sensors=["sds011", "pms5003"], tls=False, ca_pem=None)
    join(code, Layout(tmp_path), ports={"sds011": "/dev/ttyUSB1"})
    config = load_edge_config(tmp_path / "etc" / "sensorpipe" / "edge.toml")
    ports = {s.driver: getattr(s, "port", None) for s in config.sensors}
    assert ports == {"sds011": "/dev/ttyUSB1", "pms5003": "/dev/ttyAMA0"}


@pytest.mark.parametrize(
    ("ports", "said"),
    [
        ({"sps30": "/dev/serial0"}, "declares no sensor sps30 for this device"),
        ({"bme280": "/dev/ttyUSB0"}, "bme280 has no serial port"),
        ({"sds011": "ttyUSB0"}, "name the serial device"),
    ],
)
def test_a_port_that_cannot_apply_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ports: dict[str, str], said: str
) -> None:
    sent = _answer(monkeypatch, None)
    with pytest.raises(JoinError, match=said):
        join(_code(tls=False, ca_pem=None), Layout(tmp_path), ports=ports)
    assert sent == [] and list(tmp_path.rglob("*")) == []
