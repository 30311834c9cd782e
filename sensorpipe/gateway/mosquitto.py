"""Mosquitto configuration generated from the device registry.

What the generated configuration guarantees, and why:
- persistence on, saved every `autosave_interval` seconds and on shutdown: messages queued for
  an offline ingest survive a broker restart (Mosquitto's default is no persistence at all);
- a bounded queue per client (`max_queued_messages`, `max_queued_bytes`): while the ingest is
  away or slow the broker holds up to 100,000 messages or 100 MiB for it, so one device flooding
  it cannot exhaust the gateway's memory. What does not fit is refused for now ("quota
  exceeded") or dropped for the ingest; nothing is lost, because each device keeps every entry
  until the ingest confirms it (protocol.ack) and sends it again later;
- password file with one account per edge device, per gateway (which publishes for the kits
  registered to it: airrohr, The Things Stack) plus the ingest account; no anonymous access;
- ACL: a device may publish only below sensorpipe/v1/<its id>/ and read only its own
  acknowledgements (sensorpipe/ack/v1/<its id>, protocol.ack); the ingest accounts may read
  everything below sensorpipe/v1/ and publish only acknowledgements.

What the ACL cannot do (measured with Mosquitto 2.0.11): refuse a SUBSCRIBE. The acl_file
grants every subscription and is applied when a message is delivered. A device subscribed to
`#`, to another device's topics or to a shared group of its own receives nothing and takes
nothing from anyone. But a device that joins the ingest workers' shared subscription (the same
group name and topic filter) is dealt its turn of the group's messages, is refused each one,
and the group loses them. So the workers' group name is a random secret that only their
configuration holds (ingest.config.new_shared_group). The dynamic security plugin does refuse
at SUBSCRIBE, but only without acl_file (which otherwise decides first); it does not reload on
SIGHUP, and its control topic creates a client only from a plain password, which the registry
does not keep: adding a device would need a broker restart, or an admin account keeping a
second copy of the rules in step over MQTT.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sensorpipe.protocol.ack import ACK_PREFIX, ack_acl_pattern
from sensorpipe.protocol.codec import MAX_PAYLOAD_BYTES
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.provenance import EDGE
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.topics import TOPIC_PREFIX, acl_pattern


class PasswordToolError(RuntimeError):
    """mosquitto_passwd is missing or failed. Permanent: install the `mosquitto` package."""


def hash_password(username: str, password: str) -> str:
    """A Mosquitto password-file hash ($7$, PBKDF2-SHA512), made by mosquitto_passwd itself.

    The password never goes on a command line (where `ps` shows it to every user): it is written
    to a private file in a private temporary directory, which `mosquitto_passwd -U` hashes in
    place.
    """
    if ":" in username or "\n" in username or "\n" in password:
        raise PasswordToolError("user names cannot contain ':' or line breaks, nor passwords")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "passwd"
        write_private(path, f"{username}:{password}\n")
        try:
            subprocess.run(
                ["mosquitto_passwd", "-U", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            raise PasswordToolError(
                "mosquitto_passwd not found: install the broker (apt-get install mosquitto)"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise PasswordToolError(f"mosquitto_passwd failed: {exc.stderr.strip()}") from None
        line = path.read_text().strip()
    return line.split(":", 1)[1]


# A publish packet is its payload plus the topic and a few header bytes; topics are short.
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024
# What the broker holds for one client (the ingest) that is away or slow: at one message a
# minute from each of 1,000 devices, over an hour and a half; at about 1 KiB each, 100 MiB.
MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    config: Path
    passwords: Path
    acl: Path
    data_dir: Path


def password_file(registry: Registry) -> str:
    # Broker accounts: edge devices (kits have none: their gateway publishes for them), the
    # ingest, readers and gateways.
    lines = [
        f"{device_id}:{d.password_hash}"
        for device_id, d in sorted(registry.devices.items())
        if d.source == EDGE
    ]
    lines += [f"{name}:{g.password_hash}" for name, g in sorted(registry.gateways.items())]
    if registry.ingest is not None:
        lines.append(f"{registry.ingest.username}:{registry.ingest.password_hash}")
    lines += [f"{r.username}:{r.password_hash}" for r in registry.readers]
    return "\n".join(lines) + "\n"


def acl_file(registry: Registry) -> str:
    lines = [
        "# generated by sensorpipe from the device registry; edits are overwritten",
        "# Mosquitto grants every SUBSCRIBE and applies these lines when it delivers a message:",
        "# what a device may read below is all it ever receives. Ingest workers sharing the",
        "# stream need a group name devices cannot guess (the ingest's shared_group).",
        "",
    ]
    for username in registry.reader_names():
        lines += [
            f"user {username}",
            f"topic read {TOPIC_PREFIX}/#",
            f"topic write {ACK_PREFIX}/+",
            "",
        ]
    # A gateway publishes for the kits registered to it, and for no one else.
    for name in sorted(registry.gateways):
        kits = sorted(d for d, e in registry.devices.items() if e.gateway == name)
        lines += [f"user {name}", *(f"topic write {TOPIC_PREFIX}/{kit}/+" for kit in kits), ""]
    # Pattern lines apply to every user, so devices need no line each.
    lines += [f"pattern write {acl_pattern()}", f"pattern read {ack_acl_pattern()}", ""]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Tls:
    """Server certificate and key (PEM) for a TLS listener; `cafile` to check client certs."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None


class ListenerError(ValueError):
    """A listener configuration that would expose passwords and data in plain text."""


_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_bind(bind: str) -> None:
    """An IP address or a host name to listen on; ListenerError otherwise."""
    try:
        ipaddress.ip_address(bind)
        return
    except ValueError:
        pass
    if not _HOST_NAME.match(bind) or bind.replace(".", "").isdigit():
        raise ListenerError(f"bind {bind!r}: not an IP address or host name")


def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def broker_config(
    files: BrokerFiles,
    *,
    port: int,
    bind: str = "127.0.0.1",
    autosave_interval_s: int = 5,
    max_inflight: int = 200,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    max_queued_bytes: int = MAX_QUEUED_BYTES,
    tls: Tls | None = None,
    allow_plaintext: bool = False,
    user: str | None = None,
) -> str:
    """mosquitto.conf. A listener off loopback must use TLS unless `allow_plaintext` is given:
    device passwords and readings would otherwise cross the network readable by anyone on it.
    """
    # Each value becomes a line of mosquitto.conf: a space or newline would add options.
    check_bind(bind)
    if user is not None and not _USER_NAME.match(user):
        raise ListenerError(
            f"user {user!r}: not a system user name (lower-case letters, digits, '_', '-')"
        )
    if tls is not None:
        for path in (tls.certfile, tls.keyfile, *([tls.cafile] if tls.cafile else [])):
            if any(c.isspace() for c in str(path)):
                raise ListenerError(f"{path}: mosquitto.conf cannot name a path with spaces")
    if tls is None and not is_loopback(bind) and not allow_plaintext:
        raise ListenerError(
            f"a listener on {bind} would send passwords and data in plain text: give a TLS "
            f"certificate and key (--tls-cert, --tls-key), bind to 127.0.0.1, or accept plain "
            f"text explicitly (--allow-plaintext)"
        )
    if user is None:
        # A managed broker stays the user that started it, so that it can write the data
        # directory the project created; a system broker is given `mosquitto` by its caller.
        user = "root" if os.geteuid() == 0 else getpass.getuser()
    listener = [f"listener {port} {bind}"]
    if tls is not None:
        listener += [f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", "tls_version tlsv1.2"]
        if tls.cafile is not None:
            listener += [f"cafile {tls.cafile}"]
    return "\n".join(
        [
            "# generated by sensorpipe; edits are overwritten",
            f"user {user}",
            "per_listener_settings false",
            "allow_anonymous false",
            # Devices have no use for retained messages; replaying old ones to every new
            # subscriber would feed the ingest stale data on each reconnect.
            "retain_available false",
            # One message is at most MAX_PAYLOAD_BYTES; a larger packet disconnects its sender.
            f"max_packet_size {MAX_PACKET_BYTES}",
            f"password_file {files.passwords}",
            f"acl_file {files.acl}",
            "persistence true",
            f"persistence_location {files.data_dir}/",
            f"autosave_interval {autosave_interval_s}",
            f"max_queued_messages {max_queued_messages}",
            f"max_queued_bytes {max_queued_bytes}",
            f"max_inflight_messages {max_inflight}",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            *listener,
            # A listener option (it must follow `listener`): the client id is the user name, so
            # no one can take over the ingest's (or another device's) session, which would
            # disconnect it or, with a clean start, delete the messages queued for it.
            "use_username_as_clientid true",
            "",
        ]
    )


def write_broker_files(
    directory: Path,
    registry: Registry,
    *,
    port: int,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
) -> BrokerFiles:
    directory.mkdir(parents=True, exist_ok=True)
    files = BrokerFiles(
        config=directory / "mosquitto.conf",
        passwords=directory / "passwd",
        acl=directory / "acl",
        data_dir=directory / "data",
    )
    files.data_dir.mkdir(exist_ok=True)
    write_security_files(files, registry)
    files.config.write_text(
        broker_config(files, port=port, max_queued_messages=max_queued_messages)
    )
    return files


def write_security_files(files: BrokerFiles, registry: Registry) -> None:
    for path, text in ((files.passwords, password_file(registry)), (files.acl, acl_file(registry))):
        write_private(path, text)
