"""JSON history files read item by item, within bounds.

The files are arrays of flat measurement objects (openSenseMap's `[{...}, ...]`) or such an
array under a key of one object (Telraam's `{"report": [...]}`). `items` walks the document
with a small scanner that only tracks strings and brackets, so memory holds one item (at most
MAX_ROW characters) and a depth counter, never the document; each item is then parsed by
`json.loads`, which its bounded size and depth keep cheap and recursion-safe. The bounds
(docs/security.md, "Security: what each bound is"): an item longer than MAX_ROW characters is one
`bad_row` (its first KEEP characters kept) and reading goes on with the next item; nesting
deeper than MAX_DEPTH levels (within an item, or in a value skipped) ends the file, as does
JSON that is not valid: ReadProblem, one line that says where. A JSON integer of more than
MAX_INT_CHARS characters (valid JSON, but over 4,300 digits Python refuses to make it an int)
is read as a LongNumber, which no importer takes as a number: that item's `bad_value`.

Why not the standard library's `json.load`: it reads the whole document into memory (a
100 MB file costs several hundred MB) and recurses once per nesting level (a file of
`[[[[...` ends in RecursionError). ijson streams too, but adds a dependency whose fast
backend is a C library, and it bounds neither depth nor item size by itself; the scanner
here is some 100 lines and does both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from sensorpipe.importer.files import KEEP, MAX_ROW, ReadProblem

MAX_DEPTH = 32  # levels within an item (a measurement with a location array: 2)
_CHUNK = 64 * 1024
_STRUCTURE = re.compile(r'["\[\]{},]')
_IN_STRING = re.compile(r'["\\]')
_NOT_SPACE = re.compile(r"[^ \t\r\n]")


# The longest JSON integer read as a number (sign included). No measurement, count or id has
# more digits; Python refuses to convert one of over 4,300 digits at all.
MAX_INT_CHARS = 64


class LongNumber(str):
    """A JSON integer longer than MAX_INT_CHARS, kept as a short text that says so (not a
    number to any importer, nor to float())."""

    __slots__ = ()


def _int(text: str) -> int | LongNumber:
    if len(text) > MAX_INT_CHARS:
        return LongNumber(f"<{len(text.lstrip('-'))}-digit number>")
    return int(text)


class NotTheShape(ReadProblem):
    """The document is not an array (nor an object holding the array under the key)."""


# Told of an item that is no item (longer than MAX_ROW): its number, its start, why.
BadItem = Callable[[int, str, str], None]


class _Scanner:
    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self.buf = ""
        self.pos = 0
        self._base = 0  # characters dropped before buf[0]
        self._eof = False
        self._mark = -1  # start of the value being kept, -1: none
        self._limit = 0
        self._start = ""  # the first KEEP characters of a value too long to keep

    def where(self) -> int:
        return self._base + self.pos

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._text.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        if self._mark >= 0 and len(self.buf) - self._mark > self._limit:
            self._start = self.buf[self._mark : self._mark + KEEP]
            self._mark = -1  # too long to keep: scanned on, not kept
        cut = self.pos if self._mark < 0 else self._mark
        if cut:
            self.buf = self.buf[cut:]
            self._base += cut
            self.pos -= cut
            if self._mark >= 0:
                self._mark -= cut
        self.buf += chunk
        return True

    def _search(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The next match of `pattern` from `pos`, reading on as far as it takes; None at the
        end of the text."""
        while True:
            m = pattern.search(self.buf, self.pos)
            if m is not None:
                return m
            self.pos = len(self.buf)
            if not self._fill():
                return None

    def peek(self) -> str:
        """The next character that is not white space, not consumed; "" at the end."""
        m = self._search(_NOT_SPACE)
        if m is None:
            return ""
        self.pos = m.start()
        return self.buf[self.pos]

    def expect(self, char: str, after: str) -> None:
        found = self.peek()
        if found != char:
            raise ReadProblem(
                f"not valid JSON: expected {char!r} {after} at character {self.where()}, "
                f"found {found[:1]!r}"
                if found
                else f"not valid JSON: it ends before {char!r} {after}"
            )
        self.pos += 1

    def value(self, limit: int) -> tuple[str, bool]:
        """Scan the value that starts here: its text and True, or its first KEEP characters
        and False when it is longer than `limit`."""
        self.peek()
        self._mark, self._limit, self._start = self.pos, limit, ""
        depth = 0
        while True:
            # Searched here first: this loop is the import's hottest, the call only for a refill.
            m = _STRUCTURE.search(self.buf, self.pos) or self._search(_STRUCTURE)
            if m is None:
                raise ReadProblem("not valid JSON: it ends inside a value")
            c, i = m.group(), m.start()
            if c == '"':
                self.pos = i + 1
                self._string()
                if depth == 0:  # a string value (or key) ends with its quote
                    break
                continue
            if c in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ReadProblem(
                        f"JSON nested deeper than {MAX_DEPTH} levels (at character "
                        f"{self._base + i}): not a history export"
                    )
                self.pos = i + 1
                continue
            if depth == 0:  # `,` `]` `}` after a number, a string, true: the value's end
                self.pos = i
                break
            if c == ",":
                self.pos = i + 1
                continue
            depth -= 1
            self.pos = i + 1
            if depth == 0:
                break
        if self._mark < 0 or self.pos - self._mark > limit:
            start = self._start or self.buf[self._mark : self._mark + KEEP]
            self._mark = -1
            return start, False
        text = self.buf[self._mark : self.pos]
        self._mark = -1
        return text, True

    def _string(self) -> None:
        while True:
            m = _IN_STRING.search(self.buf, self.pos) or self._search(_IN_STRING)
            if m is None:
                raise ReadProblem("not valid JSON: it ends inside a string")
            if m.group() == '"':
                self.pos = m.end()
                return
            if m.end() >= len(self.buf):  # a backslash, its character not read yet
                self.pos = m.start()
                if not self._fill():
                    raise ReadProblem("not valid JSON: it ends inside a string")
                continue
            self.pos = m.end() + 1


def items(
    text: IO[str], key: str | None = None, bad_item: BadItem | None = None
) -> Iterator[tuple[int, Any]]:
    """The items of the document's top-level array (or of the array under `key` of its
    top-level object), numbered from 1, parsed. An item longer than MAX_ROW goes to
    `bad_item` (none: it is passed over). Raises NotTheShape before the first item for a
    document of another shape, ReadProblem where the JSON is not valid or nested too deep."""
    s = _Scanner(text)
    first = s.peek()
    if first == "[":
        yield from _array(s, bad_item)
    elif first == "{" and key is not None:
        s.pos += 1
        found = False
        if s.peek() == "}":
            s.pos += 1
        else:
            while True:
                raw, whole = s.value(1024)
                name = _parse(raw, "a key") if whole else None
                if not isinstance(name, str):
                    raise ReadProblem(f"not valid JSON: a key that is no string, {raw[:40]!r}")
                s.expect(":", f"after the key {name[:40]!r}")
                if name == key and not found and s.peek() == "[":
                    found = True
                    yield from _array(s, bad_item)
                else:
                    s.value(0)  # another member: scanned, not kept
                after = s.peek()
                s.pos += 1
                if after == "}":
                    break
                if after != ",":
                    raise ReadProblem(
                        f"not valid JSON: expected ',' or '}}' at character {s.where() - 1}"
                    )
        if not found:
            raise NotTheShape(f"no {key!r} array in its top-level object")
    else:
        raise NotTheShape(f"it starts with {first[:1]!r}, not an array")
    rest = s.peek()
    if rest:
        raise ReadProblem(f"not valid JSON: more after the document's end (character {s.where()})")


def _array(s: _Scanner, bad_item: BadItem | None) -> Iterator[tuple[int, Any]]:
    s.expect("[", "starting the array")
    if s.peek() == "]":
        s.pos += 1
        return
    n = 0
    while True:
        n += 1
        raw, whole = s.value(MAX_ROW)
        if whole:
            yield n, _parse(raw, f"item {n}")
        elif bad_item is not None:
            bad_item(n, raw, f"longer than {MAX_ROW} characters (its first {KEEP} kept)")
        after = s.peek()
        if after == "]":
            s.pos += 1
            return
        if after != ",":
            raise ReadProblem(
                f"not valid JSON: expected ',' or ']' after item {n} (character {s.where()})"
            )
        s.pos += 1


def _parse(raw: str, what: str) -> Any:
    try:
        return json.loads(raw, parse_int=_int)
    except ValueError as exc:  # RecursionError cannot happen: MAX_DEPTH was checked
        raise ReadProblem(f"not valid JSON in {what}: {exc}") from None
