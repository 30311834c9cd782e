"""The package's layout rules: who may import whom, and no import cycles.

- `protocol` is the shared contract and imports no other component;
- `edge` (what runs on the Pi) and `ingest` never import each other, nor the simulators, the
  local stack or the command line;
- the components below the local stack (`gateway`, `ingest`, `edge`, `protocol`) never import
  it (`stack`) or the command line (`cli`), not even inside a function;
- the shared modules at the package's top (`process`, `http_server`, `resources`) import no
  component, so every component may import them;
- module-level imports (including those only for type checking) form no cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sensorpipe

PACKAGE = Path(sensorpipe.__file__).parent
FORBIDDEN = {
    "protocol": {"edge", "gateway", "ingest", "firmware_sim", "query", "stack", "cli"},
    "edge": {"ingest", "gateway", "firmware_sim", "query", "stack", "cli"},
    "ingest": {"edge", "firmware_sim", "stack", "cli"},
    "gateway": {"edge", "ingest", "firmware_sim", "stack", "cli"},
    # The HTTP service reads what the ingest stored; it runs no device, simulator or stack.
    "api": {"edge", "firmware_sim", "stack", "cli"},
    "query": {"edge", "firmware_sim", "stack", "cli", "api"},
    # The quality checks judge readings; the ingest and the importer call them, not they them.
    "quality": {
        "edge",
        "gateway",
        "ingest",
        "importer",
        "firmware_sim",
        "query",
        "stack",
        "cli",
        "api",
    },
}
# The command's entry (`python -m sensorpipe`) sits at the top too, but it is the command line.
GROUND_FLOOR_EXCEPT = {"sensorpipe", "sensorpipe.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, *, top_level_only: bool) -> set[str]:
    nodes: list[ast.AST] = []
    if top_level_only:
        assert isinstance(tree, ast.Module)
        for statement in tree.body:
            nodes.append(statement)
            if isinstance(statement, ast.If):  # `if TYPE_CHECKING:` blocks count too
                nodes.extend(statement.body)
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("sensorpipe.")}


MODULES = {
    _module_name(path): ast.parse(path.read_text(encoding="utf-8"))
    for path in PACKAGE.rglob("*.py")
}


def test_components_import_only_what_they_may() -> None:
    assert len(MODULES) > 80  # the scan found the package
    broken = []
    for name, tree in MODULES.items():
        component = name.split(".")[1] if "." in name else ""
        for imported in _imports(tree, top_level_only=False):
            target = imported.split(".")[1]
            if target in FORBIDDEN.get(component, set()):
                broken.append(f"{name} imports {imported}")
    assert broken == []


def test_components_below_the_stack_never_reach_up() -> None:
    below = ("gateway", "ingest", "edge", "protocol")
    above = ("sensorpipe.stack", "sensorpipe.cli")
    checked = [name for name in MODULES if name.split(".")[1:2] and name.split(".")[1] in below]
    assert {name.split(".")[1] for name in checked} == set(below)
    reaching_up = sorted(
        f"{name} imports {imported}"
        for name in checked
        for imported in _imports(MODULES[name], top_level_only=False)
        if any(imported == up or imported.startswith(up + ".") for up in above)
    )
    assert reaching_up == []


def test_the_ground_floor_imports_no_component() -> None:
    ground = {_module_name(path) for path in PACKAGE.glob("*.py")} - GROUND_FLOOR_EXCEPT
    components = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert {"sensorpipe.process", "sensorpipe.http_server", "sensorpipe.resources"} <= ground
    assert {"gateway", "ingest", "stack"} <= components
    imports_a_component = sorted(
        f"{name} imports {imported}"
        for name in ground
        for imported in _imports(MODULES[name], top_level_only=False)
        if imported.split(".")[1] in components
    )
    assert imports_a_component == []


def test_no_import_cycles() -> None:
    graph = {
        name: {i for i in _imports(tree, top_level_only=True) if i in MODULES and i != name}
        for name, tree in MODULES.items()
    }
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append([*visiting[visiting.index(node) :], node])
            return
        visiting.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert cycles == []


def test_the_table_of_folders_matches_the_tree() -> None:
    page = (PACKAGE.parent / "docs" / "development.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w/]+)/` \|", page, flags=re.M))
    on_disk = {
        f"sensorpipe/{p.name}" for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    top = {"tests", "bench", "eval", "training", "frontend", "docs"}
    assert on_disk >= {"sensorpipe/edge", "sensorpipe/ingest"}
    assert listed == on_disk | top
    assert all((PACKAGE.parent / folder).is_dir() for folder in top)
