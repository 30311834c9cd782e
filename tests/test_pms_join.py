"""`edge join` for a Pi registered with a PMS5003: its section is written on the Pi's PL011 UART,
and the section it writes loads; a code naming no sensor still gets the usual pair."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sensorpipe.edge.drivers.registry import Pms5003Config
from sensorpipe.edge.join import Layout, join
from tests.test_edge_join_files import _answer, _code


def test_a_pi_with_a_pms5003_gets_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    join(_code(sensors=["pms5003", "bme280"]), Layout(tmp_path))
    path = tmp_path / "etc" / "sensorpipe" / "edge.toml"
    sensors = tomllib.loads(path.read_text())["sensors"]
    assert [s["driver"] for s in sensors] == ["pms5003", "bme280"]
    assert sensors[0]["port"] == "/dev/ttyAMA0"
    pms = Pms5003Config.model_validate(sensors[0])  # what the configuration loads it as
    assert pms.mode == "passive" and pms.warmup_s == 30 and pms.duty is None


def test_a_code_naming_no_sensor_gets_the_usual_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    join(_code(sensors=[]), Layout(tmp_path))
    sensors = tomllib.loads((tmp_path / "etc" / "sensorpipe" / "edge.toml").read_text())["sensors"]
    assert [s["driver"] for s in sensors] == ["sds011", "bme280"]


def test_a_pms7003_gets_the_pms5003_driver_with_its_own_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    join(_code(sensors=["pms7003"]), Layout(tmp_path))
    sensors = tomllib.loads((tmp_path / "etc" / "sensorpipe" / "edge.toml").read_text())["sensors"]
    (pms,) = [Pms5003Config.model_validate(s) for s in sensors]
    assert pms.model == "pms7003"


def test_registering_a_pms7003_notes_no_missing_driver(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sensorpipe.cli.main import main

    for model in ("pms5003", "pms7003", "pmsa003"):
        added = CliRunner().invoke(
            main, ["devices", "add", f"pi-{model}", "--dir", str(tmp_path), "--sensor", model]
        )
        assert added.exit_code == 0 and "note: --sensor" not in added.output, added.output
