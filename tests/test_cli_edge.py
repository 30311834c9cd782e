"""`sensorpipe edge run` explains what is missing instead of failing deep inside."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.edge.entries import read_body
from sensorpipe.edge.outbox import SqliteOutbox
from sensorpipe.resources import EXAMPLE_CONFIG_DIR
from tests.helpers import wait_for
from tests.test_brokerlink import SilentListener

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _edge_config(
    tmp_path: Path, *, host: str, port: int, example: str = "edge.example.toml"
) -> Path:
    """The example config, pointed at `host:port` without TLS, its outbox in tmp_path."""
    text = (CONFIG / example).read_text()
    text = text.replace('host = "gateway.example.org"', f'host = "{host}"')
    text = text.replace("port = 8883", f"port = {port}").replace("tls = true", "tls = false")
    text = text.replace('"/var/lib/sensorpipe/outbox.sqlite"', f'"{tmp_path / "outbox.sqlite"}"')
    text = text.replace("bus = 1", "bus = 99")  # no such I2C bus: the agent runs all the same
    text = text.replace("/dev/ttyUSB0", str(tmp_path / "no-such-serial-port"))
    text = text.replace("/dev/ttyAMA0", str(tmp_path / "no-such-uart"))
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


class RunningAgent:
    """`sensorpipe edge run` in its own process, its log lines collected in `lines`."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sensorpipe", "edge", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(self.process.stderr or []), daemon=True
        )
        self._reader.start()

    def wait_until_said(self, text: str, *, timeout_s: float, what: str) -> None:
        """Wait until a log line holds `text` (fail the test, naming `what`, after `timeout_s`)."""
        wait_for(lambda: any(text in line for line in self.lines), timeout_s=timeout_s, what=what)

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.process.returncode


@pytest.mark.parametrize(
    ("host", "reason"),
    [("127.0.0.1", "connection refused"), ("no-such-host.invalid", "does not resolve")],
)
def test_an_unreachable_broker_is_reported_within_seconds_and_not_at_every_retry(
    tmp_path: Path, host: str, reason: str
) -> None:
    port = _free_port()  # nothing listens there
    config = _edge_config(tmp_path, host=host, port=port)
    agent = RunningAgent(config)
    lines = agent.lines
    try:
        agent.wait_until_said(
            "cannot connect to the broker",
            timeout_s=20,
            what="the agent to say it cannot reach the broker (default log level)",
        )
        time.sleep(7)  # paho tries again after 1, 2 and 4 s
    finally:
        status = agent.stop()
    assert status == 0  # SIGTERM is a clean stop
    said = [line for line in lines if "cannot connect to the broker" in line]
    assert len(said) == 1, said  # once, not at every attempt
    assert "WARNING" in said[0] and f"{host}:{port}" in said[0] and reason in said[0]
    # The sensors that cannot be opened are said too, and did not stop the agent; none can
    # be, and the lines say so.
    bme280 = [line for line in lines if "sensor bme280: not available" in line]
    assert bme280 and "no sensor can be read, so nothing is measured" in bme280[0]


def test_a_port_that_accepts_but_never_answers_is_named_within_seconds_then_retried_quietly(
    tmp_path: Path,
) -> None:
    """Not an MQTT broker (an HTTP port, a listener that never speaks): paho alone would wait
    the keepalive, close and try again without a word."""
    silent = SilentListener()
    config = _edge_config(tmp_path, host="127.0.0.1", port=silent.port)
    text = config.read_text().replace("tls = false", "tls = false\nconnect_timeout_s = 2")
    config.write_text(text)
    agent = RunningAgent(config)
    lines = agent.lines
    try:
        agent.wait_until_said(
            "no MQTT answer",
            timeout_s=30,
            what="the agent to say the port does not answer (default log level)",
        )
        wait_for(lambda: len(silent.accepted) >= 3, timeout_s=30, what="two more attempts")
    finally:
        status = agent.stop()
        silent.close()
    assert status == 0
    said = [line for line in lines if "cannot connect to the broker" in line]
    assert len(said) == 1, said  # once, not at every attempt
    assert "WARNING" in said[0]
    assert (
        f"no MQTT answer from 127.0.0.1:{silent.port} within 2 s: is it an MQTT broker" in said[0]
    )


def _video(path: Path, frames: int) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), 40 + i, dtype=np.uint8)
        writer.write(frame)
    writer.release()


def test_a_video_source_that_ends_ends_the_agent_with_a_message_after_its_counts(
    tmp_path: Path,
) -> None:
    video = tmp_path / "street.avi"
    _video(video, 20)
    config = _edge_config(
        tmp_path, host="127.0.0.1", port=_free_port(), example="edge-camera.example.toml"
    )
    text = config.read_text().replace('kind = "picamera2"', f'kind = "video"\npath = "{video}"')
    config.write_text(text.replace("interval_s = 60", "interval_s = 10"))
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "kruispunt-01: the frame source ended after 20 frames" in result.output
    # 4 s of video: one interval, or two when a 10 s boundary falls within.
    assert re.search(r"count messages queued: [12],", result.output)
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite")
    kinds = [read_body(e.body)["kind"] for e in outbox.pending()]
    outbox.close()
    assert "count" in kinds  # the last interval's counts wait for the broker


def test_relative_paths_are_relative_to_the_config_file_whichever_directory_it_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox used to be created in the current directory, and the video not found there.
    folder = tmp_path / "etc"
    folder.mkdir()
    _video(folder / "rel.avi", 10)
    config = _edge_config(
        folder, host="127.0.0.1", port=_free_port(), example="edge-camera.example.toml"
    )
    text = config.read_text().replace(f'"{folder / "outbox.sqlite"}"', '"rel-outbox.sqlite"')
    config.write_text(text.replace('kind = "picamera2"', 'kind = "video"\npath = "rel.avi"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["edge", "run", "--config", "../etc/edge.toml"])
    assert result.exit_code == 0, result.output
    assert "the frame source ended after 10 frames" in result.output
    assert (folder / "rel-outbox.sqlite").is_file()
    assert list(elsewhere.iterdir()) == []


def _one_line_failure(config: Path) -> str:
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(config)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {config}: ")
    return line


def test_a_ca_file_that_is_not_there_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = _edge_config(tmp_path, host="127.0.0.1", port=_free_port())
    text = config.read_text().replace("tls = false", 'tls = true\nca_file = "nope.pem"')
    config.write_text(text)
    line = _one_line_failure(config)
    number = text.splitlines().index('ca_file = "nope.pem"') + 1
    assert f"mqtt.ca_file (line {number}): {tmp_path / 'nope.pem'} does not exist" in line


def test_an_outbox_or_video_that_cannot_be_opened_names_the_key_its_line_and_the_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    config = _edge_config(tmp_path, host="127.0.0.1", port=_free_port())
    text = config.read_text()
    config.write_text(text.replace(f'"{tmp_path / "outbox.sqlite"}"', '"a-file/outbox.sqlite"'))
    line = _one_line_failure(config)
    number = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("outbox_path"))
    assert f"outbox_path (line {number}): cannot open {tmp_path / 'a-file/outbox.sqlite'}" in line
    (tmp_path / "street.avi").write_text("not a video")
    camera = _edge_config(
        tmp_path, host="127.0.0.1", port=_free_port(), example="edge-camera.example.toml"
    )
    text = camera.read_text().replace('kind = "picamera2"', 'kind = "video"\npath = "street.avi"')
    camera.write_text(text)
    line = _one_line_failure(camera)
    source_line = text.splitlines().index("[counting.source]") + 1
    assert f"counting.source (line {source_line}): cannot open video {tmp_path}/street.avi" in line
