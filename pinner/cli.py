"""Entry point: `main(argv) -> int` is the only exit (0 ok, 1 a failed check, 2 a usage or
config error). Errors a user can fix print one message, never a traceback.

`pinner check` runs as a pre-commit hook on every commit, so it has a fast path that parses its
few options here and never imports typer (which costs more than the whole check).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.errors import ConfigError, PinnerError

if TYPE_CHECKING:
    from collections.abc import Sequence


INTERRUPTED = 130  # the exit status of a command Ctrl-C stopped (128 + SIGINT), as shells use


def _fast_check(args: list[str]) -> bool:
    """Run `check` without typer when its arguments are simple; False to fall back to typer."""
    from pinner.commands.check import run_check

    matrix = out = None
    diff = as_json = False
    it = iter(args)
    for arg in it:
        if arg in ("--matrix", "-m", "--out"):
            value = next(it, None)
            if value is None:
                return False
            if arg == "--out":
                out = Path(value)
            else:
                matrix = Path(value)
        elif arg.startswith(("--matrix=", "--out=")):
            key, value = arg.split("=", 1)
            if key == "--out":
                out = Path(value)
            else:
                matrix = Path(value)
        elif arg == "--diff":
            diff = True
        elif arg == "--json":
            as_json = True
        else:
            return False  # --help, typos: let typer answer
    run_check(matrix, out, diff=diff, as_json=as_json)
    return True


# `lock`, `generate` and `explain` with only these options skip typer's parsing too (0.2 s: it
# builds a pydantic adapter per option) and its import, and call the functions the typer commands
# call (pinner.commands.run); any other argument
# (--help, a flag not listed, a typo) goes through typer. Each option -> its long name ("" for a
# flag, which takes no value).
FAST = {
    "lock": {"-t": "--target", "--target": "--target", "-m": "--matrix", "--matrix": "--matrix"},
    "generate": {"-t": "--target", "--target": "--target", "-m": "--matrix", "--matrix": "--matrix",
                 "--out": "--out"},
    "explain": {"-t": "--target", "--target": "--target", "-m": "--matrix", "--matrix": "--matrix",
                "--json": ""},
}  # fmt: skip


def _fast_command(args: list[str]) -> bool:
    """Run a FAST command without typer's parsing; False to fall back to typer."""
    known = FAST.get(args[0]) if args else None
    if known is None:
        return False
    got: dict[str, list[str]] = {}
    it = iter(args[1:])
    for arg in it:
        name, eq, value = arg.partition("=")
        key = known.get(name if name.startswith("--") else arg)
        if key is None:
            return False
        if key == "":  # a flag
            if eq:
                return False
            got.setdefault(arg, [])
            continue
        value = value if eq else next(it, "")
        if not value or value.startswith("-"):
            return False
        got.setdefault(key, []).append(value)
    from pinner.commands import run as commands  # the command bodies, without typer

    targets = got.get("--target", [])
    matrix = Path(got["--matrix"][-1]) if "--matrix" in got else None
    if args[0] == "explain":
        if len(targets) != 1:
            return False
        commands.explain(target=targets[0], matrix=matrix, json_out="--json" in got)
    elif args[0] == "lock":
        commands.lock(target=targets or None, matrix=matrix)
    else:
        out = Path(got["--out"][-1]) if "--out" in got else None
        commands.generate(target=targets or None, matrix=matrix, out=out)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    from pinner import console

    try:
        args = console.take_global_options(sys.argv[1:] if argv is None else argv)
        completing = "_PINNER_COMPLETE" in os.environ  # the shell asks typer for completions
        if args[:1] == ["check"] and not completing and _fast_check(args[1:]):
            return 0
        if not completing and _fast_command(args):
            return 0
        from pinner.commands.app import app

        app(args=args, prog_name="pinner")
    except PinnerError as e:
        console.error(str(e))
        return e.exit_code
    except SystemExit as e:  # typer: --help -> 0, usage errors -> 2, Ctrl-C -> 130 (said here)
        if e.code == INTERRUPTED:
            print("pinner: interrupted", file=sys.stderr)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("pinner: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (OSError, UnicodeError, RecursionError, MemoryError) as e:
        # The last fence: a fault no stage turned into its own message still ends in one line.
        console.error(_fault(e))
        return 2
    return 0


def _fault(e: BaseException) -> str:
    """One line for an input or I/O fault: the file when known, what went wrong, what to do."""
    from pinner.safe import comment

    if isinstance(e, RecursionError):
        return (
            "an input is nested too deeply to read (e.g. hundreds of chained -r includes, or "
            "deeply nested TOML arrays); flatten it"
        )
    if isinstance(e, MemoryError):
        return "out of memory reading the inputs; check that no input file is unexpectedly large"
    if isinstance(e, UnicodeDecodeError):
        return (
            f"an input file is not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r}); "
            "save it as UTF-8"
        )
    if isinstance(e, OSError):
        where = f"{comment(str(e.filename))}: " if e.filename else ""
        return f"{where}{comment(e.strerror or str(e))}; check the path, its permissions and free space"
    return f"{type(e).__name__}: {comment(str(e))}"


__all__ = ["ConfigError", "main"]
