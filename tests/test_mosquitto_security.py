"""The broker's generated security: the password file, the dynamic security plugin's JSON (one
role per account, literal topics, quarantined accounts disabled), mosquitto.conf's lines for it,
the acl_file fallback without the plugin, and the admin account. A real broker enforces them in
tests/integration/test_broker_security.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sensorpipe.gateway.brokeradmin import BrokerAdminError, admin_credentials
from sensorpipe.gateway.devices import (
    add_alert_subscriber,
    add_device,
    add_reader,
    set_ingest_account,
)
from sensorpipe.gateway.kits.provision import add_airrohr_kit, add_gateway
from sensorpipe.gateway.mosquitto import (
    ADMIN_USERNAME,
    BrokerFiles,
    ListenerError,
    broker_config,
    dynsec_config,
    password_file,
    write_broker_files,
    write_security_files,
)
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.topics import is_valid_device_id

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


class Admin:
    username = ADMIN_USERNAME
    password_hash = "$7$101$c2FsdA==$aGFzaA=="


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    add_device(r, "dev-a", site="centrum")
    add_device(r, "dev-b", site="centrum")
    set_ingest_account(r)
    add_reader(r, "auditor")
    add_alert_subscriber(r, "control-room")
    add_gateway(r, "gw1")
    add_airrohr_kit(r, chip_id="1234567", gateway="gw1", site="centrum")
    return r


def _acls(config: dict[str, object], username: str) -> list[tuple[str, str]]:
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}  # type: ignore[attr-defined]
    (client,) = [c for c in config["clients"] if c["username"] == username]  # type: ignore[attr-defined]
    assert [r["rolename"] for r in client["roles"]] == [f"account:{username}"]
    out = []
    for acl in roles[f"account:{username}"]:
        assert acl["allow"] is True
        out.append((acl["acltype"], acl["topic"]))
    return out


def test_each_account_may_do_only_its_own_job(registry: Registry) -> None:
    config = dynsec_config(registry, admin_username=ADMIN_USERNAME)
    assert config["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    assert _acls(config, "dev-a") == [
        ("publishClientSend", "sensorpipe/v1/dev-a/+"),
        ("subscribePattern", "sensorpipe/ack/v1/dev-a"),
        ("publishClientReceive", "sensorpipe/ack/v1/dev-a"),
    ]
    assert _acls(config, "gw1") == [("publishClientSend", "sensorpipe/v1/airrohr-1234567/+")]
    reader = [
        ("subscribePattern", "sensorpipe/v1/#"),
        ("subscribePattern", "$share/+/sensorpipe/v1/#"),
        ("publishClientReceive", "sensorpipe/v1/#"),
        ("publishClientSend", "sensorpipe/ack/v1/+"),
        ("publishClientSend", "sensorpipe/alerts/v1/+"),  # crowding alerts (crowd.delivery)
    ]
    assert _acls(config, "ingest") == reader and _acls(config, "auditor") == reader
    assert _acls(config, "control-room") == [
        ("subscribePattern", "sensorpipe/alerts/v1/#"),
        ("publishClientReceive", "sensorpipe/alerts/v1/#"),
    ]
    assert _acls(config, ADMIN_USERNAME) == [
        ("publishClientSend", "$CONTROL/dynamic-security/#"),
        ("subscribePattern", "$CONTROL/dynamic-security/#"),
        ("publishClientReceive", "$CONTROL/dynamic-security/#"),
    ]
    # Kits have no account of their own; nobody has a password in the plugin (the password
    # file authenticates) and nobody is disabled unless asked.
    users = sorted(c["username"] for c in config["clients"])  # type: ignore[attr-defined]
    assert users == sorted(
        ["dev-a", "dev-b", "gw1", "ingest", "auditor", "control-room", ADMIN_USERNAME]
    )
    for client in config["clients"]:  # type: ignore[attr-defined]
        assert not {"password", "salt", "iterations", "disabled"} & set(client)


def test_quarantined_accounts_are_disabled_and_keep_their_password(registry: Registry) -> None:
    config = dynsec_config(registry, disabled={"dev-b"})
    disabled = [c["username"] for c in config["clients"] if c.get("disabled")]  # type: ignore[attr-defined]
    assert disabled == ["dev-b"]
    # The password file still lets dev-b authenticate: the plugin refuses it first, and
    # enabling it again needs no new password.
    assert "dev-b:" in password_file(registry)


def test_the_admin_account_cannot_collide_with_a_device() -> None:
    assert not is_valid_device_id(ADMIN_USERNAME)


def test_the_config_loads_the_plugin_and_no_acl_file(tmp_path: Path) -> None:
    files = BrokerFiles(tmp_path / "m.conf", tmp_path / "p", tmp_path / "dyn.json", tmp_path / "d")
    lines = broker_config(files, port=18830, dynsec_plugin=PLUGIN).splitlines()
    assert f"plugin {PLUGIN}" in lines
    assert f"plugin_opt_config_file {files.acl}" in lines
    assert not [line for line in lines if line.startswith("acl_file")]
    # The ingest's session lives 7 days; the broker keeps every session at most that long.
    assert "persistent_client_expiration 168h" in lines
    assert "max_packet_size 66560" in lines
    hours = broker_config(files, port=1, dynsec_plugin=PLUGIN, session_expiry_s=3601)
    assert "persistent_client_expiration 2h" in hours.splitlines()  # rounded up, never down
    with pytest.raises(ListenerError, match="at least an hour"):
        broker_config(files, port=1, session_expiry_s=60)


def test_without_the_plugin_the_acl_file_is_used(tmp_path: Path) -> None:
    files = BrokerFiles(tmp_path / "m.conf", tmp_path / "p", tmp_path / "acl", tmp_path / "d")
    lines = broker_config(files, port=18830, dynsec_plugin=None).splitlines()
    assert f"acl_file {files.acl}" in lines
    assert not [line for line in lines if line.startswith("plugin")]


def test_without_the_plugin_a_quarantined_account_is_left_out_of_the_password_file(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSORPIPE_DYNSEC_PLUGIN", "")  # a Mosquitto without the plugin
    files = write_broker_files(tmp_path, registry, port=1883, disabled={"dev-b"})
    assert files.acl.name == "acl"
    users = [line.split(":")[0] for line in files.passwords.read_text().splitlines()]
    assert "dev-a" in users and "dev-b" not in users
    assert "pattern write sensorpipe/v1/%u/+" in files.acl.read_text()


def test_the_generated_files_are_private_and_the_json_is_the_plugins(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSORPIPE_DYNSEC_PLUGIN", str(PLUGIN))
    files = write_broker_files(tmp_path, registry, port=1883, admin=Admin(), disabled={"dev-a"})
    assert files.acl.name == "dynamic-security.json"
    for path in (files.passwords, files.acl):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(files.acl.read_text()) == dynsec_config(
        registry, disabled={"dev-a"}, admin_username=ADMIN_USERNAME
    )
    assert f"{ADMIN_USERNAME}:{Admin.password_hash}" in files.passwords.read_text().splitlines()
    # A running broker's plugin owns its file: `rules=False` writes the password file only.
    files.acl.write_text("{}")
    add_device(registry, "dev-c", site="centrum")
    write_security_files(files, registry, admin=Admin(), rules=False)
    assert files.acl.read_text() == "{}" and "dev-c:" in files.passwords.read_text()


def test_the_admin_account_is_made_once_and_kept_private(tmp_path: Path) -> None:
    with pytest.raises(BrokerAdminError, match="no broker admin account"):
        admin_credentials(tmp_path, create=False)
    first = admin_credentials(tmp_path)
    assert first.username == ADMIN_USERNAME and first.password_hash.startswith("$7$")
    assert admin_credentials(tmp_path) == first == admin_credentials(tmp_path, create=False)
    assert stat.S_IMODE((tmp_path / "admin.json").stat().st_mode) == 0o600
    (tmp_path / "admin.json").write_text("{not json")
    with pytest.raises(BrokerAdminError, match=r"admin\.json: not the broker's admin account"):
        admin_credentials(tmp_path)
