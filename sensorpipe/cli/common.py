"""What every command group shares: the stack directory option and one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from pydantic import ValidationError

if TYPE_CHECKING:
    from sensorpipe.stack.local import LocalStack


def _not_empty(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("give a directory (`--dir .` for this one)")
    return Path(value)


FC = TypeVar("FC", bound=Callable[..., Any])


def options(*decorators: Callable[[FC], FC]) -> Callable[[FC], FC]:
    """Several click options as one decorator, listed in `--help` in the order given: the
    options that mean the same in several commands, written once."""

    def apply(f: FC) -> FC:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    callback=_not_empty,
    help="Stack directory (default: $SENSORPIPE_DIR or ./.sensorpipe).",
)


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
