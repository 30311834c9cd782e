"""The local stack's collaborators on their own, without a broker: the kit gateway's account
and gateway.toml (stack.kitgateway), and the places an edge device and a server share
(sensorpipe.places)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
import tomli_w

from sensorpipe.edge.join import Layout
from sensorpipe.protocol.registry import Registry
from sensorpipe.stack.errors import StackError
from sensorpipe.stack.kitgateway import STACK_GATEWAY_ID, StackGateway
from sensorpipe.stack.server import Setup


def _gateway(directory: Path) -> StackGateway:
    return StackGateway(directory, directory / "registry.toml", directory / "quarantine.sqlite")


def test_the_kit_gateways_account_is_made_once(tmp_path: Path) -> None:
    """Its key signs kits' readings: a second `stack up` must not replace it, but lost key
    files mean a new account."""
    gateway = _gateway(tmp_path)
    registry = Registry()
    first = gateway.ensure_account(registry)
    assert first is not None and STACK_GATEWAY_ID in registry.gateways
    for path in (gateway.key_path, gateway.password_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = gateway.key_path.read_text()
    assert gateway.ensure_account(registry) is None
    assert gateway.key_path.read_text() == key
    gateway.password_path.unlink()
    again = gateway.ensure_account(registry)
    assert again is not None and gateway.key_path.read_text() != key


def test_gateway_toml_is_written_anew_keeping_what_its_operator_set(tmp_path: Path) -> None:
    gateway = _gateway(tmp_path)
    path, url = gateway.write_config(1883, 8095)
    assert url == "http://127.0.0.1:8095/"
    config = tomllib.loads(path.read_text())
    assert config["broker"]["port"] == 1883 and config["gateway_id"] == STACK_GATEWAY_ID
    config["http"].update(bind="0.0.0.0", allow_plaintext=True, max_body_bytes=4096)
    config["http"]["colour"] = "red"  # not the operator's to set: dropped
    config["airrohr"] = {"burst": 3}
    config["gateway_id"] = "renamed"  # the stack's own: written anew
    path.write_text(tomli_w.dumps(config))
    path, url = gateway.write_config(1884, 8096)
    again = tomllib.loads(path.read_text())
    assert again["http"] == {
        "bind": "0.0.0.0",
        "allow_plaintext": True,
        "max_body_bytes": 4096,
        "port": 8096,
    }
    assert again["airrohr"] == {"burst": 3}
    assert again["gateway_id"] == STACK_GATEWAY_ID and again["broker"]["port"] == 1884
    assert url == "http://127.0.0.1:8096/"


def test_a_damaged_gateway_toml_is_named_not_replaced(tmp_path: Path) -> None:
    gateway = _gateway(tmp_path)
    gateway.config_path.parent.mkdir(parents=True)
    gateway.config_path.write_text("[http\n")
    with pytest.raises(StackError, match=r"gateway\.toml: cannot read it .*correct it or remove"):
        gateway.write_config(1883, 8095)
    assert gateway.config_path.read_text() == "[http\n"


def test_kit_setup_names_the_running_port_and_says_when_kits_cannot_reach_it(
    tmp_path: Path,
) -> None:
    gateway = _gateway(tmp_path)
    assert "has not run yet" in gateway.kit_setup(None)["note"]
    gateway.write_config(1883, 8095)
    setup = gateway.kit_setup(None)
    assert (setup["server"], setup["port"], setup["https"]) == ("127.0.0.1", 8095, False)
    assert (
        "listens on 127.0.0.1 only" in setup["note"] and str(gateway.config_path) in (setup["note"])
    )
    assert gateway.kit_setup("http://127.0.0.1:9000/")["port"] == 9000


def test_a_pi_and_a_server_keep_sensorpipes_files_in_the_same_places(tmp_path: Path) -> None:
    pi, server = Layout(tmp_path), Setup(tmp_path, "server.example.org")
    assert pi.etc == server.etc == tmp_path / "etc" / "sensorpipe"
    assert pi.state == server.state == tmp_path / "var" / "lib" / "sensorpipe"
    assert pi.unit.parent == server.unit_path("ingest").parent == server.units_dir


@pytest.mark.parametrize("kit", [True, False])
def test_a_change_the_running_broker_cannot_take_says_whether_it_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kit: bool
) -> None:
    """A device is saved before the broker hears of it; a kit only after the broker took it
    (stack.registration), so a failed kit is not registered and the error must not say it is."""
    from sensorpipe.gateway.brokeradmin import BrokerAdminError
    from sensorpipe.protocol.registry import load_registry
    from sensorpipe.stack import registration
    from sensorpipe.stack.local import LocalStack

    def refuse(*args: object, **kwargs: object) -> None:
        raise BrokerAdminError("the security plugin refused")

    stack = LocalStack(tmp_path / "st")
    stack.directory.mkdir()
    monkeypatch.setattr(
        LocalStack, "running", lambda self: {"influxd": [], "mosquitto": [1], "ingest": []}
    )
    monkeypatch.setattr(registration, "reload_pid", refuse)
    with pytest.raises(StackError) as failed:
        if kit:
            stack.add_airrohr_kit(chip_id="12345", site="s")
        else:
            stack.add_device("pi-1", site="s")
    message = str(failed.value)
    saved = load_registry(stack.registry_path) if stack.registry_path.exists() else Registry()
    if kit:
        assert message.startswith("nothing was registered: ") and not saved.devices
    else:
        assert message.startswith("the registry is saved, ") and "pi-1" in saved.devices
