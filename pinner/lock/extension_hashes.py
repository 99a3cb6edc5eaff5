"""Prebuilt extension wheels (flash-attn's GitHub release assets) hashed at lock time.

Knowledge names each wheel's URL but not its digest (the releases publish none), so `pinner lock`
downloads each chosen wheel once, through the shared downloader and its cache, and records the
sha256 in the plan; the lock stores it, extensions.txt renders `--hash`, and the extension step
keeps `--require-hashes`. With `--offline` the digest comes from the cache only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from pinner.model import Plan


def hash_extension_wheels(
    plan: Plan, *, offline: bool, cache: Path, previous: Plan | None = None
) -> Plan:
    """The plan with the sha256 of each prebuilt extension wheel filled in: the previous lock's
    digest of the same URL, else the download cache's, else the file's, downloaded once."""
    known = {e.url: e.sha256 for e in (previous.extensions if previous else ()) if e.sha256}
    extensions = []
    for ext in plan.extensions:
        if ext.strategy == "wheel" and ext.url and not ext.sha256:
            if ext.url in known:
                extensions.append(replace(ext, sha256=known[ext.url]))
                continue
            from pinner.download import DownloadError, sha256_of  # http: only when hashing

            try:
                digest = sha256_of(ext.url, offline=offline, cache=cache)
            except DownloadError as e:
                msg = f"target {plan.target.name}: the prebuilt {ext.name} wheel: {e}"
                raise DownloadError(msg) from None
            extensions.append(replace(ext, sha256=digest.removeprefix("sha256:")))
        else:
            extensions.append(ext)
    return replace(plan, extensions=tuple(extensions))
