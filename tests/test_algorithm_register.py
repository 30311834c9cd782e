"""The algorithms sensorpipe uses, in the Dutch algorithm register's publication standard 1.0:
`devices export --format algorithms|algorithms-html` and `/api/v1/algorithms`.

The standard's keys, required keys and permitted values are written out here from the
register's own definition (MinBZK/Algoritmeregister, backend/app/schemas/config/v1_0.json), not
taken from the code under test; the counting model's facts are read here from its JSON file
and model card with expressions of this file's own."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sensorpipe.api.app import create_app
from sensorpipe.api.config import ServeConfig
from sensorpipe.api.context import ApiContext
from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import DeviceEntry, NetworkInfo, Registry, save_registry
from sensorpipe.query.algorithm_page import to_html
from sensorpipe.query.algorithms import (
    CALIBRATION_METHODS,
    AlgorithmEntry,
    ModelCardError,
    algorithm_entries,
    counting_model_facts,
    entry_fields,
)
from sensorpipe.resources import MODELS

# v1.0's keys; `lars` and `publication_dt` are assigned by the national register.
STANDARD_KEYS = {
    "name", "description_short", "organization", "category", "status", "begin_date",
    "end_date", "contact_email", "website", "publication_category", "url", "goal",
    "proportionality", "human_intervention", "risks", "lawful_basis", "lawful_basis_grouping",
    "process_index_url", "impacttoetsen_grouping", "impacttoetsen", "source_data",
    "source_data_grouping", "methods_and_models", "provider", "publiccode", "lang",
    "standard_version", "source_id", "tags",
}  # fmt: skip
REQUIRED = {
    "name", "description_short", "organization", "status", "contact_email",
    "publication_category", "lang",
}  # fmt: skip
MAX_LENGTH = {
    "name": 100, "description_short": 400, "organization": 100, "contact_email": 500,
    "goal": 2500, "proportionality": 2500, "human_intervention": 2500, "risks": 2500,
    "lawful_basis": 2500, "impacttoetsen": 2500, "source_data": 2500,
    "methods_and_models": 5000, "provider": 200, "source_id": 100, "tags": 2500,
}  # fmt: skip
CATEGORIES = {
    "Organisatie en bedrijfsvoering", "Cultuur en recreatie", "Economie", "Overheidsfinanciën",
    "Wonen", "Internationaal", "Migratie en integratie", "Natuur en milieu",
    "Onderwijs en wetenschap", "Openbare orde en veiligheid", "Recht",
    "Ruimte en infrastructuur", "Sociale zekerheid", "Verkeer", "Werk", "Zorg en gezondheid",
}  # fmt: skip
STATUSES = {"In ontwikkeling", "In gebruik", "Buiten gebruik"}
PUBLICATION_CATEGORIES = {"Hoog-risico AI-systeem", "Impactvolle algoritmes", "Overige algoritmes"}
HOSTILE = "<script>alert(1)</script>"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack directory whose register has a counting camera (with its own contact and legal
    basis) and no network settings."""
    monkeypatch.setenv("SENSORPIPE_DIR", str(tmp_path / "no-stack"))
    d = tmp_path / "st"
    d.mkdir()
    camera = DeviceEntry(
        site="oudwijk",
        sensors=["camera"],
        contact="verkeer@example.org",
        legal_basis="task",
        source="import",
    )
    save_registry(Registry(devices={"cam-1": camera}), d / "registry.toml")
    return d


def set_network(directory: Path) -> None:
    done = run(
        "devices", "network", "--dir", str(directory), "--operator", "Gemeente Utrecht",
        "--contact", "lucht@utrecht.nl", "--legal-basis", "Omgevingswet, art. 20.1",
    )  # fmt: skip
    assert done.exit_code == 0, done.output


def test_json_has_the_standards_keys_and_permitted_values(directory: Path) -> None:
    set_network(directory)
    result = run("devices", "export", "--dir", str(directory), "--format", "algorithms")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # every organisation field is set: no warning
    entries = json.loads(result.stdout)
    assert [e["source_id"].split(":")[1] for e in entries] == ["counting"] + ["calibration"] * 4
    assert [e["source_id"].split(":")[2] for e in entries[1:]] == [
        "linear", "linear_rh", "kohler", "group",
    ]  # fmt: skip
    for entry in entries:
        AlgorithmEntry.model_validate(entry)
        assert set(entry) == STANDARD_KEYS
        assert all(isinstance(entry[k], str) and entry[k].strip() for k in REQUIRED), entry
        assert all(len(entry[k]) <= n for k, n in MAX_LENGTH.items()), entry["name"]
        assert set(entry["category"]) <= CATEGORIES
        assert entry["status"] in STATUSES
        assert entry["publication_category"] in PUBLICATION_CATEGORIES
        assert (entry["lang"], entry["standard_version"]) == ("nld", "1.0")
        assert entry["organization"] == "Gemeente Utrecht"
        assert entry["contact_email"] == "lucht@utrecht.nl"
        assert entry["lawful_basis"] == "Omgevingswet, art. 20.1"
    # The register has a counting camera: the counting model is in use; no calibration is
    # assigned by this register, so the methods are not yet.
    assert [e["status"] for e in entries] == ["In gebruik"] + ["In ontwikkeling"] * 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "Actief"}, "status"),
        ({"publication_category": "Categorie C"}, "publication_category"),
        ({"category": ["Milieu"]}, "category"),
        ({"lang": "eng"}, "lang"),
        ({"begin_date": "2025-13"}, "begin_date"),
        ({"name": "x" * 101}, "name"),
        ({"description_short": "x" * 401}, "description_short"),
        ({"decision_making_process": "x"}, "decision_making_process"),  # v0.x, not 1.0
    ],
)
def test_the_model_refuses_what_the_standard_does_not_permit(
    change: dict[str, Any], field: str
) -> None:
    entry = algorithm_entries(Registry())[1].model_dump()
    AlgorithmEntry.model_validate(entry)
    with pytest.raises(ValidationError, match=field):
        AlgorithmEntry.model_validate({**entry, **change})
    without = {k: v for k, v in entry.items() if k != "contact_email"}
    with pytest.raises(ValidationError, match="contact_email"):
        AlgorithmEntry.model_validate(without)


def _card_figures(card: str, model_file: str) -> dict[str, float]:
    """The shipped row of the counting table in `model_file`'s section of the model card."""
    section = card.split(f"# Real-street detector: `{model_file}`")[1].split("\n# ")[0]
    row = re.search(r"^\| \*\*([\d.]+) \(shipped\)\*\* \|(.*)\|$", section, re.M)
    assert row is not None
    wape, precision, recall = (float(c.strip(" *%")) for c in row.group(2).split("|")[:3])
    return {"threshold": float(row.group(1)), "wape": wape, "precision": precision,
            "recall": recall}  # fmt: skip


def _dutch(value: float, decimals: int = 1) -> str:
    return f"{value:.{decimals}f}".replace(".", ",")


def test_the_counting_entry_states_the_model_cards_and_json_facts() -> None:
    spec = json.loads((MODELS / "coco-nanodet-m-416.json").read_text())
    card = (MODELS / "MODEL_CARD.md").read_text()
    figures = _card_figures(card, "coco-nanodet-m-416.onnx")
    network_row = re.search(r"^\| network \| ([^ (|]+)", card, re.M)
    assert network_row is not None
    (entry,) = [e for e in algorithm_entries(Registry()) if "counting" in e.source_id]
    how = entry.methods_and_models

    assert network_row.group(1) == "NanoDet-m" and network_row.group(1) in entry.name
    assert f"{spec['input'][3]}×{spec['input'][2]} pixels" in how
    assert f"Van de {len(spec['classes'])} klassen worden er {len(spec['class_map'])}" in how
    for model_class in spec["class_map"]:
        assert f"‘{model_class}’ → " in how
    assert f"zekerheid {_dutch(spec['conf_threshold'], 2)}" in how
    assert spec["sha256"] in how and entry.source_id.endswith(spec["sha256"][:12])
    assert f"bij drempel {_dutch(figures['threshold'], 2)}" in how
    assert f"(WAPE) {_dutch(figures['wape'])} %" in how
    assert f"precisie {_dutch(figures['precision'])} %" in how
    assert f"recall {_dutch(figures['recall'])} %" in how
    # The card's shipped threshold is the one the JSON file ships.
    assert figures["threshold"] == spec["conf_threshold"]

    facts = counting_model_facts()
    assert (facts.wape_pct, facts.precision_pct, facts.recall_pct) == (
        figures["wape"], figures["precision"], figures["recall"],
    )  # fmt: skip
    assert facts.class_map == spec["class_map"]


def test_a_changed_model_card_changes_the_entry(tmp_path: Path) -> None:
    """Nothing of the card is copied into the code: edit the card and the entry follows."""
    for name in ("coco-nanodet-m-416.json", "MODEL_CARD.md"):
        shutil.copy(MODELS / name, tmp_path / name)
    card = tmp_path / "MODEL_CARD.md"
    text = card.read_text()
    shipped = re.search(r"^\| \*\*0.30 \(shipped\)\*\* \|.*$", text, re.M)
    assert shipped is not None
    new_row = "| **0.30 (shipped)** | **4.5 %** | **91.2 %** | **88.8 %** | **0** |"
    card.write_text(text.replace(shipped.group(0), new_row).replace("NanoDet-m (", "NanoDet-x ("))
    model = tmp_path / "coco-nanodet-m-416.onnx"
    (entry,) = [e for e in entry_fields(Registry(), model=model) if "counting" in e["source_id"]]
    how = entry["methods_and_models"]
    assert "(WAPE) 4,5 %" in how and "precisie 91,2 %" in how and "recall 88,8 %" in how
    assert entry["name"] == "Passanten tellen met een camera (NanoDet-x)"

    card.write_text(text.replace(shipped.group(0), "| 0.30 | 0.0 % | 96.9 % | 96.9 % | 0 |"))
    with pytest.raises(ModelCardError, match=r"no '\(shipped\)' row"):
        entry_fields(Registry(), model=model)


def test_each_calibration_method_is_described_in_dutch_and_english() -> None:
    assert list(CALIBRATION_METHODS) == ["linear", "linear_rh", "kohler", "group"]
    for method, by_lang in CALIBRATION_METHODS.items():
        assert set(by_lang) == {"nl", "en"}, method
        for description in by_lang.values():
            assert all(str(v).strip() for v in vars(description).values()), method
    nl = {m: CALIBRATION_METHODS[m]["nl"] for m in CALIBRATION_METHODS}
    assert "luchtvochtigheid" in nl["linear_rh"].data and "luchtvochtigheid" in nl["kohler"].data
    assert "luchtvochtigheid" not in nl["linear"].data
    assert "dichtstbijzijnde" in nl["group"].data
    (entry,) = [e for e in entry_fields(Registry()) if e["source_id"].endswith(":kohler")]
    # The risks every method shares and how they are managed: fog, other sensors, drift; flags,
    # validity periods and the EPA targets.
    for word in ("mist", "98 %", "drift", "kwaliteitsvlaggen", "geldigheidsperiode", "US EPA"):
        assert word in entry["risks"], word


def _visible_text(page: str) -> str:
    body = re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)
    return html.unescape(body)


def test_the_dutch_page_has_no_english_from_these_texts() -> None:
    registry = Registry(network=NetworkInfo(operator="Gemeente Utrecht"))
    dutch = entry_fields(registry, lang="nl")
    english = entry_fields(registry, lang="en")
    page = to_html(dutch, registry.network, lang="nl")
    assert '<html lang="nl">' in page and "Algoritmes: sensorpipe-meetnet" in page
    text = _visible_text(page)
    for en, nl in zip(english, dutch, strict=True):
        for key, value in en.items():
            if isinstance(value, str) and value != nl[key] and len(value) > 12:
                assert html.escape(value) not in page, (key, value[:60])
    words = re.findall(r"\b(the|and|with|which|from|when|does|not|only|is)\b", text)
    assert set(words) <= {"is"}, sorted(set(words))  # "is" is Dutch too
    english_page = to_html(english, registry.network, lang="en")
    assert "Korte omschrijving" not in english_page and "Short description" in english_page
    assert "In development" in english_page and "In ontwikkeling" not in english_page


def test_the_page_escapes_the_operators_values_and_fits_a_phone() -> None:
    registry = Registry(network=NetworkInfo(operator=HOSTILE, name=HOSTILE))
    page = to_html(entry_fields(registry), registry.network, lang="nl")
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width:40rem)" in page  # the register page's styles: one column


def test_missing_organisation_fields_warn_in_one_line_and_exit_0(directory: Path) -> None:
    result = run("devices", "export", "--dir", str(directory), "--format", "algorithms")
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert warnings == [
        "warning: the algorithm register's entries leave the organisation, contact, legal basis "
        "empty: give them with `sensorpipe devices network --operator ... --contact ... "
        "--legal-basis ...`"
    ]
    entries = json.loads(result.stdout)
    assert {(e["organization"], e["contact_email"], e["lawful_basis"]) for e in entries} == {
        ("", "", "")
    }  # left empty: the device's own contact is not the organisation's


def test_the_page_is_written_to_a_file_in_dutch_by_default(directory: Path) -> None:
    set_network(directory)
    out = directory / "algoritmes.html"
    result = run(
        "devices", "export", "--dir", str(directory), "--format", "algorithms-html",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote 5 algorithms (algorithms-html) to {out}\n"
    assert '<html lang="nl">' in out.read_text()
    english = run(
        "devices", "export", "--dir", str(directory), "--format", "algorithms-html",
        "--lang", "en",
    )  # fmt: skip
    assert english.exit_code == 0 and '<html lang="en">' in english.stdout


def test_the_api_answers_with_the_same_entries(directory: Path) -> None:
    set_network(directory)
    app = create_app(ApiContext(ServeConfig(registry_path=str(directory / "registry.toml"))))
    answer = TestClient(app).get("/api/v1/algorithms")
    assert answer.status_code == 200, answer.text
    cli = run("devices", "export", "--dir", str(directory), "--format", "algorithms")
    assert answer.json() == json.loads(cli.stdout)
    schema = app.openapi()
    operation = schema["paths"]["/api/v1/algorithms"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/AlgorithmEntry"
    }
    status = schema["components"]["schemas"]["AlgorithmEntry"]["properties"]["status"]
    assert set(status["enum"]) == STATUSES


def test_an_entry_says_which_methods_are_computed_and_which_not_yet() -> None:
    """The methods `calibrate fit` offers, and `group` (`calibrate group`), are the ones whose
    entries say how they are fitted; any other would say it is in development."""
    from sensorpipe.cli.calibrate import METHOD_CHOICES
    from sensorpipe.query.calibration_texts import BUILT, FIT_STATS, NOT_BUILT

    assert set(BUILT) == {*METHOD_CHOICES, "group"}
    registry = Registry()
    for fields in entry_fields(registry)[1:]:
        method = fields["source_id"].rsplit(":", 1)[1]
        text = fields["methods_and_models"]
        if method in BUILT:
            assert FIT_STATS["nl"] in text and NOT_BUILT["nl"] not in text
        else:
            assert NOT_BUILT["nl"] in text and FIT_STATS["nl"] not in text
