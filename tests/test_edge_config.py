"""The edge configuration's paths: relative to the file, and the files it names checked at load
with one line naming the file, the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.edge.config import MqttConfig, load_edge_config
from sensorpipe.resources import EXAMPLE_CONFIG_DIR
from tests.helpers import one_line_config_error
from tests.test_config import _ca_pem

KEY = "MKlQRRKv0efglPgRHbPORe6w7I2H1wO0SJ/+KeAlSYk="

CAMERA = f"""device_id = "cam-1"
private_key = "{KEY}"
outbox_path = "rel-outbox.sqlite"

[mqtt]
username = "cam-1"
password = "p"
tls = true
ca_file = "certs/ca.pem"

[counting]
model = "models/detector.onnx"
classes = ["person"]

[counting.source]
kind = "video"
path = "rel.avi"
"""


def _camera_files(tmp_path: Path, text: str = CAMERA) -> Path:
    """`text` as edge.toml in its own folder, with the files it names beside it."""
    folder = tmp_path / "etc"
    (folder / "certs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "certs" / "ca.pem").write_bytes(_ca_pem())
    (folder / "models" / "detector.onnx").write_bytes(b"an ONNX model")
    (folder / "rel.avi").write_bytes(b"a video")
    path = folder / "edge.toml"
    path.write_text(text)
    return path


def _line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def _one_line_error(path: Path) -> str:
    return one_line_config_error(load_edge_config, path)


def test_every_path_is_relative_to_the_config_file_not_to_where_the_agent_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _camera_files(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_edge_config(Path("..") / "etc" / "edge.toml")
    folder = path.parent.resolve()
    assert config.outbox_path == str(folder / "rel-outbox.sqlite")
    assert config.mqtt.ca_file == str(folder / "certs" / "ca.pem")
    assert config.counting is not None
    assert config.counting.model == str(folder / "models" / "detector.onnx")
    assert config.counting.source.path == str(folder / "rel.avi")


def test_absolute_paths_and_the_installed_model_stay_as_they_are(tmp_path: Path) -> None:
    outbox = tmp_path / "var" / "outbox.sqlite"
    text = CAMERA.replace('"rel-outbox.sqlite"', f'"{outbox}"')
    text = text.replace('model = "models/detector.onnx"\nclasses = ["person"]\n', "")
    config = load_edge_config(_camera_files(tmp_path, text))
    assert config.outbox_path == str(outbox)
    assert config.counting is not None
    default = load_edge_config(EXAMPLE_CONFIG_DIR / "edge-camera.example.toml").counting
    assert default is not None and config.counting.model == default.model
    assert Path(config.counting.model).is_absolute()


def test_a_missing_ca_file_is_one_line_naming_the_key_its_line_and_the_resolved_path(
    tmp_path: Path,
) -> None:
    # It used to be a traceback from paho's tls_set when the agent started.
    text = CAMERA.replace('"certs/ca.pem"', '"nope.pem"')
    path = _camera_files(tmp_path, text)
    message = _one_line_error(path)
    line = _line_of(text, "ca_file")
    assert f"mqtt.ca_file (line {line}): {path.parent / 'nope.pem'} does not exist" in message
    (path.parent / "nope.pem").write_text("not a certificate\n")
    assert f"mqtt.ca_file (line {line}): " in _one_line_error(path)
    assert "holds no PEM certificate" in _one_line_error(path)
    # Without TLS the file is not read, so not checked.
    path.write_text(text.replace("tls = true", "tls = false"))
    assert load_edge_config(path).mqtt.ca_file == str(path.parent / "nope.pem")


def test_an_outbox_path_that_is_a_directory_is_named_as_one(tmp_path: Path) -> None:
    # It used to be "outbox_path: cannot open /tmp: unable to open database file".
    text = CAMERA.replace('"rel-outbox.sqlite"', '"spool"')
    path = _camera_files(tmp_path, text)
    (path.parent / "spool").mkdir()
    message = _one_line_error(path)
    spool = path.parent / "spool"
    assert f"outbox_path (line 3): {spool} is a directory: name a file in it, e.g. " in message
    assert str(spool / "outbox.sqlite") in message


@pytest.mark.parametrize(
    ("start", "key", "missing"),
    [
        ('path = "rel.avi"', "counting.source.path", "rel.avi"),
        ('model = "models/detector.onnx"', "counting.model", "models/detector.onnx"),
    ],
)
def test_a_video_or_model_that_is_not_there_is_named_with_its_key_and_resolved_path(
    tmp_path: Path, start: str, key: str, missing: str
) -> None:
    path = _camera_files(tmp_path)
    (path.parent / missing).unlink()
    message = _one_line_error(path)
    line = _line_of(CAMERA, start)
    assert f"{key} (line {line}): {path.parent / missing} does not exist" in message


def test_a_port_that_never_answers_is_given_up_on_within_seconds_by_default() -> None:
    config = MqttConfig(username="u", password="p")
    assert config.connect_timeout_s == 10.0


def test_an_air_only_host_needs_no_onnxruntime_and_a_counting_one_is_told_the_extra(
    tmp_path: Path,
) -> None:
    """onnxruntime is the `counting` extra (no wheel for 32-bit Raspberry Pi OS): with it
    missing, the agent for air sensors loads and starts its CLI, and a [counting] section says
    which extra to install, in one line."""
    import subprocess
    import sys

    from sensorpipe.resources import example_config

    air = example_config("edge").read_text()
    air = air.replace('"/var/lib/sensorpipe/outbox.sqlite"', '"o.sqlite"')
    (tmp_path / "air.toml").write_text(air)
    script = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None  # as on a host without the counting extra\n"
        "from sensorpipe.edge.config import load_edge_config\n"
        "import sensorpipe.edge.agent, sensorpipe.cli.main\n"
        "config = load_edge_config(sys.argv[1])\n"
        "print('loaded', [s.driver for s in config.sensors])\n"
        "from sensorpipe.edge.counting.detector import Detector\n"
        "from sensorpipe.edge.counting.errors import ModelError\n"
        "from sensorpipe.resources import MODELS\n"
        "try:\n"
        "    Detector(MODELS / 'street-detector.int8.onnx', ['person'])\n"
        "except ModelError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "air.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "loaded ['sds011', 'bme280', 'sht4x', 'soil_ads1115']" in run.stdout
    assert "counting needs onnxruntime, which is not installed: pip install " in run.stdout
    assert "'sensorpipe[counting]'" in run.stdout
