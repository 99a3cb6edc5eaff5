"""pylock: TargetLock -> PEP 751 `pinned/<target>/pylock.toml`, one flat lock per target.

Every package of the target with its files (`wheels`, `sdist`), their URLs and sha256 hashes; the
torch family's files from the committed PyTorch index (also named as the package's `index`);
`archive` for URL requirements and prebuilt extension wheels; `directory` for local projects.
PEP 751 wants a URL or a path for every file, but the lock records URLs only for the committed
indexes and the URLs the user wrote, never a mirror's: a lock made through a mirror of the
default index (PINNER_INDEX_URL) has none for the default index's files. The file then says so
at its top, names the packages concerned, and still lists their file names and hashes; PEP 751
installers refuse it until the target is locked without the mirror. The default index's own URL
is never guessed (pinner names no index host but the PyTorch index's).

Standard library only; written by hand in a fixed order, so the same lock gives the same bytes.
"""

from __future__ import annotations

import json
import posixpath
import textwrap
import urllib.parse
from typing import TYPE_CHECKING

from pinner.safe import comment

if TYPE_CHECKING:
    from pinner.model import File, Pin, TargetLock

NAME = "pylock.toml"
SDISTS = (".tar.gz", ".zip", ".tar.bz2", ".tgz")


def environment_marker(python: str, platform: str) -> str:
    """The PEP 508 marker of a target's interpreter and platform ("linux-x86_64")."""
    system, _, machine = platform.partition("-")
    parts = [f'python_version == "{python}"', f'sys_platform == "{system}"']
    if machine:
        parts.append(f'platform_machine == "{machine}"')
    return " and ".join(parts)


def document(tl: TargetLock, *, root: str = "../..") -> str:
    """The body of pylock.toml (the seal lines go above it); `root` is the project root as a
    path from the target's output folder (local projects and files are written relative to it,
    as PEP 751 relates paths to the lock file's folder)."""
    plan = tl.plan
    target = plan.target
    indexes = dict(tl.indexes)
    if plan.index_url:
        indexes.setdefault("pytorch", plan.index_url)
    missing: list[str] = []  # packages with a file PEP 751 cannot locate or check
    entries: list[str] = []
    for pin in sorted(tl.pins, key=lambda p: p.name):
        lines, complete = _package(pin, tl, indexes, root)
        entries.append("\n".join(lines))
        if not complete:
            missing.append(pin.name)
    head = [
        f"# PEP 751 lock of target {comment(target.name)}: every package with its files and hashes,",
        "# for installers that read pylock.toml (`uv pip install -r pylock.toml`), in one flat step.",
        "# install.sh, the Dockerfile and modal_image.py install the same packages in layers.",
    ]
    head += _source_builds(tl)
    head += _incomplete(missing)
    body = [
        'lock-version = "1.0"',
        f"environments = [{_literal(environment_marker(target.python, target.platform))}]",
        f"requires-python = {_str(f'=={target.python}.*')}",
        'created-by = "pinner"',
    ]
    return "\n".join(head) + "\n\n" + "\n".join(body) + "\n" + "".join(f"\n{e}\n" for e in entries)


def _package(
    pin: Pin, tl: TargetLock, indexes: dict[str, str], root: str
) -> tuple[list[str], bool]:
    """The `[[packages]]` table of one pin, and whether every file has a location and a hash."""
    out = ["[[packages]]", f"name = {_str(pin.name)}"]
    if pin.source == "local":  # a source tree: PEP 751 leaves its version out
        out.append(f"directory = {{ path = {_str(_joined(root, pin.url))}, editable = false }}")
        return out, True
    out.append(f"version = {_str(pin.version)}")
    if pin.source == "url":
        archive, ok = _archive(pin, tl, root)
        return out + archive, ok
    if pin.source in indexes:
        out.append(f"index = {_str(indexes[pin.source].rstrip('/'))}")
    complete = bool(pin.files)
    sdists = [f for f in pin.files if _file_name(f).endswith(SDISTS)]
    wheels = [f for f in pin.files if f not in sdists]
    if sdists:  # PEP 751 has room for one sdist
        line, ok = _file(sdists[0])
        out.append(f"sdist = {line}")
        complete = complete and ok
    if wheels:
        out.append("wheels = [")
        for f in wheels:
            line, ok = _file(f)
            out.append(f"  {line},")
            complete = complete and ok
        out.append("]")
    return out, complete


def _archive(pin: Pin, tl: TargetLock, root: str) -> tuple[list[str], bool]:
    """A URL requirement or a prebuilt extension wheel: `archive`, its URL (or project path)."""
    url = pin.url
    hashes = [h for f in pin.files for h in f.hashes]
    ext = next((e for e in tl.plan.extensions if e.name == pin.name and e.sha256), None)
    if not hashes and ext is not None:
        hashes = [f"sha256:{ext.sha256}"]
    where = (
        f"path = {_str(_joined(root, url.removeprefix('file:')))}"
        if url.startswith("file:")
        else f"url = {_str(url)}"
    )
    sha = _sha256(hashes)
    fields = [where] + ([f"hashes = {{ sha256 = {_str(sha)} }}"] if sha else [])
    return [f"archive = {{ {', '.join(fields)} }}"], bool(url and sha)


def _file(f: File) -> tuple[str, bool]:
    """One file as an inline table; whether it has a URL and a sha256."""
    fields = []
    name = _file_name(f)
    if name:
        fields.append(f"name = {_str(name)}")
    if f.url:
        fields.append(f"url = {_str(f.url)}")
    sha = _sha256(f.hashes)
    if sha:
        fields.append(f"hashes = {{ sha256 = {_str(sha)} }}")
    return "{ " + ", ".join(fields) + " }", bool(f.url and sha)


def _file_name(f: File) -> str:
    if f.name:
        return f.name
    path = urllib.parse.urlsplit(f.url).path
    return urllib.parse.unquote(path.rsplit("/", 1)[-1])


def _sha256(hashes: list[str] | tuple[str, ...]) -> str:
    return next((h.removeprefix("sha256:") for h in hashes if h.startswith("sha256:")), "")


def _joined(root: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(root, path)) if root else path


def _source_builds(tl: TargetLock) -> list[str]:
    built = [e.name for e in tl.plan.extensions if e.strategy == "source"]
    if not built:
        return []
    text = (
        f"Built from source: {', '.join(built)}. Its sdist is listed, but a flat install cannot "
        "build it after torch without build isolation (--no-build-isolation); use install.sh "
        "or the Dockerfile for this target."
    )
    return _comment_block(text)


def _incomplete(missing: list[str]) -> list[str]:
    if not missing:
        return []
    text = (
        f"Incomplete: {len(missing)} package(s) have a file without a URL or a hash in pinner.lock, "
        "and PEP 751 installers refuse such a file. The lock records URLs only for the "
        "committed indexes and the URLs the project writes, never a mirror's, so a lock made "
        "through a mirror of the default index (PINNER_INDEX_URL) has none for that index's "
        "files. Lock without the mirror for a complete pylock.toml, or install with install.sh "
        "(files by version and hash, from any index). Listed by name and hash only: "
        f"{', '.join(missing)}."
    )
    return _comment_block(text)


def _comment_block(text: str) -> list[str]:
    lines = textwrap.wrap(text, 96, break_on_hyphens=False)
    return ["#", *(f"# {comment(line)}" for line in lines)]


def _literal(value: str) -> str:
    """A TOML literal string (no escapes: the marker's double quotes stay readable)."""
    if "'" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return _str(value)
    return f"'{value}'"


def _str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
