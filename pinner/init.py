"""init: a project folder + chosen preset targets -> pinner.toml, a .pre-commit-config.yaml entry
and .github/workflows/pinner-update.yml. Asks nothing; refuses to overwrite without --force.

Everything is computed first (`plan_init`), then written atomically, so a refusal writes nothing.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pinner import __version__
from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO_URL = "https://github.com/pinner-dev/pinner"  # the project's repository
HOOK_IDS = ("pinner-check", "pinner-lock")
MATRIX = Path("pinner.toml")
PRE_COMMIT = Path(".pre-commit-config.yaml")
WORKFLOW = Path(".github/workflows/pinner-update.yml")
BRANCH = "pinner/update"
PR_BODY = "pinner-update.md"
CRON = "17 5 * * 1"  # Mondays 05:17 UTC: off the full hour, when GitHub's scheduler is busiest
MATRIX_HEADER = """\
# pinner matrix: the deployment targets this project is pinned for (written by `pinner init`
# from pinner's presets). Each [targets.<name>] table is one GPU + CUDA build + Python.
# `pinner targets` lists them, `pinner explain --target NAME` shows each choice and why,
# `pinner generate --target NAME` locks and renders pinned/NAME/.
"""

Action = Literal["create", "overwrite", "append", "keep"]


@dataclass(frozen=True, kw_only=True)
class InitFile:
    path: Path  # relative to the project root
    text: str  # the whole new content ("" for keep)
    action: Action
    note: str  # shown to the user


def init_project(root: Path, names: Sequence[str], *, force: bool) -> list[str]:
    """Write the files; return one line per file saying what was done."""
    from pinner.output import write_text_atomic

    files = plan_init(root, names, force=force)
    for f in files:
        if f.action != "keep":
            write_text_atomic(root / f.path, f.text)
    lines = [f"{f.action:<9} {f.path.as_posix()}: {f.note}" for f in files]
    lines.append("next: pinner generate  (then commit pinner.toml, pinner.lock and pinned/)")
    return lines


def plan_init(root: Path, names: Sequence[str], *, force: bool) -> list[InitFile]:
    """What init would write; ConfigError (nothing written) when a file exists and not force."""
    uses_requirements = (root / "requirements.in").is_file()
    matrix = matrix_text(names, requirements=uses_requirements)
    existing = [p for p in (MATRIX, WORKFLOW) if (root / p).exists()]
    if existing and not force:
        listed = ", ".join(p.as_posix() for p in existing)
        msg = f"{listed}: already exist{'s' if len(existing) == 1 else ''}; pinner init does not "
        msg += "overwrite files: move them away, or run `pinner init --force` to replace them"
        raise ConfigError(msg)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and "pinner" in _toml(pyproject).get("tool", {}):
        msg = (
            "pyproject.toml: tool.pinner: this project already has a matrix; a pinner.toml would "
            "take precedence over it. Keep one: remove [tool.pinner], or skip pinner init"
        )
        raise ConfigError(msg)
    return [
        InitFile(
            path=MATRIX,
            text=matrix,
            action="overwrite" if (root / MATRIX).exists() else "create",
            note=f"targets {', '.join(tomllib.loads(matrix)['targets'])}"
            + (
                "; requirements from requirements.in"
                if uses_requirements
                else "; no requirements.in: add requirements = [...] to [defaults]"
            ),
        ),
        pre_commit_file(root),
        InitFile(
            path=WORKFLOW,
            text=workflow_text(python=tomllib.loads(matrix)["defaults"].get("python", "3.11")),
            action="overwrite" if (root / WORKFLOW).exists() else "create",
            note=f"weekly `pinner update` pull request on branch {BRANCH}",
        ),
    ]


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


# --- pinner.toml ---------------------------------------------------------------------------------


def matrix_text(names: Sequence[str], *, requirements: bool) -> str:
    """The chosen preset targets, with the presets' own comments, as a project matrix."""
    from pinner.matrix import preset_path

    preset = preset_path().read_text(encoding="utf-8")
    data = tomllib.loads(preset)
    known = list(data["targets"])
    unknown = [n for n in names if n not in known]
    if unknown:
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        msg = f"--target: no preset named {', '.join(parts)}; presets: {', '.join(known)}"
        raise ConfigError(msg)
    chosen = [n for n in known if n in names] if names else known
    sections = _sections(preset)
    defaults = sections.get("defaults", "[defaults]\n").rstrip("\n") + "\n"
    if requirements:
        defaults += 'requirements = ["requirements.in"]\n'
    text = MATRIX_HEADER + "\n" + defaults
    text += "".join("\n" + sections[f"targets.{n}"].rstrip("\n") + "\n" for n in chosen)
    parsed = tomllib.loads(text)
    if parsed["targets"] != {n: data["targets"][n] for n in chosen}:  # pragma: no cover
        msg = f"{preset_path()}: cannot copy its targets ({', '.join(chosen)}); please report"
        raise ConfigError(msg)
    return text


def _sections(text: str) -> dict[str, str]:
    """Each table of a TOML file with the comment lines just above it, keyed by its first
    dotted name level(s): "defaults", "targets.rtx5090" (sub-tables join their target)."""
    lines = text.splitlines(keepends=True)
    starts: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$", line.strip())
        if m:
            first = i
            while first > 0 and lines[first - 1].lstrip().startswith("#"):
                first -= 1
            parts = m.group(1).split(".")
            key = ".".join(parts[:2]) if parts[0] == "targets" else parts[0]
            starts.append((first, key))
    out: dict[str, str] = {}
    for n, (first, key) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        out[key] = out.get(key, "") + "".join(lines[first:end])
    return out


# --- .pre-commit-config.yaml ---------------------------------------------------------------------


def hook_block(indent: str = "  ") -> str:
    """The pinner repo entry for a `repos:` list, items indented by `indent`."""
    i = indent
    return (
        f"{i}# pinner: pinner-check is offline and fast; pinner-lock re-locks when the matrix\n"
        f"{i}# or requirements change (it needs the network: drop it if your CI has none).\n"
        f"{i}- repo: {REPO_URL}\n"
        f"{i}  rev: v{__version__}\n"
        f"{i}  hooks:\n" + "".join(f"{i}    - id: {hook}\n" for hook in HOOK_IDS)
    )


def pre_commit_file(root: Path) -> InitFile:
    path = root / PRE_COMMIT
    if not path.is_file():
        text = (
            "# pre-commit hooks (https://pre-commit.com): run `pre-commit install` once.\n"
            "repos:\n" + hook_block()
        )
        return InitFile(path=PRE_COMMIT, text=text, action="create", note="pinner hooks")
    old = path.read_text(encoding="utf-8")
    if REPO_URL in old:
        return InitFile(path=PRE_COMMIT, text="", action="keep", note="already has pinner's hooks")
    return InitFile(
        path=PRE_COMMIT, text=append_hooks(old), action="append", note="pinner hooks appended"
    )


def append_hooks(text: str) -> str:
    """`text` with the pinner entry added at the end of its top-level `repos:` block list;
    every other line is kept as it was."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    head = next((i for i, ln in enumerate(lines) if re.match(r"^repos\s*:\s*(#.*)?$", ln)), None)
    if head is None:
        if any(re.match(r"^repos\s*:", ln) for ln in lines):
            msg = (
                f"{PRE_COMMIT}: repos: is not a block list, so pinner cannot append to it; "
                f"add this entry yourself:\n{hook_block()}"
            )
            raise ConfigError(msg)
        return "".join(lines) + "repos:\n" + hook_block()
    end = head + 1
    indent: str | None = None  # of the existing items ("" for items at column 0)
    last_item = head + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lead = line[: len(line) - len(line.lstrip())]
            if not lead and not stripped.startswith("-"):
                break  # the next top-level key
            if stripped.startswith("-") and indent is None:
                indent = lead
            last_item = end + 1
        end += 1
    block = hook_block("  " if indent is None else indent)
    return "".join(lines[:last_item]) + block + "".join(lines[last_item:])


# --- the workflow --------------------------------------------------------------------------------


def workflow_text(*, python: str) -> str:
    import jinja2

    from pinner.output import packaged_templates

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(packaged_templates() / "init")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return env.get_template("pinner-update.yml.j2").render(
        version=__version__,
        python=python,
        cron=CRON,
        branch=BRANCH,
        body=PR_BODY,
        paths=["pinner.lock", "pinned/"],
    )
