"""The list of rejection reasons is complete: every code raised in the code base is in it."""

from __future__ import annotations

import re
from pathlib import Path

import sensorpipe
from sensorpipe.ingest.reasons import REASONS, check_reason

RAISED = re.compile(r"\b(?:Rejection|DecodeError)\(\s*\"([a-z_]+)\"")


def test_every_raised_code_is_a_listed_reason() -> None:
    package = Path(sensorpipe.__file__).parent
    raised = {
        code
        for path in package.rglob("*.py")
        for code in RAISED.findall(path.read_text(encoding="utf-8"))
    }
    assert len(raised) >= 15  # the scan itself works
    assert raised <= set(REASONS), sorted(raised - set(REASONS))


def test_an_unknown_reason_is_named_with_the_likely_one() -> None:
    assert check_reason("bad_signature") is None
    message = check_reason("bad_sigature")
    assert message is not None and "did you mean 'bad_signature'?" in message


def test_the_guarantees_page_names_every_reason() -> None:
    root = Path(sensorpipe.__file__).parent.parent
    page = (root / "docs" / "guarantees.md").read_text(encoding="utf-8")
    assert [code for code in REASONS if f"`{code}`" not in page] == []
