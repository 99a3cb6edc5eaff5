"""A PEP 503 / PEP 658 "simple" package index served on 127.0.0.1 for tests.

One :class:`LocalIndex` is one HTTP server on a random free loopback port.  It hosts any
number of independent simple indexes, each under its own path prefix::

    with LocalIndex() as idx:
        idx.add("pypi", build_wheel(tmp_path, "demo-app", "1.0"))
        idx.add("whl/cpu", Path("/opt/wheels/torch-2.13.0+cpu-cp311-...whl"))
        idx.url("whl/cpu")  # -> "http://127.0.0.1:PORT/whl/cpu/"

Layout served for an index with prefix ``P``:

* ``/P/`` lists the projects (PEP 503 root page);
* ``/P/<normalized-name>/`` lists the project's files; each anchor's ``href`` is the
  URL-quoted file name (``+`` becomes ``%2B``) ending in ``#sha256=<hex>``, and carries
  ``data-dist-info-metadata`` / ``data-core-metadata`` (PEP 658 / PEP 714) and
  ``data-requires-python`` when the wheel declares it;
* ``/P/<normalized-name>/<file>`` is the file, ``/P/<normalized-name>/<file>.metadata`` its
  core metadata.

Unknown projects are a 404; a non-normalized project name is redirected (301) to the
normalized one.  Files are served from where they lie (never copied) and their sha256
digests are computed once per (path, size, mtime) for the whole test session.  Every
request is counted in :attr:`LocalIndex.requests` (decoded path) and, per index and project,
in :attr:`LocalIndex.project_requests`, so tests can assert an index was never asked for a
package.  HEAD is supported.  A file request with a single ``Range: bytes=a-b`` (or ``a-`` or
``-n``) header gets ``206 Partial Content`` with those bytes (counted in
:attr:`LocalIndex.range_requests`); a request without one gets the whole file, as before.
"""

from __future__ import annotations

import collections
import hashlib
import html
import importlib.metadata
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from .wheels import metadata_of, normalize_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "IndexedFile",
    "LocalIndex",
    "RequestRecord",
    "Venv",
    "pip_env",
    "sha256_file",
    "uv_env",
]

_CacheKey = tuple[str, int, int]
_DIGESTS: dict[_CacheKey, str] = {}
_METADATA: dict[_CacheKey, bytes] = {}
_CACHE_LOCK = threading.Lock()
_CHUNK = 1024 * 1024


def _cache_key(path: Path) -> _CacheKey:
    resolved = path.resolve()
    stat = resolved.stat()
    return (str(resolved), stat.st_size, stat.st_mtime_ns)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, cached per (resolved path, size, mtime) for the process."""
    key = _cache_key(path)
    with _CACHE_LOCK:
        cached = _DIGESTS.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with Path(key[0]).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _CACHE_LOCK:
        _DIGESTS[key] = value
    return value


def _cached_metadata(path: Path) -> bytes:
    key = _cache_key(path)
    with _CACHE_LOCK:
        cached = _METADATA.get(key)
    if cached is None:
        cached = metadata_of(path)
        with _CACHE_LOCK:
            _METADATA[key] = cached
    return cached


def _requires_python(metadata: bytes) -> str | None:
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line:  # end of headers; the description body follows
            return None
        name, _, value = line.partition(":")
        if name.strip().lower() == "requires-python":
            return value.strip()
    return None


@dataclass(frozen=True)
class IndexedFile:
    """A file registered in one index."""

    filename: str
    path: Path
    sha256: str
    metadata: bytes
    metadata_sha256: str
    requires_python: str | None
    yanked: str | None


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered; ``project`` is normalized, or None."""

    method: str
    path: str
    status: int
    prefix: str | None
    project: str | None


@dataclass(frozen=True)
class _Response:
    status: HTTPStatus
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    file: Path | None = None
    location: str | None = None
    prefix: str | None = None
    project: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, index: LocalIndex) -> None:
        self.index = index
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:  # noqa: ARG002
        self.index._record_error()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _range(self, response: _Response) -> tuple[int, int] | None:
        header = self.headers.get("Range")
        if header is None or response.file is None or response.status != HTTPStatus.OK:
            return None
        return _span(header, response.file.stat().st_size)

    def _send_range(self, response: _Response, span: tuple[int, int], *, head: bool) -> None:
        assert response.file is not None
        first, last = span
        size = response.file.stat().st_size
        self.server.index._count_range()
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if head:
            return
        with response.file.open("rb") as stream:
            stream.seek(first)
            try:
                self.wfile.write(stream.read(last - first + 1))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean; see LocalIndex.log instead

    def _serve(self, *, head: bool) -> None:
        index = self.server.index
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        response = index._route(path)
        index._count(
            RequestRecord(self.command, path, response.status, response.prefix, response.project)
        )
        span = self._range(response)
        if span is not None:
            self._send_range(response, span, head=head)
            return
        self.send_response(response.status)
        if response.location is not None:
            self.send_header("Location", response.location)
        size = response.file.stat().st_size if response.file is not None else len(response.body)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if head:
            return
        try:
            if response.file is None:
                self.wfile.write(response.body)
            else:
                with response.file.open("rb") as stream:
                    shutil.copyfileobj(stream, self.wfile, _CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up; not an error of ours


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _span(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range header, clamped to the file; None if unusable."""
    match = _RANGE.match(header.strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    if not match.group(1):  # a suffix: the last n bytes
        return max(0, size - int(match.group(2))), size - 1
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def _page(title: str, links: list[str]) -> bytes:
    body = "\n".join(f"    {link}<br/>" for link in links)
    text = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{body}\n  </body>\n</html>\n"
    )
    return text.encode("utf-8")


class LocalIndex:
    """Threaded HTTP server hosting named simple indexes on ``127.0.0.1:<random port>``.

    Use as a context manager (or call :meth:`start` / :meth:`close`).  Indexes and files can
    be added before or while the server runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[str, dict[str, dict[str, IndexedFile]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Requests per decoded URL path, e.g. ``requests["/pypi/torch/"]``.
        self.requests: collections.Counter[str] = collections.Counter()
        #: Requests per (index prefix, normalized project): project pages, files, metadata.
        self.project_requests: collections.Counter[tuple[str, str]] = collections.Counter()
        #: Every request in arrival order.
        self.log: list[RequestRecord] = []
        #: Number of unexpected exceptions raised while handling requests.
        self.errors = 0
        #: Number of file requests answered with 206 Partial Content.
        self.range_requests = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            msg = "LocalIndex is already running"
            raise RuntimeError(msg)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalIndex:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- configuration -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            msg = "LocalIndex is not running"
            raise RuntimeError(msg)
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _clean_prefix(prefix: str) -> str:
        cleaned = prefix.strip("/")
        if not cleaned or any(part in {"", ".", ".."} for part in cleaned.split("/")):
            msg = f"invalid index prefix: {prefix!r}"
            raise ValueError(msg)
        return cleaned

    def url(self, prefix: str) -> str:
        """The simple-index root URL of ``prefix``, ending in ``/``.

        Creates the index (empty) if nothing was added to it yet.
        """
        prefix = self._clean_prefix(prefix)
        with self._lock:
            self._indexes.setdefault(prefix, {})
        return f"{self.base_url}/{prefix}/"

    def add(self, prefix: str, wheel: Path, *, yanked: str | None = None) -> str:
        """Register ``wheel`` (by reference) in index ``prefix``; return the file's URL.

        ``yanked`` marks the file yanked (PEP 592) with that reason (may be ``""``).
        """
        prefix = self._clean_prefix(prefix)
        wheel = Path(wheel).resolve()
        filename = wheel.name
        if not filename.endswith(".whl") or filename.count("-") not in {4, 5}:
            msg = f"not a wheel file name: {filename!r}"
            raise ValueError(msg)
        project = normalize_name(filename.split("-", 1)[0])
        metadata = _cached_metadata(wheel)
        entry = IndexedFile(
            filename=filename,
            path=wheel,
            sha256=sha256_file(wheel),
            metadata=metadata,
            metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            requires_python=_requires_python(metadata),
            yanked=yanked,
        )
        with self._lock:
            files = self._indexes.setdefault(prefix, {}).setdefault(project, {})
            previous = files.get(filename)
            if previous is not None and previous.sha256 != entry.sha256:
                msg = f"{prefix}: a different {filename} is already registered"
                raise ValueError(msg)
            files[filename] = entry
        return self.file_url(prefix, filename)

    def file_url(self, prefix: str, filename: str) -> str:
        """The URL of a registered file (``+`` quoted as ``%2B``)."""
        prefix = self._clean_prefix(prefix)
        project = normalize_name(filename.split("-", 1)[0])
        return f"{self.base_url}/{prefix}/{project}/{urllib.parse.quote(filename, safe='')}"

    def files(self, prefix: str, project: str) -> list[IndexedFile]:
        """The files registered for ``project`` in index ``prefix``."""
        with self._lock:
            found = self._indexes.get(self._clean_prefix(prefix), {}).get(
                normalize_name(project), {}
            )
            return [found[name] for name in sorted(found)]

    def hits(self, prefix: str, project: str | None = None) -> int:
        """How many requests index ``prefix`` got (for ``project``, if given)."""
        prefix = self._clean_prefix(prefix)
        with self._lock:
            if project is None:
                return sum(1 for record in self.log if record.prefix == prefix)
            return self.project_requests[(prefix, normalize_name(project))]

    def reset_counts(self) -> None:
        """Forget all recorded requests."""
        with self._lock:
            self.requests.clear()
            self.project_requests.clear()
            self.log.clear()

    # -- request handling (called from server threads) ---------------------------------

    def _count_range(self) -> None:
        with self._lock:
            self.range_requests += 1

    def _record_error(self) -> None:
        with self._lock:
            self.errors += 1

    def _count(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests[record.path] += 1
            self.log.append(record)
            if record.prefix is not None and record.project is not None:
                self.project_requests[(record.prefix, record.project)] += 1

    def _route(self, path: str) -> _Response:
        with self._lock:
            prefixes = sorted(self._indexes, key=len, reverse=True)
            if path == "/":
                links = [
                    f'<a href="{html.escape(urllib.parse.quote(p))}/">{html.escape(p)}</a>'
                    for p in sorted(self._indexes)
                ]
                return _Response(HTTPStatus.OK, "text/html; charset=utf-8", _page("Indexes", links))
            for prefix in prefixes:
                if path == f"/{prefix}":
                    return _Response(HTTPStatus.MOVED_PERMANENTLY, location=f"/{prefix}/")
                if path.startswith(f"/{prefix}/"):
                    return self._route_in(prefix, path[len(prefix) + 2 :])
        return _Response(HTTPStatus.NOT_FOUND, body=b"no such index\n")

    def _route_in(self, prefix: str, rest: str) -> _Response:
        projects = self._indexes[prefix]
        if rest == "":
            links = [
                f'<a href="{html.escape(name)}/">{html.escape(name)}</a>'
                for name in sorted(projects)
            ]
            return _Response(
                HTTPStatus.OK,
                "text/html; charset=utf-8",
                _page("Simple index", links),
                prefix=prefix,
            )
        name, slash, tail = rest.partition("/")
        project = normalize_name(name)
        files = projects.get(project)
        if files is None or "/" in tail:
            return _Response(
                HTTPStatus.NOT_FOUND, body=b"not found\n", prefix=prefix, project=project
            )
        if name != project or not slash:
            target = f"/{prefix}/{project}/{urllib.parse.quote(tail, safe='')}"
            return _Response(
                HTTPStatus.MOVED_PERMANENTLY, location=target, prefix=prefix, project=project
            )
        if tail == "":
            links = [self._anchor(files[filename]) for filename in sorted(files)]
            page = _page(f"Links for {project}", links)
            return _Response(
                HTTPStatus.OK, "text/html; charset=utf-8", page, prefix=prefix, project=project
            )
        if tail in files:
            return _Response(
                HTTPStatus.OK,
                "application/octet-stream",
                file=files[tail].path,
                prefix=prefix,
                project=project,
            )
        if tail.endswith(".metadata") and tail.removesuffix(".metadata") in files:
            entry = files[tail.removesuffix(".metadata")]
            return _Response(
                HTTPStatus.OK,
                "text/plain; charset=utf-8",
                entry.metadata,
                prefix=prefix,
                project=project,
            )
        return _Response(HTTPStatus.NOT_FOUND, body=b"not found\n", prefix=prefix, project=project)

    @staticmethod
    def _anchor(entry: IndexedFile) -> str:
        href = f"{urllib.parse.quote(entry.filename, safe='')}#sha256={entry.sha256}"
        attributes = [f'href="{html.escape(href)}"']
        if entry.requires_python is not None:
            attributes.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
        metadata = f"sha256={entry.metadata_sha256}"
        attributes.append(f'data-dist-info-metadata="{metadata}"')
        attributes.append(f'data-core-metadata="{metadata}"')
        if entry.yanked is not None:
            attributes.append(f'data-yanked="{html.escape(entry.yanked)}"')
        return f"<a {' '.join(attributes)}>{html.escape(entry.filename)}</a>"


# -- clients: isolated environments for pip and uv, and throwaway virtual environments ----

_SCRUBBED_VARIABLES = {"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE"}


def _scrubbed(base: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith(("PIP_", "UV_")) or key in _SCRUBBED_VARIABLES:
            del env[key]
    no_proxy = ",".join(
        part for part in (env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1,localhost") if part
    )
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def pip_env(
    index_url: str | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment in which pip ignores every pip.conf, constraint and find-links of the host.

    All ``PIP_*`` / ``UV_*`` variables are dropped, ``PIP_CONFIG_FILE=/dev/null`` disables
    the global, user and site configuration files, and, if given, ``index_url`` becomes
    ``PIP_INDEX_URL``.  The HTTP cache is off (``PIP_NO_CACHE_DIR``) so nothing leaks
    between tests or into ``~/.cache/pip``.
    """
    env = _scrubbed(base)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_NO_CACHE_DIR="1",
        PIP_NO_COLOR="1",
        PIP_PROGRESS_BAR="off",
    )
    if index_url is not None:
        env["PIP_INDEX_URL"] = index_url
    return env


def uv_env(
    default_index: str | None = None,
    *,
    cache_dir: Path | None = None,
    no_config: bool = True,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An environment for ``uv`` subprocesses that never leaves the machine on its own.

    ``UV_PYTHON_DOWNLOADS=never`` (else uv may try to fetch a managed Python), optional
    ``UV_DEFAULT_INDEX`` and ``UV_CACHE_DIR``, and ``UV_NO_CONFIG=1`` unless
    ``no_config=False``.  Note that ``UV_NO_CONFIG`` also stops uv from reading
    ``[tool.uv]`` *settings* from a ``pyproject.toml`` in the working directory, while
    ``[tool.uv.sources]`` / ``[[tool.uv.index]]`` of a pyproject.toml given as input to
    ``uv pip compile`` are still honoured (see tests/test_support_index.py).
    """
    env = _scrubbed(base)
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", NO_COLOR="1")
    if no_config:
        env["UV_NO_CONFIG"] = "1"
    if default_index is not None:
        env["UV_DEFAULT_INDEX"] = default_index
    if cache_dir is not None:
        env["UV_CACHE_DIR"] = str(cache_dir)
    return env


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


class Venv:
    """A virtual environment driven through ``<venv>/bin/python -m pip`` (never ``bin/pip``).

    Create one with :meth:`create` (runs ``python -m venv``, a few seconds because of
    ensurepip) and copy it in ~0.1 s with :meth:`clone`; a copied venv works because only
    ``python -m pip`` is used, not the console scripts whose shebangs name the old path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"

    @classmethod
    def create(cls, path: Path, *, pip_wheel: Path | None = None) -> Venv:
        """``python -m venv path``; optionally replace its pip with ``pip_wheel``."""
        subprocess.run(
            [sys.executable, "-m", "venv", str(path)],
            check=True,
            env=pip_env(),
            capture_output=True,
        )
        venv = cls(path)
        if pip_wheel is not None:
            venv.pip("install", "--no-index", "--no-deps", str(pip_wheel), check=True)
        return venv

    def clone(self, path: Path) -> Venv:
        """Copy the venv to ``path``, hard-linking files (falls back to copying).

        Sharing inodes is safe with pip: it unlinks a file before writing a new version of
        it and uninstalls by renaming, so the original venv is never modified through a clone.
        """
        shutil.copytree(self.path, path, symlinks=True, copy_function=_link_or_copy)
        return type(self)(path)

    def pip(
        self,
        *args: str,
        index_url: str | None = None,
        cwd: Path | None = None,
        check: bool = False,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m pip *args`` isolated by :func:`pip_env`; output is captured text."""
        result = subprocess.run(
            [str(self.python), "-m", "pip", *args],
            env=pip_env(index_url),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            msg = (
                f"pip {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
            raise AssertionError(msg)
        return result

    @property
    def site_packages(self) -> Path:
        (found,) = self.path.glob("lib/python*/site-packages")
        return found

    def _distributions(self) -> dict[str, str]:
        return {
            normalize_name(dist.metadata["Name"]): dist.version
            for dist in importlib.metadata.distributions(path=[str(self.site_packages)])
        }

    def pip_version(self) -> tuple[int, ...]:
        """The venv's pip version, e.g. ``(23, 2, 1)`` (read from its metadata, no subprocess)."""
        version = self._distributions()["pip"]
        return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])

    def installed(self) -> dict[str, str]:
        """``{normalized name: version}`` installed in the venv, pip itself excluded.

        Read from the ``.dist-info`` directories in-process (what ``pip list`` reports, but
        without spending half a second on a pip subprocess).
        """
        return {name: version for name, version in self._distributions().items() if name != "pip"}
