"""Every package's docstring says what it holds today: each of its modules and folders is
named there, in backticks (`name`, `name.py` or `name/`), so a module or folder added without
a word about its job fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import sensorpipe

PACKAGE = Path(sensorpipe.__file__).parent
PACKAGES = sorted(init.parent for init in PACKAGE.rglob("__init__.py"))


def _contents(folder: Path) -> set[str]:
    modules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    folders = {p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"}
    return modules | folders


def _named(docstring: str) -> set[str]:
    return set(re.findall(r"`([\w]+)(?:\.py|/)?`", docstring))


@pytest.mark.parametrize(
    "folder", PACKAGES, ids=[str(p.relative_to(PACKAGE.parent)) for p in PACKAGES]
)
def test_the_package_docstring_names_what_it_holds(folder: Path) -> None:
    docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text("utf-8"))) or ""
    held = _contents(folder)
    assert sorted(held - _named(docstring)) == []


def test_every_package_is_checked() -> None:
    names = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGES}
    assert {"sensorpipe", "sensorpipe/gateway", "sensorpipe/gateway/kits"} <= names
    assert len(names) >= 14
