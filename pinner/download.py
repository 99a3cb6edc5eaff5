"""One downloader for URLs (prebuilt extension wheels, URL requirements): stream to a temporary
file, hash it, and remember the digest by URL in pinner's cache, so each file is fetched once.

Standard library only (urllib). Per request: a connect timeout, then a no-progress timeout (no
byte for STALL seconds) naming the URL that stalled; transient failures are retried. The cache
holds one small JSON file per URL (digest, size, and the server's ETag / Last-Modified when it
sent them), replaced atomically, so concurrent pinner runs never see half an entry.

Mirrors are transport: `PINNER_WHEEL_MIRROR` (a URL prefix) replaces `https://github.com/` in
the URL that is fetched, never in the URL the lock and the rendered files keep, and the cache is
keyed by the public URL. A file is the same file whichever mirror served it: its hash says so.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pinner.errors import PinnerError

MIRROR_ENV = "PINNER_WHEEL_MIRROR"
STALL_ENV = "PINNER_STALL_TIMEOUT"  # seconds without a byte before a request is given up
MIRRORED = "https://github.com/"  # the prefix a mirror replaces: release assets live there
CONNECT_TIMEOUT = 15.0
STALL = 60.0
ATTEMPTS = 3
BACKOFF = 1.0  # seconds before the first retry; doubled, then tripled
CHUNK = 1024 * 1024
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


class DownloadError(PinnerError):
    """A URL could not be fetched (after retries), or the cache lacks it offline."""

    exit_code = 1


class _TruncatedError(OSError):
    """The server sent fewer bytes than its Content-Length (retried as transient)."""


@dataclass(frozen=True)
class Entry:
    """What the cache remembers of one URL."""

    url: str
    sha256: str  # "sha256:<hex>"
    size: int
    etag: str = ""
    last_modified: str = ""


def stall_timeout() -> float:
    """The no-progress timeout: PINNER_STALL_TIMEOUT seconds when set (tests, slow links), else
    60. A value that is not a positive number is a ConfigError naming the variable."""
    raw = os.environ.get(STALL_ENV, "").strip()
    if not raw:
        return STALL
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        from pinner.errors import ConfigError

        msg = f"{STALL_ENV}={raw!r}: give a number of seconds above 0 (default {STALL:g})"
        raise ConfigError(msg)
    return value


def read_url(url: str, *, stall: float | None = None) -> bytes:
    """The body of one GET, under the connect and no-progress timeouts; a DownloadError naming
    the URL when it fails, and saying so when it stalled (no retry: callers decide)."""
    stall = stall_timeout() if stall is None else stall
    request = urllib.request.Request(url, headers={"User-Agent": "pinner"})
    try:
        with open_url(request, stall=stall) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as e:
        e.close()
        why = f"HTTP {e.code} {e.reason}"
    except TimeoutError:
        why = f"no data for {stall:g} s (stalled)"
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            why = f"no connection within {_connect_timeout(stall):g} s"
        else:
            why = str(reason) or type(reason).__name__
    msg = f"cannot read {redacted(url)}: {why}"
    raise DownloadError(msg)


def transport_url(url: str) -> str:
    """The URL actually fetched: the public one, or its mirror (`PINNER_WHEEL_MIRROR`)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and url.startswith(MIRRORED):
        return mirror.rstrip("/") + "/" + url[len(MIRRORED) :]
    return url


def sha256_of(
    url: str, *, offline: bool, cache: Path, stall: float | None = None, attempts: int = ATTEMPTS
) -> str:
    """ "sha256:<hex>" of the file at `url`: from the cache, else downloaded (once) and cached."""
    stall = stall_timeout() if stall is None else stall
    entry = cached(url, cache)
    if entry is not None:
        return entry.sha256
    if offline:
        msg = (
            f"--offline: the digest of {url} is not in pinner's cache ({cache}); "
            "run once without --offline to download and hash it"
        )
        raise DownloadError(msg)
    folder = _folder(cache)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download.", suffix=".tmp")
    os.close(fd)
    try:
        entry = fetch(url, Path(tmp), stall=stall, attempts=attempts)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _store(entry, cache)
    return entry.sha256


def cached(url: str, cache: Path) -> Entry | None:
    """The cache entry of `url`, None when there is none (or it is unreadable)."""
    path = _folder(cache, create=False) / _key(url)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = Entry(**data)
    except (OSError, ValueError, TypeError):
        return None
    ok = entry.url == url and entry.sha256.startswith("sha256:") and len(entry.sha256) == 71
    return entry if ok else None


def fetch(url: str, dest: Path, *, stall: float = STALL, attempts: int = ATTEMPTS) -> Entry:
    """Download `url` (through its mirror, if one is set) to `dest`; return what was fetched.
    Transient failures (connection errors, stalls, 5xx, 429) are retried `attempts` times."""
    source = transport_url(url)
    shown = url if source == url else f"{url} (via {redacted(source)})"
    last = ""
    for attempt in range(attempts):
        try:
            return _fetch_once(url, source, dest, stall)
        except urllib.error.HTTPError as e:
            e.close()  # its response holds the connection
            last = f"HTTP {e.code} {e.reason}"
            if e.code not in TRANSIENT_STATUS:
                break
        except TimeoutError:
            last = f"no data for {stall:g} s (stalled)"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                last = f"no connection within {min(CONNECT_TIMEOUT, stall):g} s"
            else:
                last = str(reason) or type(reason).__name__
        if attempt + 1 < attempts:
            time.sleep(BACKOFF * (attempt + 1))
    msg = f"cannot download {shown}: {last}"
    if source == url and url.startswith(MIRRORED):
        msg += f"\n  fix: check the network, or set {MIRROR_ENV} to a mirror of {MIRRORED}"
    raise DownloadError(msg)


def _fetch_once(url: str, source: str, dest: Path, stall: float) -> Entry:
    request = urllib.request.Request(source, headers={"User-Agent": "pinner"})
    digest = hashlib.sha256()
    size = 0
    with open_url(request, stall=stall) as response, dest.open("wb") as out:
        headers = response.headers
        expected = headers.get("Content-Length")
        size = _copy(response, out, digest)
        if expected is not None and expected.isdigit() and int(expected) != size:
            msg = f"the connection closed after {size} of {expected} bytes"
            raise _TruncatedError(msg)
        return Entry(
            url=url,
            sha256="sha256:" + digest.hexdigest(),
            size=size,
            etag=headers.get("ETag", "") or "",
            last_modified=headers.get("Last-Modified", "") or "",
        )


def open_url(request: urllib.request.Request, *, stall: float = STALL) -> Any:
    """Open a request with the connect timeout, then `stall` seconds allowed between bytes.
    Credentials in the URL (a private mirror's `https://user:token@host/...`) are sent as
    HTTP Basic authentication, to that host only (never to a host it redirects to)."""
    url, auth = _credentials(request.full_url)
    if auth:
        request.full_url = url
        request.add_unredirected_header("Authorization", auth)
    return urllib.request.build_opener(_Http(), _Https()).open(request, timeout=stall)


def _credentials(url: str) -> tuple[str, str]:
    """The URL without its `user:password@`, and the Basic Authorization header value ("" when
    the URL carries none)."""
    import base64
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, ""
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def redacted(url: str) -> str:
    """A URL as messages show it: credentials replaced by `***` (they end up in CI logs)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}"


def _copy(response: IO[bytes], out: IO[bytes], digest: Any) -> int:
    size = 0
    while chunk := response.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return size


# --- connections: a connect timeout, then the no-progress timeout on every read ------------------


class _Timed(http.client.HTTPConnection):
    """Connect (TCP, and TLS for https) under the connect timeout, then the no-progress one."""

    def connect(self) -> None:
        stall = self.timeout
        self.timeout = _connect_timeout(stall)
        try:
            super().connect()
        finally:
            self.timeout = stall
        if self.sock is not None and isinstance(stall, (int, float)):
            self.sock.settimeout(stall)


class _HttpConnection(_Timed):
    pass


class _HttpsConnection(_Timed, http.client.HTTPSConnection):
    pass


class _Http(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HttpConnection, req)


class _Https(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HttpsConnection, req, context=self._context)  # type: ignore[attr-defined]


# --- the cache: one JSON file per URL, replaced atomically ---------------------------------------


def _folder(cache: Path, *, create: bool = True) -> Path:
    folder = cache / "downloads"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32] + ".json"


def _store(entry: Entry, cache: Path) -> None:
    folder = _folder(cache)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".entry.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry.__dict__, f, indent=1, sort_keys=True)
        Path(tmp).replace(folder / _key(entry.url))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _connect_timeout(stall: object) -> float:
    return (
        min(CONNECT_TIMEOUT, float(stall)) if isinstance(stall, (int, float)) else CONNECT_TIMEOUT
    )
