"""`sensorpipe devices add-kit ttn`: the registry entry, and what it tells a group to set up."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.gateway.devices import ProvisioningError
from sensorpipe.gateway.kits.ttn_provision import add_ttn_node, add_webhook_hash
from sensorpipe.gateway.kits.ttn_webhook import token_hash
from sensorpipe.protocol.registry import GatewayAccount, Registry, load_registry

APP = "fijnstof-wijk@ttn"


def add(directory: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        ["devices", "add-kit", "ttn", "--application", APP, "--dir", str(directory), *args],
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_node_is_registered_for_the_stacks_gateway(tmp_path: Path) -> None:
    code, out, err = add(tmp_path, "--device-id", "eui-70b3d57ed005e1a2", "--site", "centrum")
    assert code == 0, out + err
    entry = load_registry(tmp_path / "registry.toml").devices["eui-70b3d57ed005e1a2"]
    assert (entry.source, entry.gateway, entry.site) == ("ttn", "local-gateway", "centrum")
    assert (entry.ttn_application, entry.ttn_device) == (APP, "eui-70b3d57ed005e1a2")
    assert entry.public_key == "" and entry.password_hash == ""  # the gateway vouches for it
    # Not configured yet: how to set up the MQTT integration.
    assert "Integrations > MQTT > Generate new API key" in out
    assert 'application = "fijnstof-wijk@ttn"' in out
    assert 'server = "eu1.cloud.thethings.network"' in out
    assert f"{tmp_path / 'gateway' / 'ttn-fijnstof-wijk.key'}" in out


def test_webhook_token_goes_to_the_console_and_its_hash_to_the_config(tmp_path: Path) -> None:
    code, out, err = add(tmp_path, "--device-id", "node-1", "--webhook", "--json")
    assert code == 0, out + err
    setup = json.loads(out)
    webhook = setup["webhook"]
    assert webhook["base_url"].endswith("/ttn/v3/fijnstof-wijk@ttn")
    assert (webhook["uplink_path"], webhook["header"]) == ("/uplink", "Authorization")
    token = webhook["value"].removeprefix("Bearer ")
    config = tomllib.loads((tmp_path / "gateway" / "gateway.toml").read_text())
    assert config["ttn"] == [{"application": APP, "webhook_token_hashes": [token_hash(token)]}]
    # A second token for the same application is added beside the first.
    code, out, _ = add(tmp_path, "--device-id", "node-2", "--webhook")
    assert code == 0 and "Additional headers : Authorization   Bearer " in out
    config = tomllib.loads((tmp_path / "gateway" / "gateway.toml").read_text())
    assert len(config["ttn"]) == 1 and len(config["ttn"][0]["webhook_token_hashes"]) == 2


def test_a_configured_application_needs_nothing_per_node(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "gateway.toml").write_text(
        f'[[ttn]]\napplication = "{APP}"\nserver = "eu1.cloud.thethings.network"\n'
        'api_key_file = "k"\n[ttn.fields.pm25]\nquantity = "pm2_5"\nsensor = "sds011"\n'
    )
    code, out, err = add(tmp_path, "--device-id", "node-1")
    assert code == 0
    assert "nothing to type into the TTN console for this node" in out
    assert "note:" not in err


def test_the_same_node_twice_is_refused(tmp_path: Path) -> None:
    registry = Registry(gateways={"gw": GatewayAccount(public_key="k", password_hash="h")})
    add_ttn_node(registry, application=APP, ttn_device="node-1", gateway="gw", site="s")
    with pytest.raises(ProvisioningError, match="already registered as 'node-1'"):
        add_ttn_node(
            registry, application=APP, ttn_device="node-1", gateway="gw", site="s", device_id="x"
        )
    with pytest.raises(ProvisioningError, match="give this node another id"):
        add_ttn_node(registry, application="other@ttn", ttn_device="node-1", gateway="gw", site="s")
    with pytest.raises(ProvisioningError, match="gateway 'nope' is not registered"):
        add_ttn_node(registry, application=APP, ttn_device="node-2", gateway="nope", site="s")


def test_a_broken_gateway_config_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[[ttn]\n")
    with pytest.raises(ProvisioningError, match="cannot read it"):
        add_webhook_hash(path, APP, "sha256:" + "0" * 64)
    assert path.read_text() == "[[ttn]\n"
