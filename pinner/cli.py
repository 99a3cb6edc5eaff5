"""Entry point: `main(argv) -> int` is the only exit (0 ok, 1 a failed check, 2 a usage or
config error). Errors a user can fix print one message, never a traceback.

`pinner check` runs as a pre-commit hook on every commit, so it has a fast path that parses its
few options here and never imports typer (which costs more than the whole check).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinner.errors import ConfigError, PinnerError, StaleError

if TYPE_CHECKING:
    from collections.abc import Sequence


def run_check(matrix: Path | None, out: Path | None, *, diff: bool, as_json: bool = False) -> None:
    from pinner.check import never_generated, stale
    from pinner.matrix import read_matrix

    raw = read_matrix(matrix)
    _say_matrix(raw["found"])
    problems = stale(raw, out)
    if as_json:
        _check_json(raw, out, problems)
        return
    if not problems:
        print(f"pinner check: {len(raw['targets'])} targets fresh")
        for name in never_generated(raw, out):
            print(f"note: target {name} has no generated files (pinner generate --target {name})")
        return
    lines = [f"{path}: {what}\n  refresh: {cmd}" for path, what, cmd in problems]
    if diff:  # the diffs on stdout (for a pager or a patch), the verdict on stderr
        from pinner import pipeline

        print("".join(pipeline.stale_diffs(pipeline.load(matrix), out, problems)), end="")
    raise StaleError("\n".join(["stale:", *lines]))


def _say_matrix(found: str) -> None:
    """-v: which matrix the command read, and why that one (discovery walks up)."""
    from pinner.console import detail

    detail(f"pinner: matrix: {found}")


def _check_json(raw: dict[str, Any], out: Path | None, problems: list[Any]) -> None:
    """`check --json` (docs/json.md): the document on stdout, then exit 1 when anything is stale."""
    from pinner.check import never_generated
    from pinner.console import dump_json

    doc = {
        "fresh": not problems,
        "targets": [t["name"] for t in raw["targets"]],
        "problems": [
            {"path": str(p[0]), "problem": str(p[1]), "refresh": str(p[2])} for p in problems
        ],
        "not_generated": [] if problems else never_generated(raw, out),
    }
    print(dump_json(doc), end="")
    if problems:
        n = len(problems)
        msg = f"stale: {n} problem{'s' if n != 1 else ''} (listed in the JSON on stdout)"
        raise StaleError(msg)


def _fast_check(args: list[str]) -> bool:
    """Run `check` without typer when its arguments are simple; False to fall back to typer."""
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
# builds a pydantic adapter per option) and call the same command functions; any other argument
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
    from pinner import commands

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
        from pinner.commands import app

        app(args=args, prog_name="pinner")
    except PinnerError as e:
        console.error(str(e))
        return e.exit_code
    except SystemExit as e:  # typer: --help -> 0, usage errors -> 2
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("pinner: interrupted", file=sys.stderr)
        return 130
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


__all__ = ["ConfigError", "main", "run_check"]
