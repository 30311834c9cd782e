"""`sensorpipe edge join`: a Raspberry Pi joins the server from one join code.

The server's `devices add` prints the code (protocol.enrollment.JoinCode: broker address and
port, TLS and its CA certificate, the device's username and password, its declared sensors).
Joining, on the Pi, as root:

1. the `sensorpipe` system user that runs the agent exists, in the groups `dialout` (serial
   adapters), `i2c` and `video` (a camera), where the system has them;
2. the device's Ed25519 key pair is made here (joined before: the key in the configuration is
   kept), so the private key never leaves the Pi;
3. the public key is enrolled: published, signed with the new key, on the device's key topic
   over the broker link the agent will use (TLS checked against the CA in the code), and the
   ingest's answer awaited. So a wrong password, an untrusted certificate or a closed port
   shows now, in one line, and nothing is written until the server took the key (`join`);
4. /etc/sensorpipe/edge.toml (0640 root:sensorpipe: it holds the password and the key; what
   the owner set in an earlier one, its sensors above all, is kept) and
   /etc/sensorpipe/ca.pem (0644) are written, the outbox's directory /var/lib/sensorpipe made
   (0750 sensorpipe);
5. the systemd unit sensorpipe-edge.service is written (Type=notify with a watchdog,
   Restart=always, after time-sync and the network, the `sensorpipe` user) and systemd told.

It starts nothing: `edge check` then `systemctl enable --now sensorpipe-edge` do. Run again,
it writes the files anew and enrols the same key (accepted again). `--root DIR` writes under DIR
instead of / and leaves users and systemd alone (no root needed): a trial, or the tests.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from sensorpipe.places import Installation
from sensorpipe.protocol.enrollment import (
    JoinCode,
    KeyReply,
    enroll_topic,
    enrollment_payload,
    fingerprint,
)
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.signing import generate_keypair

USER = "sensorpipe"
GROUPS = ("dialout", "i2c", "video")
UNIT_NAME = "sensorpipe-edge.service"
WATCHDOG_S = 120
ANSWER_TIMEOUT_S = 20.0
# The sensors a join code may name, and the section each gets (the Pi's usual wiring; edit
# the file where yours differs, and `edge check` says what answers).
SENSOR_SECTIONS: dict[str, dict[str, Any]] = {
    "sds011": {"driver": "sds011", "port": "/dev/ttyUSB0", "interval_s": 60},
    "bme280": {"driver": "bme280", "bus": 1, "address": 0x76, "interval_s": 60},
    **{m: {"driver": m, "bus": 1, "interval_s": 60} for m in ("sps30", "scd30", "scd4x")},
    # On the Pi's PL011 UART (`dtoverlay=disable-bt`): the mini-UART garbles its frames.
    **{
        model: {"driver": "pms5003", "model": model, "port": "/dev/ttyAMA0", "interval_s": 60}
        for model in ("pms5003", "pms7003", "pmsa003")  # the same protocol
    },
    **{m: {"driver": m, "bus": 1, "address": 0x44, "interval_s": 60} for m in ("sht3x", "sht4x")},
    # v_dry/v_wet: typical values (dry 2.2-2.8 V, wet 0.7-1.5 V), commented in the file as such:
    # the agent runs and stores the probe's voltage, so readings can be recomputed once the
    # host has measured this probe's (a section without them would stop the whole agent).
    "soil_probe": {
        "driver": "soil_ads1115",
        "bus": 1,
        "address": 0x48,
        "channel": 0,
        "v_dry": 2.6,
        "v_wet": 1.2,
        "interval_s": 60,
    },
    "ds18b20": {"driver": "ds18b20", "quantity": "soil_temperature", "interval_s": 60},
}
# Comment lines written under a section's [[sensors]], by driver.
SECTION_COMMENTS: dict[str, tuple[str, ...]] = {
    "soil_ads1115": (
        "v_dry, v_wet: TYPICAL values, not this probe's: measure its voltage in dry and in wet",
        "soil (`sensorpipe edge check` prints it) and write them here; until then soil_moisture",
        "is approximate (its voltage is stored beside it, so readings can be recomputed).",
        "channel: the ADS1115 input (AIN0..AIN3) this probe is wired to.",
    ),
    "ds18b20": (
        'sensor_id = "28-xxxxxxxxxxxx"  # needed when several DS18B20 share the bus: its folder',
        "in `ls /sys/bus/w1/devices/`",
    ),
}
USUAL_PAIR = ("sds011", "bme280")  # what a join code that names no sensor gets
# Sensors that can be wired to a serial port instead of their usual one (`edge join --port`):
# the UART sensors, and the SPS30, which talks UART when its SEL pin is left open (its section
# then takes `port` in place of `bus`).
SERIAL_CAPABLE = ("sds011", "pms5003", "pms7003", "pmsa003", "sps30")


class JoinError(RuntimeError):
    """Joining stopped; the message says why and what to do."""


@dataclass
class Layout(Installation):
    """The edge agent's files among sensorpipe's places below `root`."""

    @property
    def config(self) -> Path:
        return self.etc / "edge.toml"

    @property
    def ca(self) -> Path:
        return self.etc / "ca.pem"

    @property
    def unit(self) -> Path:
        return self.units_dir / UNIT_NAME

    @property
    def system(self) -> bool:
        return self.root.resolve() == Path("/")


@dataclass
class Joined:
    device_id: str
    fingerprint: str
    new_key: bool
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def join(
    code: JoinCode,
    layout: Layout,
    *,
    enroll: bool = True,
    ports: Mapping[str, str] | None = None,
) -> Joined:
    """Do every step of joining (see the module's docstring); JoinError names what failed.
    `ports`: declared sensor tag to the serial port it is wired to (`--port`), in place of its
    usual wiring; an SPS30 named there is set up on its UART.

    Nothing is written before the server took the key: a join refused (a wrong password, an
    untrusted certificate, another key enrolled first) leaves the Pi as it was. One exception:
    when the key was sent but no answer came, the server may still take it later (its broker
    keeps the message for the ingest), so the configuration with that key is written, and
    joining again from this Pi sends the same key."""
    ports = dict(ports or {})
    refused = port_problem(code.sensors or list(USUAL_PAIR), ports)
    if refused is not None:
        raise JoinError(refused)
    notes: list[str] = []
    if layout.system:
        notes += _ensure_user()
    old = _old_config(layout)
    private_key, new = _key(old, code.device_id)
    public_key = _public_key(private_key)
    if enroll:
        try:
            enrol(code, private_key, public_key)
        except Unanswered:
            _write_files(code, layout, private_key, old, ports)
            raise
    written = _write_files(code, layout, private_key, old, ports)
    joined = Joined(code.device_id, fingerprint(public_key), new, written, notes)
    written_sensors = edge_config(code, layout, private_key, {}, ports)["sensors"]
    if old.get("sensors"):
        notes.append(
            f"kept the [[sensors]] of the earlier {layout.config.name}"
            + (" (--port not applied: set `port` there by hand)" if ports else "")
        )
    elif not written_sensors:
        notes.append(
            f"no sensor declared for {code.device_id} ({', '.join(code.sensors)}) has a driver "
            f"in the edge agent: add a [[sensors]] section to {layout.config} before `edge check`"
        )
    else:
        notes += _section_notes(code.sensors, written_sensors, layout.config)
    layout.unit.parent.mkdir(parents=True, exist_ok=True)
    layout.unit.write_text(unit_text(layout))
    layout.unit.chmod(0o644)
    written.append(layout.unit)
    if layout.system and Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    return joined


def _section_notes(tags: list[str], sections: list[dict[str, Any]], path: Path) -> list[str]:
    """What the host must still do to the sections written: a soil probe's calibration, and
    the declared sensors that got none."""
    notes = []
    soil = [s.get("sensor", "soil_probe") for s in sections if s["driver"] == "soil_ads1115"]
    if soil:
        notes.append(
            f"{', '.join(soil)}: v_dry/v_wet in {path} are typical values, not this probe's: "
            "measure its voltage in dry and in wet soil (`edge check` prints it) and write them "
            "there"
        )
    missing = unwritten_sensors(tags)
    if missing:
        notes.append(
            f"no section written for {', '.join(missing)} (no driver in the edge agent, or one "
            f"without a `sensor` key): add its [[sensors]] section to {path} if this Pi reads it"
        )
    return notes


class Unanswered(JoinError):
    """The key was sent and no answer came: the server may still take it."""


def _old_config(layout: Layout) -> dict[str, Any]:
    """The configuration an earlier join (or its owner) left, as far as it reads; {} if none."""
    try:
        old = tomllib.loads(layout.config.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    return old if isinstance(old, dict) else {}


def _public_key(private_key: str) -> str:
    import base64

    from nacl.signing import SigningKey

    raw = base64.b64decode(private_key)
    return base64.b64encode(bytes(SigningKey(raw).verify_key)).decode()


def _key(old: dict[str, Any], device_id: str) -> tuple[str, bool]:
    """The key this Pi has for `device_id` (joined before), or a new one."""
    key = old.get("private_key")
    if old.get("device_id") == device_id and isinstance(key, str):
        try:
            _public_key(key)
            return key, False
        except (ValueError, TypeError):
            pass
    private_key, _ = generate_keypair()
    return private_key, True


def edge_config(
    code: JoinCode,
    layout: Layout,
    private_key: str,
    old: dict[str, Any],
    ports: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The configuration the code gives (`ports`: see `join`); from an earlier one (`old`),
    what its owner set for the sensors, location, counting, outbox and link is kept."""
    mqtt: dict[str, Any] = {
        "host": code.host,
        "port": code.port,
        "username": code.username,
        "password": code.password,
        "tls": code.tls,
    }
    if code.tls and code.ca_pem:
        mqtt["ca_file"] = str(layout.ca)
    # None named: the usual pair.
    sensors = sensor_sections(code.sensors or list(USUAL_PAIR), ports)
    old_mqtt = old.get("mqtt")
    if not isinstance(old_mqtt, dict):
        old_mqtt = {}
    kept_mqtt = {k: v for k, v in old_mqtt.items() if k not in (*mqtt, "ca_file")}
    config: dict[str, Any] = {
        "device_id": code.device_id,
        "private_key": private_key,
        "outbox_path": str(layout.state / "outbox.sqlite"),
    }
    config.update({k: v for k, v in old.items() if k not in (*config, "mqtt", "sensors")})
    config["mqtt"] = {**mqtt, **kept_mqtt}
    config["sensors"] = old.get("sensors") or sensors
    return config


def port_problem(tags: list[str], ports: Mapping[str, str]) -> str | None:
    """Why `ports` (`--port SENSOR=PORT`) cannot be applied to the declared `tags`, or None."""
    from sensorpipe.protocol.registry import sensor_model

    for tag, port in ports.items():
        where = f"--port {tag}={port}"
        if tag not in tags:
            lower = f" (sensor names are lower case: {tag.lower()})" if tag.lower() in tags else ""
            return (
                f"{where}: the join code declares no sensor {tag} for this device (declared: "
                f"{', '.join(tags)}){lower}: name one of those (the server's `devices add "
                "--sensor` declares them)"
            )
        if sensor_model(tag) not in SERIAL_CAPABLE:
            return (
                f"{where}: {sensor_model(tag)} has no serial port (only "
                f"{', '.join(SERIAL_CAPABLE)} do): leave it out"
            )
        if not port.startswith("/dev/"):
            return f"{where}: name the serial device, e.g. /dev/ttyUSB0 or /dev/serial0"
        if port.startswith(("/dev/i2c", "/dev/spidev", "/dev/gpio")):
            return (
                f"{where}: {port} is a bus, not a serial port: name the UART, e.g. "
                "/dev/serial0 or /dev/ttyUSB0"
            )
    return None


def sensor_sections(
    tags: list[str], ports: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The [[sensors]] sections for the declared sensor tags that have one: a tag
    `<model>.<name>` (a second soil probe, `soil_probe.bed2`) gets its model's section with
    `sensor = "<tag>"` where the driver takes a `sensor` key; soil probes take the ADS1115's
    inputs in turn (AIN0, AIN1, ...). A tag in `ports` gets that serial port (an SPS30 then
    talks UART: `port` in place of `bus`)."""
    ports = ports or {}
    from pydantic import TypeAdapter, ValidationError

    from sensorpipe.edge.drivers.registry import SensorConfig
    from sensorpipe.protocol.registry import sensor_model

    adapter: TypeAdapter[Any] = TypeAdapter(SensorConfig)
    sections: list[dict[str, Any]] = []
    for tag in tags:
        base = SENSOR_SECTIONS.get(sensor_model(tag))
        if base is None:
            continue
        section = dict(base)
        if tag in ports:
            rest = {k: v for k, v in section.items() if k not in ("driver", "bus", "port")}
            section = {"driver": section["driver"], "port": ports[tag], **rest}
        if tag != sensor_model(tag):
            section["sensor"] = tag
        if "channel" in section:
            section["channel"] = sum(s.get("driver") == section["driver"] for s in sections)
        try:
            adapter.validate_python(section)  # a driver without a `sensor` key: none written
        except ValidationError:
            continue
        sections.append(section)
    return sections


def unwritten_sensors(tags: list[str]) -> list[str]:
    """The declared tags `sensor_sections` gives no section."""
    from pydantic import TypeAdapter

    from sensorpipe.edge.drivers.registry import SensorConfig, sensor_tag

    adapter: TypeAdapter[Any] = TypeAdapter(SensorConfig)
    written = {sensor_tag(adapter.validate_python(s)) for s in sensor_sections(tags)}
    return [t for t in tags if t not in written and t != "camera"]


def config_text(config: dict[str, Any]) -> str:
    """`config` as TOML, its sensors as [[sensors]] tables (not an inline array, to which a
    [[sensors]] block pasted from the docs could not be added)."""
    sensors = config.get("sensors")
    if not isinstance(sensors, list) or not all(isinstance(s, dict) for s in sensors):
        return tomli_w.dumps(config)
    text = tomli_w.dumps({k: v for k, v in config.items() if k != "sensors"})
    for section in sensors:
        text += "\n[[sensors]]\n"
        text += "".join(f"# {line}\n" for line in SECTION_COMMENTS.get(section.get("driver"), ()))
        for key, value in section.items():
            text += f"{_toml_key(key)} = {_toml_value(value, key)}\n"
    return text


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def _toml_value(value: Any, key: str = "") -> str:
    """One value in TOML's inline form; an I2C address in hex, as the docs give it."""
    if key == "address" and type(value) is int and value >= 0:
        return f"0x{value:02x}"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v, k)}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


HEADER = (
    "# written by `sensorpipe edge join`: the device's password and private key (made on this\n"
    "# device; it never leaves it). Sensors: edit port/bus/address where yours differ, then\n"
    "# `sensorpipe edge check --config {path}` says what answers.\n"
)


def _write_files(
    code: JoinCode,
    layout: Layout,
    private_key: str,
    old: dict[str, Any],
    ports: Mapping[str, str] | None = None,
) -> list[Path]:
    ids = _ids() if layout.system else None
    layout.etc.mkdir(parents=True, exist_ok=True)
    layout.state.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if code.tls and code.ca_pem:
        layout.ca.write_text(code.ca_pem if code.ca_pem.endswith("\n") else code.ca_pem + "\n")
        layout.ca.chmod(0o644)
        written.append(layout.ca)
    text = HEADER.format(path=layout.config)
    text += config_text(edge_config(code, layout, private_key, old, ports))
    write_private(layout.config, text)  # 0600 from its first byte, then the group may read
    layout.state.chmod(0o750)
    if ids is not None:
        os.chown(layout.config, 0, ids[1])
        layout.config.chmod(0o640)
        os.chown(layout.state, ids[0], ids[1])
    written.append(layout.config)
    return written


def _ids() -> tuple[int, int]:
    try:
        return pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
    except KeyError:
        raise JoinError(
            f"there is no `{USER}` user: create it (`adduser --system --group {USER}`)"
        ) from None


def _ensure_user() -> list[str]:
    """Make the system user that runs the agent and put it in the groups that reach the
    sensors; what was done, as notes."""
    if os.geteuid() != 0:
        raise JoinError(
            "joining writes /etc/sensorpipe and the agent's systemd unit: run it as root "
            f"(sudo {sys.executable} -m sensorpipe edge join), or give --root DIR to write there"
        )
    notes = []
    if not _user_exists(USER):
        home = "/var/lib/sensorpipe"
        command = ["useradd", "--system", "--user-group", "--home-dir", home]
        command += ["--shell", "/usr/sbin/nologin", USER]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise JoinError(f"cannot create the user {USER}: {done.stderr.strip()}")
        notes.append(f"created the system user {USER}")
    have = {g.gr_name for g in grp.getgrall() if USER in g.gr_mem}
    wanted = [g for g in GROUPS if _group_exists(g) and g not in have]
    if wanted:
        subprocess.run(["usermod", "-aG", ",".join(wanted), USER], check=False)
        notes.append(f"added {USER} to the groups {', '.join(wanted)}")
    missing = [g for g in GROUPS if not _group_exists(g)]
    if missing:
        notes.append(f"no group {', '.join(missing)} on this system (needed only for its devices)")
    return notes


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def unit_text(layout: Layout) -> str:
    """The agent's systemd unit: Type=notify with a watchdog (the agent speaks sd_notify),
    restarted always, after the clock is synchronised and the network is up, as `sensorpipe`
    with the groups of its sensors."""
    command = f"{sys.executable} -m sensorpipe edge run --config {layout.config}"
    return "\n".join(
        [
            "# written by `sensorpipe edge join`; run it again rather than editing this",
            "[Unit]",
            "Description=sensorpipe edge agent",
            "After=time-sync.target network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            "NotifyAccess=main",
            f"WatchdogSec={WATCHDOG_S}",
            f"User={USER}",
            f"Group={USER}",
            f"SupplementaryGroups={' '.join(GROUPS)}",
            f"ExecStart={command}",
            "Restart=always",
            "RestartSec=10",
            f"StateDirectory={USER}",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            f"ReadWritePaths={layout.state}",
            "UMask=0027",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


# --- enrolling the key -----------------------------------------------------------------------


def enrol(code: JoinCode, private_key: str, public_key: str) -> KeyReply:
    """Publish the key on the device's key topic and wait for the ingest's answer."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from sensorpipe.protocol.ack import ack_topic, decode_ack
    from sensorpipe.protocol.brokerlink import BAD_LOGIN, Client, describe_refusal

    where = f"{code.host}:{code.port} ({'TLS' if code.tls else 'plain text'})"
    nonce = secrets.token_urlsafe(12)
    connected, subscribed, answered = threading.Event(), threading.Event(), threading.Event()
    refused: list[str] = []
    replies: list[KeyReply] = []
    client = Client(
        CallbackAPIVersion.VERSION2, client_id=f"edge-{code.device_id}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(code.username, code.password)
    if code.tls:  # checked against the CA the code carries (or the system's): nothing on disk yet
        client.tls_set_context(ssl.create_default_context(cadata=code.ca_pem or None))
    client.connect_timeout = 10.0

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure and reason.value in BAD_LOGIN:
            refused.append(
                f"login refused ({reason}): the broker does not know this password yet; on the "
                "server, after `devices add`: `sensorpipe server setup` again and "
                "`systemctl restart mosquitto` (a lasting server), then join again"
            )
        elif reason.is_failure:
            refused.append(describe_refusal(reason, "[mqtt]"))
        connected.set()

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            refused.append("the broker refused the device's acknowledgement topic")
        subscribed.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        try:
            reply = decode_ack(bytes(msg.payload)).key
        except ValueError:
            return
        if reply is not None and reply.nonce == nonce:
            replies.append(reply)
            answered.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        client.connect(code.host, code.port, 30, clean_start=True, properties=props)
    except OSError as exc:
        raise JoinError(f"broker {where}: {_connect_problem(exc, code)}") from None
    client.loop_start()
    try:
        if not connected.wait(10.0):
            raise JoinError(f"broker {where}: no MQTT answer within 10 s: is it an MQTT broker?")
        if refused:
            raise JoinError(f"broker {where}: {refused[0]}")
        client.subscribe(ack_topic(code.username), qos=1)
        if not subscribed.wait(10.0) or refused:
            raise JoinError(f"broker {where}: {refused[0] if refused else 'no SUBACK'}")
        payload = enrollment_payload(code.device_id, private_key, public_key, nonce)
        client.publish(enroll_topic(code.device_id), payload, qos=1)
        if not answered.wait(ANSWER_TIMEOUT_S):
            raise Unanswered(
                f"broker {where}: logged in, but the ingest did not answer the key enrollment "
                f"within {ANSWER_TIMEOUT_S:g} s: is `sensorpipe ingest` running on the server? "
                "It may still take this key when it runs, so the configuration with it is "
                "written: join again from this Pi (the same key is sent) when it runs"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    reply = replies[0]
    if not reply.ok:
        raise JoinError(f"the server refused the key: {reply.reason}")
    return reply


def _connect_problem(exc: OSError, code: JoinCode) -> str:
    from sensorpipe.protocol.brokerlink import describe_connect_error

    return describe_connect_error(
        exc,
        host=code.host,
        port=code.port,
        tls=code.tls,
        connect_timeout_s=10.0,
        section="code",
        untrusted=f" by the CA in the join code: is {code.host} the server that printed it?",
    )
