"""Entry point: `main(argv) -> int` is the only exit (0 ok, 1 a failed check, 2 a usage or
config error). Errors a user can fix print one message, never a traceback.

`pinner check` runs as a pre-commit hook on every commit, so it has a fast path that parses its
few options here and never imports typer (which costs more than the whole check).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.errors import ConfigError, PinnerError, StaleError

if TYPE_CHECKING:
    from collections.abc import Sequence


def run_check(matrix: Path | None, out: Path | None, *, diff: bool) -> None:
    from pinner.check import stale
    from pinner.matrix import read_matrix

    raw = read_matrix(matrix)
    problems = stale(raw, out)
    if not problems:
        print(f"pinner check: {len(raw['targets'])} targets fresh")
        return
    lines = [f"{path}: {what}\n  refresh: {cmd}" for path, what, cmd in problems]
    if diff:
        from pinner import pipeline

        lines += pipeline.stale_diffs(pipeline.load(matrix), out, problems)
    raise StaleError("\n".join(["stale:", *lines]))


def _fast_check(args: list[str]) -> bool:
    """Run `check` without typer when its arguments are simple; False to fall back to typer."""
    matrix = out = None
    diff = False
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
        else:
            return False  # --help, typos: let typer answer
    run_check(matrix, out, diff=diff)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["check"] and _fast_check(args[1:]):
            return 0
        from pinner.commands import app

        app(args=args, prog_name="pinner")
    except PinnerError as e:
        print(f"pinner: error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:  # typer: --help -> 0, usage errors -> 2
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("pinner: interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["ConfigError", "main", "run_check"]
