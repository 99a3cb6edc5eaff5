"""init: a project folder + chosen preset targets -> pinner.toml, a .pre-commit-config.yaml entry,
.github/workflows/pinner-update.yml and the hashed requirements it installs pinner from.

Adds only what is missing: an existing matrix, workflow or pinner hook entry is kept as it is;
`--force` replaces the matrix and the workflow, keeping numbered backups (`pinner.toml.~1~`).
Everything is computed first (`plan_init`), then written staged: every new file goes to a
temporary file next to its target, and only when all are written are they renamed into place, so a
refusal or a failure leaves the project as it was.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pinner import __version__
from pinner.commands.hooks import PRE_COMMIT, HookMode
from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MATRIX = Path("pinner.toml")
WORKFLOW = Path(".github/workflows/pinner-update.yml")
MATRIX_HEADER = """\
# pinner matrix: the deployment targets this project is pinned for (written by `pinner init`
# from pinner's presets). Each [targets.<name>] table is one GPU + CUDA build + Python.
# `pinner targets` lists them, `pinner explain --target NAME` shows each choice and why,
# `pinner generate --target NAME` locks and renders pinned/NAME/.
"""

Action = Literal["create", "replace", "append", "keep", "skip"]


@dataclass(frozen=True, kw_only=True)
class InitFile:
    path: Path  # relative to the project root
    text: str  # the whole new content ("" for keep and skip)
    action: Action
    note: str  # shown to the user


@dataclass(frozen=True, kw_only=True)
class InitOptions:
    force: bool = False
    workflow: bool = True
    hooks: HookMode | None = "remote"  # None: --no-hooks
    hook_repo: str = ""  # default: the installed distribution's Project-URL


def init_project(root: Path, names: Sequence[str], options: InitOptions) -> list[str]:
    """Write the files; return one line per file saying what was done."""
    files = plan_init(root, names, options)
    backups = write_staged(root, files)
    lines = []
    for f in files:
        line = f"{f.action:<9} {f.path.as_posix()}: {f.note}"
        if f.path in backups:
            line += f" (the old file is now {backups[f.path].as_posix()})"
        lines.append(line)
    lines.append("next: pinner generate  (then commit pinner.toml, pinner.lock and pinned/)")
    return lines


def plan_init(root: Path, names: Sequence[str], options: InitOptions) -> list[InitFile]:
    """What init would write; ConfigError (nothing written) when it cannot be done."""
    pyproject = root / "pyproject.toml"
    in_pyproject = pyproject.is_file() and "pinner" in _toml(pyproject).get("tool", {})
    files = [_matrix_file(root, names, options, in_pyproject=in_pyproject)]
    if options.hooks is not None:
        files.append(_pre_commit_file(root, options))
    if options.workflow:
        files += _workflow_files(root, files[0], options)
    return files


def _matrix_file(
    root: Path, names: Sequence[str], options: InitOptions, *, in_pyproject: bool
) -> InitFile:
    if in_pyproject:
        if options.force or names:
            msg = (
                "pyproject.toml: tool.pinner: this project already has a matrix; a pinner.toml "
                "would take precedence over it. Keep one: remove [tool.pinner], or run "
                "`pinner init` without --force and --target to add only the workflow and hooks"
            )
            raise ConfigError(msg)
        return InitFile(path=Path("pyproject.toml"), text="", action="keep", note="[tool.pinner]")
    exists = (root / MATRIX).exists()
    if exists and not options.force:
        note = "kept as it is" + (
            f" (--target {', '.join(names)} not applied: use --force to replace the matrix)"
            if names
            else ""
        )
        return InitFile(path=MATRIX, text="", action="keep", note=note)
    uses_requirements = (root / "requirements.in").is_file()
    matrix = matrix_text(names, requirements=uses_requirements)
    return InitFile(
        path=MATRIX,
        text=matrix,
        action="replace" if exists else "create",
        note=f"targets {', '.join(tomllib.loads(matrix)['targets'])}"
        + (
            "; requirements from requirements.in"
            if uses_requirements
            else "; no requirements.in: add requirements = [...] to [defaults]"
        ),
    )


def _pre_commit_file(root: Path, options: InitOptions) -> InitFile:
    from pinner.commands import hooks

    mode = options.hooks or "remote"
    repo = ""
    if mode == "remote":
        from pinner.commands.workflow import repository_url

        repo = options.hook_repo or repository_url()
        if not repo:
            msg = (
                "pre-commit: cannot write a remote hook: pinner's metadata names no repository "
                "(Project-URL) and no --hook-repo URL was given; pass --hook-repo URL, or "
                "--hooks local (runs this project's pinner), or --no-hooks"
            )
            raise ConfigError(msg)
    block = hooks.hook_block(mode, repo, __version__)
    where = "repo: local" if mode == "local" else f"{repo} at rev v{__version__}"
    path = root / PRE_COMMIT
    if not path.is_file():
        text = "# pre-commit hooks (https://pre-commit.com): run `pre-commit install` once.\n"
        text += "repos:\n" + block
        return InitFile(path=PRE_COMMIT, text=text, action="create", note=f"pinner hooks ({where})")
    old = path.read_text(encoding="utf-8")
    present = hooks.pinner_repos(hooks.parse(old, PRE_COMMIT))
    if present:
        note = f"already has pinner's hooks ({', '.join(present)}); kept as it is"
        return InitFile(path=PRE_COMMIT, text="", action="keep", note=note)
    text = hooks.append_hooks(old, block)
    return InitFile(path=PRE_COMMIT, text=text, action="append", note=f"pinner hooks ({where})")


def _workflow_files(root: Path, matrix: InitFile, options: InitOptions) -> list[InitFile]:
    from pinner.commands import workflow

    paths = [workflow.REQUIREMENTS, WORKFLOW]
    existing = [p for p in paths if (root / p).exists()]
    if existing and not options.force:
        return [
            InitFile(path=p, text="", action="keep", note="kept as it is (--force replaces it)")
            for p in existing
        ]
    settings = _settings(root, matrix)
    python = settings["python"]
    source = workflow.pinner_source()
    compiled = workflow.hashed_requirements(root, source, python)
    requirements = workflow.requirements_text(source, compiled, python)
    flow = workflow.workflow_text(
        python=python, source=source, paths=[settings["lock"], settings["out"] + "/"]
    )
    kind = "released" if not source.git else "unreleased, from its commit"
    notes = {
        workflow.REQUIREMENTS: f"pinner {source.version} ({kind}) and its dependencies, hashed, "
        f"for Python {python}",
        WORKFLOW: f"weekly `pinner update` pull request on branch {workflow.BRANCH}",
    }
    out = []
    for path, text in ((workflow.REQUIREMENTS, requirements), (WORKFLOW, flow)):
        action: Action = "replace" if (root / path).exists() else "create"
        note = notes[path] + (f"; {source.note}" if source.note and path == WORKFLOW else "")
        out.append(InitFile(path=path, text=text, action=action, note=note))
    return out


def _settings(root: Path, matrix: InitFile) -> dict[str, str]:
    """The runner's Python, the lock and the generated folder of the (new or kept) matrix."""
    if matrix.text:
        doc = tomllib.loads(matrix.text)
    elif matrix.path == MATRIX:
        doc = _toml(root / MATRIX)
    else:
        doc = _toml(root / matrix.path).get("tool", {}).get("pinner", {})
    pythons = [str(t.get("python", "")) for t in doc.get("targets", {}).values()]
    python = str(doc.get("defaults", {}).get("python", "")) or next(
        (p for p in pythons if p), "3.11"
    )
    return {
        "python": python,
        "lock": str(doc.get("lock") or "pinner.lock"),
        "out": str(doc.get("out") or "pinned").rstrip("/"),
    }


def write_staged(root: Path, files: Sequence[InitFile]) -> dict[Path, Path]:
    """Write every new text to a temporary file beside its target; then back up each file that
    is replaced (`NAME.~N~`, the next free N) and rename the new ones into place. A failure before
    the renames removes the temporary files and changes nothing. Returns {path: backup}."""
    staged: list[tuple[Path, Path]] = []
    backups: dict[Path, Path] = {}
    try:
        for f in files:
            if f.action in ("keep", "skip"):
                continue
            target = root / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.pinner-init.tmp")
            staged.append((tmp, target))
            tmp.write_text(f.text, encoding="utf-8", newline="\n")
        for f in files:
            if f.action == "replace":
                backups[f.path] = _backup(root / f.path).relative_to(root)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for backup in backups.values():
            (root / backup).unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        tmp.replace(target)
    return backups


def _backup(path: Path) -> Path:
    n = 1
    while (backup := path.with_name(f"{path.name}.~{n}~")).exists():
        n += 1
    try:
        os.link(path, backup)  # the old file stays where it is until the rename replaces it
    except OSError:
        import shutil

        shutil.copy2(path, backup)
    return backup


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


# --- pinner.toml ---------------------------------------------------------------------------------


def matrix_text(names: Sequence[str], *, requirements: bool) -> str:
    """The chosen preset targets, with the presets' own comments, as a project matrix."""
    from pinner.load.matrix import preset_path

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
