"""read: requirements files (pip's format) and pyproject.toml dependencies -> `Requirements`,
per target.

Lines are split exactly as pip splits them (continuations joined first, then comments dropped,
then arguments and options separated); `-r` and `-c` are followed, `--hash` is kept, and every
other option is refused with its reason: pinner owns the indexes and hands the resolver its own
normalized lines, never the user's files. The walk is iterative (no recursion limit) and refuses
include cycles. `files_of` does the same walk without parsing requirements, for `pinner check`:
this module imports only the standard library; `packaging` is loaded by `read_requirements`.
"""

from __future__ import annotations

import codecs
import functools
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pinner.model import Requirement, Requirements

_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's COMMENT_RE
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip's ENV_VAR_RE
_PYPROJECT = re.compile(r"^(?P<path>(?:.*/)?pyproject\.toml)(?:\[(?P<extras>[^\]]*)\])?$")

# pip's requirements-file options (pip 25: SUPPORTED_OPTIONS + SUPPORTED_OPTIONS_REQ, plus the
# per-requirement options older releases took). kind: what pinner does with it.
_TAKES_VALUE = {
    "-r": "include",
    "--requirement": "include",
    "-c": "include",
    "--constraint": "include",
    "-e": "editable",
    "--editable": "editable",
    "--hash": "hash",
    "-i": "index",
    "--index-url": "index",
    "--pypi-url": "index",
    "--extra-index-url": "index",
    "-f": "index",
    "--find-links": "index",
    "--trusted-host": "index",
    "--no-binary": "binary",
    "--only-binary": "binary",
    "--use-feature": "feature",
    "-C": "per-requirement",
    "--config-settings": "per-requirement",
    "--global-option": "per-requirement",
    "--install-option": "per-requirement",
    "--build-option": "per-requirement",
}
_FLAGS = {
    "--no-index": "index",
    "--pre": "pre",
    "--prefer-binary": "binary",
    "--require-hashes": "require-hashes",
}
_CANONICAL = {"--requirement": "-r", "--constraint": "-c", "--editable": "-e"}
_REASONS = {
    "index": "pinner chooses the indexes (the PyTorch index for the torch build, the installer's "
    "index for the rest), so a requirements file cannot add or replace one; remove it "
    "(for a PyTorch mirror set torch-index-url in the matrix; for a wheel file, require it by "
    "path or URL)",
    "binary": "pinner decides wheels and source builds per target; remove it (set "
    'build = { <package> = "wheel" | "source" } in the matrix)',
    "feature": "pip feature flags do not reach pinner's resolver; remove it",
    "pre": "it would allow pre-releases of every package; remove it and allow one where you "
    "need it in its specifier (pkg>=2.0rc1)",
    "require-hashes": "pinner's recipes always install with --require-hashes; remove it",
    "per-requirement": "per-requirement options other than --hash do not reach the resolver "
    "(pinner hands it its own normalized lines); remove it",
}


class Line(NamedTuple):
    """One logical line of a requirements file, split as pip splits it."""

    no: int  # number of its first physical line
    args: str  # the requirement text ("" on an option line)
    options: tuple[tuple[str, str], ...]  # (canonical option, value) in order


def decode(path: Path, shown: str) -> str:
    """The file's text: UTF-8 (a byte-order mark for UTF-8/16/32 is honoured, as pip does)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        msg = f"{shown}: cannot read: {e.strerror}"
        raise ConfigError(msg) from e
    encoding = "utf-8"
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            encoding = name
            break
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        msg = f"{shown}:{line}: not {encoding.upper()} text (byte {e.start}); save it as UTF-8"
        raise ConfigError(msg) from None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's preprocessing: join `\\` continuations (not after a comment), then drop comments
    and blank lines; a joined line keeps the number of its first line."""
    out: list[tuple[int, str]] = []
    joined: list[str] = []
    first = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line
            if joined:
                joined.append(line)
                out.append((first, "".join(joined)))
                joined = []
            else:
                out.append((no, line))
        else:
            if not joined:
                first = no
            joined.append(line.strip("\\"))
    if joined:
        out.append((first, "".join(joined)))
    cleaned = ((no, _COMMENT.sub("", line).strip()) for no, line in out)
    return [(no, line) for no, line in cleaned if line]


def _option(token: str, where: str) -> tuple[str, str | None]:
    """(the option's full name, its attached value or None), with optparse's rules: `--name=v`,
    `-xv`, and unambiguous prefixes of long names (`--extra` is `--extra-index-url`)."""
    known = (*_TAKES_VALUE, *_FLAGS)
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        if name not in known:
            matches = [k for k in known if k.startswith("--") and k.startswith(name)]
            if len(matches) != 1:
                what = "ambiguous" if matches else "not a pip requirements-file option"
                msg = f"{where}: {name} is {what}; remove it"
                raise ConfigError(msg)
            name = matches[0]
        return name, (value if eq else None)
    name, value = token[:2], token[2:]
    if name not in known:
        msg = f"{where}: {name} is not a pip requirements-file option; remove it"
        raise ConfigError(msg)
    return name, (value or None)


def split_line(no: int, line: str, where: str) -> Line:
    """pip's `break_args_options`, then its option parser, without pip's leniency: an option
    pinner does not honour is refused here, never ignored."""
    tokens = line.split(" ")
    cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
    args, rest = " ".join(tokens[:cut]), " ".join(tokens[cut:])
    variable = _ENV_VAR.search(line)
    if variable is not None:
        msg = (
            f"{where}: ${{{variable.group(1)}}}: environment variables are not expanded (the lock must not "
            "depend on the machine that made it); write the value (credentials belong in a "
            "netrc or keyring, not in requirements)"
        )
        raise ConfigError(msg)
    try:
        words = shlex.split(rest)
    except ValueError as e:
        msg = f"{where}: cannot split the options {rest!r} ({e}); fix the quoting"
        raise ConfigError(msg) from None
    options: list[tuple[str, str]] = []
    it = iter(words)
    for word in it:
        if not word.startswith("-") or word == "-":
            msg = f"{where}: unexpected {word!r} after the options; one requirement per line"
            raise ConfigError(msg)
        if word == "--":
            msg = f"{where}: '--' is not supported in requirements files; remove it"
            raise ConfigError(msg)
        name, value = _option(word, where)
        if name in _FLAGS:
            if value is not None:
                msg = f"{where}: {name} takes no value; remove it"
                raise ConfigError(msg)
            value = ""
        elif value is None:
            value = next(it, None)
            if value is None:
                msg = f"{where}: {name} needs a value"
                raise ConfigError(msg)
        options.append((_CANONICAL.get(name, name), value))
    return Line(no=no, args=args, options=tuple(options))


def _refuse_options(line: Line, where: str, allowed: tuple[str, ...]) -> None:
    for name, _ in line.options:
        if name in allowed:
            continue
        kind = _TAKES_VALUE.get(name) or _FLAGS.get(name, "")
        if kind in _REASONS:
            msg = f"{where}: {name} is not allowed: {_REASONS[kind]}"
        elif name == "--hash":
            msg = (
                f"{where}: --hash without a requirement; put it on the requirement's line "
                "(a `\\` continuation may carry it onto the next line)"
            )
        else:  # -r, -c or -e beside a requirement or another include
            msg = f"{where}: {name} must be alone on its line (one option or requirement per line)"
        raise ConfigError(msg)


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
            _refuse_options(line, where, ("-r", "-c"))
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
    from pinner import requirement_forms as forms
    from pinner.model import Requirements
    from pinner.pyproject_deps import pyproject_lines

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
    from pinner import requirement_forms as forms

    editable = [value for name, value in line.options if name == "-e"]
    _refuse_options(line, where, ("--hash", "-e"))
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
