"""`sensorpipe ingest run` never runs silently broken: a broker it cannot reach is said within
seconds, once, with the reason; a configuration it cannot run with stops it with one line.

The ingest runs as a real process against a closed port, a port that never answers and a fake
InfluxDB; what it says is read from its log (stderr).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import Registry, save_registry
from tests.helpers import wait_for
from tests.test_brokerlink import SilentListener


class FakeInfluxHandler(BaseHTTPRequestHandler):
    """Answers like an empty InfluxDB 1.x and counts the writes."""

    writes: list[bytes]

    def do_GET(self) -> None:
        self._answer(204, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/write"):
            self.writes.append(body)
            self._answer(204, b"")
        else:
            self._answer(200, b'{"results":[{"statement_id":0}]}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def fake_influx() -> Iterator[tuple[str, list[bytes]]]:
    """A fake InfluxDB on a free port: its URL, and the bodies written to it."""
    writes: list[bytes] = []
    handler = type("Handler", (FakeInfluxHandler,), {"writes": writes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", writes
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def influx() -> Iterator[tuple[str, list[bytes]]]:
    with fake_influx() as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_ingest_config(tmp_path: Path, *, port: int, influx_url: str, broker: str = "") -> Path:
    save_registry(Registry(), tmp_path / "registry.toml")
    path = tmp_path / "ingest.toml"
    path.write_text(
        'registry_path = "registry.toml"\n'
        'deadletter_path = "dl.sqlite"\n'
        'stats_path = "stats.json"\n'
        f'[broker]\nport = {port}\npassword = "x"\n{broker}'
        f'[influx]\nurl = "{influx_url}"\n'
    )
    return path


class Ingest:
    """`sensorpipe [options] ingest run` in a process of its own, its log lines collected."""

    def __init__(self, config: Path, *options: str) -> None:
        self.stats_path = config.parent / "stats.json"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensorpipe",
                *options,
                "ingest",
                "run",
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def said(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


def test_a_closed_broker_port_is_said_once_with_its_reason_while_it_keeps_trying(
    tmp_path: Path, influx: tuple[str, list[bytes]]
) -> None:
    url, writes = influx
    port = _closed_port()
    ingest = Ingest(write_ingest_config(tmp_path, port=port, influx_url=url))
    try:
        # At least three attempts (paho waits 1, 2, 4 s between them), and InfluxDB written to.
        wait_for(
            lambda: ingest.stats().get("connect_failures", 0) >= 3,
            timeout_s=90,
            what="three failed attempts to connect",
        )
        wait_for(lambda: writes, timeout_s=30, what="the ingest's status point in InfluxDB")
    finally:
        code = ingest.stop()
    assert code == 0, ingest.lines  # SIGTERM is a clean stop
    said = ingest.said("cannot connect to the broker")
    assert len(said) == 1, ingest.lines  # once, not at every attempt
    assert " WARNING " in said[0]
    assert f"cannot connect to the broker at 127.0.0.1:{port}: connection refused" in said[0]
    # httpx's line per request is quiet at the ingest's INFO level.
    assert ingest.said("HTTP Request") == [], ingest.lines


def test_every_influxdb_request_is_logged_with_vv(
    tmp_path: Path, influx: tuple[str, list[bytes]]
) -> None:
    url, writes = influx
    ingest = Ingest(write_ingest_config(tmp_path, port=_closed_port(), influx_url=url), "-vv")
    try:
        wait_for(lambda: writes, timeout_s=60, what="the ingest's status point in InfluxDB")
        wait_for(lambda: ingest.said("HTTP Request: POST"), timeout_s=30, what="httpx's line")
    finally:
        ingest.stop()


def test_a_port_that_never_answers_is_said_once_and_tried_again(
    tmp_path: Path, influx: tuple[str, list[bytes]]
) -> None:
    url, _writes = influx
    silent = SilentListener()
    config = write_ingest_config(
        tmp_path, port=silent.port, influx_url=url, broker="connect_timeout_s = 1\n"
    )
    ingest = Ingest(config)
    try:
        wait_for(
            lambda: ingest.stats().get("connect_failures", 0) >= 3 and len(silent.accepted) >= 3,
            timeout_s=120,
            what="three attempts given up on",
        )
    finally:
        code = ingest.stop()
        silent.close()
    assert code == 0, ingest.lines
    said = ingest.said("cannot connect to the broker")
    assert len(said) == 1, ingest.lines
    assert " WARNING " in said[0]
    assert f"no MQTT answer from 127.0.0.1:{silent.port} within 1 s" in said[0]


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ")
    return line


def _run_args(tmp_path: Path, broker: str = "", top: str = "") -> list[str]:
    config = write_ingest_config(
        tmp_path, port=_closed_port(), influx_url="http://127.0.0.1:9", broker=broker
    )
    config.write_text(top + config.read_text())
    return ["ingest", "run", "--config", str(config)]


def test_a_mistyped_registry_path_stops_it_naming_file_key_and_path(tmp_path: Path) -> None:
    args = _run_args(tmp_path)
    config = Path(args[-1])
    config.write_text(config.read_text().replace('"registry.toml"', '"registy.toml"'))
    line = _one_line_error(args)
    assert f"{config}: registry_path (line 1): {tmp_path / 'registy.toml'} does not exist" in line


def test_a_missing_ca_file_is_named_not_the_dead_letter_store(tmp_path: Path) -> None:
    line = _one_line_error(_run_args(tmp_path, broker='tls = true\nca_file = "ca.pem"\n'))
    assert f"broker.ca_file (line 8): {tmp_path / 'ca.pem'} does not exist" in line
    assert "dead-letter" not in line


def test_a_metrics_bind_that_is_no_address_is_said_as_such(tmp_path: Path) -> None:
    line = _one_line_error(
        _run_args(tmp_path, top='metrics_port = 0\nmetrics_bind = "999.1.1.1"\n')
    )
    assert "metrics_bind (line 2): '999.1.1.1' is not an IP address" in line
    assert "already running" not in line


def test_a_stats_path_in_a_missing_directory_stops_it_at_start(tmp_path: Path) -> None:
    args = _run_args(tmp_path)
    config = Path(args[-1])
    config.write_text(config.read_text().replace('"stats.json"', '"run/stats.json"'))
    line = _one_line_error(args)
    assert f"{config}: stats_path (line 3): the directory {tmp_path / 'run'} does not exist" in (
        line
    )
