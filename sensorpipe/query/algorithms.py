"""The algorithms sensorpipe uses, in the terms of the Dutch public algorithm register
(*Algoritmeregister*, publication standard 1.0): one entry for the on-device counting model and
one per calibration method, as JSON in the standard's field names and as a page in Dutch or
English, published beside the sensor register (`devices export --format algorithms`,
`/api/v1/algorithms`).

The field names, limits and permitted values are those of the register's own definition
(MinBZK/Algoritmeregister, `backend/app/schemas/config/v1_0.json`, commit 4885a05 of
2025-09-03). The register publishes in Dutch only (`lang` is `nld`), so the JSON is Dutch; the
page also comes in English.

Where the facts come from, so that nothing is copied by hand where it can go stale:
- the counting model: its JSON file beside it (classes, class map, input size, threshold,
  licence, checksum) and its model card, `sensorpipe/models/MODEL_CARD.md` (network, training
  data, the evaluation on real footage, speed), read when an entry is made;
- the calibration methods: `calibration_texts.CALIBRATION_METHODS`, keyed by method name (`linear`,
  `linear_rh`, `kohler`, `group`), for the calibration code to refer to;
- the organisation (name, contact, legal basis): the register's network settings
  (`sensorpipe devices network`); what is not set there is left empty and
  `missing_organisation_fields` names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sensorpipe.protocol.register import counts_passers_by
from sensorpipe.protocol.registry import NetworkInfo, Registry
from sensorpipe.query.calibration_texts import (
    BUILT,
    CALIBRATION_GOAL,
    CALIBRATION_IMPACT,
    CALIBRATION_METHODS,
    CALIBRATION_PROPORTIONALITY,
    CALIBRATION_RISKS,
    CALIBRATION_TAGS,
    FIT_STATS,
    NOT_BUILT,
    Lang,
    calibration_description,
)
from sensorpipe.query.register_page import CLASS_NAMES
from sensorpipe.resources import MODELS

STANDARD_VERSION: Literal["1.0"] = "1.0"
LANGUAGES = ("nl", "en")

Category = Literal[
    "Organisatie en bedrijfsvoering",
    "Cultuur en recreatie",
    "Economie",
    "Overheidsfinanciën",
    "Wonen",
    "Internationaal",
    "Migratie en integratie",
    "Natuur en milieu",
    "Onderwijs en wetenschap",
    "Openbare orde en veiligheid",
    "Recht",
    "Ruimte en infrastructuur",
    "Sociale zekerheid",
    "Verkeer",
    "Werk",
    "Zorg en gezondheid",
]
Status = Literal["In ontwikkeling", "In gebruik", "Buiten gebruik"]
PublicationCategory = Literal[
    "Hoog-risico AI-systeem", "Impactvolle algoritmes", "Overige algoritmes"
]
_MONTH = r"^(\d{4}-(0[1-9]|1[0-2]))?$"  # YYYY-MM, or empty


class LawfulBasisLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=100, title="Titel van wettelijke basis")
    link: str = Field(max_length=500, title="Link naar wettelijke basis")


class ImpactAssessmentLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(title="Titel van impacttoets")
    link: str = Field(default="", max_length=500, title="Link naar impacttoets")


class SourceDataLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=500, title="Titel van gegevensbron")
    link: str = Field(max_length=500, title="Link naar gegevensbron")


class AlgorithmEntry(BaseModel):
    """One algorithm in the register's publication standard 1.0: the keys are the standard's,
    each with its Dutch title, limit and permitted values. `lars` and `publication_dt` are left
    out: the national register assigns them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, title="Naam")
    description_short: str = Field(max_length=400, title="Korte omschrijving")
    organization: str = Field(max_length=100, title="Organisatie")
    category: list[Category] = Field(default_factory=list, title="Thema")
    status: Status = Field(title="Status")
    begin_date: str = Field(default="", max_length=7, pattern=_MONTH, title="Begindatum")
    end_date: str = Field(default="", max_length=7, pattern=_MONTH, title="Einddatum")
    contact_email: str = Field(max_length=500, title="Contactgegevens")
    website: str = Field(default="", max_length=500, title="Link naar publiekspagina")
    publication_category: PublicationCategory = Field(title="Publicatiecategorie")
    url: str = Field(default="", max_length=500, title="Link naar bronregistratie")
    goal: str = Field(default="", max_length=2500, title="Doel en impact")
    proportionality: str = Field(default="", max_length=2500, title="Afwegingen")
    human_intervention: str = Field(default="", max_length=2500, title="Menselijke tussenkomst")
    risks: str = Field(default="", max_length=2500, title="Risicobeheer")
    lawful_basis: str = Field(default="", max_length=2500, title="Wettelijke basis")
    lawful_basis_grouping: list[LawfulBasisLink] = Field(
        default_factory=list, title="Verwijzingen wettelijke basis"
    )
    process_index_url: str = Field(
        default="", max_length=500, title="Link naar verwerkingsregister"
    )
    impacttoetsen_grouping: list[ImpactAssessmentLink] = Field(
        default_factory=list, title="Impacttoetsen"
    )
    impacttoetsen: str = Field(default="", max_length=2500, title="Toelichting op impacttoetsen")
    source_data: str = Field(default="", max_length=2500, title="Gegevens")
    source_data_grouping: list[SourceDataLink] = Field(
        default_factory=list, title="Verwijzingen gegevensbronnen"
    )
    methods_and_models: str = Field(default="", max_length=5000, title="Technische werking")
    provider: str = Field(default="", max_length=200, title="Leverancier")
    publiccode: str = Field(default="", max_length=500, title="Link naar broncode")
    lang: Literal["nld"] = Field(title="Taal")
    standard_version: Literal["1.0"] = Field(
        default=STANDARD_VERSION, title="Versie publicatiestandaard"
    )
    source_id: str = Field(default="", max_length=100, title="Bron-ID")
    tags: str = Field(default="", max_length=2500, title="Zoektermen")


# --- the organisation: the register's network settings -------------------------------------
# Standard key -> (NetworkInfo field, what it is, the `devices network` option that sets it).
ORGANISATION_FIELDS = {
    "organization": ("operator", "organisation", "--operator"),
    "contact_email": ("contact", "contact", "--contact"),
    "lawful_basis": ("legal_basis", "legal basis", "--legal-basis"),
}


def missing_organisation_fields(network: NetworkInfo) -> list[tuple[str, str]]:
    """What the entries need of the network settings and the register lacks: (what it is,
    the `devices network` option that sets it)."""
    return [
        (what, option)
        for field, what, option in ORGANISATION_FIELDS.values()
        if not str(getattr(network, field)).strip()
    ]


def _organisation(network: NetworkInfo) -> dict[str, Any]:
    return {key: str(getattr(network, f[0])).strip() for key, f in ORGANISATION_FIELDS.items()}


# --- the counting model: facts from its JSON file and its model card -----------------------
MODEL_CARD = MODELS / "MODEL_CARD.md"
COUNTING_MODEL = MODELS / "coco-nanodet-m-416.onnx"


class ModelCardError(ValueError):
    """The model card or the model's JSON file lacks a fact the entry needs."""


@dataclass(frozen=True)
class CountingModelFacts:
    file: str  # the ONNX file's name
    network: str  # e.g. NanoDet-m
    trained_on: str  # the training data set, e.g. "COCO 2017" (of "COCO 2017 train")
    n_classes: int
    class_map: dict[str, str]  # model class -> count class
    input_width: int
    input_height: int
    conf_threshold: float
    licence: str
    sha256: str
    clip: str  # the real footage it was evaluated on
    crossings: int  # annotated crossings in it
    eval_threshold: float
    wape_pct: float
    precision_pct: float
    recall_pct: float
    frames_per_second: float


def _card_section(card: str, file: str) -> str:
    """The model card's top-level section whose heading names `file`."""
    sections = re.split(r"(?m)^# ", card)
    for section in sections:
        heading = section.split("\n", 1)[0]
        if f"`{file}`" in heading:
            return section
    raise ModelCardError(f"{MODEL_CARD.name}: no section '# ... `{file}`'")


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([c.strip().replace("**", "") for c in line.strip().strip("|").split("|")])
    return rows


def _search(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        raise ModelCardError(f"{MODEL_CARD.name}: cannot find {what} (pattern {pattern!r})")
    return match


def _pct(cell: str) -> float:
    return float(cell.rstrip(" %"))


def counting_model_facts(
    model: Path = COUNTING_MODEL, card_path: Path | None = None
) -> CountingModelFacts:
    """What the entry says about the counting model: from `model`'s JSON file and the section
    of the model card (`card_path`, default MODEL_CARD.md beside it) that names it."""
    # The JSON file beside the model, named as edge.counting.modelspec.sidecar_of names it
    # (query may not import edge).
    sidecar = model.with_name(model.name.split(".")[0] + ".json")
    try:
        spec = json.loads(sidecar.read_text(encoding="utf-8"))
        card = (card_path or model.with_name(MODEL_CARD.name)).read_text(encoding="utf-8")
        _, _, height, width = (int(n) for n in spec["input"])
        classes, class_map = list(spec["classes"]), dict(spec["class_map"])
        conf, licence, sha256 = float(spec["conf_threshold"]), spec["licence"], spec["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelCardError(f"{sidecar}: not the model's facts ({exc})") from exc
    section = _card_section(card, model.name)
    table = _table_rows(section)
    facts = {row[0]: row[1] for row in table if len(row) == 2}
    if "network" not in facts or "trained on" not in facts:
        raise ModelCardError(
            f"{MODEL_CARD.name}: no 'network' or 'trained on' row for {model.name}"
        )
    shipped = [i for i, row in enumerate(table) if row and row[0].endswith("(shipped)")]
    if not shipped:
        raise ModelCardError(f"{MODEL_CARD.name}: no '(shipped)' row in {model.name}'s section")
    row = table[shipped[0]]
    try:
        # The table's header: the nearest row above that starts with no figure.
        header = next(r for r in reversed(table[: shipped[0]]) if not r[0][:1].isdigit())
        cells = dict(zip(header, row, strict=False))
        evaluation = {
            "eval_threshold": float(row[0].split()[0]),
            "wape_pct": _pct(next(v for k, v in cells.items() if "WAPE" in k)),
            "precision_pct": _pct(cells["precision"]),
            "recall_pct": _pct(cells["recall"]),
        }
    except (StopIteration, KeyError, ValueError) as exc:
        raise ModelCardError(f"{MODEL_CARD.name}: the shipped row {row} ({exc})") from exc
    return CountingModelFacts(
        file=model.name,
        network=facts["network"].split(" (")[0],
        trained_on=re.sub(r" train$", "", facts["trained on"].split(",")[0].split(" (")[0]),
        n_classes=len(classes),
        class_map=class_map,
        input_width=width,
        input_height=height,
        conf_threshold=conf,
        licence=str(licence).split(";")[0].strip(),
        sha256=str(sha256),
        clip=_search(r"The clip: `([^`]+)`", section, "the evaluation clip").group(1),
        crossings=int(_search(r"(\d+) crossings", section, "the crossings").group(1)),
        frames_per_second=float(
            _search(r"\*\*([\d.]+) frames per second\*\*", section, "the speed").group(1)
        ),
        **evaluation,
    )


# --- texts --------------------------------------------------------------------------------
def _num(value: float, lang: str, decimals: int = 1) -> str:
    out = f"{value:.{decimals}f}"
    return out.replace(".", ",") if lang == "nl" else out


def _join(items: Sequence[str], lang: str) -> str:
    if len(items) < 2:
        return "".join(items)
    # A comma before the last item too: the items have "and" in them ("cars and vans").
    return ", ".join(items[:-1]) + (", en " if lang == "nl" else ", and ") + items[-1]


_COUNTING: dict[str, dict[str, str]] = {
    "nl": {
        "name": "Passanten tellen met een camera ({network})",
        "short": (
            "Een camera telt hoeveel {classes} een lijn op straat passeren, per richting. De "
            "beelden worden alleen op het apparaat verwerkt en nooit opgeslagen of verstuurd; "
            "alleen de aantallen verlaten het apparaat."
        ),
        "goal": (
            "Het doel is te weten hoeveel mensen en voertuigen een straat gebruiken, om beleid "
            "voor verkeer en openbare ruimte te onderbouwen en te evalueren. Het algoritme "
            "herkent niemand: het ziet dat er een voetganger of fietser is, niet wie dat is. Er "
            "wordt geen besluit over een persoon genomen."
        ),
        "proportionality": (
            "Handmatig tellen is duur en kan maar een paar dagen per jaar. Een telslang of radar "
            "onderscheidt voetgangers en fietsers slecht. Een camera telt alle klassen dag en "
            "nacht, maar ziet mensen in de openbare ruimte. Daarom blijven de beelden op het "
            "apparaat: ze worden niet opgeslagen of verstuurd, en alleen anonieme aantallen per "
            "klasse en richting verlaten het apparaat."
        ),
        "human": (
            "Er wordt geen besluit over personen genomen. De beheerder kiest de plek, de tellijn "
            "en de klassen, en kan een camera uitzetten. Een analist gebruikt de aantallen in "
            "rapporten over verkeer. Voordat ze beleid onderbouwen, vergelijkt een medewerker ze "
            "met een handmatige telling op de plek van de camera."
        ),
        "risks": (
            "Het model is op echte beelden alleen gemeten op de opname die bij de technische "
            "werking staat. Wat daarin niet voorkomt, is niet gemeten; de modelkaart noemt het. "
            "Mensen ver weg of half verborgen worden soms gemist, en mensen die elkaar op de "
            "tellijn passeren kosten de meeste fouten. Beheersing: een handmatige controletelling "
            "op elke nieuwe plek; de gemeten nauwkeurigheid wordt gepubliceerd; de beelden "
            "blijven op het apparaat, zodat een fout geen gevolgen voor de privacy heeft."
        ),
        "impact": (
            "De camera ziet mensen in de openbare ruimte. Daarom hoort bij het plaatsen een "
            "gegevensbeschermingseffectbeoordeling (DPIA) door de organisatie."
        ),
        "data": (
            "Camerabeelden van de straat, alleen in het geheugen van het apparaat. Het model is "
            "getraind door de makers van {network} op de trainingsset van {trained_on} "
            "({n_classes} klassen); sensorpipe heeft het niet bijgetraind."
        ),
        "how": (
            "Elk beeld wordt verkleind tot {width}×{height} pixels en gaat door het neurale "
            "netwerk {network} (bestand {file}, sha256 {sha256}). Het netwerk geeft kaders met "
            "een klasse en een zekerheid; een kader telt vanaf zekerheid {conf}. Van de "
            "{n_classes} klassen worden er {n_counted} geteld: {mapping}. Een volgalgoritme "
            "volgt elk object van beeld tot beeld en telt het één keer als het de tellijn "
            "oversteekt, per richting. Het model is niet zelflerend: het verandert niet tijdens "
            "gebruik. Gemeten op de opname {clip} ({crossings} met de hand getelde oversteken "
            "door voetgangers), bij drempel {eval_threshold}: fout in het totaal (WAPE) {wape} %, "
            "precisie {precision} %, recall {recall} %. De drempel is op deze opname gekozen, "
            "dus deze cijfers zijn optimistisch. Snelheid: {fps} beelden per seconde op één "
            "rekenkern. Licentie van het model: {licence}. Details: de modelkaart, "
            "sensorpipe/models/MODEL_CARD.md."
        ),
        "provider": "sensorpipe (open source); model {network}",
        "tags": "tellen, camera, verkeer, voetgangers, fietsers, sensorpipe",
    },
    "en": {
        "name": "Counting passers-by with a camera ({network})",
        "short": (
            "A camera counts how many {classes} cross a line in the street, per direction. The "
            "images are processed on the device only and never stored or sent; only the counts "
            "leave the device."
        ),
        "goal": (
            "The aim is to know how many people and vehicles use a street, to base and evaluate "
            "policy for traffic and public space on it. The algorithm recognises nobody: it "
            "sees that there is a pedestrian or cyclist, not who that is. No decision about a "
            "person is taken."
        ),
        "proportionality": (
            "Counting by hand is expensive and possible only a few days a year. A pneumatic tube "
            "or radar tells pedestrians and cyclists apart poorly. A camera counts every class "
            "day and night, but sees people in public space. That is why the images stay on the "
            "device: they are not stored or sent, and only anonymous counts per class and "
            "direction leave the device."
        ),
        "human": (
            "No decision about persons is taken. The operator chooses the place, the counting "
            "line and the classes, and can switch a camera off. An analyst uses the counts in "
            "reports on traffic. Before they inform policy, a member of staff compares them "
            "with a manual count where the camera stands."
        ),
        "risks": (
            "On real footage the model was measured only on the clip named under how it works. "
            "What that clip does not show was not measured; the model card names it. People far "
            "away or partly hidden are sometimes missed, and people passing each other on the "
            "counting line cause most errors. Management: a manual check count at every new "
            "place; the measured accuracy is published; the images stay on the device, so an "
            "error has no consequence for privacy."
        ),
        "impact": (
            "The camera sees people in public space. Placing it therefore needs a data protection "
            "impact assessment (DPIA) by the organisation."
        ),
        "data": (
            "Camera images of the street, only in the device's memory. The model was trained by "
            "the makers of {network} on the training set of {trained_on} ({n_classes} classes); "
            "sensorpipe did not retrain it."
        ),
        "how": (
            "Each image is scaled to {width}×{height} pixels and goes through the neural network "
            "{network} (file {file}, sha256 {sha256}). The network gives boxes with a class and "
            "a confidence; a box counts from confidence {conf}. Of the {n_classes} classes, "
            "{n_counted} are counted: {mapping}. A tracker follows each object from frame to "
            "frame and counts it once when it crosses the counting line, per direction. The "
            "model does not learn: it does not change in use. Measured on the clip {clip} "
            "({crossings} crossings by pedestrians, annotated by hand), at threshold "
            "{eval_threshold}: error in the total (WAPE) {wape} %, precision {precision} %, "
            "recall {recall} %. The threshold was chosen on this clip, so these figures are "
            "optimistic. Speed: {fps} frames per second on one processor core. Licence of the "
            "model: {licence}. Details: the model card, sensorpipe/models/MODEL_CARD.md."
        ),
        "provider": "sensorpipe (open source); model {network}",
        "tags": "counting, camera, traffic, pedestrians, cyclists, sensorpipe",
    },
}


def counting_entry_fields(
    facts: CountingModelFacts, network: NetworkInfo, *, in_use: bool, lang: Lang = "nl"
) -> dict[str, Any]:
    """The counting model's entry (standard keys, without `lang`) in `lang`."""
    t = _COUNTING[lang]
    names = CLASS_NAMES[lang]
    counted = list(dict.fromkeys(facts.class_map.values()))
    # The model's class names are its own identifiers: quoted, not translated.
    mapping = [f"‘{model_class}’ → {names.get(c, c)}" for model_class, c in facts.class_map.items()]
    values = {
        "network": facts.network,
        "classes": _join([names.get(c, c) for c in counted], lang),
        "trained_on": facts.trained_on,
        "n_classes": facts.n_classes,
        "n_counted": len(facts.class_map),
        "mapping": "; ".join(mapping),
        "width": facts.input_width,
        "height": facts.input_height,
        "file": facts.file,
        "sha256": facts.sha256,
        "conf": _num(facts.conf_threshold, lang, 2),
        "clip": facts.clip,
        "crossings": facts.crossings,
        "eval_threshold": _num(facts.eval_threshold, lang, 2),
        "wape": _num(facts.wape_pct, lang),
        "precision": _num(facts.precision_pct, lang),
        "recall": _num(facts.recall_pct, lang),
        "fps": _num(facts.frames_per_second, lang),
        "licence": facts.licence,
    }
    return {
        "name": t["name"].format(**values),
        "description_short": t["short"].format(**values),
        **_organisation(network),
        "category": ["Verkeer", "Ruimte en infrastructuur"],
        "status": "In gebruik" if in_use else "In ontwikkeling",
        "publication_category": "Overige algoritmes",
        "goal": t["goal"],
        "proportionality": t["proportionality"],
        "human_intervention": t["human"],
        "risks": t["risks"],
        "impacttoetsen": t["impact"],
        "source_data": t["data"].format(**values),
        "methods_and_models": t["how"].format(**values),
        "provider": t["provider"].format(**values),
        "source_id": f"sensorpipe:counting:{facts.file.split('.')[0]}@{facts.sha256[:12]}",
        "tags": t["tags"],
    }


def calibration_entry_fields(
    method: str, network: NetworkInfo, *, in_use: bool, lang: Lang = "nl"
) -> dict[str, Any]:
    """Calibration method `method`'s entry (standard keys, without `lang`) in `lang`."""
    d = calibration_description(method, lang)
    return {
        "name": d.name,
        "description_short": d.purpose,
        **_organisation(network),
        "category": ["Natuur en milieu", "Zorg en gezondheid"],
        "status": "In gebruik" if in_use else "In ontwikkeling",
        "publication_category": "Overige algoritmes",
        "goal": CALIBRATION_GOAL[lang],
        "proportionality": CALIBRATION_PROPORTIONALITY[lang],
        "human_intervention": d.human_intervention,
        "risks": f"{d.risks} {CALIBRATION_RISKS[lang]}",
        "impacttoetsen": CALIBRATION_IMPACT[lang],
        "source_data": d.data,
        "methods_and_models": f"{d.how} {(FIT_STATS if method in BUILT else NOT_BUILT)[lang]}",
        "provider": "sensorpipe (open source)",
        "source_id": f"sensorpipe:calibration:{method}",
        "tags": CALIBRATION_TAGS[lang],
    }


# --- all entries ---------------------------------------------------------------------------
def entry_fields(
    registry: Registry,
    *,
    lang: Lang = "nl",
    calibrations_in_use: Collection[str] = (),
    model: Path = COUNTING_MODEL,
) -> list[dict[str, Any]]:
    """Every entry's fields in `lang`: the counting model ("In gebruik" when a registered
    device counts passers-by), then each calibration method ("In gebruik" when named in
    `calibrations_in_use`, the methods of the calibrations assigned to devices)."""
    counting = any(counts_passers_by(e) for e in registry.devices.values())
    network = registry.network
    facts = counting_model_facts(model)
    return [
        counting_entry_fields(facts, network, in_use=counting, lang=lang),
        *(
            calibration_entry_fields(m, network, in_use=m in calibrations_in_use, lang=lang)
            for m in CALIBRATION_METHODS
        ),
    ]


def algorithm_entries(
    registry: Registry,
    *,
    calibrations_in_use: Collection[str] = (),
    model: Path = COUNTING_MODEL,
) -> list[AlgorithmEntry]:
    """The entries for the national register (Dutch, publication standard 1.0)."""
    return [
        AlgorithmEntry(**fields, lang="nld")
        for fields in entry_fields(
            registry, lang="nl", calibrations_in_use=calibrations_in_use, model=model
        )
    ]


def to_json(entries: Sequence[AlgorithmEntry]) -> str:
    """A JSON list of entries in the standard's field names."""
    return json.dumps([e.model_dump(mode="json") for e in entries], indent=2, ensure_ascii=False)
