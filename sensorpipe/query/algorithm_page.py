"""The algorithm register's entries as a page in Dutch or English (`devices export --format
algorithms-html`), built on the register page's scaffolding (`query.register_page.html_page`), so it
fits a 390 px phone as that page does.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sensorpipe.protocol.registry import NetworkInfo
from sensorpipe.query.algorithms import LANGUAGES, STANDARD_VERSION, AlgorithmEntry
from sensorpipe.query.register_page import FIXED_NL, html_page


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# Page labels: the standard's Dutch titles, and the same in English.
_LABELS: dict[str, dict[str, str]] = {
    "nl": {k: str(f.title) for k, f in AlgorithmEntry.model_fields.items()},
    "en": {
        "description_short": "Short description",
        "organization": "Organisation",
        "category": "Policy area",
        "status": "Status",
        "contact_email": "Contact",
        "publication_category": "Publication category",
        "goal": "Purpose and impact",
        "proportionality": "Considerations",
        "human_intervention": "Human intervention",
        "risks": "Risk management",
        "lawful_basis": "Legal basis",
        "impacttoetsen": "Impact assessments",
        "source_data": "Data",
        "methods_and_models": "How it works",
        "provider": "Provider",
        "source_id": "Source id",
    },
}
_SHOWN = list(_LABELS["en"])
_PAGE: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Algoritmes",
        "intro": (
            "Op deze pagina staan de algoritmes die {network} gebruikt, beschreven zoals het "
            "Algoritmeregister van de Nederlandse overheid dat vraagt (publicatiestandaard "
            "{version}): het model dat op de camera's passanten telt en de methoden om "
            "fijnstofsensoren te kalibreren."
        ),
        "overview": "Overzicht",
        "not_stated": "niet opgegeven",
        "generated": "Gemaakt op {date} met sensorpipe.",
    },
    "en": {
        "title": "Algorithms",
        "intro": (
            "This page lists the algorithms {network} uses, described as the Dutch government's "
            "algorithm register asks (publication standard {version}): the model that counts "
            "passers-by on the cameras and the methods that calibrate particulate matter "
            "sensors."
        ),
        "overview": "Overview",
        "not_stated": "not stated",
        "generated": "Made on {date} with sensorpipe.",
    },
}
# The standard's permitted values (Dutch) in English, for the English page.
_VALUES_EN = {
    "In ontwikkeling": "In development",
    "In gebruik": "In use",
    "Buiten gebruik": "Out of use",
    "Overige algoritmes": "Other algorithms",
    "Impactvolle algoritmes": "Algorithms with impact",
    "Hoog-risico AI-systeem": "High-risk AI system",
    "Verkeer": "Traffic",
    "Ruimte en infrastructuur": "Spatial planning and infrastructure",
    "Natuur en milieu": "Nature and environment",
    "Zorg en gezondheid": "Care and health",
}


def _value(key: str, value: Any, lang: str) -> str:
    items = value if isinstance(value, list) else [value]
    shown = [_VALUES_EN.get(v, v) if lang == "en" else v for v in items]
    text = ", ".join(str(v) for v in shown if str(v).strip())
    return _e(text) if text else f'<span class="note">{_e(_PAGE[lang]["not_stated"])}</span>'


def to_html(entries: Sequence[dict[str, Any]], network: NetworkInfo, lang: str = "nl") -> str:
    """The entries (entry_fields in `lang`) as one self-contained page, built like the
    register's page (query.register_page.html_page): it fits a 390 px phone."""
    if lang not in _PAGE:
        raise ValueError(f"lang {lang!r}: use one of {', '.join(LANGUAGES)}")
    t, labels = _PAGE[lang], _LABELS[lang]
    name = FIXED_NL.get(network.name, network.name) if lang == "nl" else network.name
    items = "\n".join(
        f'<li><a href="#algorithm-{i}">{_e(e["name"])}</a></li>' for i, e in enumerate(entries)
    )
    main = [f"<h2>{_e(t['overview'])}</h2>", f"<ul>\n{items}\n</ul>"]
    for i, e in enumerate(entries):
        rows = "\n".join(
            f"<dt>{_e(labels[k])}</dt><dd>{_value(k, e.get(k, ''), lang)}</dd>" for k in _SHOWN
        )
        main.append(
            f'<article id="algorithm-{i}">\n<h2>{_e(e["name"])}</h2>\n<dl>\n{rows}\n</dl>\n'
            "</article>"
        )
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return html_page(
        lang=lang,
        title=f"{t['title']}: {name}",
        header=[f"<p>{_e(t['intro'].format(network=name, version=STANDARD_VERSION))}</p>"],
        main=main,
        footer=t["generated"].format(date=date),
    )
