"""What every command prints with: verbosity (-q/-v), colour (--color, NO_COLOR, FORCE_COLOR) and
the JSON envelope (`"schema": N`, docs/json.md).

The options are global, as uv's are: accepted before or after the command name. `main` takes them
off the argument list before anything else parses it, so `check`'s fast path (no typer) honours
them too. Standard library only: this module is on that path.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

# The version of every JSON document pinner prints (docs/json.md). Raised when a field is removed
# or changes meaning; adding a field keeps it.
JSON_SCHEMA = 1
COLORS = ("auto", "always", "never")
_STYLES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2"}


class Settings:
    """This process's output settings; `main` resets them for every call."""

    verbosity = 0  # -1 quiet, 0 normal, 1 and more verbose
    color = "auto"


settings = Settings()


def take_global_options(args: Sequence[str]) -> list[str]:
    """`args` without -q/--quiet, -v/--verbose and --color WHEN (anywhere before `--`), which set
    `settings`. A bad --color value is a usage error."""
    settings.verbosity, settings.color = 0, "auto"
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--":
            rest += [arg, *it]
            break
        if arg in ("-q", "--quiet"):
            settings.verbosity = -1
        elif arg in ("-v", "--verbose"):
            settings.verbosity = max(settings.verbosity, 0) + 1
        elif arg == "--color" or arg.startswith("--color="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            if value not in COLORS:
                msg = f"--color: {value!r} is not one of {', '.join(COLORS)}"
                raise ConfigError(msg)
            settings.color = value
        else:
            rest.append(arg)
    return rest


def quiet() -> bool:
    return settings.verbosity < 0


def verbose() -> bool:
    return settings.verbosity > 0


def color_on(stream: TextIO) -> bool:
    """--color always/never decides; with auto, NO_COLOR (any value) turns colour off, then
    FORCE_COLOR (any value) on, else colour on a terminal only (https://no-color.org/)."""
    if settings.color != "auto":
        return settings.color == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, style: str, stream: TextIO) -> str:
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if color_on(stream) else text


def arrow(stream: TextIO) -> str:
    """→ where the stream can encode it, else ->."""
    try:
        "→".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


def out(text: str) -> None:
    """A result line on stdout (not with -q)."""
    if not quiet():
        print(text)


def note(text: str) -> None:
    """A note on stderr (not with -q)."""
    if not quiet():
        print(f"{paint('note', 'dim', sys.stderr)}: {_printable(text)}", file=sys.stderr)


def warn(text: str) -> None:
    """A warning on stderr (with -q too)."""
    print(f"{paint('warning', 'yellow', sys.stderr)}: {_printable(text)}", file=sys.stderr)


def detail(text: str) -> None:
    """A line on stderr with -v only."""
    if verbose():
        print(_printable(text), file=sys.stderr)


def error(text: str) -> None:
    print(f"pinner: {paint('error', 'red', sys.stderr)}: {_printable(text)}", file=sys.stderr)


def _printable(text: str) -> str:
    """The last fence before the terminal: control characters other than newline and tab (an
    escape sequence in a value some message quotes) shown as escapes, never raw."""
    import re

    return re.sub(
        r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]", lambda m: json.dumps(m.group())[1:-1], text
    )


def dump_json(data: dict[str, Any]) -> str:
    """A JSON document of pinner's: `schema` first, two-space indent, a final newline."""
    return json.dumps({"schema": JSON_SCHEMA, **data}, indent=2) + "\n"
