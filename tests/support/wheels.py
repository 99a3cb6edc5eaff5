"""Build tiny, valid, installable wheels for tests (stdlib only, deterministic bytes).

A wheel built here contains one top-level module named after the project (``demo-app``
becomes ``demo_app.py``) that defines ``__version__``, plus a ``.dist-info`` directory with
``METADATA`` (2.1), ``WHEEL`` and a ``RECORD`` listing sha256 digests.  Building the same
wheel twice yields byte-identical files (fixed zip timestamps and permissions), so their
sha256 digests are stable across runs and machines.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = [
    "build_wheel",
    "metadata_of",
    "normalize_name",
    "wheel_filename",
    "wheel_name_component",
]

# The earliest timestamp a zip file can hold; used for every member.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# A PEP 440 version in normalized form, optionally with a local label (``2.13.0+cu128``).
_VERSION_RE = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?"
    r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
)


def normalize_name(name: str) -> str:
    """The PEP 503 normalized form of a project name (``Demo_App`` -> ``demo-app``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name_component(name: str) -> str:
    """The project name as written in wheel file names and ``.dist-info`` directories."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_filename(
    name: str,
    version: str,
    python_tag: str = "py3",
    abi_tag: str = "none",
    platform_tag: str = "any",
) -> str:
    """``torch-2.13.0+cu128-cp311-cp311-manylinux_2_28_x86_64.whl``; ``+`` stays literal."""
    return f"{wheel_name_component(name)}-{version}-{python_tag}-{abi_tag}-{platform_tag}.whl"


def _record_digest(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _expanded_tags(python_tag: str, abi_tag: str, platform_tag: str) -> list[str]:
    """The ``Tag:`` lines for a (possibly compressed, ``cp311.cp312``) tag triple."""
    return [
        f"{py}-{abi}-{plat}"
        for py in python_tag.split(".")
        for abi in abi_tag.split(".")
        for plat in platform_tag.split(".")
    ]


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    python_tag: str = "py3",
    abi_tag: str = "none",
    platform_tag: str = "any",
    requires_python: str | None = None,
    module_source: str | None = None,
) -> Path:
    """Write a minimal wheel for ``name==version`` into directory ``dest``; return its path.

    ``requires`` become ``Requires-Dist`` lines verbatim (markers allowed, e.g.
    ``'foo>=1; extra == "x"'``; extras named in markers are declared automatically).
    ``module_source`` replaces the default body of the top-level module, which is
    ``__version__ = "<version>"``.  ``version`` must be in PEP 440 normalized form.
    """
    if not _NAME_RE.match(name):
        msg = f"invalid project name: {name!r}"
        raise ValueError(msg)
    if not _VERSION_RE.match(version):
        msg = f"version must be a normalized PEP 440 version: {version!r}"
        raise ValueError(msg)
    for tag in (python_tag, abi_tag, platform_tag):
        if not tag or "-" in tag:
            msg = f"invalid wheel tag: {tag!r}"
            raise ValueError(msg)

    component = wheel_name_component(name)
    dist_info = f"{component}-{version}.dist-info"
    module_name = f"{component}.py"
    if module_source is None:
        module_source = f'__version__ = "{version}"\n'

    metadata_lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata_lines.append(f"Summary: Test fixture wheel for {name}")
    if requires_python is not None:
        metadata_lines.append(f"Requires-Python: {requires_python}")
    extras: list[str] = []
    for requirement in requires:
        for extra in re.findall(r"""extra\s*==\s*["']([^"']+)["']""", requirement):
            if extra not in extras:
                extras.append(extra)
    metadata_lines.extend(f"Provides-Extra: {extra}" for extra in extras)
    metadata_lines.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    metadata = "\n".join(metadata_lines) + "\n\n"

    pure = abi_tag == "none" and platform_tag == "any"
    wheel_lines = [
        "Wheel-Version: 1.0",
        "Generator: pinner-tests (1.0)",
        f"Root-Is-Purelib: {'true' if pure else 'false'}",
    ]
    wheel_lines.extend(f"Tag: {tag}" for tag in _expanded_tags(python_tag, abi_tag, platform_tag))
    wheel_meta = "\n".join(wheel_lines) + "\n\n"

    members: list[tuple[str, bytes]] = [
        (module_name, module_source.encode("utf-8")),
        (f"{dist_info}/METADATA", metadata.encode("utf-8")),
        (f"{dist_info}/WHEEL", wheel_meta.encode("utf-8")),
    ]
    record_path = f"{dist_info}/RECORD"
    record = (
        "".join(f"{path},{_record_digest(data)},{len(data)}\n" for path, data in members)
        + f"{record_path},,\n"
    )
    members.append((record_path, record.encode("utf-8")))

    dest.mkdir(parents=True, exist_ok=True)
    target = dest / wheel_filename(name, version, python_tag, abi_tag, platform_tag)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in members:
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.create_system = 3  # Unix, so that external_attr is honoured everywhere
            archive.writestr(info, data)
    return target


def with_files(wheel: Path, files: Mapping[str, bytes]) -> Path:
    """Add members (path in the wheel -> bytes) to a wheel `build_wheel` wrote, in place, with
    RECORD rewritten to list them; returns the wheel's path."""
    with zipfile.ZipFile(wheel) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist()]
    record_path = next(name for name, _ in members if name.endswith(".dist-info/RECORD"))
    members = [(n, d) for n, d in members if n != record_path] + sorted(files.items())
    record = (
        "".join(f"{path},{_record_digest(data)},{len(data)}\n" for path, data in members)
        + f"{record_path},,\n"
    )
    members.append((record_path, record.encode("utf-8")))
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in members:
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            archive.writestr(info, data)
    return wheel


def metadata_of(wheel: Path) -> bytes:
    """The raw bytes of the wheel's ``*.dist-info/METADATA`` (the PEP 658 payload)."""
    with zipfile.ZipFile(wheel) as archive:
        candidates = [
            member
            for member in archive.namelist()
            if member.count("/") == 1
            and member.endswith("/METADATA")
            and member.split("/", 1)[0].endswith(".dist-info")
        ]
        if len(candidates) != 1:
            msg = f"{wheel.name}: expected one *.dist-info/METADATA, found {candidates}"
            raise ValueError(msg)
        return archive.read(candidates[0])
