"""`edge join` on the Pi's side (sensorpipe.edge.join), with the broker's answer given: what is
written, when, and what an earlier configuration keeps. The real broker and ingest are in
tests/integration/test_edge_join.py."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.edge import join as join_module
from sensorpipe.edge.join import JoinError, Layout, Unanswered, join
from sensorpipe.protocol.enrollment import JoinCode, KeyReply
from tests.helpers import join_code

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _code(**changes: object) -> JoinCode:
    return join_code(**{"ca_pem": CA, "password": "pw", **changes})


def _answer(monkeypatch: pytest.MonkeyPatch, outcome: Exception | None) -> list[str]:
    """The server's answer to every enrollment; the public keys sent, in order."""
    sent: list[str] = []

    def enrol(code: JoinCode, private_key: str, public_key: str) -> KeyReply:
        sent.append(public_key)
        if outcome is not None:
            raise outcome
        return KeyReply(nonce="n0nce-123", ok=True)

    monkeypatch.setattr(join_module, "enrol", enrol)
    return sent


def _config(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / "etc" / "sensorpipe" / "edge.toml").read_text())


def test_a_refused_join_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, JoinError("broker x: login refused"))
    with pytest.raises(JoinError, match="login refused"):
        join(_code(), Layout(tmp_path))
    assert list(tmp_path.rglob("*")) == []


def test_a_refused_join_leaves_a_working_configuration_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    join(_code(), Layout(tmp_path))
    before = (tmp_path / "etc" / "sensorpipe" / "edge.toml").read_text()
    _answer(monkeypatch, JoinError("the server refused the key: key_taken: ..."))
    with pytest.raises(JoinError):
        join(_code(host="elsewhere.invalid"), Layout(tmp_path))
    assert (tmp_path / "etc" / "sensorpipe" / "edge.toml").read_text() == before


def test_an_unanswered_join_keeps_the_key_it_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server may take the key later: the Pi must still have it, and send it again."""
    sent = _answer(monkeypatch, Unanswered("no answer within 20 s"))
    with pytest.raises(Unanswered):
        join(_code(), Layout(tmp_path))
    assert (tmp_path / "etc" / "sensorpipe" / "edge.toml").exists()
    _answer(monkeypatch, None)
    again = join(_code(), Layout(tmp_path))
    assert not again.new_key
    sent_again = _answer(monkeypatch, None)
    join(_code(), Layout(tmp_path))
    assert sent_again == sent


def test_a_join_writes_the_files_with_their_modes_and_a_rejoin_keeps_the_owners_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    first = join(_code(), Layout(tmp_path))
    assert first.new_key
    etc = tmp_path / "etc" / "sensorpipe"
    assert stat.S_IMODE((etc / "edge.toml").stat().st_mode) == 0o600  # not root: the owner's
    assert stat.S_IMODE((etc / "ca.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "var" / "lib" / "sensorpipe").stat().st_mode) == 0o750
    config = _config(tmp_path)
    assert config["mqtt"] == {
        "host": "sensors.example.nl",
        "port": 8883,
        "username": "pi-1",
        "password": "pw",
        "tls": True,
        "ca_file": str(etc / "ca.pem"),
    }
    assert [s["driver"] for s in config["sensors"]] == ["sds011", "bme280"]

    # The host fixes the port and adds a location; the operator changes the password.
    edited = (etc / "edge.toml").read_text().replace("/dev/ttyUSB0", "/dev/ttyAMA0")
    edited += "\n[location]\nlat = 52.1\nlon = 5.1\n"
    (etc / "edge.toml").write_text(edited)
    again = join(_code(password="new"), Layout(tmp_path))
    assert not again.new_key
    assert any("kept the [[sensors]]" in n for n in again.notes)
    config = _config(tmp_path)
    assert config["sensors"][0]["port"] == "/dev/ttyAMA0"
    assert config["location"] == {"lat": 52.1, "lon": 5.1}
    assert config["mqtt"]["password"] == "new"


def test_a_device_whose_sensors_have_no_driver_is_told_what_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    joined = join(_code(sensors=["ips7100"]), Layout(tmp_path))
    (note,) = [n for n in joined.notes if "no sensor declared" in n]
    assert "(ips7100) has a driver" in note and "add a [[sensors]] section" in note


def test_a_device_with_an_sps30_and_an_scd4x_gets_their_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answer(monkeypatch, None)
    join(_code(sensors=["bme280", "sps30", "scd4x"]), Layout(tmp_path))
    drivers = [s["driver"] for s in _config(tmp_path)["sensors"]]
    assert drivers == ["bme280", "sps30", "scd4x"]
