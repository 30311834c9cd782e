"""`edge join` writes a section for every sensor kind the agent reads, as [[sensors]] tables, so
a [[sensors]] block copied from the docs can be appended; the tags its sections give are those
declared, so the ingest takes the agent's readings and status."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sensorpipe.edge.config import load_edge_config
from sensorpipe.edge.drivers.registry import MODEL_DRIVERS, Pms5003Config, sensor_tag
from sensorpipe.edge.join import Layout, join
from sensorpipe.ingest.validate import Validator
from sensorpipe.protocol.registry import DeviceEntry
from tests.test_edge_join_files import _answer, _code

ROOT = Path(__file__).parent.parent
# Every model the agent reads, and a second soil probe and DS18B20 with their own tags.
DECLARED = [*sorted(MODEL_DRIVERS), "soil_probe.bed2", "ds18b20.deep"]


def docs_blocks() -> list[str]:
    """The [[sensors]] blocks of docs/edge.md and README.md (indented or fenced), dedented."""
    blocks = []
    for doc in ("docs/edge.md", "README.md"):
        lines = (ROOT / doc).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "[[sensors]]":
                continue
            indent = len(line) - len(line.lstrip())
            block = [line[indent:]]
            for more in lines[i + 1 :]:
                stripped = more.strip()
                ends = not stripped or stripped.startswith("```") or stripped == "[[sensors]]"
                if ends or len(more) - len(more.lstrip()) < indent:
                    break
                block.append(more[indent:])
            blocks.append("\n".join(block) + "\n")
    return blocks


def test_the_docs_have_sensor_blocks_to_append() -> None:
    drivers = " ".join(docs_blocks())
    assert all(f'driver = "{d}"' in drivers for d in ("ds18b20", "pms5003", "sps30"))


@pytest.fixture
def joined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    _answer(monkeypatch, None)
    # No TLS: the test code's CA is no certificate, which load_edge_config would refuse.
    code = _code(sensors=[*DECLARED, "hpma115"], tls=False, ca_pem=None)
    result = join(code, Layout(tmp_path))
    return tmp_path / "etc" / "sensorpipe" / "edge.toml", result.notes


def test_every_sensor_kind_gets_a_section_with_the_declared_tag(
    joined: tuple[Path, list[str]],
) -> None:
    path, notes = joined
    config = load_edge_config(path)
    tags = [sensor_tag(s) for s in config.sensors]
    assert tags == DECLARED
    soil = [s for s in config.sensors if s.driver == "soil_ads1115"]
    assert [getattr(s, "channel", None) for s in soil] == [0, 1]  # AIN0, then AIN1
    # What the agent sends (readings and status, tagged so) is what the device declared.
    status = SimpleNamespace(
        device_id="pi-1", readings=[], sensors=[SimpleNamespace(sensor=t) for t in tags]
    )
    entry = DeviceEntry(site="garden", sensors=[*DECLARED, "hpma115"], password_hash="h")
    Validator._check_tags(status, entry)  # type: ignore[arg-type]
    text = path.read_text()
    assert "sensors = [" not in text and text.count("[[sensors]]") == len(DECLARED)
    assert "address = 0x48" in text and "TYPICAL values" in text
    (soil_note,) = [n for n in notes if "v_dry/v_wet" in n]
    assert soil_note.startswith("soil_probe, soil_probe.bed2: ") and "typical values" in soil_note
    (missing,) = [n for n in notes if n.startswith("no section written for")]
    assert "hpma115" in missing


def test_a_docs_sensor_block_appended_to_joins_file_loads(
    joined: tuple[Path, list[str]],
) -> None:
    path, _ = joined
    blocks = docs_blocks()
    assert blocks
    for i, block in enumerate(blocks):
        appended = path.with_name(f"edge-{i}.toml")
        appended.write_text(path.read_text() + "\n" + block)
        config = load_edge_config(appended)  # before: "Cannot mutate immutable namespace"
        assert len(config.sensors) == len(DECLARED) + 1, block


def test_a_rejoin_keeps_a_pasted_block_as_a_table(
    joined: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, _ = joined
    (pms,) = [b for b in docs_blocks() if 'driver = "pms5003"' in b]  # with duty = { ... }
    path.write_text(path.read_text() + "\n" + pms)
    again = join(_code(sensors=DECLARED, tls=False, ca_pem=None), Layout(tmp_path))
    assert any("kept the [[sensors]]" in n for n in again.notes)
    text = path.read_text()
    assert "duty = { wake_s = 30 }" in text and "sensors = [" not in text
    config = load_edge_config(path)
    assert len(config.sensors) == len(DECLARED) + 1
    pasted = config.sensors[-1]
    assert isinstance(pasted, Pms5003Config) and pasted.duty is not None
    assert pasted.duty.wake_s == 30
