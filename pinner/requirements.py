"""Read a project's requirements files (pip's format) into `Requirements`.

pinner owns the indexes, so index options inside requirements files are refused. `-r` and `-c`
are followed; `files_of` does the same walk without parsing requirements (for `pinner check`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from pinner.model import Requirements

_INCLUDES = ("-r", "--requirement", "-c", "--constraint")


def _include(line: str) -> tuple[str, str] | None:
    """('-r' or '-c' style option, path) of an include line, else None (no regex: hot path)."""
    for option in _INCLUDES:
        if line.startswith(option):
            rest = line[len(option) :]
            if rest[:1] in (" ", "\t", "="):
                path = rest[1:].strip().split()[0] if rest[1:].strip() else ""
                return (option, path) if path else None
    return None


_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index")


def _strip_comment(line: str) -> str:
    """Drop a `#` comment that starts the line or follows whitespace (pip's rule)."""
    if line.lstrip().startswith("#"):
        return ""
    for i, ch in enumerate(line):
        if ch == "#" and i > 0 and line[i - 1] in " \t":
            return line[:i]
    return line


def _logical_lines(path: Path) -> list[tuple[int, str]]:
    """Lines with continuations joined and comments dropped, numbered from 1."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        msg = f"{path}: not UTF-8 text (byte {e.start}); save the requirements file as UTF-8"
        raise ConfigError(msg) from None
    for no, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not pending:
            start = no
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def files_of(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """Every requirements file reachable from `paths` through -r/-c, in reading order."""
    seen: list[Path] = []
    stack = list(reversed(paths))
    while stack:
        path = stack.pop()
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        nested = []
        for _, line in _logical_lines(path):
            found = _include(line)
            if found:
                nested.append((path.parent / found[1]).resolve())
        stack.extend(reversed(nested))
    return seen


def read_requirements(paths: list[Path] | tuple[Path, ...], root: Path) -> Requirements:
    """Parse the files (and what they include) into requirements with their origin."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed
    from packaging.utils import canonicalize_name

    from pinner.model import Requirement, Requirements

    items: list[Requirement] = []
    files: list[Path] = []

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    def walk(path: Path, constraint: bool, via: str) -> None:
        if path in files:
            return
        if not path.is_file():
            msg = f"{via}: requirements file {shown(path)} does not exist"
            raise ConfigError(msg)
        files.append(path)
        for no, line in _logical_lines(path):
            where = f"{shown(path)}:{no}"
            found = _include(line)
            if found:
                nested_constraint = constraint or found[0] in ("-c", "--constraint")
                walk((path.parent / found[1]).resolve(), nested_constraint, where)
                continue
            if line.startswith("-"):
                option = line.split()[0].split("=")[0]
                if option in _INDEX_OPTIONS:
                    msg = (
                        f"{where}: {option} is not allowed: pinner chooses the indexes (the torch "
                        "build's PyTorch index, the installer's configured index for the rest); "
                        "remove the line, or set torch-index-url in the matrix for a mirror"
                    )
                    raise ConfigError(msg)
                msg = f"{where}: option {option} is not supported in pinner requirements files"
                raise ConfigError(msg)
            text = line.split(" --hash")[0].strip()
            try:
                parsed = Parsed(text)
            except InvalidRequirement as e:
                msg = f"{where}: not a valid requirement: {text!r} ({e})"
                raise ConfigError(msg) from e
            items.append(
                Requirement(
                    name=canonicalize_name(parsed.name),
                    text=str(parsed),
                    specifier=str(parsed.specifier),
                    origin=where,
                    constraint=constraint,
                )
            )

    for path in paths:
        walk(path.resolve(), False, "matrix")
    return Requirements(items=tuple(items), files=tuple(files))
