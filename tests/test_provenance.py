"""Provenance: who may vouch for a device's messages, and the tags every point carries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from sensorpipe.cli.main import main
from sensorpipe.gateway.mosquitto import acl_file, password_file
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.ingest.validate import RegistryView, Rejection, Validator
from sensorpipe.protocol import storage
from sensorpipe.protocol.codec import canonical_bytes, decode, encode
from sensorpipe.protocol.messages import AirMessage, KitLink, Link, Reading
from sensorpipe.protocol.provenance import import_source, provenance_tags, vouch_for
from sensorpipe.protocol.registry import (
    DeviceEntry,
    GatewayAccount,
    Registry,
    load_registry,
    save_registry,
)
from sensorpipe.protocol.signing import Signer, generate_keypair
from sensorpipe.protocol.topics import is_message_topic

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEVICE_KEY, DEVICE_PUBLIC = generate_keypair()
GW1_KEY, GW1_PUBLIC = generate_keypair()
GW2_KEY, GW2_PUBLIC = generate_keypair()


def _registry() -> Registry:
    return Registry(
        gateways={
            "gw1": GatewayAccount(public_key=GW1_PUBLIC, password_hash="$7$gw1"),
            "gw2": GatewayAccount(public_key=GW2_PUBLIC, password_hash="$7$gw2"),
        },
        devices={
            "d1": DeviceEntry(site="s", public_key=DEVICE_PUBLIC, password_hash="$7$d1"),
            "kit1": DeviceEntry(
                site="s", source="airrohr", gateway="gw1", chip_id="1234567", password_hash="h"
            ),
            "node1": DeviceEntry(
                site="s",
                source="ttn",
                gateway="gw2",
                ttn_application="meet-je-stad@ttn",
                ttn_device="eui-70b3d57ed0000001",
            ),
            "sc-1234": DeviceEntry(site="s", source="import"),
        },
    )


@pytest.fixture
def validator(tmp_path: Path) -> Validator:
    save_registry(_registry(), tmp_path / "registry.toml")
    return Validator(RegistryView(tmp_path / "registry.toml"), clock=lambda: NOW.timestamp())


def _message(device_id: str, *, vouched_by: str | None = None) -> AirMessage:
    return AirMessage(
        device_id=device_id,
        seq=3,
        observed_at=NOW,
        clock_synced=False,
        sent_at=NOW,
        vouched_by=vouched_by,
        link=Link(
            uptime_s=0,
            firmware="NRZ-2020-133",
            rssi_dbm=-71,
            kit=KitLink(time_source="receive", samples=870903, min_micro=28, max_micro=20090),
        ),
        readings=[Reading(quantity="pm2_5", value=4.2, unit="ug/m3", sensor="sds011")],
    )


def _signed(message: AirMessage, key: str) -> bytes:
    return encode(message, Signer(key).sign)


def test_a_kit_message_signed_by_its_gateway_passes(validator: Validator) -> None:
    message = validator.check(
        "sensorpipe/v1/kit1/air", _signed(_message("kit1", vouched_by="gw1"), GW1_KEY)
    )
    assert message.vouched_by == "gw1"
    assert message.link.kit is not None and message.link.kit.samples == 870903


@pytest.mark.parametrize(
    ("device", "vouched_by", "key", "code"),
    [
        ("kit1", None, GW1_KEY, "wrong_signer"),  # a kit cannot sign for itself
        ("kit1", "gw2", GW2_KEY, "wrong_signer"),  # another registered gateway may not vouch
        ("kit1", "gw1", GW2_KEY, "bad_signature"),  # named gw1, signed by someone else
        ("kit1", "gw1", DEVICE_KEY, "bad_signature"),
        ("node1", "gw1", GW1_KEY, "wrong_signer"),
        ("d1", "gw1", GW1_KEY, "wrong_signer"),  # an edge device's data is signed on it
        ("sc-1234", None, DEVICE_KEY, "wrong_signer"),  # imported history only
        ("sc-1234", "gw1", GW1_KEY, "wrong_signer"),
    ],
    # The keys are made at import: named by their role, so every test worker sees one list.
    ids=[
        "kit-signs-itself",
        "another-gateway",
        "named-gw1-signed-by-gw2",
        "named-gw1-signed-by-a-device",
        "node-via-gw1",
        "edge-device-via-gw1",
        "import-signs-itself",
        "import-via-gw1",
    ],
)
def test_only_the_registered_signer_may_vouch(
    validator: Validator, device: str, vouched_by: str | None, key: str, code: str
) -> None:
    with pytest.raises(Rejection) as caught:
        validator.check(
            f"sensorpipe/v1/{device}/air", _signed(_message(device, vouched_by=vouched_by), key)
        )
    assert caught.value.code == code


def test_vouched_by_is_covered_by_the_signature(validator: Validator) -> None:
    body = json.loads(_signed(_message("kit1", vouched_by="gw1"), GW1_KEY))
    body["vouched_by"] = "gw2"
    with pytest.raises(Rejection) as caught:
        validator.check("sensorpipe/v1/kit1/air", json.dumps(body).encode())
    assert caught.value.code == "wrong_signer"
    body = json.loads(_signed(_message("kit1", vouched_by="gw1"), GW1_KEY))
    body["link"]["rssi_dbm"] = -30  # a gateway's metadata cannot be changed on the way either
    with pytest.raises(Rejection) as caught:
        validator.check("sensorpipe/v1/kit1/air", json.dumps(body).encode())
    assert caught.value.code == "bad_signature"


def test_an_edge_message_is_encoded_as_before() -> None:
    payload = _signed(
        _message("d1").model_copy(update={"link": Link(uptime_s=1, firmware="f")}), DEVICE_KEY
    )
    body = json.loads(payload)
    assert "vouched_by" not in body and "kit" not in body["link"]
    assert decode(payload).vouched_by is None
    assert canonical_bytes(body) == canonical_bytes({k: v for k, v in body.items()})


def test_points_carry_source_and_vouch_and_the_kit_link() -> None:
    receipt = Receipt(gateway="local", received_at_ms=1, redelivered=False, seq_gap=0)
    points = message_points(_message("kit1", vouched_by="gw1"), "s", receipt, "airrohr")
    assert {p.measurement for p in points} == {storage.AIR, storage.LINK}
    for p in points:
        assert p.tags["source"] == "airrohr" and p.tags["vouch"] == "gateway"
    link = next(p for p in points if p.measurement == storage.LINK)
    assert link.fields["vouched_by"] == "gw1"
    assert link.fields["time_source"] == "receive"
    assert (link.fields["samples"], link.fields["max_micro"], link.fields["rssi_dbm"]) == (
        870903,
        20090,
        -71,
    )
    edge = message_points(_message("d1"), "s", receipt)
    assert all(p.tags["source"] == "edge" and p.tags["vouch"] == "device" for p in edge)
    assert "vouched_by" not in next(p for p in edge if p.measurement == storage.LINK).fields


def test_provenance_names() -> None:
    assert provenance_tags(import_source("telraam")) == {
        "source": "import:telraam",
        "vouch": "import",
    }
    assert vouch_for("ttn") == "gateway" and vouch_for("edge") == "device"
    for bad in ("import:excel", "import", "mqtt"):
        with pytest.raises(ValueError):
            vouch_for(bad)
    with pytest.raises(ValueError, match="unknown import format"):
        import_source("xlsx")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"site": "s"}, "needs password_hash"),
        ({"site": "s", "source": "airrohr", "gateway": "gw1"}, "needs chip_id, password_hash"),
        (
            {"site": "s", "source": "ttn", "gateway": "gw1", "ttn_device": "n1"},
            "needs ttn_application",
        ),
        ({"site": "s", "source": "import", "gateway": "gw1"}, "only kits"),
        ({"site": "s", "source": "import", "public_key": DEVICE_PUBLIC}, "no key of its own"),
        (
            {
                "site": "s",
                "source": "airrohr",
                "gateway": "gw1",
                "chip_id": "12A",
                "password_hash": "h",
            },
            "chip_id",
        ),
    ],
)
def test_a_device_has_what_its_source_needs(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeviceEntry.model_validate(entry)


def test_the_registry_keeps_kits_consistent(tmp_path: Path) -> None:
    registry = _registry()
    path = tmp_path / "registry.toml"
    save_registry(registry, path)
    again = load_registry(path)
    assert again == registry
    assert again.kit_by_chip("1234567") == "kit1" and again.kit_by_chip("1") is None
    assert again.kit_by_ttn("meet-je-stad@ttn", "eui-70b3d57ed0000001") == "node1"
    data = registry.model_dump()
    data["devices"]["kit2"] = {**data["devices"]["kit1"]}
    with pytest.raises(ValidationError, match="chip id 1234567 is registered twice"):
        Registry.model_validate(data)
    data = registry.model_dump()
    data["devices"]["kit1"]["gateway"] = "gw9"
    with pytest.raises(ValidationError, match="gateway 'gw9' is not registered"):
        Registry.model_validate(data)
    data = registry.model_dump()
    data["gateways"]["d1"] = data["gateways"]["gw1"]
    with pytest.raises(ValidationError, match="has the name of a device"):
        Registry.model_validate(data)


def test_gateways_publish_only_for_their_kits_and_kits_have_no_broker_account() -> None:
    registry = _registry()
    users = [line.split(":")[0] for line in password_file(registry).splitlines()]
    assert sorted(users) == ["d1", "gw1", "gw2"]
    acl = acl_file(registry)
    gw1 = acl.split("user gw1\n", 1)[1].split("\n\n", 1)[0].splitlines()
    gw2 = acl.split("user gw2\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert gw1 == ["topic write sensorpipe/v1/kit1/+"]
    assert gw2 == ["topic write sensorpipe/v1/node1/+"]


def test_replay_leaves_kit_and_import_letters_alone(tmp_path: Path) -> None:
    assert is_message_topic("sensorpipe/v1/d1/air") and is_message_topic("weather/x")
    assert not is_message_topic("import:sensor-community:2026-11-01_sds011_sensor_1234.csv:17")
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    store.add_many([DeadLetter(1.0, "airrohr:1234567", b"{}", "unknown_value_type", "x")])
    store.close()
    (tmp_path / "ingest.toml").write_text(
        'registry_path = "registry.toml"\ndeadletter_path = "dl.sqlite"\n'
        '[broker]\npassword = "x"\n[influx]\nurl = "http://127.0.0.1:9"\ntimeout_s = 1\n'
    )
    save_registry(_registry(), tmp_path / "registry.toml")
    result = CliRunner().invoke(
        main, ["ingest", "replay", "--config", str(tmp_path / "ingest.toml"), "--id", "1"]
    )
    assert result.exit_code == 1
    assert "came from airrohr (not MQTT messages) and are not replayed" in result.output
    result = CliRunner().invoke(
        main, ["ingest", "replay", "--config", str(tmp_path / "ingest.toml")]
    )
    assert result.exit_code == 0, result.output
    assert "1 dead letters came from airrohr" in result.output
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    assert store.count() == 1
    store.close()


def test_a_new_device_may_not_take_a_gateway_s_name() -> None:
    from sensorpipe.gateway.devices import ProvisioningError, add_device

    with pytest.raises(ProvisioningError, match="'gw1' is the name of a gateway"):
        add_device(_registry(), "gw1", site="s")
