"""One requirement's text -> `Requirement`: names and specifiers (PEP 508), direct URLs, wheel
and sdist files, local projects; its marker evaluated for the target.

The forms are told apart as pip tells them apart (`pip._internal.req.constructors`): a URL
(`https://`, `file:`, a VCS scheme), else a path (it contains `/` or starts with `.`, or names
an archive), else PEP 508. Relative paths are relative to the project root, which is what pip
and uv do when run there. Imported only by `read_requirements` (it needs `packaging`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Parsed
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pinner import safe
from pinner.errors import ConfigError
from pinner.model import Requirement

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_VCS = ("git", "hg", "svn", "bzr")
_NAMED_URL = re.compile(r"^\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@")
_EXTRAS = re.compile(r"^(.+)(\[[^\]]+\])$")  # pip's _strip_extras
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tbz", ".tar.xz", ".txz", ".tar")
_HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}  # pip's STRONG_HASHES
_UNKNOWABLE = re.compile(r"\b(platform_release|platform_version|extra)\b")


def from_line(
    text: str,
    *,
    origin: str,
    root: Path,
    env: Mapping[str, str],
    editable: bool,
    hashes: tuple[str, ...],
    constraint: bool,
) -> tuple[Requirement, bool]:
    """A requirements-file line (its requirement part, or the value of `-e`)."""
    spec = _Spec(origin=origin, root=root, env=env, constraint=constraint)
    spec.hashes = tuple(dict.fromkeys(_hash(h, origin) for h in hashes))
    spec.editable = editable
    if editable:
        if _scheme(text) and _scheme(text) != "file":
            return spec.refuse_url(text, "-e takes a local project folder")
        m = _EXTRAS.match(text)
        path, extras = (m.group(1), m.group(2)) if m else (text, "")
        return spec.local(_file_path(path, origin) if _scheme(path) else path, extras, "")
    if _scheme(text) in ("http", "https", "file", "ftp") or _scheme(text).split("+")[0] in _VCS:
        url, _, marker = text.partition("; ")  # pip's separator after a bare URL
        return spec.url(url.strip(), marker, name="", extras="")
    head = text.split(";", 1)[0].strip()  # pip looks for a path before the marker
    if not _NAMED_URL.match(text) and (
        "/" in head or head.startswith(".") or head.endswith(_ARCHIVES)
    ):
        path, _, marker = text.partition(";")
        m = _EXTRAS.match(path.strip())
        path, extras = (m.group(1), m.group(2)) if m else (path.strip(), "")
        return spec.local(path, extras, marker)
    return spec.pep508(text)


def from_pep508(
    text: str, origin: str, root: Path, env: Mapping[str, str]
) -> tuple[Requirement, bool]:
    """A PEP 508 string of a pyproject.toml."""
    return _Spec(origin=origin, root=root, env=env, constraint=False).pep508(text)


def marker_holds(marker: str, origin: str, *, env: Mapping[str, str]) -> bool:
    """Whether `marker` is true for the target (refused where pinner cannot know)."""
    spec = _Spec(origin=origin, root=Path(), env=env, constraint=False)
    return spec.holds(spec.marker(marker))


def _scheme(text: str) -> str:
    m = _SCHEME.match(text)
    return m.group(1).lower() if m and len(m.group(1)) > 1 else ""  # "C:" is a drive


def _hash(value: str, origin: str) -> str:
    algorithm, _, digest = value.partition(":")
    length = _HASH_LENGTHS.get(algorithm)
    if length is None or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", digest):
        msg = (
            f"{origin}: --hash={value}: not a hash pip accepts; write sha256:<64 hex digits> "
            "(or sha384:/sha512:)"
        )
        raise ConfigError(msg)
    return f"{algorithm}:{digest.lower()}"


def _file_path(url: str, origin: str) -> str:
    """The path of a `file:` URL: `file:///abs`, `file://localhost/abs`, or relative `file:./x`."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        msg = f"{origin}: {url}: a file: URL on another host; copy the file into the project"
        raise ConfigError(msg)
    return unquote(parts.path)


class _Spec:
    """What one line says, built up as its form is recognised."""

    def __init__(
        self, *, origin: str, root: Path, env: Mapping[str, str], constraint: bool
    ) -> None:
        self.origin, self.root, self.env, self.constraint = origin, root, env, constraint
        self.hashes: tuple[str, ...] = ()
        self.editable = False

    def fail(self, what: str) -> NoReturn:
        msg = f"{self.origin}: {what}"
        raise ConfigError(msg) from None

    def pep508(self, text: str) -> tuple[Requirement, bool]:
        try:
            req = Parsed(text)
        except InvalidRequirement as e:
            self.fail(f"not a valid requirement: {text!r} ({str(e).splitlines()[0]})")
        extras = _extras(req.extras)
        marker = str(req.marker) if req.marker else ""
        name = canonicalize_name(req.name)
        if req.url:
            return self.url(req.url, marker, name=name, extras=extras)
        if self.constraint and extras:
            self.fail(f"a constraint cannot have extras; write {name}{req.specifier}")
        return self.make(
            name=name,
            text=f"{name}{extras}{req.specifier}",
            specifier=str(req.specifier),
            extras=extras,
            marker=marker,
        )

    def url(self, url: str, marker: str, *, name: str, extras: str) -> tuple[Requirement, bool]:
        scheme = _scheme(url)
        if scheme.split("+")[0] in _VCS:
            return self.refuse_url(url, "")
        if scheme == "file":
            return self.local(_file_path(url, self.origin), extras, marker, name=name)
        if scheme not in ("http", "https"):
            what = f"{url}: " + (f"{scheme}: URLs are not supported" if scheme else "not a URL")
            self.fail(f"{what}; use an https:// URL, or a file:./path inside the project")
        parts = urlsplit(url)
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            self.fail(f"{url!r}: whitespace or control characters in a URL")
        if parts.username or parts.password:
            self.fail(
                f"{parts.scheme}://{parts.hostname}/...: credentials in a URL would be written "
                "into the lock and every recipe; remove them (use a netrc or keyring)"
            )
        if ";" in url and _is_marker(url.split(";", 1)[1]):
            self.fail(f"{url}: put a space before the ';' of the marker")
        try:  # the grammar the recipes check again: refused here, naming the line
            safe.url(url)
        except safe.Unsafe as e:
            self.fail(str(e))
        if self.constraint:
            self.fail(f"{url}: a URL is a requirement, not a constraint; move it to a -r file")
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in parts.fragment.split("&") if p)]
        fragment = dict(pairs)
        self.hashes += tuple(h for h in self._fragment_hashes(pairs) if h not in self.hashes)
        found = _name_of(unquote(parts.path.rsplit("/", 1)[-1])) or canonicalize_name(
            fragment.get("egg", "").split("[")[0]
        )
        if name and found and found != name:
            self.fail(f"{url} is a file of {found}, not of {name}; fix the name or the URL")
        name = name or found
        if not name:
            self.fail(
                f"{url}: pinner cannot tell the package's name from the URL; write <name> @ {url}"
            )
        try:  # a name from #egg= is not checked by the PEP 508 parser
            safe.package_name(name)
        except safe.Unsafe as e:
            self.fail(f"{url}: {e}")
        return self.make(
            name=name, text=f"{name}{extras} @ {url}", extras=extras, marker=marker, url=url
        )

    def _fragment_hashes(self, pairs: list[tuple[str, str]]) -> list[str]:
        """Every hash of the fragment (`#sha256=A&sha256=B` keeps both; pip checks A)."""
        out = []
        for key, value in pairs:
            if key in _HASH_LENGTHS:
                out.append(_hash(f"{key}:{value}", self.origin))
            elif key in ("md5", "sha1", "sha224"):
                self.fail(f"#{key}= is too weak to check a download; use #sha256=<hex>")
        return out

    def refuse_url(self, url: str, why: str) -> tuple[Requirement, bool]:
        if _scheme(url).split("+")[0] in _VCS:
            self.fail(
                f"{url}: version-control requirements cannot be locked: pip cannot check a "
                "hash of a checkout, and the recipes install with --require-hashes; build a "
                "wheel at a pinned commit (pip wheel --no-deps 'git+https://...@<commit>') and "
                "require it by path or URL (name @ https://.../name-1.0-py3-none-any.whl), or "
                "use a release from the index"
            )
        self.fail(f"{url}: {why}")

    def local(
        self, text: str, extras: str, marker: str, *, name: str = ""
    ) -> tuple[Requirement, bool]:
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            self.fail(f"{text!r}: control characters in a path")
        if self.constraint:
            self.fail(f"{text}: a constraint names a package and version, not a path")
        path = Path(self.root, text).resolve()
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            self.fail(
                f"{text} is outside the project root {self.root}: the recipes can only copy "
                "files inside it; move it into the project"
            )
        if not path.exists():
            self.fail(
                f"{text} does not exist (paths in requirements are relative to the project "
                f"root {self.root}, as for pip run there)"
            )
        extras = _extras(extras[1:-1].split(",")) if extras else ""
        if path.is_dir():
            return self._project(path, rel, text, extras, marker, name)
        if self.editable:
            self.fail(f"-e {text}: -e takes a project folder; drop -e to install the file")
        found = _name_of(path.name)
        if not found:
            self.fail(f"{text} is neither a wheel nor a source archive (.tar.gz, .zip)")
        if name and found != name:
            self.fail(f"{text} is a file of {found}, not of {name}; fix the name or path")
        url = path.as_uri()
        return self.make(
            name=found,
            text=f"{found}{extras} @ {url}",
            extras=extras,
            marker=marker,
            url=url,
            path=rel,
        )

    def _project(
        self, path: Path, rel: str, text: str, extras: str, marker: str, name: str
    ) -> tuple[Requirement, bool]:
        if not ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file()):
            self.fail(f"{text} is not a Python project (no pyproject.toml or setup.py)")
        if self.hashes:
            self.fail(f"{text}: a local project is not hashed; remove --hash")
        static = _project_name(path)
        if name and static and name != static:
            self.fail(f"{text} is the project {static}, not {name}; fix the name")
        name = name or static
        if not name:
            self.fail(
                f"{text}: pinner cannot read the project's name (no [project] name in its "
                "pyproject.toml, no [metadata] name in setup.cfg); add one, or write "
                f"<name> @ file:{'./' if not rel.startswith('.') else ''}{rel}"
            )
        return self.make(
            name=name,
            text=f"{name}{extras} @ {path.as_uri()}",
            extras=extras,
            marker=marker,
            path=rel,
            local_project=True,
        )

    def make(
        self,
        *,
        name: str,
        text: str,
        extras: str,
        marker: str,
        specifier: str = "",
        url: str = "",
        path: str = "",
        local_project: bool = False,
    ) -> tuple[Requirement, bool]:
        marker = self.marker(marker)
        keep = not marker or self.holds(marker)
        req = Requirement(
            name=name,
            text=text,
            specifier=specifier,
            extras=tuple(e for e in extras[1:-1].split(",") if e),
            marker=marker,
            url=url,
            path=path,
            editable=self.editable,
            local_project=local_project,
            hashes=self.hashes,
            origin=self.origin,
            constraint=self.constraint,
        )
        return req, keep

    def marker(self, text: str) -> str:
        text = text.strip()
        if not text:
            return ""
        try:
            marker = str(Marker(text))
        except InvalidMarker as e:
            self.fail(f"not a valid marker: {text!r} ({str(e).splitlines()[0]})")
        return marker

    def holds(self, marker: str) -> bool:
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", "", marker)
        found = _UNKNOWABLE.search(unquoted)
        if found and found.group(1) == "extra":
            self.fail(
                f"the marker {marker!r} tests `extra`, which no requirements line can satisfy; "
                'remove that clause (name a pyproject.toml extra as "pyproject.toml[extra]")'
            )
        if found:
            self.fail(
                f"the marker {marker!r} tests {found.group(1)}, the kernel of the machine that "
                "installs, which neither pinner nor uv can know for a target; use sys_platform, "
                "platform_machine or python_version instead"
            )
        return Marker(marker).evaluate(dict(self.env))


def _extras(names: Iterable[str]) -> str:
    """`[a,b]`: canonical, sorted; "" for none."""
    canonical = sorted({canonicalize_name(n.strip()) for n in names if n.strip()})
    return f"[{','.join(canonical)}]" if canonical else ""


def _is_marker(text: str) -> bool:
    try:
        Marker(text)
    except InvalidMarker:
        return False
    return True


def _name_of(filename: str) -> str:
    """The canonical project name a wheel or sdist file name states, "" when it states none."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""
    return ""


def _project_name(path: Path) -> str:
    """A local project's static name: pyproject.toml [project] name, else setup.cfg's."""
    import configparser

    from pinner.load.pyproject_deps import load_toml

    if (path / "pyproject.toml").is_file():
        name = load_toml(path / "pyproject.toml").get("project", {}).get("name")
        if isinstance(name, str) and name.strip():
            return canonicalize_name(name)
    cfg = configparser.ConfigParser()
    try:
        cfg.read(path / "setup.cfg", encoding="utf-8")
        return canonicalize_name(cfg.get("metadata", "name", fallback="").strip())
    except (configparser.Error, UnicodeDecodeError):
        return ""
