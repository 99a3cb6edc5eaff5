"""Read a resolver's answer structurally: uv's PEP 751 output (`--format pylock.toml`) gives each
package's files, URLs and hashes; each file's source is derived from its URL against the indexes
of that run. Anything it cannot account for is refused, never guessed."""

from __future__ import annotations

import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinner.errors import ResolveError
from pinner.model import File

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True, kw_only=True)
class Indexes:
    """Where the files of one run may come from."""

    target: str
    torch: str  # the PyTorch index of the run (a mirror's URL when one is set), "" for none
    torch_committed: str  # the same index as the matrix names it (what the lock records)
    mirror: str  # the default index's mirror, "" when the resolver used its own default
    urls: frozenset[str]  # direct URLs the user wrote
    root: Path  # project root: local paths are recorded relative to it
    named: tuple[tuple[str, str, str], ...] = ()  # [indexes]: (name, the run's URL, committed URL)
    bound: tuple[tuple[str, str], ...] = ()  # (package, [indexes] table it is bound to)


@dataclass(frozen=True, kw_only=True)
class Located:
    name: str
    version: str
    source: str  # default | pytorch | url | local
    files: tuple[File, ...]
    url: str  # "url": the URL the user wrote; "local": the path relative to the project root
    fetched: tuple[str, ...] = ()  # where this run found each file (a mirror's URL, say)


def canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def read_pylock(text: str, indexes: Indexes) -> tuple[Located, ...]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = f"target {indexes.target}: the resolver's pylock output is not TOML ({e})"
        raise ResolveError(msg) from None
    return tuple(_package(p, indexes) for p in doc.get("packages", []))


def _package(p: dict[str, Any], ix: Indexes) -> Located:
    name, version = canonical(str(p.get("name", ""))), str(p.get("version", ""))
    if "directory" in p:
        path = Path(str(p["directory"].get("path", "")))
        return Located(
            name=name, version=version, source="local", files=(), url=_relative(path, ix)
        )
    if "archive" in p:
        archive = p["archive"]
        url = str(archive.get("url") or "")
        if not url and archive.get("path"):
            url = (ix.root / str(archive["path"])).resolve().as_uri()
        original = url
        if url.startswith("file:"):  # a wheel or sdist inside the project: its path, relative
            url = "file:" + _relative(
                Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)), ix
            )
        files: tuple[File, ...] = (File(name=_basename(url), hashes=_hashes(archive), url=url),)
        if original not in ix.urls and not original.startswith("file:"):
            msg = (
                f"target {ix.target}: the resolver took {name} {version} from {url}, a URL no "
                "requirement names; refusing it"
            )
            raise ResolveError(msg)
        return Located(
            name=name, version=version, source="url", files=files, url=url, fetched=(original,)
        )
    if "vcs" in p:
        msg = f"target {ix.target}: {name} comes from a VCS checkout, which cannot be hashed"
        raise ResolveError(msg)
    raw = [*p.get("wheels", []), *([p["sdist"]] if "sdist" in p else [])]
    if not raw:
        msg = f"target {ix.target}: the resolver gave {name} {version} without any file"
        raise ResolveError(msg)
    sources = {_source(str(f.get("url", "")), name, version, ix) for f in raw}
    if len(sources) != 1:
        msg = f"target {ix.target}: {name} {version} has files from several indexes ({', '.join(sorted(sources))})"
        raise ResolveError(msg)
    source = sources.pop()
    files = tuple(
        File(
            name=str(f.get("name") or _basename(str(f.get("url", "")))),
            hashes=_hashes(f),
            url=_recorded(str(f.get("url", "")), source, ix),
        )
        for f in raw
    )
    for f in files:
        if not f.hashes:
            msg = f"target {ix.target}: {name} {version}: file {f.name} has no sha256 hash"
            raise ResolveError(msg)
    fetched = tuple(str(f.get("url", "")) for f in raw)
    return Located(name=name, version=version, source=source, files=files, url="", fetched=fetched)


def _source(url: str, name: str, version: str, ix: Indexes) -> str:
    """default, pytorch or an [indexes] table, from where the file lives; anything else is
    refused. A package bound to an [indexes] table comes from it: uv looks nowhere else for it
    (an explicit source), and such an index may link its files elsewhere (GitHub releases)."""
    home = dict(ix.bound).get(name)
    if home is not None:
        return home
    for other, run, _ in ix.named:
        if _under(url, run):
            msg = (
                f"target {ix.target}: {name} {version} came from [indexes.{other}] ({url}), "
                "which serves only the packages bound to it; refusing it"
            )
            raise ResolveError(msg)
    if ix.torch and _under(url, ix.torch):
        return "pytorch"
    if ix.mirror:
        if _origin(url) == _origin(ix.mirror):
            return "default"
        msg = (
            f"target {ix.target}: {name} {version} came from {url}, which is neither the "
            f"default index's mirror ({ix.mirror}) nor the PyTorch index; refusing it"
        )
        raise ResolveError(msg)
    if not url.startswith(("https://", "http://")):
        msg = f"target {ix.target}: {name} {version}: unexpected file location {url!r}"
        raise ResolveError(msg)
    return "default"


def _recorded(url: str, source: str, ix: Indexes) -> str:
    """The URL the lock keeps: the committed index's, never a mirror's."""
    if source == "pytorch":
        if ix.torch == ix.torch_committed:
            return url
        base = ix.torch.rstrip("/") + "/"
        if url.startswith(base):
            return ix.torch_committed.rstrip("/") + "/" + url[len(base) :]
        return ""
    for name, run, committed in ix.named:
        if source == name:
            # the committed index's URL of the file when it lies under the run's index, else
            # none: a mirror's (or a file host's) address is transport, never part of the lock
            base = run.rstrip("/") + "/"
            if url.startswith(base):
                return committed.rstrip("/") + "/" + url[len(base) :]
            return ""
    return "" if ix.mirror else url


def _under(url: str, index: str) -> bool:
    """A file of `index`: same origin, under the index's parent path (the PyTorch index links
    its files one level up: /whl/cu128/torch/ -> /whl/cu128/torch-...whl, or /whl/torch-...)."""
    u, i = urllib.parse.urlsplit(url), urllib.parse.urlsplit(index)
    if (u.scheme, u.netloc) != (i.scheme, i.netloc):
        return False
    parent = i.path.rstrip("/").rsplit("/", 1)[0] + "/"
    return u.path.startswith(parent)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def _basename(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def _hashes(f: dict[str, Any]) -> tuple[str, ...]:
    hashes = f.get("hashes") or {}
    return tuple(f"sha256:{hashes['sha256']}" for _ in [0] if "sha256" in hashes)


def _relative(path: Path, ix: Indexes) -> str:
    full = path if path.is_absolute() else (ix.root / path)
    try:
        return full.resolve().relative_to(ix.root.resolve()).as_posix() or "."
    except ValueError:
        return full.as_posix()


def merge_files(
    target: str, located: tuple[Located, ...], more: tuple[Located, ...]
) -> tuple[Located, ...]:
    """`located` with the files `more` lists for the same versions added (same source only)."""
    extra = {(p.name, p.version): p for p in more}
    out = []
    for p in located:
        other = extra.get((p.name, p.version))
        if other is None or p.source in ("url", "local"):
            out.append(p)
            continue
        if other.source != p.source:
            msg = (
                f"target {target}: {p.name} {p.version} came from the {p.source} source, but "
                f"its other files from the {other.source} source; refusing it"
            )
            raise ResolveError(msg)
        have = {f.name for f in p.files}
        pairs = list(zip(p.files, p.fetched, strict=True))
        pairs += [
            (f, u) for f, u in zip(other.files, other.fetched, strict=True) if f.name not in have
        ]
        pairs.sort(key=lambda fu: fu[0].name)
        out.append(
            Located(
                name=p.name, version=p.version, source=p.source, url=p.url,
                files=tuple(f for f, _ in pairs), fetched=tuple(u for _, u in pairs),
            )
        )  # fmt: skip
    return tuple(out)
