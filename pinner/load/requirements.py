"""read: requirements files (pip's format) and pyproject.toml dependencies -> `Requirements`,
per target.

Lines are split exactly as pip splits them (`pinner.load.reqfile`); `-r` and `-c` are followed,
`--hash` is kept, and every other option is refused with its reason: pinner owns the indexes and
hands the resolver its own normalized lines, never the user's files. Each line's form is read by
`pinner.load.requirement_forms`, pyproject.toml tables by `pinner.load.pyproject_deps`. The walk is iterative (no recursion limit) and refuses
include cycles. `files_of` does the same walk without parsing requirements, for `pinner check`:
this module imports only the standard library; `packaging` is loaded by `read_requirements`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.errors import ConfigError
from pinner.load.reqfile import Line, decode, logical_lines, refuse_options, split_line

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pinner.model import Requirement, Requirements

_PYPROJECT = re.compile(r"^(?P<path>(?:.*/)?pyproject\.toml)(?:\[(?P<extras>[^\]]*)\])?$")


def pyproject_entry(path: Path) -> tuple[Path, tuple[str, ...]] | None:
    """(file, extras) of a matrix `requirements` entry spelled `pyproject.toml[a,b]`; None for a
    requirements file."""
    m = _PYPROJECT.match(path.as_posix())
    if m is None:
        return None
    extras = tuple(e.strip() for e in (m.group("extras") or "").split(",") if e.strip())
    return Path(m.group("path")), extras


def _include_target(value: str, parent: Path, where: str) -> Path:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        msg = (
            f"{where}: {value}: pinner reads requirements files from the project only; "
            "download it into the project and include it by path"
        )
        raise ConfigError(msg)
    return Path(parent, value).resolve()


def files_of(paths: Sequence[Path]) -> list[Path]:
    """Every file reachable from `paths` (requirements files through -r/-c, pyproject.toml named
    as `pyproject.toml[extras]`), in reading order. Fast and lenient: a file it cannot read or
    a line it cannot split is read as bytes by the caller and refused by `read_requirements`."""
    seen: dict[Path, None] = {}  # ordered; a set's lookups keep long chains linear
    stack = [(p, True) for p in reversed(paths)]
    while stack:
        path, top = stack.pop()
        entry = pyproject_entry(path) if top else None
        if entry is not None:
            path = entry[0]
        if path in seen or not path.is_file():
            continue
        seen[path] = None
        if entry is not None:
            continue
        try:
            lines = logical_lines(decode(path, str(path)))
        except ConfigError:
            continue
        nested = []
        for no, line in lines:
            try:
                for name, value in split_line(no, line, "").options:
                    if name in ("-r", "-c"):
                        nested.append((_include_target(value, path.parent, ""), False))
            except ConfigError:
                continue
        stack.extend(reversed(nested))
    return list(seen)


class _Frame:
    """A file being read: where the walk stands in it."""

    def __init__(self, path: Path, constraint: bool, lines: list[tuple[int, str]]) -> None:
        self.path, self.constraint, self.lines, self.at = path, constraint, lines, 0


class _Walk:
    """The iterative walk over requirements files and what they include."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[tuple[str, Line, bool]] = []  # (where, line, constraint)
        self.files: dict[Path, None] = {}  # every file read, in order
        self.open: set[Path] = set()  # the files of the include chain being read
        self.done: set[tuple[Path, bool]] = set()

    def shown(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def run(self, start: Path) -> None:
        """Depth-first, in file order, as pip reads: an include is read where it stands."""
        if (start, False) in self.done:
            return
        stack = [self._open(start, False, [], "matrix requirements")]
        while stack:
            frame = stack[-1]
            if frame.at >= len(frame.lines):
                stack.pop()
                self.open.discard(frame.path)
                self.done.add((frame.path, frame.constraint))
                continue
            no, text = frame.lines[frame.at]
            frame.at += 1
            where = f"{self.shown(frame.path)}:{no}"
            line = split_line(no, text, where)
            if line.args or any(name == "-e" for name, _ in line.options):
                self.items.append((where, line, frame.constraint))
                continue
            refuse_options(line, where, ("-r", "-c"))
            if len(line.options) != 1:
                msg = f"{where}: one -r or -c per line"
                raise ConfigError(msg)
            name, value = line.options[0]
            path = _include_target(value, frame.path.parent, where)
            constraint = name == "-c"  # pip: a -r inside a -c file lists requirements again
            if (path, constraint) in self.done:
                continue
            stack.append(self._open(path, constraint, stack, f"{where}: {name} {value}"))

    def _open(self, path: Path, constraint: bool, stack: list[_Frame], via: str) -> _Frame:
        if path in self.open:
            chain = [f.path for f in stack]
            names = [self.shown(p) for p in [*chain[chain.index(path) :], path]]
            if len(names) > 6:  # a long cycle: its ends say enough
                names = [*names[:3], f"... {len(names) - 5} more", *names[-2:]]
            cycle = " -> ".join(names)
            msg = f"{via}: includes {self.shown(path)} again ({cycle}); remove one of the includes"
            raise ConfigError(msg)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            msg = f"{via}: {self.shown(path)} {what}"
            raise ConfigError(msg)
        self.files[path] = None
        self.open.add(path)
        return _Frame(path, constraint, logical_lines(decode(path, self.shown(path))))


def marker_environment(python: str, platform: str) -> dict[str, str]:
    """The PEP 508 environment uv uses for `--python-version X.Y --python-platform
    <arch>-manylinux_2_28` (a CPython interpreter; the patch version is 0; the kernel's
    release and version are unknown, so empty)."""
    machine = {"linux-x86_64": "x86_64", "linux-aarch64": "aarch64"}.get(platform)
    if machine is None:
        msg = f"unknown platform {platform!r}; use linux-x86_64 or linux-aarch64"
        raise ConfigError(msg)
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python}.0",
        "python_version": python,
        "sys_platform": "linux",
    }


def read_requirements(
    paths: Sequence[Path], root: Path, *, python: str, platform: str
) -> Requirements:
    """Every requirement the files (and what they include) and named pyproject.toml tables
    hold, split by whether its marker holds for the target, each with its origin."""
    from pinner.load import requirement_forms as forms
    from pinner.load.pyproject_deps import pyproject_lines
    from pinner.model import Requirements

    root = root.resolve()
    env = marker_environment(python, platform)
    walk = _Walk(root)
    parsed: list[tuple[Requirement, bool]] = []
    for path in paths:
        entry = pyproject_entry(path)
        if entry is None:
            read = len(walk.items)
            walk.run(path.resolve())
            for where, line, constraint in walk.items[read:]:
                parsed.append(_from_line(where, line, constraint, root, env))
            continue
        file = entry[0].resolve()
        walk.files[file] = None
        holds = functools.partial(forms.marker_holds, env=env)
        for origin, text in pyproject_lines(file, entry[1], walk.shown(file), holds):
            parsed.append(forms.from_pep508(text, origin, root, env))
    return Requirements(
        items=tuple(r for r, keep in parsed if keep),
        skipped=tuple(r for r, keep in parsed if not keep),
        files=tuple(walk.files),  # the keys, in reading order
    )


def _from_line(
    where: str, line: Line, constraint: bool, root: Path, env: dict[str, str]
) -> tuple[Requirement, bool]:
    from pinner.load import requirement_forms as forms

    editable = [value for name, value in line.options if name == "-e"]
    refuse_options(line, where, ("--hash", "-e"))
    if len(editable) > 1 or (editable and line.args):
        msg = f"{where}: one requirement per line (-e takes one local project)"
        raise ConfigError(msg)
    hashes = [value for name, value in line.options if name == "--hash"]
    if editable and hashes:
        msg = f"{where}: --hash on an editable project: a local project is not hashed; remove it"
        raise ConfigError(msg)
    return forms.from_line(
        editable[0] if editable else line.args,
        origin=where,
        root=root,
        env=env,
        editable=bool(editable),
        hashes=tuple(hashes),
        constraint=constraint,
    )
