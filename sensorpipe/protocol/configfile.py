"""Loading TOML configuration into pydantic models with errors a Pi owner can act on.

An error names the file, the key (and its line when it can be found) and, for a misspelt key,
the spelling that was probably meant. `resolve_tls_files` checks the certificate and key an
HTTP service's section names (`sensorpipe serve`, the kit gateway's [http]) the same way.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used. Permanent: fix the file and start again."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


def load_model(path: Path | str, model: type[M]) -> M:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a directory, not a configuration file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if "immutable namespace" in str(exc):  # `x = [ {...} ]` written, then `[[x]]` added
            hint = (
                ": a list written inline (`name = [ {...} ]`) cannot take more `[[name]]` "
                "entries; write each entry as its own `[[name]]` table"
            )
        raise ConfigError(path, f"not valid TOML: {exc}{hint}") from None
    return validate_model(data, model, path=path, text=text)


def validate_model(data: dict[str, Any], model: type[M], *, path: Path, text: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, model, text) for err in exc.errors()[:8]]
        if len(lines) == 1:  # the usual case: one line that says it all
            raise ConfigError(path, lines[0]) from None
        raise ConfigError(path, "invalid configuration\n  " + "\n  ".join(lines)) from None


def key_error(path: Path | str, loc: Sequence[str], message: str) -> ConfigError:
    """A problem with one key found after validation (a file it names does not exist): the
    same one line as a validation error, `file: key (line N): message`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    return ConfigError(path, _key_line(text, [str(p) for p in loc], message))


class TlsFiles(Protocol):
    """A section that names a certificate and its key (PEM files) for an HTTP service."""

    tls_cert: str | None
    tls_key: str | None


def resolve_tls_files(path: Path, section: TlsFiles, loc: Sequence[str] = ()) -> None:
    """`section`'s tls_cert and tls_key resolved against the folder of `path`, the file that
    names them (at `loc`): each must be a file, and both are given or neither."""
    base = path.resolve().parent
    for key in ("tls_cert", "tls_key"):
        value = getattr(section, key)
        if value is not None:
            full = base / value
            if not full.is_file():
                raise key_error(path, [*loc, key], f"{value!r}: no such file")
            setattr(section, key, str(full))
    if (section.tls_cert is None) != (section.tls_key is None):
        raise key_error(path, [*loc, "tls_cert"], "give tls_cert and tls_key together, or neither")


def _describe(err: Any, model: type[BaseModel], text: str) -> str:
    loc = [str(p) for p in err["loc"]]
    message = str(err["msg"]).removeprefix("Value error, ")  # pydantic's, not the owner's
    given = err.get("input")
    if message.startswith("Input should") and isinstance(given, str | int | float | bool | list):
        shown = repr(given)
        message = f"{shown if len(shown) <= 60 else shown[:57] + '...'}: {message}"
    if err["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(loc[-1], model, loc[:-1])
    elif err["type"] == "union_tag_invalid":  # e.g. driver = "sht31" in a [[sensors]] entry
        ctx = err.get("ctx", {})
        tag, key = str(ctx.get("tag", "")), str(ctx.get("discriminator", "")).strip("'")
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        import difflib  # only for a mistake, as in _suggestion

        close = difflib.get_close_matches(tag, expected, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(expected)
        message = f"{tag!r} is not one sensorpipe knows{hint} (one of: {known})"
        loc = [*loc, key]
    return _key_line(text, loc, message)


def _key_line(text: str, loc: list[str], message: str) -> str:
    where = None
    if loc:  # a list's entry as a whole: its header, not the list's first entry
        whole = loc[-1].isdigit()
        where = _entry_line(text, loc) if whole else _line_of(text, loc) or _entry_line(text, loc)
    if where:  # the line says which entry of a list: `sensors.sht4x.address (line 10)`
        key = ".".join(p for p in loc if not p.isdigit())
        return f"{key or '(top level)'} (line {where}): {message}"
    # No line to point at: the entry counted from 1, as a person counts `[[sensors]]` blocks.
    key = ".".join(f"#{int(p) + 1}" if p.isdigit() else p for p in loc)
    return f"{key or '(top level)'}: {message}"


# A table header, `[a.b]` or `[[a]]`, with its name's parts bare or quoted.
_NAME = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_NAME}(?:\s*\.\s*{_NAME})*)\s*\]\]?\s*(?:#.*)?$")
_HEADER_PART = re.compile(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""")

Table = tuple[tuple[str, int | None], ...]  # a table's path: each name with its entry's index


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line that sets `loc` (a key, or a table with its header): `sensors.1.port` is the
    `port` of the second `[[sensors]]`, not the first `port` in the file. Parts that the file
    does not write as a table header (a union's tag) are passed over. None where the file
    writes the table so that no line names the key (an inline table, dotted keys)."""
    while len(loc) > 1 and loc[-1].isdigit():  # an item of a list: the line of the list
        loc = loc[:-1]
    key = loc[-1]
    assignment = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
    lines = text.splitlines()
    tables = _tables(lines)
    named = {name for table, _header in tables for name, _index in table}
    wanted = _wanted_table(loc[:-1], named)
    for number, (line, (table, header)) in enumerate(zip(lines, tables, strict=True), start=1):
        if header and table[:-1] == wanted and table[-1][0] == key:
            return number  # the table itself, e.g. an unknown section
        if not header and table == wanted and assignment.match(line):
            return number
    return None


def _entry_line(text: str, loc: list[str]) -> int | None:
    """The header line of a list's entry that a problem is about as a whole (`sensors.4`, or
    `sensors.4.sps30` where `sps30` is the entry's tag: a check across its keys, such as
    `bus` and `port` both given); None for a key inside it."""
    parts = list(loc)
    if len(parts) >= 3 and parts[-2].isdigit() and not parts[-1].isdigit():
        parts = parts[:-1]  # the union's tag, not a key the file writes
    if len(parts) < 2 or not parts[-1].isdigit():
        return None
    entry = (parts[-2], int(parts[-1]))
    for number, (table, header) in enumerate(_tables(text.splitlines()), start=1):
        if header and table and table[-1] == entry:
            return number
    return None


def _tables(lines: list[str]) -> list[tuple[Table, bool]]:
    """For each line, the table it is in, and whether it is that table's header."""
    out: list[tuple[Table, bool]] = []
    table: Table = ()
    entries: dict[tuple[str, ...], int] = {}  # array-of-tables path -> entries so far
    for line in lines:
        match = _HEADER.match(line)
        if match is None:
            out.append((table, False))
            continue
        names = tuple(a or b or c for a, b, c in _HEADER_PART.findall(match.group(2)))
        if match.group(1) == "[[":
            entries[names] = entries.get(names, 0) + 1
            for nested in [p for p in entries if len(p) > len(names) and p[: len(names)] == names]:
                del entries[nested]  # a new entry starts its own nested arrays
        table = tuple(
            (name, entries[names[: i + 1]] - 1 if names[: i + 1] in entries else None)
            for i, name in enumerate(names)
        )
        out.append((table, True))
    return out


def _wanted_table(parents: list[str], named: set[str]) -> Table:
    wanted: list[tuple[str, int | None]] = []
    for part in parents:
        if part.isdigit():
            if wanted and wanted[-1][1] is None:
                wanted[-1] = (wanted[-1][0], int(part))
        elif part in named:
            wanted.append((part, None))
    return tuple(wanted)


def _suggestion(key: str, model: type[BaseModel], parents: list[str]) -> str:
    """`; did you mean ...?` for an unknown key: the key in another section where it exists
    there and not here (`shared_group` at the top level: `[broker] shared_group`), else the
    closest spelling here."""
    candidates, here = _models_along(model, parents)
    kinds = _other_kinds_with(key, model, parents)
    if kinds:
        # `port` in a bme280 section: a key of the serial sensors' sections, not [mqtt] port
        # (nor a spelling of a key this section has: it is in the wrong section).
        return f"; `{key}` belongs to {', '.join(kinds)} sections, not a {parents[-1]}'s"
    elsewhere = [s for s in _sections_with(model, key) if [n for n, _kind in s] != here]
    if elsewhere:
        return "; did you mean " + " or ".join(_section_text(s, key) for s in elsewhere[:3]) + "?"
    close = _suggest(key, sorted({k for m in candidates for k in m.model_fields}))
    return f"; did you mean {close!r}?" if close else ""


Section = tuple[tuple[str, str], ...]  # field names with their kind: table, array or map


def _models_along(
    model: type[BaseModel], parents: list[str]
) -> tuple[list[type[BaseModel]], list[str]]:
    """The models that may stand at `parents`, and the field names on the way there (list
    indices, union tags and a mapping's keys, such as device ids, left out)."""
    candidates: list[type[BaseModel]] = [model]
    fields: list[str] = []
    for part in parents:
        if part.isdigit():
            continue
        # In a discriminated union pydantic puts the tag (e.g. "sds011") into the path.
        tagged = [m for m in candidates if _has_literal(m, part)]
        if tagged:
            candidates = tagged
            continue
        inner = [
            i
            for m in candidates
            if part in m.model_fields
            for i in _inner_models(m.model_fields[part].annotation)
        ]
        if inner:
            candidates = inner
            fields.append(part)
        # else a mapping's key: the same models stand under it
    return candidates, fields


def _sections_with(
    model: type[BaseModel], key: str, section: Section = (), seen: frozenset[type] = frozenset()
) -> list[Section]:
    found = [section] if key in model.model_fields else []
    for name, field in model.model_fields.items():
        kind = _kind(field.annotation)
        for inner in _inner_models(field.annotation):
            if inner not in seen:
                found += _sections_with(inner, key, (*section, (name, kind)), seen | {model})
    return list(dict.fromkeys(found))


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return "array"
    if origin is dict:
        return "map"
    kinds = {_kind(arg) for arg in get_args(annotation) if arg is not type(None)}
    return next(iter(kinds)) if len(kinds) == 1 else "table"


def _section_text(section: Section, key: str) -> str:
    if not section:
        return f"{key} at the top level (above the first [section])"
    name = ".".join(n + (".<name>" if kind == "map" else "") for n, kind in section)
    if section[-1][1] == "array":
        return f"[[{name}]] {key}"
    return f"[{name}] {key}"


def _other_kinds_with(key: str, model: type[BaseModel], parents: list[str]) -> list[str]:
    """Where `parents` ends in a union's tag (`sensors.1.bme280`): the other kinds of that
    union (their tags) whose sections take `key`."""
    if not parents or parents[-1].isdigit():
        return []
    tag = parents[-1]
    members, _ = _models_along(model, parents[:-1])
    fields = {
        name
        for m in members
        for name, f in m.model_fields.items()
        if get_origin(f.annotation) is Literal and tag in get_args(f.annotation)
    }
    if len(fields) != 1:
        return []
    (discriminator,) = fields  # e.g. `driver`
    return sorted(
        {
            value
            for m in members
            if key in m.model_fields
            and not _has_literal(m, tag)
            and discriminator in m.model_fields
            for value in get_args(m.model_fields[discriminator].annotation)
            if isinstance(value, str)
        }
    )


def _has_literal(model: type[BaseModel], value: str) -> bool:
    return any(
        get_origin(f.annotation) is Literal and value in get_args(f.annotation)
        for f in model.model_fields.values()
    )


def _inner_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _inner_models(arg)]


def _suggest(key: str, allowed: list[str]) -> str | None:
    import difflib  # only for a mistake: not in every process that reads a config file

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return close[0] if close else None
