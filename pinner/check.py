"""check: is pinner.lock fresh for its inputs, and is every generated file what the lock renders?

Offline and fast (a pre-commit hook): no resolver, no network, no Jinja, no dataclasses. Every
rendered file carries the fingerprint of what it was rendered from (its target's lock section, the
templates, the installer, the pinner version) and the hash of its own body, so comparing hashes
is enough. The lock opens with an `[inputs]` table, read without parsing the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath
from typing import Any

from pinner.errors import ConfigError
from pinner.fingerprint import (
    artifact_inputs,
    knowledge_digest,
    lock_sections,
    misplaced_seal,
    package_digest,
    read_seal,
    regenerate_command,
    relative,
    target_inputs,
    templates_digest,
)
from pinner.output import ARTIFACTS, template_folders

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The lock formats `check` reads: keep in step with pinner.lock.FORMAT (a test compares them;
# importing pinner.lock here would load the dataclasses `check` never needs).
LOCK_FORMATS = (2,)
Problem = tuple[str, str, str]  # (path, what is wrong, command that refreshes it)


def read_inputs(path: Path) -> dict[str, str] | None:
    """Only the lock's `[inputs]` table; None when there is no lock."""
    head = read_head(path)
    return None if head is None else head[0]


def read_head(path: Path) -> tuple[dict[str, str], dict[str, str]] | None:
    """The lock's `[inputs]` and `[generated]` tables (target -> out folder, relative to the
    project root); None when there is no lock."""
    try:
        text = read_text(path, "the lock", "regenerate it with `pinner lock`")
    except FileNotFoundError:
        return None
    head = text.split("\n[targets.", 1)[0]
    try:
        doc = tomllib.loads(head)
    except (tomllib.TOMLDecodeError, RecursionError):
        return {}, {}
    version = doc.get("version")
    if version not in LOCK_FORMATS:
        msg = (
            f"{path}: lock format version {safe_repr(version)} is not one this pinner reads "
            f"({', '.join(map(str, LOCK_FORMATS))}); regenerate it with `pinner lock`, or "
            "upgrade pinner"
        )
        raise ConfigError(msg)
    tables = [doc.get("inputs", {}), doc.get("generated", {})]
    inputs, generated = (
        {str(k): str(v) for k, v in t.items()} if isinstance(t, dict) else {} for t in tables
    )
    for name, folder in generated.items():
        why = generated_problem(folder)
        if why:  # never printed raw, nor offered as `--out` (what `pinner generate` refuses too)
            msg = (
                f"{path}: generated.{safe_repr(name)[1:-1]} = {safe_repr(folder)} {why}; remove "
                "the line and run `pinner generate`"
            )
            raise ConfigError(msg)
    return inputs, generated


def generated_problem(folder: str) -> str:
    """Why a `[generated]` folder is not one `generate` records ("" when it is): a relative
    folder inside the project, one line of text."""
    parts = folder.split("/")
    inside = folder and not folder.startswith("/") and ".." not in parts
    if not inside or any(ord(c) < 32 or ord(c) == 127 for c in folder):
        return "is not a folder inside the project"
    return ""


def read_text(path: Path, what: str, fix: str) -> str:
    """A file's text; a ConfigError naming the file when it is not readable UTF-8 text
    (FileNotFoundError passes through)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        msg = f"{path}: cannot read {what}: {e.strerror}; {fix}"
        raise ConfigError(msg) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        msg = f"{path}:{line}: {what} is not UTF-8 text (byte {e.start}); {fix}"
        raise ConfigError(msg) from None


def stale(matrix: dict[str, Any], out: Path | None = None) -> list[Problem]:
    """Every stale thing; [] when the lock and the generated files are fresh."""
    root: Path = matrix["root"]
    out = out or matrix["out"]
    lock: Path = matrix["lock"]
    lock_name = shown(lock, root)
    head = read_head(lock)
    if head is None:
        return [(lock_name, "missing", "pinner lock")]
    locked, recorded = head
    digest = knowledge_digest()
    problems: list[Problem] = []
    names = [t["name"] for t in matrix["targets"]]
    for target in matrix["targets"]:
        name = target["name"]
        if name not in locked:
            problems.append(
                (lock_name, f"has no entry for target {name}", f"pinner lock --target {name}")
            )
        elif locked[name] != target_inputs(target, root, digest):
            problems.append(
                (
                    lock_name,
                    (
                        f"target {name} is stale (its matrix table, requirements "
                        "files, pinner's knowledge or pinner version changed)"
                    ),
                    f"pinner lock --target {name}",
                )
            )
    for name in sorted(set(locked) - set(names)):
        problems.append((lock_name, f"target {name} is no longer in the matrix", "pinner lock"))
    sections = lock_sections(read_text(lock, "the lock", "regenerate it with `pinner lock`"))
    for name in names:
        for package in hand_edited(sections.get(name, "")):
            problems.append(
                (
                    lock_name,
                    (
                        f"target {name}: package {package} was edited by hand (its integrity "
                        "digest does not match its content)"
                    ),
                    f"pinner lock --target {name}",
                )
            )
    generated = [n for n in names if (out / n).is_dir()]
    if generated:
        folders = template_folders(matrix["templates"])
        out_name = relative(out, root)
        for rel, what, installer in stale_files(
            sections, out, templates_digest(folders), generated
        ):
            command = regenerate_command(rel.parts[0], installer, out_name)
            problems.append((shown(out / rel, root), what, command))
    problems += missing_folders(recorded, names, root)
    return problems


def hand_edited(section: str) -> list[str]:
    """Packages of one target's lock section whose integrity digest does not match (the same
    digest as the lock writes: fingerprint.package_digest, here from the TOML)."""
    if not section:
        return []
    try:
        table = tomllib.loads(section)
    except (tomllib.TOMLDecodeError, RecursionError):
        return ["(unreadable section)"]
    targets: dict[str, Any] = table.get("targets", {})
    entry: dict[str, Any] = next(iter(targets.values()), {})
    packages: list[Any] = entry.get("packages", [])
    bad = []
    for p in packages:
        if not isinstance(p, dict) or not p.get("digest"):
            continue
        if package_digest(p) != p["digest"]:
            bad.append(str(p.get("name", "?")))
    return bad


def stale_files(
    sections: dict[str, str], out: Path, templates: str, names: list[str]
) -> list[tuple[PurePosixPath, str, str]]:
    """(file, problem, installer) for files under out/<target>/ that do not match what the lock
    would render."""
    found = []
    expected: dict[tuple[str, str], str] = {}  # (target, installer) -> fingerprint, hashed once
    for name in names:
        section = sections.get(name)
        for file in ARTIFACTS:
            rel = PurePosixPath(name) / file
            path = out / rel
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                found.append((rel, "missing", "pip"))
                continue
            except OSError as e:
                found.append((rel, f"unreadable ({e.strerror})", "pip"))
                continue
            parsed = read_seal(data)
            if parsed is None:
                what = (
                    "edited by hand (lines were added above the pinner seal)"
                    if misplaced_seal(data)
                    else "not generated by pinner (no header)"
                )
                found.append((rel, what, "pip"))
                continue
            fields, intact = parsed
            installer = fields.get("installer", "pip")
            if installer not in ("pip", "uv"):
                found.append((rel, "edited by hand", "pip"))
                continue
            if section is not None and (name, installer) not in expected:
                expected[name, installer] = artifact_inputs(section, templates, installer)
            if not intact:
                found.append((rel, "edited by hand", installer))
            elif section is None or fields.get("inputs") != expected[name, installer]:
                found.append((rel, "out of date with pinner.lock", installer))
    return found


def missing_folders(recorded: dict[str, str], names: list[str], root: Path) -> list[Problem]:
    """A target the lock says was generated whose folder is gone: a failure, not a note."""
    problems = []
    for name in names:
        folder = recorded.get(name)
        if folder is not None and not (root / folder / name).is_dir():
            where = shown(root / folder / name, root) + "/"
            command = regenerate_command(name, "pip", folder)
            problems.append((where, "missing (generated before)", command))
    return problems


def never_generated(matrix: dict[str, Any], out: Path | None = None) -> list[str]:
    """Targets of the matrix with no generated folder in `out` (a note, not a failure), but
    for those the lock's `[generated]` table says were generated there (a failure, see
    `missing_folders`)."""
    folder = out or matrix["out"]
    head = read_head(matrix["lock"])
    recorded = head[1] if head else {}
    here = relative(folder, matrix["root"])
    return [
        t["name"]
        for t in matrix["targets"]
        if not (folder / t["name"]).is_dir() and recorded.get(t["name"]) != here
    ]


def safe_repr(value: object) -> str:
    from pinner.safe import comment

    return comment(repr(value))


def shown(path: Path, root: Path) -> str:
    """A path as the user should read it: relative to the working folder, else to the root."""
    for base in (Path.cwd(), root):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)
