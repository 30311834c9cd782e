"""The API finds the calibration book `sensorpipe calibrate` writes: the serve.toml that `stack
up` writes and the one `server setup` writes name it (`calibration_path`)."""

from __future__ import annotations

from pathlib import Path

from sensorpipe.api.config import load_serve_config
from sensorpipe.cli.calibrate import book_path
from sensorpipe.stack.local import LocalStack
from sensorpipe.stack.server import Setup, _serve_config


def test_stack_up_names_the_book_that_calibrate_writes(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "st")
    config = load_serve_config(stack._write_serve_config(1883, "http://127.0.0.1:8086", 8080))
    assert config.calibration_path == str(stack.calibration_path) == str(book_path(tmp_path / "st"))


def test_server_setup_names_the_book_in_the_state_directory(tmp_path: Path) -> None:
    setup = Setup(tmp_path, "server.example.org")
    config = _serve_config(setup, tmp_path / "cert.pem", tmp_path / "key.pem")
    assert config["calibration_path"] == str(setup.state / "calibrations.sqlite")


def test_a_relative_calibration_path_is_read_from_the_configs_folder(tmp_path: Path) -> None:
    (tmp_path / "serve.toml").write_text('calibration_path = "state/calibrations.sqlite"\n')
    config = load_serve_config(tmp_path / "serve.toml")
    assert config.calibration_path == str(tmp_path / "state" / "calibrations.sqlite")
