"""Mosquitto configuration generated from the device registry.

What the generated configuration guarantees, and why:
- persistence on, saved every `autosave_interval` seconds and on shutdown: messages queued for
  an offline ingest survive a broker restart (Mosquitto's default is no persistence at all);
- a bounded queue per client (`max_queued_messages`, `max_queued_bytes`): while the ingest is
  away or slow the broker holds up to 100,000 messages or 100 MiB for it, so one device flooding
  it cannot exhaust the gateway's memory. What does not fit is refused for now ("quota
  exceeded") or dropped for the ingest; nothing is lost, because each device keeps every entry
  until the ingest confirms it (protocol.ack) and sends it again later;
- a packet is at most one message (`max_packet_size`): a larger one disconnects its sender;
- sessions expire (`persistent_client_expiration`): a session kept for a client that left is
  removed after `session_expiry_s` (7 days, the ingest's own session expiry, which it must
  outlive). Mosquitto 2.0 applies the option to every session, MQTT 5 and 3.1.1 alike: a
  client asking for a longer expiry (or, with MQTT 3.1.1 clean_session = false, for none at
  all) gets this one. Edge devices keep no session (clean start, expiry 0);
- authentication: the password file, one account per edge device, per gateway (which
  publishes for the kits registered to it: airrohr, The Things Stack), the ingest and each
  reader, and the broker's admin account (ADMIN_USERNAME, not a valid device id); no anonymous
  access. It is re-read on SIGHUP;
- authorisation: Mosquitto's dynamic security plugin (`dynsec_config`), without an acl_file,
  so the plugin decides every PUBLISH and SUBSCRIBE. One role per account, with literal topics
  (the plugin does not substitute %u in 2.0.11), and nothing allowed by default:
  - a device may publish only below sensorpipe/v1/<its id>/ (any other PUBLISH is answered
    "not authorised" and dropped) and may subscribe to and receive only its own
    acknowledgements, sensorpipe/ack/v1/<its id> (protocol.ack). Any other SUBSCRIBE (`#`,
    another device's topics, the ingest workers' shared group `$share/<group>/...`) is refused
    in the SUBACK ("not authorised"): the broker keeps no subscription for it, so it costs no
    memory and takes no message from the workers' group;
  - a gateway may publish only for the kits registered to it, and subscribe to nothing;
  - the ingest and readers may subscribe to sensorpipe/v1/# (shared, `$share/<any group>/`,
    or not; the plugin matches the whole filter, `$share/<group>/` included), receive it, and
    publish acknowledgements (sensorpipe/ack/v1/+) and crowding alerts
    (sensorpipe/alerts/v1/+, sensorpipe.crowd.delivery) and nothing else;
  - an alert subscriber (the registry's `alert_subscribers`) may only subscribe to and
    receive the crowding alerts, sensorpipe/alerts/v1/#;
  - the admin account may only speak to the plugin (`$CONTROL/dynamic-security/#`);
  - a quarantined device (protocol.quarantine) is written `"disabled": true`: the broker
    refuses its connection, whatever the password file says.
  The plugin keeps its state in memory and saves it to its JSON file on every change; it does
  not re-read the file (not on SIGHUP either). The file is written from the registry before
  the broker starts; while it runs, gateway.brokeradmin brings it in line over the plugin's
  control topic (new and removed accounts, a gateway's kits, quarantines), without a restart.

Without the plugin (a Mosquitto built without it: `find_dynsec_plugin` finds no library) the
configuration falls back to an acl_file, which Mosquitto 2.0 applies only when it delivers a
message: every SUBSCRIBE is granted, a device subscribed to `#` still receives nothing, but one
that joins the ingest workers' shared group is dealt its turn of the group's messages, refused
each one, and the group loses them. The workers' group name is therefore a random secret of
their configuration (ingest.config.new_shared_group), whichever way the broker is configured.
Disabling an account then means rewriting the password file without it.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sensorpipe.protocol.ack import ACK_PREFIX, ack_acl_pattern
from sensorpipe.protocol.codec import MAX_PAYLOAD_BYTES
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.provenance import EDGE
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.topics import ALERT_TOPIC_PREFIX, TOPIC_PREFIX, acl_pattern


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
# How long the broker keeps the session of a client that left: the ingest's own session expiry
# (ingest.config.BrokerConfig.session_expiry_s), which it must outlive; see the module docstring.
SESSION_EXPIRY_S = 7 * 86400

# The broker's admin account: it speaks only to the dynamic security plugin. A dot is not
# allowed in a device id, so no device, reader or gateway can be registered under this name.
ADMIN_USERNAME = "sensorpipe.admin"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
# Where Debian, Ubuntu and Raspberry Pi OS put the plugin (package mosquitto), and builds from
# source.
DYNSEC_PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/*/mosquitto_dynamic_security.so",
)
# Nothing is allowed unless a role says so (unsubscribing harms no one).
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}
DYNSEC_FILE = "dynamic-security.json"
ACL_FILE = "acl"


def find_dynsec_plugin() -> Path | None:
    """The dynamic security plugin's library, or None when this Mosquitto has none."""
    import glob

    override = os.environ.get("SENSORPIPE_DYNSEC_PLUGIN")
    if override is not None:  # "" forces the acl_file fallback
        return Path(override) if override else None
    for pattern in DYNSEC_PLUGIN_GLOBS:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    return None


class AdminAccount(Protocol):
    """The broker's admin account as the files need it (gateway.brokeradmin.AdminCredentials)."""

    @property
    def username(self) -> str: ...

    @property
    def password_hash(self) -> str: ...


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    config: Path
    passwords: Path
    # The access rules: the dynamic security plugin's JSON (DYNSEC_FILE), or without the
    # plugin Mosquitto's acl_file (ACL_FILE).
    acl: Path
    data_dir: Path


def broker_files(directory: Path, *, dynsec: bool | None = None) -> BrokerFiles:
    """The files of a broker in `directory`. `dynsec` None: as the plugin is found."""
    if dynsec is None:
        dynsec = find_dynsec_plugin() is not None
    return BrokerFiles(
        config=directory / "mosquitto.conf",
        passwords=directory / "passwd",
        acl=directory / (DYNSEC_FILE if dynsec else ACL_FILE),
        data_dir=directory / "data",
    )


def uses_dynsec(config: Path) -> bool:
    """Whether the mosquitto.conf at `config` (as a running broker read it) loads the plugin."""
    try:
        return any(
            line.startswith("plugin ") and "dynamic_security" in line
            for line in config.read_text().splitlines()
        )
    except FileNotFoundError:
        return find_dynsec_plugin() is not None


def password_file(
    registry: Registry,
    *,
    admin: AdminAccount | None = None,
    leave_out: frozenset[str] | set[str] = frozenset(),
) -> str:
    """Broker accounts: edge devices (kits have none: their gateway publishes for them), the
    ingest, readers, gateways and the admin account; `leave_out`: accounts not to let in (the
    quarantined, where no plugin can disable them)."""
    lines = [
        f"{device_id}:{d.password_hash}"
        for device_id, d in sorted(registry.devices.items())
        if d.source == EDGE and device_id not in leave_out
    ]
    lines += [
        f"{name}:{g.password_hash}"
        for name, g in sorted(registry.gateways.items())
        if name not in leave_out
    ]
    if registry.ingest is not None:
        lines.append(f"{registry.ingest.username}:{registry.ingest.password_hash}")
    lines += [f"{r.username}:{r.password_hash}" for r in registry.readers]
    lines += [f"{r.username}:{r.password_hash}" for r in registry.alert_subscribers]
    if admin is not None:
        lines.append(f"{admin.username}:{admin.password_hash}")
    return "\n".join(lines) + "\n"


def _acl(acltype: str, topic: str) -> dict[str, object]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def role_name(username: str) -> str:
    """The role that holds what `username` may do (one role per account)."""
    return f"account:{username}"


def account_acls(registry: Registry, *, admin_username: str | None = None) -> dict[str, list]:
    """Each broker account's rights as dynamic-security ACLs, by user name: literal topics,
    as the plugin does not substitute %u. The order is the file's, so that equal rights
    compare equal."""
    accounts: dict[str, list[dict[str, object]]] = {}
    for device_id, d in sorted(registry.devices.items()):
        if d.source != EDGE:
            continue  # kits have no account: their gateway publishes for them
        ack = f"{ACK_PREFIX}/{device_id}"
        accounts[device_id] = [
            _acl("publishClientSend", f"{TOPIC_PREFIX}/{device_id}/+"),
            _acl("subscribePattern", ack),
            _acl("publishClientReceive", ack),
        ]
    for name in sorted(registry.gateways):
        kits = sorted(d for d, e in registry.devices.items() if e.gateway == name)
        accounts[name] = [_acl("publishClientSend", f"{TOPIC_PREFIX}/{kit}/+") for kit in kits]
    for username in registry.reader_names():
        accounts[username] = [
            # The plugin matches a subscription's whole filter, `$share/<group>/` included.
            _acl("subscribePattern", f"{TOPIC_PREFIX}/#"),
            _acl("subscribePattern", f"$share/+/{TOPIC_PREFIX}/#"),
            _acl("publishClientReceive", f"{TOPIC_PREFIX}/#"),
            _acl("publishClientSend", f"{ACK_PREFIX}/+"),
            # The ingest (each worker) publishes the crowding alerts it raises.
            _acl("publishClientSend", f"{ALERT_TOPIC_PREFIX}/+"),
        ]
    for account in registry.alert_subscribers:
        accounts[account.username] = [
            _acl("subscribePattern", f"{ALERT_TOPIC_PREFIX}/#"),
            _acl("publishClientReceive", f"{ALERT_TOPIC_PREFIX}/#"),
        ]
    if admin_username is not None:
        control = CONTROL_TOPIC.rsplit("/", 1)[0] + "/#"
        accounts[admin_username] = [
            _acl("publishClientSend", control),
            _acl("subscribePattern", control),
            _acl("publishClientReceive", control),
        ]
    return accounts


def dynsec_config(
    registry: Registry,
    *,
    disabled: frozenset[str] | set[str] = frozenset(),
    admin_username: str | None = None,
) -> dict[str, object]:
    """The dynamic security plugin's JSON: a client per account, without a password (the
    password file authenticates it; the plugin defers), each with its own role; accounts in
    `disabled` (quarantined devices) are refused at connect."""
    acls = account_acls(registry, admin_username=admin_username)
    return {
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
        "clients": [
            {
                "username": username,
                "textname": _kind(registry, username),
                "roles": [{"rolename": role_name(username)}],
                **({"disabled": True} if username in disabled else {}),
            }
            for username in acls
        ],
        "groups": [],
        "roles": [
            {"rolename": role_name(username), "acls": rules} for username, rules in acls.items()
        ],
    }


def _kind(registry: Registry, username: str) -> str:
    if username in registry.devices:
        return "device"
    if username in registry.gateways:
        return "gateway"
    if username in registry.reader_names():
        return "reader"
    if any(a.username == username for a in registry.alert_subscribers):
        return "alert subscriber"
    return "admin"


def acl_file(registry: Registry) -> str:
    """Mosquitto's acl_file, for a broker without the dynamic security plugin."""
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
            f"topic write {ALERT_TOPIC_PREFIX}/+",
            "",
        ]
    for account in registry.alert_subscribers:
        lines += [f"user {account.username}", f"topic read {ALERT_TOPIC_PREFIX}/#", ""]
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
    session_expiry_s: int = SESSION_EXPIRY_S,
    dynsec_plugin: Path | bool | None = True,
    tls_listener: tuple[str, int, Tls] | None = None,
    persistence_location: bool = True,
) -> str:
    """mosquitto.conf. A listener off loopback must use TLS unless `allow_plaintext` is given:
    device passwords and readings would otherwise cross the network readable by anyone on it.
    `dynsec_plugin`: the plugin's library; True: the one `find_dynsec_plugin` finds (and the
    acl_file without one); None or False: the acl_file. `tls_listener` (bind, port,
    certificate): a second listener, with TLS (a server: plain text on loopback for its own
    services, TLS for the network). `persistence_location` False: left to the main
    configuration that includes this file (Debian's /etc/mosquitto/mosquitto.conf sets it,
    and Mosquitto refuses it twice).
    """
    if dynsec_plugin is True:
        dynsec_plugin = find_dynsec_plugin()
    plugin = dynsec_plugin if isinstance(dynsec_plugin, Path) else None
    if session_expiry_s < 3600:
        raise ListenerError(f"session expiry {session_expiry_s} s: at least an hour (3600 s)")
    # Each value becomes a line of mosquitto.conf: a space or newline would add options.
    check_bind(bind)
    if user is not None and not _USER_NAME.match(user):
        raise ListenerError(
            f"user {user!r}: not a system user name (lower-case letters, digits, '_', '-')"
        )
    if tls_listener is not None:
        check_bind(tls_listener[0])
    for t in (tls, None if tls_listener is None else tls_listener[2]):
        if t is None:
            continue
        for path in (t.certfile, t.keyfile, *([t.cafile] if t.cafile else [])):
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
    for path in (files.passwords, files.acl, *([plugin] if plugin else [])):
        if any(c.isspace() for c in str(path)):
            raise ListenerError(f"{path}: mosquitto.conf cannot name a path with spaces")
    if plugin is not None:
        # No acl_file: Mosquitto would ask it first, and it grants every SUBSCRIBE.
        security = [f"plugin {plugin}", f"plugin_opt_config_file {files.acl}"]
    else:
        security = [f"acl_file {files.acl}"]
    listener = _listener(port, bind, tls)
    if tls_listener is not None:
        listener += _listener(tls_listener[1], tls_listener[0], tls_listener[2])
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
            *security,
            "persistence true",
            # Whole hours (Mosquitto's unit), rounded up: the ingest's session must outlive it.
            f"persistent_client_expiration {-(-session_expiry_s // 3600)}h",
            *([f"persistence_location {files.data_dir}/"] if persistence_location else []),
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
            "",
        ]
    )


def _listener(port: int, bind: str, tls: Tls | None) -> list[str]:
    lines = [f"listener {port} {bind}"]
    if tls is not None:
        lines += [f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", "tls_version tlsv1.2"]
        if tls.cafile is not None:
            lines += [f"cafile {tls.cafile}"]
    # A listener option (it must follow `listener`): the client id is the user name, so no one
    # can take over the ingest's (or another device's) session, which would disconnect it or,
    # with a clean start, delete the messages queued for it.
    return [*lines, "use_username_as_clientid true"]


def write_broker_files(
    directory: Path,
    registry: Registry,
    *,
    port: int,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    admin: AdminAccount | None = None,
    disabled: frozenset[str] | set[str] = frozenset(),
    session_expiry_s: int = SESSION_EXPIRY_S,
) -> BrokerFiles:
    """mosquitto.conf, the password file and the access rules for a broker run from
    `directory`; `disabled`: quarantined accounts, refused at connect."""
    directory.mkdir(parents=True, exist_ok=True)
    plugin = find_dynsec_plugin()
    files = broker_files(directory, dynsec=plugin is not None)
    files.data_dir.mkdir(exist_ok=True)
    write_security_files(files, registry, admin=admin, disabled=disabled)
    files.config.write_text(
        broker_config(
            files,
            port=port,
            max_queued_messages=max_queued_messages,
            session_expiry_s=session_expiry_s,
            dynsec_plugin=plugin,
        )
    )
    return files


def write_security_files(
    files: BrokerFiles,
    registry: Registry,
    *,
    admin: AdminAccount | None = None,
    disabled: frozenset[str] | set[str] = frozenset(),
    rules: bool = True,
) -> None:
    """The password file and (with `rules`) the access rules: the plugin's JSON when `files.acl`
    is one (DYNSEC_FILE, or a file that holds JSON), else the acl_file. `rules` False: the
    password file only, for a running broker whose plugin owns its JSON file (it would not
    read the file again, and saves over it on its next change)."""
    dynsec = _is_dynsec_file(files.acl)
    leave_out = frozenset() if dynsec else frozenset(disabled)
    write_private(files.passwords, password_file(registry, admin=admin, leave_out=leave_out))
    if not rules:
        return
    if dynsec:
        config = dynsec_config(
            registry,
            disabled=disabled,
            admin_username=None if admin is None else admin.username,
        )
        write_private(files.acl, json.dumps(config, indent=2) + "\n")
    else:
        write_private(files.acl, acl_file(registry))


def _is_dynsec_file(path: Path) -> bool:
    if path.name == DYNSEC_FILE or path.suffix == ".json":
        return True
    if path.name == ACL_FILE:
        # A broker configured by others (`sensorpipe gateway config`) names it `acl`: it is
        # the plugin's when the plugin is there.
        return find_dynsec_plugin() is not None
    return False
