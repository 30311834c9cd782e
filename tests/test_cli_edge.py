"""`sensorpipe edge run` explains what is missing instead of failing deep inside."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.resources import EXAMPLE_CONFIG_DIR

CONFIG = EXAMPLE_CONFIG_DIR


def test_camera_without_opencv_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    text = (CONFIG / "edge-camera.example.toml").read_text()
    text = text.replace('kind = "picamera2"', 'kind = "v4l2"')
    path = tmp_path / "edge.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(path)])
    assert result.exit_code == 1
    assert "needs OpenCV" in result.output and "pip install" in result.output


def test_misspelt_config_key_stops_the_agent_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text((CONFIG / "edge.example.toml").read_text().replace("[mqtt]", "[mqqt]"))
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(path)])
    assert result.exit_code == 1
    assert "mqqt" in result.output and "did you mean 'mqtt'" in result.output


def test_a_private_key_that_is_no_key_is_a_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    text = (CONFIG / "edge.example.toml").read_text()
    key_line = next(line for line in text.splitlines() if line.startswith("private_key"))
    path.write_text(text.replace(key_line, 'private_key = "abc"'))
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    (line,) = result.output.strip().splitlines()
    assert str(path) in line and "private_key (line 4)" in line
    assert "sensorpipe devices add" in line  # what to do about it
