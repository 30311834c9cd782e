"""What every command group shares: the stack it works on and one-line errors (the shared
click options are in `options`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from pydantic import ValidationError

if TYPE_CHECKING:
    from sensorpipe.stack.local import LocalStack


def local_stack(directory: Path | None) -> LocalStack:
    from sensorpipe.stack.local import LocalStack, default_directory

    return LocalStack(directory or default_directory())


def fail(message: str) -> NoReturn:
    """End the command with `Error: message` on stderr and exit status 1."""
    raise click.ClickException(message)


def invalid(exc: ValidationError, options: dict[str, str] | None = None) -> NoReturn:
    """A pydantic validation error as one line per field, named as the option that set it."""
    lines = []
    for err in exc.errors():
        # A list item's error is located by its index: name the list's option instead.
        names = [str(p) for p in err["loc"] if not isinstance(p, int)]
        field = names[-1] if names else "value"
        name = (options or {}).get(field, field)
        msg = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            msg = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
        lines.append(f"{name} {err['input']!r}: {msg}")
    fail("; ".join(lines))
