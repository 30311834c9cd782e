"""The README is the front door and docs/ the reference: their links resolve, and every
command group of `sensorpipe` is named in them."""

import re
from pathlib import Path

import click

import sensorpipe
from sensorpipe.cli.main import main

ROOT = Path(sensorpipe.__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*```.*?^\s*```", flags=re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$", flags=re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_the_slugs_are_githubs() -> None:
    assert slug("A lasting server: `sensorpipe server setup`") == (
        "a-lasting-server-sensorpipe-server-setup"
    )
    assert slug("Each sensor's health") == "each-sensors-health"
    assert slug("The Things Network / The Things Stack") == "the-things-network--the-things-stack"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Here\n\n[ok](#here) [gone](b.md) [x](a.md#nowhere)\n")
    assert broken_links(tmp_path / "a.md") == [
        "a.md: b.md (no such file)",
        "a.md: a.md#nowhere (no such heading)",
    ]


def test_every_relative_link_resolves() -> None:
    assert len(PAGES) > 10  # the reference is there
    assert [b for page in PAGES for b in broken_links(page)] == []


def test_every_command_group_is_documented() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    groups = main.list_commands(click.Context(main))  # every group, imported or not
    assert len(groups) >= 10
    assert [g for g in groups if f"sensorpipe {g}" not in text] == []
