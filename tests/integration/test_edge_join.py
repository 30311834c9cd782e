"""Issue 25, point 3: a Pi joins from the code `devices add` printed, with a key made on the Pi.

On a real local stack (Mosquitto, the ingest, influxd): the key is enrolled through the broker
and the ingest, the device's messages are stored under it, a second key for the same device is
refused (and named) until an operator resets it, and a wrong password in a code is one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sensorpipe.gateway.devices import DeviceCredentials
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.enrollment import decode_join_code
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice, air_message

pytestmark = pytest.mark.integration


def sensorpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensorpipe", *args], capture_output=True, text=True, timeout=120
    )


def join(code: str, root: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    code_file = tmp / f"code-{root.name}"
    code_file.write_text(code)
    return sensorpipe("edge", "join", "--root", str(root), "--code-file", str(code_file))


def device_with_key_of(root: Path, port: int) -> TestDevice:
    """A device that signs with the key `edge join` wrote under `root`."""
    edge = tomllib.loads((root / "etc" / "sensorpipe" / "edge.toml").read_text())
    creds = DeviceCredentials(
        edge["device_id"], edge["mqtt"]["username"], edge["mqtt"]["password"],
        edge["private_key"], "",
    )  # fmt: skip
    return TestDevice(creds, port)


def stored_seqs(influx: InfluxClient, device: str) -> list[int]:
    rows = influx.query(f"SELECT seq FROM link WHERE device_id = '{device}'")
    return sorted(int(v[1]) for r in rows for v in r["values"])


def set_aside(directory: Path) -> int:
    """Messages the ingest set aside because their signature did not verify."""
    listed = sensorpipe("ingest", "rejects", "--dir", str(directory), "--json")
    return int(json.loads(listed.stdout)["counts"].get("bad_signature", 0))


def key_of(directory: Path, device: str) -> dict[str, object]:
    listed = sensorpipe("devices", "list", "--dir", str(directory), "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [d for d in json.loads(listed.stdout) if d["device_id"] == device]
    key = entry["key"]
    assert isinstance(key, dict)
    return key


def test_a_pi_joins_with_its_own_key_and_a_second_key_is_refused_until_reset(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    port = stack.require_info().broker_port
    added = sensorpipe("devices", "add", "pi-join", "--dir", str(stack.directory), "--json")
    assert added.returncode == 0, added.stderr
    out = json.loads(added.stdout)
    assert "private_key" not in out and "public_key" not in out  # made on the Pi, not here
    install, join_command, check = out["pi_commands"]
    assert "pip install" in install and join_command.endswith("sensorpipe edge join")
    assert "edge check" in check and "systemctl enable --now sensorpipe-edge" in check
    code = out["join_code"]
    assert decode_join_code(code).port == port
    assert key_of(stack.directory, "pi-join") == {"state": "awaiting join", "fingerprint": None}

    first = join(code, tmp_path / "pi-a", tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "(made on this device) enrolled with the server" in first.stdout
    # Under --root systemd is not told: the next steps are to check it and run it by hand.
    config = tmp_path / "pi-a" / "etc" / "sensorpipe" / "edge.toml"
    assert f"edge run --config {config}" in first.stdout and "systemctl" not in first.stdout
    fp = first.stdout.split(" key ", 1)[1].split()[0]
    # The Pi's own unit: as systemd would load it, watched and restarted, as the agent's user.
    unit = tmp_path / "pi-a" / "etc" / "systemd" / "system" / "sensorpipe-edge.service"
    verify = subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    for line in (
        "Type=notify",
        "WatchdogSec=120",
        "Restart=always",
        "After=time-sync.target network-online.target",
        "User=sensorpipe",
        "SupplementaryGroups=dialout i2c video",
    ):
        assert line in unit.read_text().splitlines(), line
    key = key_of(stack.directory, "pi-join")
    assert key["state"] == "enrolled" and key["fingerprint"] == fp

    # Its messages are stored under the enrolled key.
    a = device_with_key_of(tmp_path / "pi-a", port)
    a.send(air_message("pi-join", 1))
    wait_for(lambda: stored_seqs(influx, "pi-join") == [1], what="pi-a's message stored")

    # Joined again from the same Pi: the same key, accepted again.
    again = join(code, tmp_path / "pi-a", tmp_path)
    assert again.returncode == 0 and "(kept from the earlier join)" in again.stdout, again.stderr

    # Someone else with the code (another root: another key) is refused, in one line.
    second = join(code, tmp_path / "pi-b", tmp_path)
    assert second.returncode == 1
    (line,) = second.stderr.strip().splitlines()
    assert "the server refused the key: key_taken: pi-join enrolled another key" in line, line
    assert f"({fp})" in line and "sensorpipe devices reset-key pi-join" in line
    assert not (tmp_path / "pi-b" / "etc").exists()  # refused: nothing written on that Pi

    # The operator resets the key: pi-b joins, and from then on only pi-b's messages count.
    reset = sensorpipe("devices", "reset-key", "pi-join", "--dir", str(stack.directory))
    assert reset.returncode == 0, reset.stderr
    assert key_of(stack.directory, "pi-join")["state"] == "awaiting join"
    rejoined = join(code, tmp_path / "pi-b", tmp_path)
    assert rejoined.returncode == 0, rejoined.stdout + rejoined.stderr
    b = device_with_key_of(tmp_path / "pi-b", port)
    b.send(air_message("pi-join", 3))
    wait_for(lambda: stored_seqs(influx, "pi-join") == [1, 3], what="pi-b's message stored")
    a.send(air_message("pi-join", 4))
    b.close()
    a.close()
    wait_for(lambda: set_aside(stack.directory) == 1, what="pi-a's message set aside")
    assert stored_seqs(influx, "pi-join") == [1, 3]


def test_a_code_with_a_wrong_password_is_one_line_and_enrols_nothing(
    stack: LocalStack, tmp_path: Path
) -> None:
    added = sensorpipe("devices", "add", "pi-pw", "--dir", str(stack.directory), "--json")
    code = decode_join_code(json.loads(added.stdout)["join_code"])
    wrong = code.model_copy(update={"password": "not-the-password"}).encode()
    joined = join(wrong, tmp_path / "pi", tmp_path)
    assert joined.returncode == 1
    (line,) = joined.stderr.strip().splitlines()
    assert line.startswith("Error: pi-pw: broker 127.0.0.1:") and "login refused" in line, line
    assert key_of(stack.directory, "pi-pw")["state"] == "awaiting join"


def test_a_code_pasted_at_the_terminal_wrapped_over_lines_joins(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The code is asked for at a terminal (not echoed: it holds a password); pasted as a
    terminal wraps it, over several lines, it is read whole."""
    added = sensorpipe("devices", "add", "pi-tty", "--dir", str(stack.directory), "--json")
    code = json.loads(added.stdout)["join_code"]
    argv = [sys.executable, "-m", "sensorpipe", "edge", "join", "--root", str(tmp_path / "pi")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: sensorpipe with the pty as its terminal
        os.execv(sys.executable, argv)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        while marker not in output:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, output
            output += os.read(fd, 4096)

    try:
        read_until(b"paste the join code")
        for i in range(0, len(code), 60):
            os.write(fd, code[i : i + 60].encode() + b"\n")
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            read_until(b"enrolled with the server")
            read_until(b"edge check")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    assert code[:30].encode() not in output  # not echoed
    assert key_of(stack.directory, "pi-tty")["state"] == "enrolled"
