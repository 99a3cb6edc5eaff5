"""`pinner check`: prints what `render.check` finds stale, or that all is fresh.
Run by `cli` without typer (its fast path) and by the typer command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinner.errors import StaleError

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def run_check(matrix: Path | None, out: Path | None, *, diff: bool, as_json: bool = False) -> None:
    from pinner.load.matrix import read_matrix
    from pinner.render.check import never_generated, stale

    raw = read_matrix(matrix)
    _say_matrix(raw["found"])
    problems = stale(raw, out)
    if as_json:
        _check_json(raw, out, problems)
        return
    if not problems:
        from pinner.console import out as say  # stdout, and nothing with -q

        count = len(raw["targets"])
        say(f"pinner check: {count} target{'' if count == 1 else 's'} fresh")
        for name in never_generated(raw, out):
            say(f"note: target {name} has no generated files (pinner generate --target {name})")
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
    from pinner.console import dump_json
    from pinner.render.check import never_generated

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
