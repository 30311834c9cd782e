"""Loading TOML configuration into pydantic models with errors a Pi owner can act on.

An error names the file, the key (and its line when it can be found) and, for a misspelt key,
the spelling that was probably meant.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

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
        raise ConfigError(path, f"not valid TOML: {exc}") from None
    return validate_model(data, model, path=path, text=text)


def validate_model(data: dict[str, Any], model: type[M], *, path: Path, text: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, model, text) for err in exc.errors()[:8]]
        if len(lines) == 1:  # the usual case: one line that says it all
            raise ConfigError(path, lines[0]) from None
        raise ConfigError(path, "invalid configuration\n  " + "\n  ".join(lines)) from None


def _describe(err: Any, model: type[BaseModel], text: str) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    where = _line_of(text, loc[-1]) if loc else None
    at = f" (line {where})" if where else ""
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        suggestion = _suggest(loc[-1], _allowed_keys(model, loc[:-1]))
        message = "unknown key" + (f"; did you mean {suggestion!r}?" if suggestion else "")
    return f"{key}{at}: {message}"


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\[+[^\]]*\b{re.escape(key)}\]+|\"?{re.escape(key)}\"?\s*=)")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return None


def _allowed_keys(model: type[BaseModel], parents: list[str]) -> list[str]:
    """Keys valid at the path `parents`, following lists and discriminated unions."""
    candidates: list[type[BaseModel]] = [model]
    for part in parents:
        if part.isdigit():
            continue
        # In a discriminated union pydantic puts the tag (e.g. "sds011") into the path.
        tagged = [m for m in candidates if _has_literal(m, part)]
        if tagged:
            candidates = tagged
            continue
        candidates = [
            inner
            for m in candidates
            if part in m.model_fields
            for inner in _inner_models(m.model_fields[part].annotation)
        ]
    return sorted({key for m in candidates for key in m.model_fields})


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
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return close[0] if close else None
