"""One provisioning path: `devices add`, `add-kit airrohr` and `add-kit ttn` take the same
register options and write them the same way (gateway.devices.register); each kind keeps
only what is its own (its source, gateway, keys or password)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sensorpipe.cli.devices import devices_add
from sensorpipe.cli.kits import devices_add_kit_airrohr, devices_add_kit_ttn
from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import load_registry

REGISTER_OPTIONS = [
    ("--site", "oost"),
    ("--owner", "buurtgroep"),
    ("--purpose", "fine dust in the street"),
    ("--sensor", "bme280"),
    ("--lat", "52.0907"),
    ("--lon", "5.1214"),
    ("--precision", "2"),
    ("--contact", "wijk@example.org"),
    ("--legal-basis", "public task"),
    ("--retention", "5 years"),
    ("--licence", "CC-BY-4.0"),
]
REGISTER_FIELDS = [
    "site",
    "owner",
    "purpose",
    "sensors",
    "location",
    "location_precision_decimals",
    "contact",
    "legal_basis",
    "retention",
    "licence",
]
# Each kind's own arguments; the device id each one registers.
KINDS = {
    "device": (["add", "dev-1"], "dev-1"),
    "airrohr": (["add-kit", "airrohr", "--chip-id", "4711"], "airrohr-4711"),
    "ttn": (["add-kit", "ttn", "--application", "wijk@ttn", "--device-id", "node-1"], "node-1"),
}


def _devices(directory: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["devices", *args, "--dir", str(directory)])
    return result.exit_code, result.output


def test_every_kind_writes_the_register_fields_alike(tmp_path: Path) -> None:
    given = [part for option in REGISTER_OPTIONS for part in option]
    for own, _ in KINDS.values():
        code, output = _devices(tmp_path, *own, *given)
        assert code == 0, output
    registry = load_registry(tmp_path / "registry.toml")
    entries = {kind: registry.devices[device_id] for kind, (_, device_id) in KINDS.items()}
    fields = {kind: {f: getattr(e, f) for f in REGISTER_FIELDS} for kind, e in entries.items()}
    assert fields["device"] == fields["airrohr"] == fields["ttn"]
    assert fields["device"]["location_precision_decimals"] == 2
    assert fields["device"]["licence"] == "CC-BY-4.0"
    # What is each kind's own.
    assert [e.source for e in entries.values()] == ["edge", "airrohr", "ttn"]
    assert entries["device"].gateway is None and entries["airrohr"].gateway == "local-gateway"
    assert entries["airrohr"].password_hash and not entries["ttn"].password_hash


def _register_params(command: click.Command) -> dict[str, tuple[object, ...]]:
    names = {option for option, _ in REGISTER_OPTIONS} | {"--allow-unknown-sensor", "--dir"}
    return {
        p.opts[0]: (p.name, p.default, p.multiple, str(p.type))
        for p in command.params
        if isinstance(p, click.Option) and p.opts[0] in names
    }


def test_the_three_commands_take_the_same_register_options() -> None:
    device = _register_params(devices_add)
    assert len(device) == len(REGISTER_OPTIONS) + 2
    assert _register_params(devices_add_kit_airrohr) == device
    assert _register_params(devices_add_kit_ttn) == device


@pytest.mark.parametrize("kind", ["airrohr", "ttn"])
def test_a_kit_under_a_taken_id_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    code, output = _devices(tmp_path, "add", "taken-1")
    assert code == 0, output
    before = (tmp_path / "registry.toml").read_bytes()
    own, _ = KINDS[kind]
    code, output = _devices(tmp_path, *own, "--id", "taken-1")
    assert code == 1
    assert output.startswith("Error: device 'taken-1' is already registered")
    assert "Traceback" not in output and output.count("\n") == 1
    assert (tmp_path / "registry.toml").read_bytes() == before
