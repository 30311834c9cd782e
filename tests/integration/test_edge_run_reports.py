"""What `sensorpipe edge run` says without -v, and what it tells systemd: the real agent
process, an SDS011 simulated on a pty, the real broker, ingest and InfluxDB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for


def test_edge_run_says_how_it_starts_and_notifies_systemd(
    stack: LocalStack, tmp_path: Path
) -> None:
    (creds,) = stack.add_devices([("talk-01", {"site": "t"})])
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(30)
    log = tmp_path / "agent.log"
    with Sds011Simulator(Sds011Device(read_pm=Street(1).pm_now, bad_frame_rate=0.0)) as sds:
        config = tmp_path / "edge.toml"
        config.write_text(
            f"""\
device_id = "{creds.device_id}"
private_key = "{creds.private_key}"
outbox_path = "outbox.sqlite"

[mqtt]
port = {stack.require_info().broker_port}
username = "{creds.username}"
password = "{creds.password}"

[[sensors]]
driver = "sds011"
port = "{sds.port}"
timeout_s = 1.0
interval_s = 1.0
"""
        )
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
        with log.open("w") as out:
            agent = subprocess.Popen(
                [sys.executable, "-m", "sensorpipe", "edge", "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            ready = systemd.recv(4096).decode().splitlines()
            assert "READY=1" in ready
            assert "STATUS=queued 2 readings of sds011" in ready
            received = [systemd.recv(4096).decode() for _ in range(3)]
            assert any("WATCHDOG=1" in r for r in received)
            wait_for(
                lambda: "first confirmation from the ingest" in log.read_text(),
                timeout_s=30,
                what="the first confirmation in the agent's output",
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
            systemd.close()
    text = log.read_text()
    assert "first reading queued: sds011 (pm2_5 " in text
    assert "Traceback" not in text
    assert agent.returncode == 0
