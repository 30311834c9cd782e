"""The running broker's access rules, changed without a restart: Mosquitto's dynamic security
plugin, spoken to over its control topic by the broker's admin account.

What it is for, and why this way:
- quarantine: `disable(device)` makes the broker disconnect the device at once ("administrative
  action") and refuse its every reconnect, whatever its password; `enable(device)` lets it in
  again. The ingest disables a device it quarantines; `sensorpipe devices lift` enables it;
- registry changes at runtime (`devices add`, a kit for a gateway, a reader, a removed device):
  `sync(registry, disabled)` brings the plugin's clients and roles in line with the registry
  (gateway.mosquitto.account_acls) and the quarantine book. The plugin does not re-read its
  file (not on SIGHUP), so without this a new device could log in (the password file is
  re-read on SIGHUP) but do nothing, and a new kit's gateway could not publish for it. Only
  what differs is changed: a role whose topics change has its clients reconnected by the
  broker (a gateway that gets a new kit reconnects once), no other client notices;
- the admin account exists only on the broker's side of the stack: its password is made once,
  kept in a private file in the broker's directory (`admin_credentials`), and its hash in the
  password file; its role allows nothing but the plugin's control topic. Its name
  (gateway.mosquitto.ADMIN_USERNAME) has a dot, which no device id can have.

Each call connects, sends its commands, waits for the answers and disconnects. The broker ties
the client id to the user name, so two connections of the admin account cannot be open at
once: the newer one (say `devices lift` while the ingest disables a device) takes over and the
older call fails, and is never reconnected behind its caller's back (two clients taking the id
from each other in turn). Each call answers within `timeout_s` or raises BrokerAdminError with
a one-line reason (the broker is not reachable, refuses the admin account, has no plugin, the
connection was taken over, or the plugin refused a command); nothing is retried here, the
caller decides (the ingest tries again later, the CLI says what to do).
"""

from __future__ import annotations

import json
import random
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from sensorpipe.gateway.mosquitto import (
    ADMIN_USERNAME,
    CONTROL_TOPIC,
    account_acls,
    hash_password,
    role_name,
)
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import Registry

T = TypeVar("T")
ADMIN_FILE = "admin.json"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
# Commands per control message: the broker takes packets up to gateway.mosquitto's
# MAX_PACKET_BYTES; a createRole for a gateway with many kits is the largest command.
BATCH_COMMANDS = 50
BATCH_BYTES = 32 * 1024


class BrokerAdminError(RuntimeError):
    """The broker's access rules could not be read or changed; the message says why."""


class ConnectionTakenOver(BrokerAdminError):
    """The admin connection ended before the answer came: most likely another admin
    connection (same user name, so same client id) took it over. Worth trying again."""


LOST = (
    "the admin connection was lost before the answer (another admin connection may have "
    "taken it over); try again"
)
# disable, enable and sync try again this many times after a connection taken over.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    username: str
    password: str
    password_hash: str = ""  # for the password file; not needed to connect


def admin_credentials(broker_dir: Path, *, create: bool = True) -> AdminCredentials:
    """The broker's admin account, made once (`create`) and kept in `broker_dir`/admin.json
    (mode 0600): a new password would lock out a broker that runs with the old one."""
    path = Path(broker_dir) / ADMIN_FILE
    try:
        data = json.loads(path.read_text())
        return AdminCredentials(
            str(data["username"]), str(data["password"]), str(data["password_hash"])
        )
    except FileNotFoundError:
        if not create:
            raise BrokerAdminError(
                f"{path}: no broker admin account; `sensorpipe stack up` makes one"
            ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerAdminError(
            f"{path}: not the broker's admin account ({type(exc).__name__}); remove it and "
            f"run `sensorpipe stack down` and `stack up` (a new one is made)"
        ) from None
    password = secrets.token_urlsafe(24)
    credentials = AdminCredentials(
        ADMIN_USERNAME, password, hash_password(ADMIN_USERNAME, password)
    )
    write_private(
        path,
        json.dumps(
            {
                "username": credentials.username,
                "password": credentials.password,
                "password_hash": credentials.password_hash,
            }
        )
        + "\n",
    )
    return credentials


@dataclass
class SyncResult:
    """What `sync` changed, by user name (role changes by the account they belong to)."""

    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rules_changed: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.created, self.deleted, self.rules_changed, self.disabled, self.enabled))


def _acl_key(acl: dict[str, Any]) -> tuple[str, str, bool, int]:
    return (
        str(acl["acltype"]),
        str(acl["topic"]),
        bool(acl.get("allow", False)),
        int(acl.get("priority", 0)),
    )


class BrokerAdmin:
    """The dynamic security plugin of the broker at `host`:`port`, as `credentials`' account.

    A connection per call (see the module docstring). Safe to use from several threads: calls
    take turns."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: AdminCredentials,
        *,
        tls: bool = False,
        ca_file: str | Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self.tls = tls
        self.ca_file = None if ca_file is None else str(ca_file)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._connected = False
        self._refused: str | None = None
        self._subscribed = False
        self._lost = False
        self._sequence = 0
        # Every admin connection receives every answer: ours carry a prefix of their own.
        self._prefix = secrets.token_hex(6)

    # --- what callers use ---------------------------------------------------------------
    def disable(self, username: str) -> bool:
        """Disconnect `username` now and refuse its connections until `enable`. False when
        the broker has no such account (a kit: its gateway publishes for it), which is not
        an error: there is nothing to disable."""
        return self._again(lambda: self._one({"command": "disableClient", "username": username}))

    def enable(self, username: str) -> bool:
        """Let `username` connect again (its password file entry authenticates it). False
        when the broker has no such account."""
        return self._again(lambda: self._one({"command": "enableClient", "username": username}))

    def sync(self, registry: Registry, disabled: Iterable[str] = ()) -> SyncResult:
        """Make the broker's clients and roles those the registry gives (one client and one
        role per account, gateway.mosquitto.account_acls), with the accounts in `disabled`
        (quarantined devices or gateways; never the readers or the admin) disabled and every
        other enabled. Clients the registry no longer has are deleted (and disconnected)."""
        off = set(disabled)  # read once: each attempt uses it
        return self._again(lambda: self._sync(registry, off))

    def _sync(self, registry: Registry, disabled: set[str]) -> SyncResult:
        wanted = account_acls(registry, admin_username=self.credentials.username)
        can_disable = set(registry.devices) | set(registry.gateways)
        off = {u for u in disabled if u in wanted and u in can_disable}
        listed = self.run(
            [
                {"command": "listRoles", "verbose": True},
                {"command": "listClients", "verbose": True},
            ]
        )
        roles = {
            str(r["rolename"]): {_acl_key(a) for a in r.get("acls", [])}
            for r in listed[0].get("data", {}).get("roles", [])
        }
        clients = {str(c["username"]): c for c in listed[1].get("data", {}).get("clients", [])}
        result = SyncResult()
        first: list[dict[str, Any]] = []  # roles before the clients that use them
        then: list[dict[str, Any]] = []
        last: list[dict[str, Any]] = []  # roles after the clients that used them
        for username, acls in wanted.items():
            rolename = role_name(username)
            want = {_acl_key(a) for a in acls}
            have = roles.get(rolename)
            if have is None:
                first.append({"command": "createRole", "rolename": rolename, "acls": acls})
            elif have != want:
                result.rules_changed.append(username)
                for acltype, topic, _allow, _priority in sorted(have - want):
                    first.append(
                        {
                            "command": "removeRoleACL",
                            "rolename": rolename,
                            "acltype": acltype,
                            "topic": topic,
                        }
                    )
                for acl in acls:
                    if _acl_key(acl) not in have:
                        first.append({"command": "addRoleACL", "rolename": rolename, **acl})
            client = clients.get(username)
            if client is None:
                result.created.append(username)
                then.append(
                    {
                        "command": "createClient",
                        "username": username,
                        "roles": [{"rolename": rolename}],
                    }
                )
                is_off = False
            else:
                has = {str(r["rolename"]) for r in client.get("roles", [])}
                if rolename not in has:
                    then.append(
                        {"command": "addClientRole", "username": username, "rolename": rolename}
                    )
                for other in sorted(has - {rolename}):
                    then.append(
                        {"command": "removeClientRole", "username": username, "rolename": other}
                    )
                is_off = bool(client.get("disabled", False))
            if username in off and not is_off:
                result.disabled.append(username)
                then.append({"command": "disableClient", "username": username})
            elif username not in off and is_off:
                result.enabled.append(username)
                then.append({"command": "enableClient", "username": username})
        for username in sorted(set(clients) - set(wanted)):
            result.deleted.append(username)
            then.append({"command": "deleteClient", "username": username})
        wanted_roles = {role_name(u) for u in wanted}
        for rolename in sorted(set(roles) - wanted_roles):
            if rolename.startswith(role_name("")):
                last.append({"command": "deleteRole", "rolename": rolename})
        self.run(first + then + last)
        return result

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send `commands` to the plugin and return its responses in their order;
        BrokerAdminError on the first one it refused."""
        batches: list[list[dict[str, Any]]] = []
        size = 0
        for command in commands:
            length = len(json.dumps(command))
            if not batches or len(batches[-1]) >= BATCH_COMMANDS or size + length > BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(command)
            size += length
        responses: list[dict[str, Any]] = []
        with self._lock:
            try:
                for batch in batches:
                    responses += self._send(batch)
            finally:
                self._disconnect()
        for command, response in zip(commands, responses, strict=True):
            error = response.get("error")
            if error:
                who = command.get("username") or command.get("rolename") or ""
                raise BrokerAdminError(
                    f"the broker's security plugin refused {command['command']}"
                    f"{' ' + who if who else ''}: {error}"
                )
        return responses

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def __enter__(self) -> BrokerAdmin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the connection -----------------------------------------------------------------
    def _again(self, call: Callable[[], T]) -> T:
        """`call`, tried again (ATTEMPTS in all, after a short random pause) while another
        admin connection takes the client id over: each is read from the broker afresh."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return call()
            except ConnectionTakenOver:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.05, 0.3))
        raise AssertionError("unreachable")

    def _one(self, command: dict[str, Any]) -> bool:
        with self._lock:
            try:
                (response,) = self._send([command])
            finally:
                self._disconnect()
        error = response.get("error")
        if error == "Client not found":
            return False
        if error:
            raise BrokerAdminError(
                f"the broker's security plugin refused {command['command']} "
                f"{command.get('username', '')}: {error}"
            )
        return True

    def _send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One control message and its answers; the caller holds the lock."""
        client = self._connect()
        ids = []
        with self._cond:
            for command in commands:
                self._sequence += 1
                ids.append(f"{self._prefix}-{self._sequence}")
                command["correlationData"] = ids[-1]
        payload = json.dumps({"commands": commands})
        for command in commands:
            del command["correlationData"]
        info = client.publish(CONTROL_TOPIC, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._disconnect()
            raise ConnectionTakenOver(f"{self._where()}: {LOST}")
        with self._cond:
            answered = self._cond.wait_for(
                lambda: all(i in self._responses for i in ids) or not self._connected,
                timeout=self.timeout_s,
            )
            got = [self._responses.pop(i, None) for i in ids]
        if not answered or any(r is None for r in got):
            self._disconnect()
            if answered:
                raise ConnectionTakenOver(f"{self._where()}: {LOST}")
            raise BrokerAdminError(
                f"{self._where()}: no answer from the broker's dynamic security plugin within "
                f"{self.timeout_s:g} s; does its mosquitto.conf load the plugin?"
            )
        return [r for r in got if r is not None]

    def _where(self) -> str:
        return f"broker at {self.host}:{self.port}"

    def _connect(self) -> mqtt.Client:
        if self._client is not None and self._connected:
            return self._client
        self._disconnect()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.credentials.username,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,  # see the module docstring
        )
        client.username_pw_set(self.credentials.username, self.credentials.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.connect_timeout = self.timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        with self._cond:
            self._connected = False
            self._subscribed = False
            self._refused = None
            self._lost = False
        try:
            # A clean start and no session expiry: the broker keeps nothing for the admin.
            client.connect(self.host, self.port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise BrokerAdminError(
                f"{self._where()}: cannot connect ({exc.strerror or exc}); is the broker running?"
            ) from None
        client.loop_start()
        self._client = client
        with self._cond:
            done = self._cond.wait_for(
                lambda: self._subscribed or self._refused is not None or self._lost,
                timeout=self.timeout_s,
            )
            refused = self._refused
            lost = self._lost and not self._subscribed
        if lost:
            self._disconnect()
            raise ConnectionTakenOver(f"{self._where()}: {LOST}")
        if refused is not None or not done:
            self._disconnect()
            raise BrokerAdminError(
                f"{self._where()}: "
                + (
                    f"refused the admin account {self.credentials.username} ({refused})"
                    if refused
                    else f"no answer within {self.timeout_s:g} s"
                )
            )
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            with self._cond:
                self._refused = str(reason)
                self._cond.notify_all()
            return
        with self._cond:
            self._connected = True
        client.subscribe(RESPONSE_TOPIC, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        with self._cond:
            if reasons and reasons[0].is_failure:
                self._refused = f"its subscription to {RESPONSE_TOPIC}: {reasons[0]}"
            else:
                self._subscribed = True
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False
            self._lost = True
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._cond:
            for response in responses if isinstance(responses, list) else []:
                if isinstance(response, dict) and "correlationData" in response:
                    self._responses[str(response["correlationData"])] = response
            self._cond.notify_all()
