"""History files as the importer reads them: checked, hashed, opened (gzip'd or not, in their
encoding) and split into rows, within bounds.

`inspect` runs before anything is imported, so a missing, unreadable, empty or binary file
ends the command with one line before any data is written. It also settles the encoding from
the file's first 64 KiB (after gzip): a byte-order mark says UTF-8, UTF-16 or UTF-32; else
UTF-8 where those bytes are UTF-8; Latin-1 only where they are not and hold no control
character (bytes 0x80-0x9f are C1 controls in Latin-1, and typographic characters in Windows
code pages: which one cannot be told, so such a file is refused); a file with NUL bytes is no
text (UTF-16 without a byte-order mark looks so, and cannot be told from binary data).

Rows come from `rows`: a plain line is split on the delimiter (what the csv module does with a
line that has no quote, three times faster); a line with a quote goes through `csv.reader`,
together with the lines a quoted field carries on to. Each row comes with its line number and
its exact text, for the dead-letter store. The bounds (docs/security.md, "Security: what each bound
is"): a line longer than MAX_LINE characters, or a quoted row that has not closed within
MAX_ROW characters (or by the file's end), is one `bad_row` and reading goes on at the next
line (a row that never closes its quote costs its first line, not the file); a gzip stream
that expands to more than the file's `max_decompressed` bytes ends the file (ReadProblem).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE = 64 * 1024  # characters of one line
MAX_ROW = 64 * 1024  # characters of one row: a quoted field's lines together, a JSON item
KEEP = 1024  # characters of an overlong row kept in its dead letter
MAX_BLANK_BEFORE_HEADER = 1024 * 1024  # characters of blank lines before a header
DEFAULT_MAX_DECOMPRESSED_MIB = 1024  # `--max-decompressed-mib`
SAMPLE = 64 * 1024  # bytes that settle the encoding
_SKIP = 64 * 1024  # characters read at a time while the rest of an overlong line is skipped


# A header line: its number, its text, its delimiter, its fields (stripped).
Header = tuple[int, str, str, list[str]]


class FileProblem(Exception):
    """A file that cannot be imported at all: missing, unreadable, not of the format asked
    for. The message is one line that names the file."""


class ReadProblem(Exception):
    """Reading a file hit a bound, or found it is not what its start said (a JSON document
    nested too deep, no valid JSON further on). The message is one line that names no file:
    `read_error` adds it."""


@dataclass(frozen=True)
class HistoryFile:
    path: Path
    size: int
    sha256: str
    compressed: bool
    encoding: str = "utf-8-sig"
    note: str | None = None  # how the file is read, when not as UTF-8 (for the summary)
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED_MIB * 1024 * 1024  # bytes, gzip'd files

    @property
    def name(self) -> str:
        return self.path.name

    @contextlib.contextmanager
    def open_text(self) -> Iterator[tuple[IO[str], Callable[[], int]]]:
        """The file's text (gzip undone, decoded; a byte-order mark is dropped) and a function
        giving how many bytes of the file on disk were read so far (for a progress bar)."""
        raw = self.path.open("rb")
        try:
            binary: IO[bytes] = raw
            if self.compressed:
                gz = gzip.GzipFile(fileobj=raw, mode="rb")
                binary = io.BufferedReader(_Capped(gz, self.max_decompressed))
            text = io.TextIOWrapper(binary, encoding=self.encoding, newline=None)
            fd = raw.fileno()
            yield text, lambda: os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            raw.close()


class _Capped(io.RawIOBase):
    """A decompressed stream that raises ReadProblem past `limit` bytes."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._inner.readinto(buffer)
        self._read += n
        if self._read > self._limit:
            mib = self._limit / (1024 * 1024)
            raise ReadProblem(
                f"expands to more than {mib:g} MiB when decompressed (a gzip bomb, or a larger "
                f"file than the limit allows): reading stopped there; if the file is genuine, "
                f"import it again with --max-decompressed-mib N above that"
            )
        return n


def inspect(path: Path, max_decompressed: int | None = None) -> HistoryFile:
    """Check that `path` is a file that can be read, hash it and settle its encoding, or
    raise FileProblem."""
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
    compressed = head == GZIP_MAGIC
    try:
        with path.open("rb") as f:
            sample = (gzip.GzipFile(fileobj=f, mode="rb") if compressed else f).read(SAMPLE)
    except (OSError, EOFError, zlib.error) as exc:
        what = "damaged gzip data" if compressed else "cannot be read"
        raise FileProblem(f"{path}: {what} ({exc})") from None
    encoding, note = _encoding(path, sample, whole=len(sample) < SAMPLE)
    limit = (
        DEFAULT_MAX_DECOMPRESSED_MIB * 1024 * 1024 if max_decompressed is None else max_decompressed
    )
    return HistoryFile(path, size, digest, compressed, encoding, note, limit)


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_CONTROLS = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D} | {0x7F} | frozenset(range(0x80, 0xA0))


def _encoding(path: Path, sample: bytes, *, whole: bool) -> tuple[str, str | None]:
    """The codec to read a file with, and a note when it is not UTF-8; FileProblem for bytes
    no text encoding can be settled for."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if sample.startswith(_UTF32_BOMS):  # before UTF-16's: FF FE 00 00 starts with FF FE
        return "utf-32", "read as UTF-32 (its byte-order mark says so)"
    if sample.startswith(_UTF16_BOMS):
        return "utf-16", "read as UTF-16 (its byte-order mark says so)"
    if b"\x00" in sample:
        ascii_pairs = (
            sample[1::2].count(0) > len(sample) // 4 or sample[0::2].count(0) > len(sample) // 4
        )
        if ascii_pairs:
            raise FileProblem(
                f"{path}: not text sensorpipe can read: NUL bytes between its letters, as "
                f"UTF-16 without a byte-order mark has (which cannot be told from binary data "
                f"for sure): save it as UTF-8, or as UTF-16 with a byte-order mark (Excel's "
                f'"Unicode text")'
            )
        raise FileProblem(
            f"{path}: not text: it holds NUL bytes (binary data, or a compressed format other "
            f"than gzip?)"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        controls = sorted({b for b in sample if b in _CONTROLS})
        if controls:
            shown = ", ".join(f"0x{b:02x}" for b in controls[:5])
            raise FileProblem(
                f"{path}: not text: not UTF-8 ({exc.reason} at byte {exc.start}), and its "
                f"control bytes ({shown}) rule out Latin-1 (0x80-0x9f: a Windows code page?): "
                f"save it as UTF-8"
            ) from None
        return "latin-1", (
            f"read as Latin-1: its bytes are not UTF-8 ({exc.reason} at byte {exc.start}) and "
            f"hold no control character"
        )
    return "utf-8-sig", None


# What reading a file can fail with halfway: a damaged gzip stream, bytes that are not UTF-8,
# a bound.
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, ReadProblem)


def read_error(file: HistoryFile, exc: BaseException) -> str:
    if isinstance(exc, ReadProblem):
        return f"{file.path}: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"{file.path}: not {file.encoding.removesuffix('-sig').upper()} text further on "
            f"({exc.reason} at byte {exc.start} of a block): what came before is stored"
        )
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return f"{file.path}: damaged gzip data ({exc})"
    return f"{file.path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"


Row = tuple[int, str, list[str]]  # line number (of its first line), its text, its fields
# Told of a row that is no row (too long, a quote never closed): line number, text, why.
BadRow = Callable[[int, str, str], None]


def lines(source: IO[str] | Iterable[str]) -> Iterator[str]:
    """The lines of `source`, each read with at most MAX_LINE + 1 characters: a longer one
    comes as its first MAX_LINE + 1 characters without its "\\n" (`overlong` says so), the
    rest of it skipped unread."""
    if not hasattr(source, "readline"):
        yield from source
        return
    readline = source.readline
    for line in iter(partial(readline, MAX_LINE + 1), ""):
        if len(line) > MAX_LINE and line[-1] != "\n":
            while True:
                rest = readline(_SKIP)
                if not rest or rest[-1] == "\n":
                    break
        yield line


def overlong(line: str) -> bool:
    return len(line) - line.endswith("\n") > MAX_LINE


def rows(
    source: IO[str] | Iterable[str],
    delimiter: str,
    first_line_no: int = 1,
    bad_row: BadRow | None = None,
) -> Iterator[Row]:
    """The rows of CSV text whose lines end in "\\n" (as text files opened with universal
    newlines give them). Blank lines hold no row and are skipped; line numbers count them.
    A line or row past the bounds goes to `bad_row` (none: it is passed over)."""
    line_no = first_line_no - 1
    it = lines(source)
    replay: deque[str] = deque()  # lines a quote that never closed had taken
    while True:
        if replay:
            raw = replay.popleft()
        else:
            got = next(it, None)
            if got is None:
                return
            raw = got
        line_no += 1
        if len(raw) > MAX_LINE and overlong(raw):
            if bad_row is not None:
                bad_row(
                    line_no,
                    raw[:KEEP],
                    f"longer than {MAX_LINE} characters (its first {KEEP} kept); reading "
                    f"goes on at the next line",
                )
            continue
        start = line_no
        if '"' in raw:
            # A quoted field may hold the delimiter, doubled quotes, or go on to the next line.
            if raw.count('"') % 2:
                taken = [raw]
                size = len(raw)
                closed = False
                while True:
                    nxt = replay.popleft() if replay else next(it, None)
                    if nxt is None:
                        break
                    taken.append(nxt)
                    size += len(nxt)
                    if size > MAX_ROW:
                        break
                    if nxt.count('"') % 2:
                        closed = True
                        break
                if not closed:
                    if bad_row is not None:
                        bad_row(
                            line_no,
                            raw.rstrip("\n")[:KEEP],
                            f"a quote that does not close within {MAX_ROW} characters (nor "
                            f"by the file's end); reading goes on at the next line",
                        )
                    replay.extendleft(reversed(taken[1:]))
                    continue
                raw = "".join(taken)
                line_no += len(taken) - 1
            text = raw[:-1] if raw.endswith("\n") else raw
            if not text:
                continue
            try:
                fields = next(csv.reader(text.splitlines(keepends=True), delimiter=delimiter))
            except (csv.Error, StopIteration) as exc:
                if bad_row is not None:
                    bad_row(start, text[:KEEP], f"not CSV ({exc})")
                continue
        else:
            text = raw[:-1] if raw.endswith("\n") else raw
            if not text:
                continue
            fields = text.split(delimiter)
        yield start, text, fields


def header(text: IO[str], delimiters: str) -> Header | None:
    """The first non-blank line: its number, its text, the delimiter (the first of
    `delimiters` it holds) and its fields, stripped; None for a file with no line. Raises
    ReadProblem for a first line longer than MAX_LINE, or more than a MiB of blank lines."""
    blank = 0
    for line_no, line in enumerate(lines(text), start=1):
        if overlong(line):
            raise ReadProblem(
                f"its first line is longer than {MAX_LINE} characters: no header "
                f"(starting {line[:60]!r})"
            )
        stripped = line.rstrip("\n")
        if not stripped.strip():
            blank += len(line)
            if blank > MAX_BLANK_BEFORE_HEADER:
                raise ReadProblem("more than a MiB of blank lines before its header")
            continue
        delimiter = next((d for d in delimiters if d in stripped), delimiters[0])
        try:
            fields = next(csv.reader([stripped], delimiter=delimiter))
        except (csv.Error, StopIteration):
            fields = stripped.split(delimiter)
        return line_no, stripped, delimiter, [f.strip() for f in fields]
    return None


def first_char(text: IO[str]) -> str:
    """The first character of `text` that is not white space ("" at the end, or after
    MAX_BLANK_BEFORE_HEADER of it): `[` or `{` starts JSON. It is consumed."""
    for _ in range(MAX_BLANK_BEFORE_HEADER // _SKIP + 1):
        chunk = text.read(_SKIP)
        if not chunk:
            return ""
        stripped = chunk.lstrip()
        if stripped:
            return stripped[0]
    return ""
