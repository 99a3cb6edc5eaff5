"""pip's requirements-file format: decoding, logical lines (continuations joined, comments
dropped) and options, split exactly as pip splits them but refused where pip would quietly act
on them. Standard library only: `pinner check` walks includes with it on every commit.
"""

from __future__ import annotations

import codecs
import re
import shlex
from typing import TYPE_CHECKING, NamedTuple

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's COMMENT_RE
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip's ENV_VAR_RE

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


def refuse_options(line: Line, where: str, allowed: tuple[str, ...]) -> None:
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
