"""What the edge agent costs a Raspberry Pi without a camera: memory, SD-card writes, and how
fast it empties its outbox after an outage, against a bare paho publisher in the same run.

    python -m bench.edge [--minutes M] [--interval S] [--messages N] [--workdir DIR] [--json]

The agent is the real one, a subprocess: `python -m bench.edge_agent --config edge.toml`, which
is `sensorpipe edge run --config edge.toml` with its I2C drivers given a bus whose devices are
simulated in this process (`simulated_bus`, served by `bench.remote_i2c.I2CServer`: this
machine has no /dev/i2c-N, and a Pi's agent carries no simulators, so none is in the agent's
memory); the SDS011 (and the PMS5003) are simulated on ptys by this process, so the agent opens
and reads real serial device nodes. No camera, no counting.

Figures:
- steady state (`--minutes`, default 10): the agent with both sensors every `--interval`
  seconds (default 1 s; their default is 60 s, so this is 60 times the readings and the
  messages of a normal host) against the local stack (`sensorpipe stack up`'s LocalStack:
  Mosquitto, the ingest, influxd) with `confirm = true`, as deployed: every message is kept in
  the SQLite outbox until the ingest confirms it stored it.
  - rss_mb / hwm_mb: VmRSS and VmHWM from /proc/<pid>/status of the agent process at the end
    (goal: RSS <= 40 MB).
  - write_bytes_per_reading: /proc/<pid>/io write_bytes of the agent process over the whole
    run (from its start, so opening the outbox counts) divided by the readings it took (an
    SDS011 sample is 2 readings, a BME280 sample 3); also per message. write_bytes counts what
    the process caused to be written to the block layer, which is what wears an SD card.
    On a filesystem without block accounting (tmpfs) it reads 0: the outbox lives under
    `--workdir` (default: a temporary directory under the current directory, on its disk).
- replay (`--messages` N, default 10,000) after an outage: a bare Mosquitto (anonymous, no
  ingest behind it, so the agent runs with `confirm = false`: an entry leaves the outbox at
  the broker's PUBACK) is down while N air messages are put in the agent's outbox through the
  outbox's own API (as the agent queues them: validated and dumped by `edge.entries.prepare`,
  one at a time, synchronous=FULL); the agent
  starts (reaching no broker), then the broker is started. The agent paces itself with
  `[mqtt] max_messages_per_s` (default 10): for this figure it is raised to 10,000, the most
  the setting allows. The outbox is polled every 10 ms (its SQLite file, read-only):
  replay_msg_s is the messages that left between the first poll that found fewer than N and
  the poll that found none, divided by that time (the agent's reconnect back-off before it is
  not counted; replay_from_broker_start_s includes it). The outbox writes the removal of
  delivered entries in batches (every 1,000, and once the backlog is gone), so the file
  shows the drain in steps of about 1,000: the first step starts the clock, and the
  messages counted are those after it. With a single step (N of about 1,000 or fewer), it is
  N divided by the time from the broker's start.
  - paho_qos1_msg_s (the baseline): a bare paho client publishing the same number of
    messages, of the same size, QoS 1 to the same broker and topic, timed until the last PUBACK.
  - the default pace: what draining a day's backlog takes at `max_messages_per_s = 10` (one
    message a minute when both sensors share the default 60-s interval: 1,440 messages).

- `--i2c-sensors`: the steady state with an SHT4x, an SHT3x, a soil probe (ADS1115) and a
  DS18B20 soil temperature probe (its w1_slave written into a sysfs-like folder by this
  process) configured too: the agent's RSS with them. `--sensirion`: with an SPS30, an SCD30 and an
  SCD4x (and their CPU per reading). `--all-sensors`: every driver a Pi without a camera can
  have, at once: SDS011, PMS5003, BME280, SHT4x, SHT3x, the soil probe, SPS30, SCD30, SCD4x
  (goal: RSS <= 40 MB with all of them).
- drivers: CPU per reading of each I2C driver (SHT3x, SHT4x, the ADS1115 soil probe, the
  BME280 as baseline) against its simulator, from `bench.edge_drivers` (see there).
- PMS5003 driver CPU (`--driver-reads` N, default 300): the CPU time per reading of its driver
  (`edge.drivers.pms5003`, passive mode: the E2 request, the 32-byte frame, its checksum and
  nine values), in this process against `Pms5003Simulator` on a pty, so pyserial's reads and
  writes count; measured with the reading thread's CPU clock (`time.thread_time`), so the
  simulator's thread does not. A sample is one reading of the sensor (nine values).
  With `--sensirion`, the same for the SPS30 on its UART (`bench.edge_sensirion.sps30_uart_cpu`:
  SHDLC through Sensirion's package, ten values).

The numbers depend on the machine and its load; a shared machine gives lower figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.edge_drivers import driver_cpu, report
from bench.pipeline import Publisher
from bench.remote_i2c import I2CServer
from sensorpipe.edge.entries import prepare
from sensorpipe.edge.outbox import SqliteOutbox
from sensorpipe.firmware_sim import sensirion as sims
from sensorpipe.firmware_sim.ads1115 import Ads1115Device, SoilProbe
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.ds18b20 import Ds18b20Probe, W1Bus
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.pms5003 import Pms5003Device, Pms5003Simulator
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.firmware_sim.sht import Sht3xDevice, Sht4xDevice
from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.gateway.mosquitto import MAX_QUEUED_MESSAGES
from sensorpipe.process import ManagedProcess, free_port, port_open
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import MESSAGE_ADAPTER
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import topic_for
from sensorpipe.stack.local import LocalStack

DEFAULT_PACE = 10.0  # [mqtt] max_messages_per_s's default
REPLAY_PACE = 10_000.0  # the most [mqtt] max_messages_per_s allows


def edge_toml(
    *,
    device_id: str,
    private_key: str,
    port: int,
    username: str,
    password: str,
    outbox: Path,
    serial_port: str,
    interval_s: float,
    confirm: bool = True,
    pace: float = DEFAULT_PACE,
    i2c_sensors: bool = False,
    sensirion: bool = False,
    pms_port: str | None = None,
    w1_root: Path | None = None,
) -> str:
    """`i2c_sensors`: an SHT4x, an SHT3x and a soil probe too (and a DS18B20 reading
    `w1_root`); `sensirion`: an SPS30, an SCD30 and an SCD4x too (on the bus `simulated_bus`
    builds); `pms_port`: a PMS5003 there."""
    extra = "".join(
        f'\n[[sensors]]\ndriver = "{d}"\n{more}interval_s = {interval_s}\n'
        for d, more in (
            ("sht4x", ""),
            ("sht3x", "address = 0x45\n"),
            ("soil_ads1115", "v_dry = 2.6\nv_wet = 1.2\n"),
            *((("ds18b20", f'w1_root = "{w1_root}"\n'),) if w1_root is not None else ()),
        )
    )
    sections = "\n" + SENSIRION_SECTIONS.format(interval_s=interval_s) if sensirion else ""
    if pms_port is not None:
        sections += f'\n[[sensors]]\ndriver = "pms5003"\nport = "{pms_port}"\n'
        # The simulator reads true from its start (warmup_s=0.0), so no reading is discarded.
        sections += f"interval_s = {interval_s}\nwarmup_s = 0\n"
    return f"""\
device_id = "{device_id}"
private_key = "{private_key}"
outbox_path = "{outbox.resolve()}"

[mqtt]
host = "127.0.0.1"
port = {port}
username = "{username}"
password = "{password}"
confirm = {str(confirm).lower()}
max_messages_per_s = {pace}

[[sensors]]
driver = "sds011"
port = "{serial_port}"
interval_s = {interval_s}

[[sensors]]
driver = "bme280"
bus = 1
address = 0x76
interval_s = {interval_s}
{extra if i2c_sensors else ""}{sections}"""


# `--sensirion`: an SPS30, an SCD30 and an SCD4x besides the SDS011 and the BME280
# (bench.edge_agent gives them their simulators).
SENSIRION_SECTIONS = "".join(
    f'[[sensors]]\ndriver = "{name}"\nbus = 1\ninterval_s = {{interval_s}}\n\n'
    for name in ("sps30", "scd30", "scd4x")
)


def simulated_bus() -> SimulatedI2CBus:
    """The I2C devices the agent's configurations name, simulated in this process: BME280s at
    0x76/0x77, an SHT4x at 0x44, an SHT3x at 0x45, an ADS1115 with a soil probe on AIN0 at
    0x48, and the SPS30, SCD30 and SCD4x at their addresses. Their clocks run 5 times faster,
    so the SCD4x's 5-s period fits the benchmark's 1-s interval. bench.edge_agent reaches them
    through `bench.remote_i2c`."""

    def fast() -> float:
        return time.monotonic() * 5.0

    bus = SimulatedI2CBus(1)
    for address in (0x76, 0x77):
        bus.attach(address, Bme280Device())
    bus.attach(0x44, Sht4xDevice())
    bus.attach(0x45, Sht3xDevice())
    bus.attach(0x48, Ads1115Device({0: SoilProbe()}))
    for address, device_class in (
        (sims.SPS30_ADDRESS, sims.Sps30Device),
        (sims.SCD30_ADDRESS, sims.Scd30Device),
        (sims.SCD4X_ADDRESS, sims.Scd4xDevice),
    ):
        device = device_class(now=fast)
        device.powered_at -= device.power_up_s
        bus.attach(address, device)
    return bus


@dataclass
class Agent:
    """The agent subprocess, and the systemd notify socket it reports its STATUS to."""

    process: subprocess.Popen[bytes]
    notify: socket.socket
    log: Path
    last_status: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def statuses(self) -> list[str]:
        """STATUS= lines received since the last call (without blocking)."""
        out: list[str] = []
        while True:
            try:
                data = self.notify.recv(65536).decode()
            except BlockingIOError:
                return out
            for line in data.splitlines():
                if line.startswith("STATUS="):
                    out.append(line.removeprefix("STATUS="))
                    self.last_status = out[-1]

    def stop(self) -> str:
        """SIGTERM, wait, and the agent's last STATUS (its summary when stopping)."""
        if self.notify.fileno() == -1:  # stopped already
            return self.last_status
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.statuses()
        self.notify.close()
        return self.last_status


@contextmanager
def run_agent(config: Path, workdir: Path) -> Iterator[Agent]:
    sock_path = workdir / f"notify-{config.stem}"
    sock_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.setblocking(False)
    log = workdir / f"{config.stem}.log"
    i2c = I2CServer(simulated_bus(), workdir / f"i2c-{config.stem}")
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "SENSORPIPE_BENCH_I2C": str(i2c.path)}
    env.pop("WATCHDOG_USEC", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.edge_agent", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    agent = Agent(process, notify, log)
    try:
        yield agent
    finally:
        agent.stop()
        i2c.close()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in kB from /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def proc_write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def readings_in(summary: str) -> tuple[int, int, int]:
    """(readings, messages confirmed, outbox depth) from the agent's summary
    'N readings, M messages confirmed by the ingest, outbox depth D'."""
    words = summary.replace(";", "").replace(",", "").split()
    readings = int(words[words.index("readings") - 1])
    confirmed = int(words[words.index("messages") - 1])
    depth = int(words[words.index("depth") + 1])
    return readings, confirmed, depth


@dataclass(frozen=True)
class Account:
    """Where the agent publishes, as whom, and whether it waits for the ingest's confirmation."""

    device_id: str
    private_key: str
    port: int
    username: str
    password: str
    confirm: bool = True


def steady_state(
    account: Account,
    workdir: Path,
    seconds: float,
    interval_s: float,
    *,
    i2c_sensors: bool = False,
    sensirion: bool = False,
    pms5003: bool = False,
) -> dict[str, Any]:
    """The agent with an SDS011 and a BME280 (and: `i2c_sensors` an SHT4x, an SHT3x, a soil
    probe and a DS18B20, `sensirion` an SPS30, an SCD30 and an SCD4x, `pms5003` a PMS5003) every
    `interval_s` for `seconds`: its memory at the end and what it wrote to disk per reading."""
    w1_root = None
    if i2c_sensors:  # a DS18B20 too: one conversion in its w1_slave, read on
        w1_root = W1Bus(workdir / "steady-w1", [Ds18b20Probe()]).root
    with contextlib.ExitStack() as stack:
        sds = stack.enter_context(Sds011Simulator(Sds011Device(bad_frame_rate=0.0)))
        pms = (
            stack.enter_context(Pms5003Simulator(Pms5003Device(warmup_s=0.0))) if pms5003 else None
        )
        config = workdir / "steady.toml"
        config.write_text(
            edge_toml(
                device_id=account.device_id,
                private_key=account.private_key,
                port=account.port,
                username=account.username,
                password=account.password,
                outbox=workdir / "steady" / "outbox.sqlite",
                serial_port=sds.port,
                interval_s=interval_s,
                confirm=account.confirm,
                i2c_sensors=i2c_sensors,
                sensirion=sensirion,
                pms_port=pms.port if pms is not None else None,
                w1_root=w1_root,
            )
        )
        with run_agent(config, workdir) as agent:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if agent.process.poll() is not None:
                    raise RuntimeError(
                        f"the agent exited ({agent.process.returncode}): "
                        + agent.log.read_text()[-2000:]
                    )
                agent.statuses()
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            memory = proc_status(agent.pid)
            written = proc_write_bytes(agent.pid)
            summary = agent.stop()
    if agent.process.returncode != 0 or "readings" not in summary:
        raise RuntimeError(f"the agent ended badly: {agent.log.read_text()[-2000:]}")
    readings, confirmed, depth = readings_in(summary)
    if readings == 0:
        raise RuntimeError(f"the agent took no readings: {agent.log.read_text()[-2000:]}")
    messages = max(1, confirmed + depth)  # queued: confirmed, or still waiting
    return {
        "seconds": round(seconds, 1),
        "interval_s": interval_s,
        "rss_mb": round(memory["VmRSS"] / 1024, 1),
        "hwm_mb": round(memory["VmHWM"] / 1024, 1),
        "readings": readings,
        "messages_confirmed": confirmed,
        "outbox_depth": depth,
        "write_bytes": written,
        "write_bytes_per_reading": round(written / readings, 1),
        "write_bytes_per_message": round(written / messages, 1),
    }


def drafts(device_id: str, n: int, first_seq: int) -> list[dict[str, Any]]:
    """Air messages as the agent queues them (before `sent_at` and `link` are added)."""
    observed = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        {
            "v": 1,
            "kind": "air",
            "device_id": device_id,
            "seq": first_seq + i,
            "observed_at": observed,
            "clock_synced": True,
            "location": None,
            "readings": [
                {"quantity": "pm2_5", "value": 12.3, "unit": "ug/m3", "sensor": "sds011"},
                {"quantity": "pm10", "value": 20.1, "unit": "ug/m3", "sensor": "sds011"},
                {"quantity": "temperature", "value": 21.5, "unit": "degC", "sensor": "bme280"},
                {"quantity": "relative_humidity", "value": 55.0, "unit": "%", "sensor": "bme280"},
                {"quantity": "pressure", "value": 1013.25, "unit": "hPa", "sensor": "bme280"},
            ],
        }
        for i in range(n)
    ]


def signed(draft: dict[str, Any], private_key: str) -> bytes:
    """What the agent publishes for a draft: with `sent_at` and `link` (the fields the agent
    fills in, so the baseline's payloads have the agent's size), signed."""
    message = dict(draft)
    message["sent_at"] = message["observed_at"]
    message["link"] = {
        "reconnects": 1,
        "outbox_depth": 10_000,
        "uptime_s": 5.123,
        "firmware": "sensorpipe-edge/0.1.0",
        "backlog": True,
        "outbox_dropped": 0,
    }
    return encode(MESSAGE_ADAPTER.validate_python(message), Signer(private_key).sign)


def bare_broker(workdir: Path, port: int) -> ManagedProcess:
    conf = workdir / "replay-broker.conf"
    # As bench.pipeline's baseline broker: the generated config's queue and in-flight limits,
    # without accounts, ACLs or persistence.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"max_queued_messages {MAX_QUEUED_MESSAGES}\nmax_inflight_messages 200\n"
    )
    return ManagedProcess("mosquitto", [mosquitto_binary(), "-c", str(conf)], workdir / "rb.log")


def waiting(db: Path, up_to_seq: int) -> int:
    """Entries with seq <= up_to_seq still in the outbox (read-only, beside the agent)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE seq <= ?", (up_to_seq,)).fetchone()
    return int(row[0])


def replay(workdir: Path, n: int, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """Fill the outbox with n messages while the broker is down, start it, time the drain;
    then the bare paho baseline on the same broker."""
    device_id = "edge-replay-01"
    private_key, _public = generate_keypair()
    db = workdir / "replay" / "outbox.sqlite"
    outbox = SqliteOutbox(db)
    topic = topic_for(device_id, "air")
    items = drafts(device_id, n, 0)
    for draft in items:
        draft["seq"] = outbox.next_seq()
        outbox.put(topic, prepare(draft), seq=draft["seq"])
    last_seq = items[-1]["seq"]
    outbox.close()
    payloads = [signed(d, private_key) for d in items]
    port = free_port()
    broker = bare_broker(workdir, port)
    with Sds011Simulator(Sds011Device(bad_frame_rate=0.0)) as sds:
        config = workdir / "replay.toml"
        config.write_text(
            edge_toml(
                device_id=device_id,
                private_key=private_key,
                port=port,
                username=device_id,
                password="unused",
                outbox=db,
                serial_port=sds.port,
                interval_s=60.0,
                confirm=False,
                pace=REPLAY_PACE,
            )
        )
        try:
            with run_agent(config, workdir) as agent:
                time.sleep(2.0)  # the agent is up, finds no broker, and waits to try again
                if agent.process.poll() is not None:
                    raise RuntimeError(f"the agent exited: {agent.log.read_text()[-2000:]}")
                broker.start(lambda: port_open(port))
                started = time.perf_counter()
                first: tuple[float, int] | None = None
                while True:
                    left = waiting(db, last_seq)
                    now = time.perf_counter()
                    if first is None and left < n:
                        first = (now, left)
                    if left == 0:
                        break
                    if now - started > timeout_s:
                        raise RuntimeError(
                            f"{left} of {n} messages still in the outbox; the agent's log: "
                            + agent.log.read_text()[-3000:]
                        )
                    time.sleep(0.01)
                assert first is not None
                t_first, left_first = first
                from_start = now - started
                # The outbox deletes in batches: with a single step (a small n), from the start.
                drained = left_first / (now - t_first) if left_first else n / from_start
            # The baseline: a bare paho client, the same messages, QoS 1, the same broker.
            pub = Publisher(port)
            try:
                t0 = time.perf_counter()
                pub.publish_all(topic, payloads)
                if not pub.done.wait(timeout_s):
                    raise RuntimeError(f"paho: only {pub.acked} of {n} PUBACKs")
                paho = n / (time.perf_counter() - t0)
            finally:
                pub.close()
        finally:
            broker.stop()
    return {
        "messages": n,
        "payload_bytes": round(sum(map(len, payloads)) / n),
        "max_messages_per_s": REPLAY_PACE,
        "replay_msg_s": round(drained),
        "replay_from_broker_start_s": round(from_start, 2),
        "paho_qos1_msg_s": round(paho),
        "replay_vs_paho": round(drained / paho, 3),
        "default_pace_day_backlog_s": round(1440 / DEFAULT_PACE),
    }


def pms_driver_cpu(reads: int) -> dict[str, Any]:
    """CPU per reading of the PMS5003 driver, over a pty to the simulator."""
    from bench.edge_sensirion import timed_reads
    from sensorpipe.edge.drivers.pms5003 import Pms5003

    with Pms5003Simulator(Pms5003Device(warmup_s=0.0)) as sim:
        driver = Pms5003.open(sim.port, timeout_s=2.0)
        try:
            result = timed_reads("pms5003", driver, reads)
        finally:
            driver.close()
    return {**result, "frames_bad": driver.frames_bad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="steady-state run length")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between readings of each sensor"
    )
    parser.add_argument("--messages", type=int, default=10_000, help="messages to replay")
    parser.add_argument(
        "--workdir", type=Path, default=Path("."), help="where the temporary outboxes go (a disk)"
    )
    parser.add_argument(
        "--driver-reads", type=int, default=300, help="PMS5003 readings timed for driver CPU"
    )
    parser.add_argument(
        "--i2c-sensors",
        action="store_true",
        help="the steady state with an SHT4x, an SHT3x, a soil probe and a DS18B20 too",
    )
    parser.add_argument(
        "--all-sensors",
        action="store_true",
        help="every driver without a camera: --i2c-sensors, --sensirion and a PMS5003",
    )
    parser.add_argument(
        "--sensirion",
        action="store_true",
        help="also an SPS30, an SCD30 and an SCD4x (simulated), and their CPU per reading",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.minutes <= 0 or args.interval <= 0:
        parser.error("--minutes and --interval must be above 0")
    if args.messages < 1 or args.driver_reads < 1:
        parser.error("--messages and --driver-reads must be at least 1")
    if not args.workdir.is_dir():
        parser.error(f"--workdir {args.workdir}: no such directory")
    if args.all_sensors:
        args.i2c_sensors = args.sensirion = True
    say = (lambda _m: None) if args.json else print
    say(f"driver CPU: {args.driver_reads} PMS5003 readings over a pty")
    pms = pms_driver_cpu(args.driver_reads)
    sensors = "SDS011 + BME280"
    sensors += " + SHT4x + SHT3x + soil probe + DS18B20" if args.i2c_sensors else ""
    sensors += " + SPS30 + SCD30 + SCD4x" if args.sensirion else ""
    sensors += " + PMS5003" if args.all_sensors else ""

    with tempfile.TemporaryDirectory(prefix=".bench-edge-", dir=args.workdir) as tmp:
        workdir = Path(tmp).resolve()  # paths in edge.toml are relative to the file
        stack = LocalStack(workdir / "stack")
        say("starting the stack (mosquitto, influxd, ingest)")
        stack.up(detach=False, serve=False)
        try:
            say(
                f"steady state: the agent, {sensors} every {args.interval:g} s, "
                f"confirm = true, for {args.minutes:g} min"
            )
            (creds,) = stack.add_devices([("edge-bench-01", {"site": "bench"})])
            account = Account(
                creds.device_id,
                creds.private_key,
                stack.require_info().broker_port,
                creds.username,
                creds.password,
            )
            steady = steady_state(
                account,
                workdir,
                args.minutes * 60,
                args.interval,
                i2c_sensors=args.i2c_sensors,
                sensirion=args.sensirion,
                pms5003=args.all_sensors,
            )
        finally:
            stack.down()
        say(f"replay: {args.messages} messages in the outbox, broker down, then started")
        rep = replay(workdir, args.messages)

    say("CPU per reading of each I2C driver against its simulator (bench.edge_drivers)")
    drivers = driver_cpu()
    result = {"steady": steady, "replay": rep, "drivers": drivers, "pms5003_driver": pms}
    if args.sensirion:
        from bench.edge_sensirion import cpu_per_reading, sps30_uart_cpu

        result["cpu_us_per_reading"] = cpu_per_reading()
        result["sps30_uart_driver"] = sps30_uart_cpu(args.driver_reads)
    if args.json:
        print(json.dumps(result))
        return
    s, r = steady, rep
    print()
    print(
        f"agent, no camera, {sensors} every {s['interval_s']:g} s, "
        f"{s['seconds'] / 60:g} min, confirm = true:"
    )
    print(f"  RSS at the end                 : {s['rss_mb']:>8} MB (goal <= 40 MB)")
    print(f"  peak RSS (VmHWM)               : {s['hwm_mb']:>8} MB")
    print(f"  readings / messages confirmed  : {s['readings']:>8} / {s['messages_confirmed']}")
    print(
        f"  disk writes per reading        : {s['write_bytes_per_reading']:>8} B "
        f"({s['write_bytes_per_message']} B per message, {s['write_bytes']} B in all)"
    )
    print(
        f"outbox replay, {r['messages']} messages of {r['payload_bytes']} B, confirm = false, "
        f"max_messages_per_s = {r['max_messages_per_s']:g}:"
    )
    print(f"  bare paho publisher, QoS 1     : {r['paho_qos1_msg_s']:>8} msg/s (baseline)")
    print(
        f"  agent's outbox replay          : {r['replay_msg_s']:>8} msg/s "
        f"({r['replay_vs_paho']:.2f}x paho; goal >= 5,000 msg/s)"
    )
    print(
        f"  from broker start to empty     : {r['replay_from_broker_start_s']:>8} s "
        "(including the agent's reconnect back-off)"
    )
    print(
        f"  at the default pace ({DEFAULT_PACE:g} msg/s), a day's backlog of 1,440 messages "
        f"(60-s readings) drains in {r['default_pace_day_backlog_s']} s; "
        f"{r['messages']} messages in {r['messages'] / DEFAULT_PACE / 60:.0f} min"
    )
    print("\n".join(report(drivers)))
    if args.sensirion:
        print("CPU per reading, driver + its simulator, in this process (bench/edge_sensirion.py):")
        for name, micros in result["cpu_us_per_reading"].items():
            print(f"  {name:<30} : {micros:>8} µs")
    print("UART driver CPU per reading (reading thread, pyserial on a pty included):")
    uart = [pms] + ([result["sps30_uart_driver"]] if args.sensirion else [])
    for d in uart:
        print(
            f"  {d['driver']:<10} ({d['values_per_read']:g} values) : "
            f"{d['cpu_us_per_read']:>8} µs CPU ({d['wall_ms_per_read']} ms wall, "
            f"{d['reads']} readings)"
        )


if __name__ == "__main__":
    main()
