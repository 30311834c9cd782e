"""History files as the importer reads them: checked, hashed, opened (gzip'd or not) and split
into rows.

`inspect` runs before anything is imported, so a missing, unreadable or empty file ends the
command with one line before any data is written. Rows come from `rows`: a plain line is split
on the delimiter (what the csv module does with a line that has no quote, three times faster);
a line with a quote goes through `csv.reader`, together with the lines a quoted field carries
on to. Each row comes with its line number and its exact text, for the dead-letter store.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"


class FileProblem(Exception):
    """A file that cannot be imported at all: missing, unreadable, not of the format asked
    for. The message is one line that names the file."""


@dataclass(frozen=True)
class HistoryFile:
    path: Path
    size: int
    sha256: str
    compressed: bool

    @property
    def name(self) -> str:
        return self.path.name

    @contextlib.contextmanager
    def open_text(self) -> Iterator[tuple[IO[str], Callable[[], int]]]:
        """The file's text (UTF-8; a byte-order mark is dropped; gzip undone) and a function
        giving how many bytes of the file on disk were read so far (for a progress bar)."""
        raw = self.path.open("rb")
        try:
            binary = gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)
            fd = raw.fileno()
            yield text, lambda: os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            raw.close()


def inspect(path: Path) -> HistoryFile:
    """Check that `path` is a file that can be read and hash it, or raise FileProblem."""
    if not path.exists():
        raise FileProblem(f"{path}: no such file")
    if path.is_dir():
        raise FileProblem(f"{path}: is a directory, not a file")
    try:
        with path.open("rb") as f:
            head = f.read(2)
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            size = f.tell()
    except OSError as exc:
        raise FileProblem(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise FileProblem(f"{path}: is empty")
    return HistoryFile(path, size, digest, head == GZIP_MAGIC)


# What reading a file can fail with halfway: a damaged gzip stream, bytes that are not UTF-8.
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)


def read_error(file: HistoryFile, exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"{file.path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a block)"
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return f"{file.path}: damaged gzip data ({exc})"
    return f"{file.path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"


Row = tuple[int, str, list[str]]  # line number (of its first line), its text, its fields


def rows(lines: Iterable[str], delimiter: str, first_line_no: int = 1) -> Iterator[Row]:
    """The rows of CSV text whose lines end in "\\n" (as text files opened with universal
    newlines give them). Blank lines hold no row and are skipped; line numbers count them."""
    line_no = first_line_no - 1
    it = iter(lines)
    for raw in it:
        line_no += 1
        start = line_no
        if '"' in raw:
            # A quoted field may hold the delimiter, doubled quotes, or go on to the next line.
            while raw.count('"') % 2:
                nxt = next(it, None)
                if nxt is None:
                    break
                raw += nxt
                line_no += 1
            text = raw[:-1] if raw.endswith("\n") else raw
            if not text:
                continue
            fields = next(csv.reader(text.splitlines(keepends=True), delimiter=delimiter))
        else:
            text = raw[:-1] if raw.endswith("\n") else raw
            if not text:
                continue
            fields = text.split(delimiter)
        yield start, text, fields


def header(text: IO[str], delimiters: str) -> tuple[int, str, str, list[str]] | None:
    """The first non-blank line: its number, its text, the delimiter (the first of
    `delimiters` it holds) and its fields, stripped; None for a file with no line."""
    for line_no, line in enumerate(text, start=1):
        stripped = line.rstrip("\n")
        if not stripped.strip():
            continue
        delimiter = next((d for d in delimiters if d in stripped), delimiters[0])
        fields = next(csv.reader([stripped], delimiter=delimiter))
        return line_no, stripped, delimiter, [f.strip() for f in fields]
    return None


def first_char(text: IO[str]) -> str:
    """The first character of `text` that is not white space ("" at the end): `[` or `{`
    starts JSON. It is consumed."""
    while True:
        c = text.read(1)
        if not c or not c.isspace():
            return c
