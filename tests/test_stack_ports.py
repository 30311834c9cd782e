"""The local stack's lasting ports (sensorpipe.stack.ports): the kit gateway's first choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensorpipe.process import free_port
from sensorpipe.stack.ports import GATEWAY_PORT, KITS_PORT_ENV, StackPorts, first_kits_port


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, GATEWAY_PORT), ("", GATEWAY_PORT), ("0", None), ("18090", 18090), ("http", None)],
)
def test_the_kit_gateway_s_first_choice(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int | None
) -> None:
    if value is None:
        monkeypatch.delenv(KITS_PORT_ENV, raising=False)
    else:
        monkeypatch.setenv(KITS_PORT_ENV, value)
    assert first_kits_port() == expected


def _ports(tmp_path: Path) -> StackPorts:
    return StackPorts(
        tmp_path, gateway_config=tmp_path / "gateway.toml", serve_config=tmp_path / "serve.toml"
    )


def test_a_new_stack_takes_the_chosen_kits_port_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = free_port()
    monkeypatch.setenv(KITS_PORT_ENV, str(wanted))
    ports = _ports(tmp_path).plan(serve=True, kits=True)
    assert ports["kits"] == wanted
    assert len(set(ports.values())) == 4
    # The kit gateway's port is kept in its gateway.toml, the others in ports.json.
    assert json.loads((tmp_path / "ports.json").read_text()) == {
        name: ports[name] for name in ("mqtt", "api", "metrics")
    }


def test_with_any_free_port_the_kits_port_is_a_lasting_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KITS_PORT_ENV, "0")
    ports = _ports(tmp_path).plan(serve=False, kits=True)
    assert ports["kits"] != GATEWAY_PORT and ports["kits"] >= 20000
