"""The dashboard's quantity table (sensorpipe/api/static/dashboard.js, `QUANTITIES`) covers
every quantity of protocol.quantities with the same unit, and each of its charts is one the
page knows: a new quantity is given its label, unit and chart there (the page still draws one
it lacks, on a chart of its own, labelled by its name)."""

from __future__ import annotations

import re

from sensorpipe.api.dashboard import STATIC_DIR
from sensorpipe.protocol.quantities import QUANTITIES

SOURCE = (STATIC_DIR / "dashboard.js").read_text()
ENTRY = re.compile(
    r'^\s+(\w+): \{ label: "([^"]+)", unit: "([^"]+)", digits: (\d), chart: "([\w-]+)" \},$',
    re.M,
)
UNIT_TEXT = {"ug/m3": "µg/m³", "degC": "°C", "1/cm3": "per cm³", "dBA": "dB(A)", "um": "µm"}


def _block(name: str) -> str:
    start = SOURCE.index(f"  const {name} = {{")
    return SOURCE[start : SOURCE.index("\n  };\n", start)]


def js_quantities() -> dict[str, tuple[str, str, str, str]]:
    """The page's table: quantity -> (label, unit, digits, chart)."""
    return {m[1]: (m[2], m[3], m[4], m[5]) for m in ENTRY.finditer(_block("QUANTITIES"))}


def test_every_quantity_has_its_label_unit_and_chart() -> None:
    table = js_quantities()
    assert set(QUANTITIES) - set(table) == set()
    charts = set(re.findall(r'^    "?([\w-]+)"?: \{ unit:', _block("CHARTS"), re.M))
    for name, q in QUANTITIES.items():
        _label, unit, _digits, chart = table[name]
        assert unit == UNIT_TEXT.get(q.unit, q.unit), name
        assert chart in charts, name
    # Counts larger than a size and number concentrations smaller than one never share a chart.
    assert {table[q][3] for q in table if q.startswith("particles_")} == {"particles"}
    assert {table[q][3] for q in table if q.startswith("number_")} == {"numbers"}
