"""Issue 25: a Pi on a real network. The server is set up by `sensorpipe server setup` (its
units' ExecStart lines run as processes, Mosquitto from the written configuration, a real
influxd); the Pi is the real agent in a network namespace of its own, joined to the server by
a veth pair (10.77.x.1 the server, 10.77.x.2 the Pi), that reaches the server only through
the broker's TLS listener, checking the server's certificate against the CA its join code
carries: the Pi joins with `edge join` and the code `devices add` printed (its key made there).
One test: `edge check` is green over that network. A second: `edge run` delivers, and after the
broker and the ingest are killed and started again on the same address while the Pi keeps
reading, every message is stored once (both share one server and one joined Pi).

Where this machine cannot make a namespace (not root, no `ip`), the Pi runs beside the server
and reaches it through a second loopback address (127.0.0.2, the server's public host; the
broker's own listener stays on 127.0.0.1): a different topology, said in the test's output."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import ManagedProcess, free_ports
from tests.helpers import EDGE_CHECK_ALL_OK, wait_for
from tests.integration.setup_server import SetupServer

pytestmark = pytest.mark.integration

DEVICE = "pi-net-01"


@dataclass(frozen=True)
class Network:
    kind: str  # "namespace" or "fallback"
    server: str  # the server's address as the Pi reaches it
    prefix: tuple[str, ...]  # what runs a command on the Pi's side
    names: tuple[str, ...] = ()  # the namespace and the server's end of the veth pair

    def on_pi(self, argv: list[str]) -> list[str]:
        return [*self.prefix, *argv]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@contextlib.contextmanager
def pi_network() -> Iterator[Network]:
    """A namespace for the Pi joined to this host by a veth pair, removed afterwards whatever
    happens; the loopback fallback where namespaces cannot be made."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        yield Network("fallback", "127.0.0.2", ())
        return
    tag = secrets.token_hex(3)
    ns, host_end, pi_end = f"sp-pi-{tag}", f"sps{tag}", f"spp{tag}"
    used = _ip("-o", "-4", "addr").stdout
    subnet = next(f"10.77.{n}" for n in range(256) if f" 10.77.{n}." not in used)
    if _ip("netns", "add", ns).returncode != 0:
        yield Network("fallback", "127.0.0.2", ())
        return
    try:
        for args in (
            ("link", "add", host_end, "type", "veth", "peer", "name", pi_end),
            ("link", "set", pi_end, "netns", ns),
            ("addr", "add", f"{subnet}.1/24", "dev", host_end),
            ("link", "set", host_end, "up"),
            ("-n", ns, "addr", "add", f"{subnet}.2/24", "dev", pi_end),
            ("-n", ns, "link", "set", pi_end, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ):
            made = _ip(*args)
            assert made.returncode == 0, f"ip {' '.join(args)}: {made.stderr}"
        yield Network("namespace", f"{subnet}.1", ("ip", "netns", "exec", ns), (ns, host_end))
    finally:
        _ip("link", "del", host_end)  # takes the namespace's end with it
        _ip("netns", "del", ns)


def test_the_pis_namespace_is_removed_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError), pi_network() as net:
        if net.kind != "namespace":
            pytest.skip("no network namespaces here (not root, or no `ip`): nothing to remove")
        ns, host_end = net.names
        assert ns in _ip("netns", "list").stdout
        raise RuntimeError("the test failed")
    assert ns not in _ip("netns", "list").stdout
    assert _ip("link", "show", host_end).returncode != 0  # the veth pair is gone


def seqs(influx: InfluxClient) -> list[int]:
    try:
        series = influx.query(f"SELECT seq FROM link WHERE device_id = '{DEVICE}'")
    except Exception:
        return []
    return sorted(int(v[1]) for s in series for v in s["values"])


def outbox_rows(path: Path, *, sent: bool | None = None) -> int:
    """Entries waiting in the Pi's outbox: all, or those sent (to the broker, not yet
    confirmed by the ingest) or not sent yet."""
    where = "" if sent is None else f" WHERE sent_at IS {'NOT ' if sent else ''}NULL"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute(f"SELECT count(*) FROM outbox{where}").fetchone()[0])


@dataclass
class JoinedPi:
    """A server set up by the documented commands and a Pi joined to it over its own network,
    its agent configured for the simulated sensors; shared by this module's two tests."""

    net: Network
    server: SetupServer
    influx: InfluxClient
    pi: Path  # the Pi's root directory
    config: Path
    agent: list[str]  # `sensorpipe` on the Pi, with the simulated BME280 (pi_agent.py)


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JoinedPi]:
    tmp_path = tmp_path_factory.mktemp("pi-net")
    http_port, rpc_port = free_ports(2)
    influxd = Influxd(tmp_path / "influxdb", http_port=http_port, rpc_port=rpc_port, database="x")
    influxd.start()
    sim = Sds011Simulator(Sds011Device(read_pm=Street(1).pm_now, bad_frame_rate=0.0))
    with pi_network() as net, sim:
        print(f"topology: {net.kind} (the Pi reaches the server at {net.server})")
        command = [sys.executable, "-m", "sensorpipe"]
        server = SetupServer(tmp_path, command, net.server, influxd.url)
        try:
            server.setup()
            creds = server.add_device(DEVICE, "--site", "lab")
            server.setup()  # writes the device's account for the broker, as the docs say
            assert "private_key" not in creds  # the key is never on the server
            server.start()
            # The Pi joins with the code `devices add` printed: its key is made there and
            # enrolled over the broker's TLS listener, checked against the CA in the code.
            pi = tmp_path / "pi"
            code_file = tmp_path / "join-code"
            code_file.write_text(creds["join_code"] + "\n")
            join = ["edge", "join", "--root", str(pi), "--code-file", str(code_file)]
            joined = subprocess.run(
                net.on_pi([sys.executable, "-m", "sensorpipe", *join]),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert joined.returncode == 0, joined.stdout + joined.stderr
            assert "made on this device" in joined.stdout, joined.stdout
            config = pi / "etc" / "sensorpipe" / "edge.toml"
            assert config.stat().st_mode & 0o077 == 0  # its password and key: not for others
            # The simulated sensors' addresses and a quick pace for the test.
            edge = tomllib.loads(config.read_text())
            edge["sensors"] = [
                {"driver": "sds011", "port": sim.port, "interval_s": 0.5, "timeout_s": 2.0},
                {"driver": "bme280", "bus": 1, "address": 0x76, "interval_s": 1.0},
            ]
            edge["mqtt"].update(connect_timeout_s=5, confirm_timeout_s=3)
            config.write_text(tomli_w.dumps(edge))
            influx = influxd.client()
            influx.database = "sensorpipe"
            agent = [sys.executable, str(Path(__file__).with_name("pi_agent.py")), "edge"]
            yield JoinedPi(net, server, influx, pi, config, agent)
        finally:
            server.stop()
            influxd.stop()


def test_a_pi_on_its_own_network_joins_over_tls_and_its_check_is_green(joined: JoinedPi) -> None:
    net, server = joined.net, joined.server
    if net.kind == "namespace":
        # The Pi is on a network of its own: the broker's loopback listener, which the
        # server's services use, is not there; only the TLS listener is reachable.
        probe = "import socket, sys; socket.create_connection((sys.argv[1], sys.argv[2]), 3)"
        for host, port, reachable in (
            ("127.0.0.1", server.ports["broker"], False),
            (net.server, server.ports["broker-tls"], True),
        ):
            tried = subprocess.run(
                net.on_pi([sys.executable, "-c", probe, host, str(port)]),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert (tried.returncode == 0) is reachable, (host, port, tried.stderr)
    check = subprocess.run(
        net.on_pi([*joined.agent, "check", "--config", str(joined.config)]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == EDGE_CHECK_ALL_OK, check.stdout
    assert seqs(joined.influx) == [1]


def test_the_servers_broker_and_ingest_killed_while_the_pi_sends_lose_nothing(
    joined: JoinedPi,
) -> None:
    server, influx = joined.server, joined.influx
    pi_run = ManagedProcess(
        "edge run",
        joined.net.on_pi([*joined.agent, "run", "--config", str(joined.config)]),
        server.logs / "pi",
    )
    start = len(seqs(influx))
    try:
        pi_run.start(lambda: len(seqs(influx)) >= start + 4, timeout_s=30)  # readings stored
        # Both sensors' readings are stored, each in its own point.
        air = influx.query(
            f"SELECT count(pm2_5), count(temperature) FROM air WHERE device_id = '{DEVICE}'"
        )
        assert all(n >= 1 for n in air[0]["values"][0][1:]), air

        # The server goes down hard while the Pi keeps reading. First the ingest: what the
        # broker accepts now (PUBACK) is confirmed by no one and dies with the broker ...
        outbox = joined.pi / "var" / "lib" / "sensorpipe" / "outbox.sqlite"
        assert server.ingest is not None
        server.ingest.kill()
        wait_for(lambda: outbox_rows(outbox, sent=True) >= 3, what="messages only the broker has")
        server.broker.kill()
        before = seqs(influx)
        # ... then the broker: the Pi's outbox fills.
        wait_for(lambda: outbox_rows(outbox, sent=False) >= 3, what="readings queued")
        # ... and the server comes back on the same address and ports.
        server.start()
        wait_for(
            lambda: outbox_rows(outbox) == 0 and len(seqs(influx)) > len(before) + 4,
            timeout_s=45,
            what=f"the Pi's outbox drained into InfluxDB ({server.logs})",
        )
        pi_run.stop()
        stored = seqs(influx)
        # Every sequence number the Pi used, stored once: none lost, none twice.
        assert stored == list(range(1, stored[-1] + 1)), stored
    finally:
        pi_run.stop()
