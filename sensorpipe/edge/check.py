"""`sensorpipe edge check`: is this host ready to deliver readings? One line per check.

Each configured sensor is read once, the camera delivers one frame and the model loads (with a
[counting] section), the clock is synchronised, the broker takes this device's login, one
message goes all the way to the ingest and its confirmation comes back
(`sensorpipe/ack/v1/<device>`, protocol.ack), and the outbox has room. A check that cannot be
tried because one before it failed (no confirmation without a broker) is `skip`, so each
problem shows as one FAIL line naming its cause.

The check message is a status message with the next sequence number, queued in the outbox like
any other: confirmed, it leaves the outbox; not confirmed, the agent delivers it later, so it
never leaves a gap centrally.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorpipe.edge import host
from sensorpipe.edge.config import EdgeConfig
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import (
    Ds18b20Config,
    I2CBusFactory,
    Pms5003Config,
    SensorConfig,
    _smbus,
    open_driver,
    sensor_tag,
)
from sensorpipe.edge.errors import EdgeError, SensorConfigError, SensorError
from sensorpipe.edge.healthfile import HEALTH_FILE, counted_text, read_health
from sensorpipe.edge.sensorloop import error_kind
from sensorpipe.protocol.ack import ack_topic, decode_ack
from sensorpipe.protocol.brokerlink import (
    BAD_LOGIN,
    Client,
    describe_connect_error,
    describe_refusal,
)
from sensorpipe.protocol.codec import encode
from sensorpipe.protocol.messages import MESSAGE_ADAPTER, SensorHealth
from sensorpipe.protocol.quantities import plausibility_error
from sensorpipe.protocol.signing import Signer
from sensorpipe.protocol.topics import topic_for

FIRMWARE = "sensorpipe-edge/0.1.0"
MIN_FREE_BYTES = 16 * 1024 * 1024  # room for tens of thousands of readings
OK, FAIL, SKIP = "ok", "FAIL", "skip"
# The Raspberry Pi's own UARTs (present only when enabled), as opposed to a USB adapter.
PI_UART = re.compile(r"/dev/(serial\d|ttyAMA\d+|ttyS\d+)")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok, FAIL, skip
    detail: str
    kind: str | None = None  # a sensor that failed: the kind of fault (`failure_kind`)

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<10}  {self.detail}"


@dataclass
class Probes:
    """What the checks learn from the host; tests put simulators in their place."""

    clock_synced: Callable[[], bool] = host.clock_synchronised
    i2c_bus_factory: I2CBusFactory = _smbus
    free_bytes: Callable[[Path], int] = field(default=lambda p: shutil.disk_usage(p).free)
    confirm_timeout_s: float = 20.0


def run_checks(
    config: EdgeConfig, probes: Probes | None = None, *, config_dir: Path | None = None
) -> list[Check]:
    """Every check, in order; `config_dir`: where the configuration file is (relative model
    paths are relative to it)."""
    probes = probes or Probes()
    checks: list[Check] = []
    health: list[SensorHealth] = []
    written, counted = read_health(Path(config.outbox_path).parent / HEALTH_FILE)
    for sensor in config.sensors:
        check, ok = check_sensor(sensor, probes)
        before = counted.get(sensor_tag(sensor))
        if written is not None and before is not None and before.errors:
            check = replace(check, detail=f"{check.detail}; {counted_text(before, written)}")
        checks.append(check)
        health.append(
            SensorHealth(
                sensor=sensor_tag(sensor),
                ok=ok,
                reads_ok=int(ok),
                reads_failed=int(not ok),
                frames_bad=0,
                last_error=None if ok else check.detail[:200],
            )
        )
    if config.counting is not None:
        checks.append(check_camera(config, config_dir or Path.cwd()))
    synced = probes.clock_synced()
    checks.append(
        Check("clock", OK, "synchronised (NTP)")
        if synced
        else Check(
            "clock",
            FAIL,
            "not synchronised: readings would carry a wrong time; start time synchronisation "
            "(`timedatectl set-ntp true`, or chrony) and check `timedatectl status`",
        )
    )
    outbox_check, outbox = _check_outbox(config, probes)
    checks.append(outbox_check)
    try:
        checks += _check_broker_and_delivery(config, probes, outbox, synced, health)
    finally:
        if outbox is not None:
            outbox.close()
    return checks


# --- sensors ---------------------------------------------------------------------------------
def _serial_port(sensor: SensorConfig) -> str | None:
    """The serial port of a UART sensor (an SDS011, a PMS5003, an SPS30 with `port`)."""
    port = getattr(sensor, "port", None)
    return port if isinstance(port, str) else None


def check_sensor(sensor: SensorConfig, probes: Probes) -> tuple[Check, bool]:
    if isinstance(sensor, Ds18b20Config):
        where = f"1-Wire {sensor.w1_root}/{sensor.sensor_id or '28-*'}"
    else:
        bus, address = getattr(sensor, "bus", 1), getattr(sensor, "address", 0)
        where = _serial_port(sensor) or f"/dev/i2c-{bus} at {hex(address)}"
    name = sensor_tag(sensor)
    driver: SensorDriver | None = None
    try:
        driver = open_driver(sensor, i2c_bus_factory=probes.i2c_bus_factory)
        values = driver.read()
    except Exception as exc:  # whatever the driver raises is the answer to print
        kind = failure_kind(sensor, exc, driver)
        problem = _sensor_problem(sensor, exc, driver, kind)
        return Check(name, FAIL, f"{where}: {kind}: {problem}", kind), False
    finally:
        if driver is not None:
            driver.close()
    shown = ", ".join(f"{q} {v:g}" for q, v in values.items())
    implausible = [e for q, v in values.items() if (e := plausibility_error(q, v)) is not None]
    if implausible:
        problem = f"implausible reading: {implausible[0]}"
        return Check(name, FAIL, f"{where}: out_of_range: {problem}", "out_of_range"), False
    note = getattr(driver, "note", None)  # a reading that is good but says something is off
    warmup_s = float(getattr(sensor, "warmup_s", 0.0) or 0.0)
    if warmup_s > 0 and note is None:  # a laser PM sensor, read right after it was started
        note = (
            f"read as its laser started: the first {warmup_s:g} s are unstable, so the agent "
            "discards them; these values say only that it answers"
        )
    return Check(name, OK, f"{where}: {shown}" + (f" ({note})" if note else "")), True


def _errno_of(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        number = getattr(seen, "errno", None)
        if isinstance(number, int):
            return number
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "[Errno 2]" in text:
        return errno.ENOENT
    if "[Errno 13]" in text:
        return errno.EACCES
    return None


def failure_kind(sensor: SensorConfig, exc: BaseException, driver: SensorDriver | None) -> str:
    """The kind of a failed check, in the agent's words where the agent counts it so
    (checksum, timeout, io, out_of_range, a driver's own kind: edge.errors); for a sensor that
    cannot be opened, which the agent counts as `not_available`, why: no_port, no_bus,
    permission, wrong_address (nothing answers there, another address does), wrong_model,
    timeout (nothing answers at all: power, wiring) or config."""
    number = _errno_of(exc)
    serial = isinstance(getattr(sensor, "port", None), str)  # a UART sensor (SDS011, PMS5003)
    if number == errno.ENOENT:
        return "no_port" if serial else "no_bus"
    if number in (errno.EACCES, errno.EPERM):
        return "permission"
    if driver is not None and driver.frames_bad:
        return "checksum"
    if isinstance(exc, SensorConfigError):  # why the driver says it cannot be opened
        if exc.kind != "config" or not isinstance(exc.__cause__, SensorError):
            return exc.kind
        exc = exc.__cause__  # a failed first answer: what the driver's read says it was
    return error_kind(exc)


def _sensor_problem(
    sensor: SensorConfig, exc: Exception, driver: SensorDriver | None, kind: str
) -> str:
    if isinstance(sensor, Ds18b20Config):  # its errors name the fault and what to do
        text = str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
        return text.removeprefix(f"{sensor_tag(sensor)}: ")
    serial = _serial_port(sensor) is not None
    number = _errno_of(exc)
    if number == errno.ENOENT:
        if PI_UART.fullmatch(_serial_port(sensor) or ""):
            return (
                "no such port: the Pi's UART is off: add `enable_uart=1` to "
                "/boot/firmware/config.txt and reboot"
            )
        if serial:
            return (
                "no such port: is the USB adapter plugged in? `ls /dev/ttyUSB* "
                "/dev/serial/by-id/` lists the serial ports"
            )
        return (
            "no such I2C bus: enable I2C (`sudo raspi-config nonint do_i2c 0`) and check "
            "`bus` (`ls /dev/i2c-*`)"
        )
    if number in (errno.EACCES, errno.EPERM):
        group = "dialout" if serial else "i2c"
        return (
            f"permission denied: add the user that runs the agent to the `{group}` group "
            f"(`sudo usermod -aG {group} $USER`, then log in again)"
        )
    frames_bad = driver.frames_bad if driver is not None else 0
    if frames_bad and isinstance(sensor, Pms5003Config):
        return (
            f"bad checksum: {frames_bad} malformed frames (on a Pi, the mini-UART /dev/ttyS0 "
            "garbles them: use /dev/ttyAMA0 with `dtoverlay=disable-bt`, or a USB adapter)"
        )
    if frames_bad:
        why = "loose wiring or wrong baud rate?" if serial else "loose wiring or a long bus?"
        return f"bad checksum: {frames_bad} malformed frames ({why})"
    text = str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
    text = text.removeprefix(f"{sensor_tag(sensor)}: ")
    silent = "no answer" in text or "did not finish" in text
    if silent and kind != "wrong_address" and "check the wiring" not in text:
        return f"no answer ({text}): check the wiring and the sensor's power"
    if serial:
        return text
    return f"{text} (`i2cdetect -y {getattr(sensor, 'bus', 1)}` shows what answers on the bus)"


# --- camera ----------------------------------------------------------------------------------
def check_camera(config: EdgeConfig, config_dir: Path) -> Check:
    from sensorpipe.edge.counting.config import build_pipeline, open_source

    assert config.counting is not None
    try:
        build_pipeline(config.counting, config_dir)
    except Exception as exc:  # a missing extra, a broken model: its message says which
        return Check("camera", FAIL, f"the model does not load: {exc}")
    try:
        source = open_source(config.counting.source)
    except Exception as exc:
        return Check("camera", FAIL, f"cannot open the frame source: {exc}")
    try:
        frames: Iterator[Any] = iter(source.frames())
        _t, frame = next(frames)
    except StopIteration:
        return Check("camera", FAIL, "the frame source delivered no frame")
    except Exception as exc:
        return Check("camera", FAIL, f"no frame: {exc}")
    finally:
        source.close()
    height, width = frame.shape[:2]
    return Check("camera", OK, f"one frame {width}x{height}; the model loads")


# --- outbox ----------------------------------------------------------------------------------
def _check_outbox(config: EdgeConfig, probes: Probes) -> tuple[Check, Any]:
    from sensorpipe.edge.outbox import OutboxError, SqliteOutbox

    path = Path(config.outbox_path)
    try:
        free = probes.free_bytes(path.parent)
    except OSError as exc:
        return Check("outbox", FAIL, f"{path.parent}: {exc.strerror or exc}"), None
    mib = free / (1024 * 1024)
    if free < MIN_FREE_BYTES:
        return (
            Check(
                "outbox",
                FAIL,
                f"{path}: only {mib:.1f} MiB free on its disk (at least "
                f"{MIN_FREE_BYTES // (1024 * 1024)} MiB needed to keep readings while offline)",
            ),
            None,
        )
    try:
        outbox = SqliteOutbox(path, max_entries=config.outbox_max_entries)
    except OutboxError as exc:
        return Check("outbox", FAIL, f"{path}: {exc}"), None
    waiting = outbox.depth()
    return Check("outbox", OK, f"{path}: {mib:.0f} MiB free, {waiting} messages waiting"), outbox


# --- broker and delivery ---------------------------------------------------------------------
@dataclass
class _Link:
    connected: threading.Event = field(default_factory=threading.Event)
    refused: list[str] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    confirmed: list[int] = field(default_factory=list)
    set_aside: dict[int, str] = field(default_factory=dict)  # seq: why the ingest set it aside
    confirmation: threading.Event = field(default_factory=threading.Event)


def _check_broker_and_delivery(
    config: EdgeConfig,
    probes: Probes,
    outbox: Any,
    synced: bool,
    health: list[SensorHealth],
) -> list[Check]:
    c = config.mqtt
    where = f"{c.host}:{c.port} ({'TLS' if c.tls else 'plain text'})"
    link = _Link()
    client = Client(
        CallbackAPIVersion.VERSION2, client_id=f"edge-{config.device_id}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(c.username, c.password)
    if c.tls:
        client.tls_set(ca_certs=c.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.connect_timeout = c.connect_timeout_s

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure and reason.value in BAD_LOGIN:
            link.refused.append(
                f"login refused ({reason}): wrong username or password; set both in [mqtt] "
                f"as `sensorpipe devices add` printed them for {config.device_id}"
            )
        elif reason.is_failure:
            link.refused.append(describe_refusal(reason, "[mqtt]"))
        link.connected.set()

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            link.refused.append("the broker refused the confirmation topic")
        link.subscribed.set()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            ack = decode_ack(bytes(msg.payload))
        except ValueError:
            return
        link.set_aside.update((r.seq, r.detail or r.code) for r in ack.rejected)
        link.confirmed += ack.numbers()
        link.confirmation.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    not_tried = "not tried: the broker check failed"
    try:
        client.connect(c.host, c.port, c.keepalive_s, clean_start=True, properties=props)
    except OSError as exc:  # refused, no such host, TLS (ssl.SSLError is an OSError)
        return [
            Check("broker", FAIL, f"{where}: {_connect_problem(exc, config)}"),
            Check("delivery", SKIP, not_tried),
        ]
    client.loop_start()
    try:
        if not link.connected.wait(c.connect_timeout_s):
            problem = f"no MQTT answer within {c.connect_timeout_s:g} s: is it an MQTT broker?"
            return [
                Check("broker", FAIL, f"{where}: {problem}"),
                Check("delivery", SKIP, not_tried),
            ]
        if link.refused:
            return [
                Check("broker", FAIL, f"{where}: {link.refused[0]}"),
                Check("delivery", SKIP, not_tried),
            ]
        broker = Check("broker", OK, f"{where}: logged in as {c.username}")
        return [broker, _deliver(config, probes, client, link, outbox, synced, health)]
    finally:
        client.disconnect()
        client.loop_stop()


def _connect_problem(exc: OSError, config: EdgeConfig) -> str:
    c = config.mqtt
    return describe_connect_error(
        exc,
        host=c.host,
        port=c.port,
        tls=c.tls,
        connect_timeout_s=c.connect_timeout_s,
        section="[mqtt]",
        untrusted=f": check ca_file in [mqtt] ({c.ca_file or 'the system CAs'}) against the "
        "server's CA",
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(round(ts, 3), UTC).isoformat(timespec="milliseconds")


def _deliver(
    config: EdgeConfig,
    probes: Probes,
    client: mqtt.Client,
    link: _Link,
    outbox: Any,
    synced: bool,
    health: list[SensorHealth],
) -> Check:
    if outbox is None:
        return Check("delivery", SKIP, "not tried: the outbox check failed")
    confirming = config.mqtt.confirm
    if confirming:
        client.subscribe(ack_topic(config.mqtt.username), qos=1)
    else:
        link.subscribed.set()
    if not link.subscribed.wait(10) or link.refused:
        why = link.refused[0] if link.refused else "no answer to the subscription"
        return Check("delivery", FAIL, f"{why}: regenerate the broker's ACL (`gateway config`)")
    seq = outbox.next_seq()
    now = time.time()
    draft: dict[str, Any] = {
        "v": 1,
        "kind": "status",
        "device_id": config.device_id,
        "seq": seq,
        "observed_at": _iso(now),
        "clock_synced": synced,
        "location": None,
        "sensors": [h.model_dump(mode="json") for h in health],
    }
    topic = topic_for(config.device_id, "status")
    outbox.put(topic, json.dumps(draft).encode(), seq=seq)  # the agent sends it if we cannot
    draft["sent_at"] = _iso(time.time())
    draft["link"] = {"uptime_s": 0.0, "firmware": FIRMWARE, "outbox_depth": outbox.depth()}
    payload = encode(MESSAGE_ADAPTER.validate_python(draft), Signer(config.private_key).sign)
    started = time.monotonic()
    info = client.publish(topic, payload, qos=1)
    if not confirming:  # a broker with no sensorpipe ingest behind it: its PUBACK is the end
        try:
            info.wait_for_publish(probes.confirm_timeout_s)
        except (ValueError, RuntimeError) as exc:
            return Check("delivery", FAIL, f"message {seq} not sent: {exc}")
        if not info.is_published():
            return Check("delivery", FAIL, f"message {seq}: no acknowledgement from the broker")
        outbox.confirm([seq])
        return Check(
            "delivery", OK, f"message {seq} accepted by the broker (confirm = false in [mqtt])"
        )
    deadline = started + probes.confirm_timeout_s
    while seq not in link.confirmed:
        left = deadline - time.monotonic()
        if left <= 0:
            return Check(
                "delivery",
                FAIL,
                f"message {seq} was not confirmed within {probes.confirm_timeout_s:g} s: is "
                f"the ingest running and connected to this broker, and InfluxDB up? (it stays "
                f"in the outbox; `edge run` sends it again)",
            )
        link.confirmation.wait(left)
        link.confirmation.clear()
    outbox.confirm([seq])
    took = time.monotonic() - started
    if seq in link.set_aside:
        return Check(
            "delivery",
            FAIL,
            f"message {seq} reached the ingest, which set it aside instead of storing it: "
            f"{link.set_aside[seq]}",
        )
    return Check("delivery", OK, f"message {seq} stored and confirmed by the ingest ({took:.1f} s)")


def render(checks: list[Check]) -> str:
    return "\n".join(c.line() for c in checks)


def as_json(checks: list[Check]) -> str:
    return json.dumps(
        {
            "ok": all(c.status == OK for c in checks),
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail}
                | ({"kind": c.kind} if c.kind else {})
                for c in checks
            ],
        },
        indent=2,
    )
