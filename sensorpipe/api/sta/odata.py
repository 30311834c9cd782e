"""The OData query options SensorThings uses: `$top`, `$skip`, `$count`, `$orderby`, `$select`,
`$expand` (one level, with its own options in parentheses) and `$filter`.

`$filter` is a conjunction of comparisons: `path op literal`, joined by `and`, grouped by
parentheses if one likes; `op` is one of eq ne gt ge lt le; a literal is a number, a string
in single quotes (a quote doubled inside it), an ISO 8601 date-time with a zone (`Z` or
`+01:00`), true, false or null. Everything else (`or`, `not`, functions, arithmetic) is refused
with a 400 that says what is supported. Every option is checked here, so what comes out is
well-formed; whether a path means something is for the entity set to decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sensorpipe.api.problems import ApiProblem, bad_request

TOP_DEFAULT = 100
TOP_MAX = 1000
SKIP_MAX = 1_000_000_000
MAX_OPTION_CHARS = 2000
MAX_COMPARISONS = 32
# Parentheses a $filter may nest: a conjunction needs none; deeper nesting would only recurse.
MAX_FILTER_DEPTH = 10
MAX_ORDERBY = 5
MAX_SELECT = 50
MAX_EXPAND = 10
OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
# What an operator becomes when its operands swap sides (`5 lt result` is `result gt 5`).
_MIRRORED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OPTIONS = ("$top", "$skip", "$count", "$orderby", "$select", "$expand", "$filter")
_NAME = r"[A-Za-z_@][A-Za-z0-9_@.]{0,63}"
_PATH = re.compile(rf"{_NAME}(?:/{_NAME}){{0,3}}")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})"
)
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
    |(?P<string>'(?:[^']|'')*')
    |(?P<datetime>{_DATETIME.pattern})
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_.:])
    |(?P<path>{_NAME}(?:/{_NAME})*)
    |(?P<open>\()
    |(?P<close>\))
    """,
    re.VERBOSE,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Date-times are taken in the years the rest of the API takes (InfluxDB's range; it ends
# inside 1677 and 2262, and observations.py says a comparison past its ends with them).
MIN_YEAR, MAX_YEAR = 1677, 2262


@dataclass(frozen=True)
class DateTime:
    """A date-time literal, in nanoseconds since the epoch (exact to what was written)."""

    ns: int


Literal = str | int | float | bool | None | DateTime


@dataclass(frozen=True)
class Comparison:
    path: tuple[str, ...]
    op: str
    value: Literal


@dataclass(frozen=True)
class OrderBy:
    path: tuple[str, ...]
    descending: bool


@dataclass
class Expand:
    name: str
    options: QueryOptions


@dataclass
class QueryOptions:
    top: int = TOP_DEFAULT
    skip: int = 0
    count: bool = False
    orderby: list[OrderBy] = field(default_factory=list)
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    filter: list[Comparison] = field(default_factory=list)
    # The options as given (name, value), to write them into a next link.
    raw: list[tuple[str, str]] = field(default_factory=list)


def _shown(text: str) -> str:
    """`text` quoted for an error message, shortened when long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_options(
    params: Iterable[tuple[str, str]], *, nested_in: str | None = None
) -> QueryOptions:
    """The query options among `params` (name, value pairs as the query string gave them).

    Parameters not starting with `$` are left to others; an unknown `$` option, one given
    twice or a malformed value is a 400. `nested_in` names the expanded navigation property
    whose options these are: they may not expand further.
    """
    where = f"$expand={nested_in}(...)" if nested_in else None
    seen: set[str] = set()
    options = QueryOptions()
    for name, value in params:
        if not name.startswith("$"):
            continue
        parameter = where or name
        if name not in _OPTIONS:
            raise bad_request(
                f"unknown query option {_shown(name)}: supported are {', '.join(_OPTIONS)}",
                parameter,
            )
        if name in seen:
            raise bad_request(f"{name} given more than once", parameter)
        seen.add(name)
        options.raw.append((name, value))
        if len(value) > MAX_OPTION_CHARS:
            raise bad_request(f"{name} is longer than {MAX_OPTION_CHARS} characters", parameter)
        if name == "$top":
            options.top = _integer(name, value, TOP_MAX, parameter)
        elif name == "$skip":
            options.skip = _integer(name, value, SKIP_MAX, parameter)
        elif name == "$count":
            if value not in ("true", "false"):
                raise bad_request(f"$count is true or false, not {_shown(value)}", parameter)
            options.count = value == "true"
        elif name == "$orderby":
            options.orderby = _orderby(value, parameter)
        elif name == "$select":
            options.select = _select(value, parameter)
        elif name == "$expand":
            if nested_in:
                raise bad_request(
                    f"$expand reaches one level: {nested_in} cannot expand further", parameter
                )
            options.expand = _expand(value)
        else:
            options.filter = parse_filter(value, parameter)
    return options


def _integer(name: str, value: str, maximum: int, parameter: str) -> int:
    if not re.fullmatch(r"\d{1,10}", value) or int(value) > maximum:
        raise bad_request(
            f"{name} is a whole number from 0 to {maximum}, not {_shown(value)}", parameter
        )
    return int(value)


def _path(text: str, option: str, parameter: str) -> tuple[str, ...]:
    if not _PATH.fullmatch(text):
        raise bad_request(f"{option}: {_shown(text)} is no property name or path", parameter)
    return tuple(text.split("/"))


def _orderby(value: str, parameter: str) -> list[OrderBy]:
    items = split_top_level(value, ",", parameter)
    if len(items) > MAX_ORDERBY:
        raise bad_request(f"$orderby takes at most {MAX_ORDERBY} properties", parameter)
    out = []
    for item in items:
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_request(
                f"$orderby: expected 'property', 'property asc' or 'property desc', "
                f"not {_shown(item)}",
                parameter,
            )
        out.append(OrderBy(_path(words[0], "$orderby", parameter), words[-1] == "desc"))
    return out


def _select(value: str, parameter: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if len(items) > MAX_SELECT:
        raise bad_request(f"$select takes at most {MAX_SELECT} properties", parameter)
    for item in items:
        if not re.fullmatch(_NAME, item):
            raise bad_request(f"$select: {_shown(item)} is no property name", parameter)
    return items


def _expand(value: str) -> list[Expand]:
    items = split_top_level(value, ",", "$expand")
    if len(items) > MAX_EXPAND:
        raise bad_request(f"$expand takes at most {MAX_EXPAND} navigation properties", "$expand")
    out: list[Expand] = []
    for item in items:
        m = re.fullmatch(rf"\s*({_NAME}(?:/{_NAME})*)\s*(?:\((.*)\))?\s*", item, re.DOTALL)
        if m is None:
            raise bad_request(
                f"$expand: expected 'Name' or 'Name($top=...;$select=...)', not {_shown(item)}",
                "$expand",
            )
        name, inner = m.group(1), m.group(2)
        if "/" in name:
            raise bad_request(
                f"$expand reaches one level: {_shown(name)} goes deeper; ask the related "
                f"entity's own URL",
                "$expand",
            )
        if any(e.name == name for e in out):
            raise bad_request(f"$expand names {name} twice", "$expand")
        params: list[tuple[str, str]] = []
        if inner is not None and inner.strip():
            for part in split_top_level(inner, ";", "$expand"):
                key, eq, val = part.strip().partition("=")
                if not eq:
                    raise bad_request(
                        f"$expand={name}(...): expected '$option=value', not {_shown(part)}",
                        "$expand",
                    )
                if not key.startswith("$"):
                    raise bad_request(
                        f"$expand={name}(...): {_shown(key)} is no query option", "$expand"
                    )
                params.append((key, val))
        out.append(Expand(name, parse_options(params, nested_in=name)))
    return out


def split_top_level(text: str, separator: str, parameter: str) -> list[str]:
    """`text` split at `separator` outside quotes and parentheses."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in text:
        if quoted:
            quoted = ch != "'"
        elif ch == "'":
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"{parameter}: a ')' closes nothing", parameter)
        elif ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted:
        raise bad_request(f"{parameter}: a quoted string is not closed", parameter)
    if depth:
        raise bad_request(f"{parameter}: a '(' is not closed", parameter)
    parts.append("".join(current))
    return parts


# --- $filter ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str, parameter: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise bad_request(
                f"$filter: cannot read {_shown(text[pos : pos + 20])} at character {pos + 1}",
                parameter,
            )
        kind = m.lastgroup or ""
        if kind != "space":
            out.append(_Token(kind, m.group(0), pos))
        pos = m.end()
    return out


def parse_datetime(text: str, parameter: str) -> DateTime:
    """An ISO 8601 date-time with a zone, exactly, in nanoseconds since the epoch."""
    m = _DATETIME.fullmatch(text)
    if m is None:
        raise bad_request(
            f"{_shown(text)} is no date-time: expected e.g. 2024-05-01T12:00:00Z", parameter
        )
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = (m.group(7) or "").ljust(9, "0")
    zone = m.group(8)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise bad_request(
            f"{_shown(text)}: the year is outside {MIN_YEAR}..{MAX_YEAR} (InfluxDB's range)",
            parameter,
        )
    try:
        offset = timedelta(0)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("zone offset out of range")
            offset = sign * timedelta(hours=hours, minutes=minutes)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC) - offset
    except ValueError:
        raise bad_request(f"{_shown(text)} is no valid date-time", parameter) from None
    whole = (moment - _EPOCH) // timedelta(seconds=1)
    return DateTime(whole * 1_000_000_000 + int(fraction))


def _literal(token: _Token, parameter: str) -> Literal:
    if token.kind == "string":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "datetime":
        return parse_datetime(token.text, parameter)
    if token.kind == "number":
        if re.fullmatch(r"-?\d+", token.text):
            if len(token.text.lstrip("-")) > 16:
                raise bad_request(f"$filter: {_shown(token.text)} is too long a number", parameter)
            return int(token.text)
        number = float(token.text)
        if number in (float("inf"), float("-inf")):
            raise bad_request(f"$filter: {_shown(token.text)} is out of range", parameter)
        return number
    words: dict[str, Literal] = {"true": True, "false": False, "null": None}
    return words[token.text]


def _is_literal(token: _Token) -> bool:
    return token.kind in ("string", "datetime", "number") or (
        token.kind == "path" and token.text in ("true", "false", "null")
    )


class _FilterParser:
    def __init__(self, text: str, parameter: str) -> None:
        self.parameter = parameter
        self.tokens = _tokens(text, parameter)
        self.pos = 0
        self.depth = 0
        self.out: list[Comparison] = []

    def fail(self, what: str) -> ApiProblem:
        if self.pos < len(self.tokens):
            t = self.tokens[self.pos]
            where = f"at {_shown(t.text)} (character {t.at + 1})"
        else:
            where = "at the end"
        return bad_request(
            f"$filter: {what} {where}; supported: comparisons 'path op value' (op one of "
            f"{' '.join(OPERATORS)}) joined by 'and'",
            self.parameter,
        )

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("expected more")
        self.pos += 1
        return token

    def parse(self) -> list[Comparison]:
        if not self.tokens:
            raise self.fail("expected a comparison")
        self.conjunction()
        if self.peek() is not None:
            raise self.fail("expected 'and' or the end")
        return self.out

    def conjunction(self) -> None:
        self.term()
        while (token := self.peek()) is not None and token.kind == "path":
            if token.text == "or":
                raise self.fail("'or' is not supported")
            if token.text != "and":
                break
            self.pos += 1
            self.term()

    def term(self) -> None:
        token = self.peek()
        if token is not None and token.kind == "open":
            if self.depth >= MAX_FILTER_DEPTH:
                raise self.fail(f"parentheses nest deeper than {MAX_FILTER_DEPTH} levels")
            self.depth += 1
            self.pos += 1
            self.conjunction()
            self.depth -= 1
            if self.take().kind != "close":
                self.pos -= 1
                raise self.fail("expected ')'")
            return
        self.comparison()

    def comparison(self) -> None:
        left = self.take()
        if left.kind == "path" and left.text == "not":
            self.pos -= 1
            raise self.fail("'not' is not supported")
        op = self.take()
        if op.kind == "open":
            self.pos -= 2
            raise self.fail("functions are not supported")
        if op.kind != "path" or op.text not in OPERATORS:
            self.pos -= 1
            raise self.fail("expected an operator")
        right = self.take()
        if _is_literal(right) and left.kind == "path" and not _is_literal(left):
            path, value, operator = left.text, _literal(right, self.parameter), op.text
        elif _is_literal(left) and right.kind == "path" and not _is_literal(right):
            path, value, operator = right.text, _literal(left, self.parameter), _MIRRORED[op.text]
        else:
            self.pos -= 1
            raise self.fail("expected a property compared with a value")
        if len(self.out) >= MAX_COMPARISONS:
            raise self.fail(f"more than {MAX_COMPARISONS} comparisons")
        self.out.append(Comparison(_path(path, "$filter", self.parameter), operator, value))


def parse_filter(text: str, parameter: str = "$filter") -> list[Comparison]:
    """The comparisons of a `$filter`, all of which must hold."""
    return _FilterParser(text, parameter).parse()
