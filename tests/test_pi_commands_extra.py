"""The install command `devices add` prints for the Pi installs the `sensirion` extra when the
device declares a Sensirion sensor, quoted so the shell passes `[sensirion]` to pip as it is."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe import __version__
from sensorpipe.cli.main import main

WHEEL = f"./sensorpipe-{__version__}-py3-none-any.whl"


def _install_command(directory: Path, *sensors: str) -> str:
    args = ["devices", "add", f"pi-{len(sensors)}", "--dir", str(directory), "--json"]
    for sensor in sensors:
        args += ["--sensor", sensor]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    install = json.loads(result.stdout)["pi_commands"][0]
    assert isinstance(install, str)
    return install


@pytest.mark.parametrize("sensor", ["sps30", "scd30", "scd4x"])
def test_a_sensirion_sensor_gets_the_extra(tmp_path: Path, sensor: str) -> None:
    install = _install_command(tmp_path, "bme280", sensor)
    pip = shlex.split(install.split("&& sudo /opt/sensorpipe/bin/pip install", 1)[1])
    assert pip == [f"{WHEEL}[sensirion]"]  # one argument, as the shell hands it to pip


def test_other_sensors_install_the_wheel_alone(tmp_path: Path) -> None:
    install = _install_command(tmp_path, "sds011", "soil_probe.bed2")
    assert install.endswith(f"pip install {WHEEL}") and "sensirion" not in install
