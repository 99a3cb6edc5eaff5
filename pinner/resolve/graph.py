"""The dependency graph of a resolution, from the resolved packages' own metadata.

uv's PEP 751 output has no dependency tables, so each package's `Requires-Dist` is read from its
core metadata (PEP 658: `<file URL>.metadata`, which PyPI, the PyTorch index and the test indexes
serve), evaluated for the target's environment and the extras asked of it. Metadata is cached by
the file's sha256, so a repeated lock asks nothing of the network.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from packaging.markers import Marker


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    requires: tuple[str, ...]  # Requires-Dist lines as written; () when unknown
    known: bool  # False: no metadata could be read (an sdist without PEP 658 metadata)


def requires_of(text: str) -> tuple[str, ...]:
    """The Requires-Dist values of core metadata, as `email`'s HeaderParser reads them (headers
    up to the first empty line; lines end at LF, CRLF or a bare CR; a folded value keeps its line
    break), without its cost: the parser took a third of the graph's time on an 81-package lock.
    Malformed headers differ: a line that is no header does not end them here."""
    if "\r" in text:  # CRLF or bare CR line ends: split (and fold) where email does
        import re

        parts = re.split(r"(\r\n|\r|\n)", text)
        lines, ends = parts[0::2], parts[1::2]
    else:
        stop = text.find("\n\n")
        lines = text[: stop if stop >= 0 else len(text)].split("\n")
        ends = []
    out: list[str] = []
    current: str | None = None
    for index, line in enumerate(lines):
        if not line:
            break  # the end of the headers: the body (the description) follows
        if line[0] in " \t":
            if current is not None:  # a folded value keeps its line break
                current += (ends[index - 1] if ends else "\n") + line
            continue
        if current is not None:
            out.append(current)
            current = None
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "requires-dist":
            current = value.lstrip(" \t")
    if current is not None:
        out.append(current)
    return tuple(out)


def fetch_metadata(
    files: Mapping[str, tuple[str, str]],
    cache: Path,
    *,
    offline: bool,
    stall: float | None = None,
) -> dict[str, str | None]:
    """name -> core metadata text (None when unavailable), for {name: (url, sha256)}.

    Each request has the downloader's connect and no-progress timeouts. The graph only explains
    the lock (each package's `via`); it never changes what is locked. So a metadata file that
    cannot be read leaves that package's graph unknown rather than failing the lock, and once
    one request stalls, the others still waiting are skipped: one note on stderr names the URL
    that stalled, and the run goes on instead of waiting out a stall per package.
    """
    folder = cache / "metadata"
    stalled = threading.Event()
    noting = threading.Lock()

    def one(item: tuple[str, tuple[str, str]]) -> tuple[str, str | None]:
        name, (url, digest) = item
        saved = folder / (digest.removeprefix("sha256:") + ".metadata")
        try:
            return name, saved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
        if offline or stalled.is_set() or not url.startswith(("https://", "http://")):
            return name, None
        from pinner.download import DownloadError, stall_timeout  # http: only when fetching

        try:
            text = _read_metadata(url, stall_timeout() if stall is None else stall)
        except DownloadError as e:
            with noting:
                if "(stalled)" in str(e) and not stalled.is_set():
                    stalled.set()
                    print(
                        f"note: {e}; the dependency graph of the packages not yet read is "
                        "unknown (their `via` stays empty)",
                        file=sys.stderr,
                    )
            return name, None
        _save(saved, text)
        return name, text

    found: dict[str, str | None] = {}
    for name, (_, digest) in files.items():  # the cache first, without threads: most locks
        saved = folder / (digest.removeprefix("sha256:") + ".metadata")
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found[name] = saved.read_text(encoding="utf-8")
    missing = [item for item in files.items() if item[0] not in found]
    if missing:
        with ThreadPoolExecutor(max_workers=16) as pool:
            found.update(pool.map(one, missing))
    return found


def _read_metadata(url: str, stall: float) -> str:
    """PEP 658 metadata, else the wheel's own METADATA by range requests; one retry of a
    failure that did not stall (a dropped connection under many parallel requests)."""
    from pinner.download import DownloadError, read_url

    for attempt in (1, 2):
        try:
            try:
                return read_url(url + ".metadata", stall=stall).decode("utf-8", "replace")
            except DownloadError as missing:
                if "(stalled)" in str(missing) or not url.endswith(".whl"):
                    raise
                return wheel_metadata(url, stall=stall)  # no PEP 658 file: the wheel's own
        except DownloadError as e:
            if attempt == 2 or "(stalled)" in str(e):
                raise
    raise AssertionError  # unreachable


def wheel_metadata(url: str, *, stall: float) -> str:
    """The METADATA member of a remote wheel, read with HTTP range requests (the zip's central
    directory, then the one member), for an index that serves no PEP 658 metadata file."""
    import io
    import urllib.error
    import urllib.request
    import zipfile

    from pinner.download import DownloadError, open_url

    def fetch(start: int, end: int | None = None) -> tuple[bytes, int]:
        span = f"bytes={start}-" if end is None else f"bytes={start}-{end}"
        request = urllib.request.Request(url, headers={"User-Agent": "pinner", "Range": span})
        try:
            with open_url(request, stall=stall) as response:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                if response.status != 206 or not total.isdigit():
                    msg = f"cannot read {url}: the server ignores Range requests"
                    raise DownloadError(msg)
                return bytes(response.read()), int(total)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            msg = f"cannot read {url}: {e}"
            raise DownloadError(msg) from None

    class Remote(io.RawIOBase):
        """A seekable view of the remote wheel; its last 64 KiB (the central directory of a
        small wheel) are read at once, anything else a range at a time."""

        def __init__(self) -> None:
            self.pos = 0
            self.size = fetch(0, 0)[1]  # the length, from Content-Range
            self.start = max(0, self.size - 65536)
            self.tail = fetch(self.start)[0]

        def seekable(self) -> bool:
            return True

        def readable(self) -> bool:
            return True

        def tell(self) -> int:
            return self.pos

        def seek(self, offset: int, whence: int = 0) -> int:
            self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
            return self.pos

        def read(self, n: int = -1) -> bytes:
            if n == 0 or self.pos >= self.size:
                return b""
            end = self.size if n < 0 else min(self.size, self.pos + n)
            if self.pos >= self.start:
                data = self.tail[self.pos - self.start : end - self.start]
            else:
                data = fetch(self.pos, end - 1)[0]
            self.pos += len(data)
            return data

    with zipfile.ZipFile(Remote()) as wheel:
        member = next(
            (
                n
                for n in wheel.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ),
            None,
        )
        if member is None:
            msg = f"cannot read {url}: no .dist-info/METADATA in the wheel"
            raise DownloadError(msg)
        return wheel.read(member).decode("utf-8", "replace")


def _save(path: Path, text: str) -> None:
    """Cache one metadata file: a temporary file of this writer's own, then an atomic rename, so
    concurrent pinner runs never read half a file or rename each other's."""
    import os
    import tempfile
    from pathlib import Path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return  # an unwritable cache only costs a fetch next time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        Path(tmp).replace(path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def parents(
    nodes: Mapping[str, Node],
    roots: Iterable[tuple[str, tuple[str, ...], str]],
    env: dict[str, str],
) -> dict[str, set[str]]:
    """name -> what requires it (package names, or the roots' labels), walking from the roots
    (name, extras, label) through each package's Requires-Dist for the extras asked of it."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from pinner.resolve.job import requirement_name

    # line -> (child, its extras, marker); None for one that cannot matter (a package the
    # resolution does not hold: most optional dependencies) or cannot be read
    parsed: dict[str, tuple[str, tuple[str, ...], Marker | None] | None] = {}

    def parse(line: str) -> tuple[str, tuple[str, ...], Marker | None] | None:
        if line not in parsed:
            parsed[line] = None
            name = requirement_name(line)
            if name not in nodes:
                pass
            elif not any(c in line for c in ";[@"):  # a name and a range: nothing to evaluate
                parsed[line] = (name, (), None)
            else:
                with contextlib.suppress(InvalidRequirement):
                    req = Requirement(line)
                    extras = tuple(canonicalize_name(e) for e in sorted(req.extras))
                    parsed[line] = (canonicalize_name(req.name), extras, req.marker)
        return parsed[line]

    out: dict[str, set[str]] = {}
    todo: list[tuple[str, str]] = []
    for name, extras, label in roots:
        out.setdefault(name, set()).add(label)
        todo += [(name, ""), *((name, e) for e in extras)]
    visited: set[tuple[str, str]] = set()
    while todo:
        name, extra = todo.pop()
        node = nodes.get(name)
        if (name, extra) in visited or node is None:
            continue
        visited.add((name, extra))
        for line in node.requires:
            item = parse(line)
            if item is None:
                continue
            child, child_extras, marker = item
            if marker is not None and not marker.evaluate({**env, "extra": extra}):
                continue
            if child in nodes:
                out.setdefault(child, set()).add(name)
                todo += [(child, ""), *((child, e) for e in child_extras)]
    return out


def dumps(nodes: Sequence[Node]) -> str:
    return json.dumps([[n.name, list(n.requires), n.known] for n in nodes])
