"""`sensorpipe devices edit`: the public register fields of a device an import registered
without them (a logger's or a station's location), nothing that shapes stored readings."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import DeviceEntry, Registry, load_registry, save_registry


def test_a_logger_gets_its_location_and_purpose(tmp_path: Path) -> None:
    directory = tmp_path / "stack"
    logger = DeviceEntry(site="burdens-creek", source="import", sensors=["logger"], purpose="p")
    save_registry(Registry(devices={"rt01": logger}), directory / "registry.toml")
    result = CliRunner().invoke(
        main,
        ["devices", "edit", "rt01", "--lat", "35.8893", "--lon", "-78.8746", "--precision",
         "2", "--purpose", "co-located with the station", "--dir", str(directory)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "location, location_precision_decimals, purpose changed" in result.output
    entry = load_registry(directory / "registry.toml").devices["rt01"]
    assert entry.location is not None and (entry.location.lat, entry.location.lon) == (
        35.8893,
        -78.8746,
    )
    assert (entry.purpose, entry.location_precision_decimals) == ("co-located with the station", 2)
    assert (entry.site, entry.sensors, entry.source) == ("burdens-creek", ["logger"], "import")
    exported = CliRunner().invoke(main, ["devices", "export", "--dir", str(directory)])
    (published,) = json.loads(exported.stdout)
    assert published["location"] == {"lat": 35.89, "lon": -78.87, "precision_decimals": 2}
