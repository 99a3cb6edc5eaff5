"""Digest pinning of container images (matrix key `pin-images = true`).

`name:tag` becomes `name:tag@sha256:...`, the digest of what the tag names now: the multi-arch
index (OCI image index or Docker manifest list) when the image has one. The digest is read from
the registry's HTTP API (OCI distribution spec: `HEAD /v2/<name>/manifests/<tag>`, answer header
`Docker-Content-Digest`), with the anonymous bearer-token flow registries use for public images:
a 401 names the token service in `WWW-Authenticate: Bearer realm=...,service=...,scope=...`.
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
https://distribution.github.io/distribution/spec/auth/token/

Digests are recorded in the plan (`Plan.images`), reused by `pinner lock` while the reference is
unchanged, and refreshed by `pinner update`. `PINNER_REGISTRY_URL` (a base URL such as
`http://127.0.0.1:5000`) sends every registry request elsewhere (a mirror, or the tests'
loopback registry): transport only, the recorded references keep their registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pinner import download
from pinner.download import ATTEMPTS, STALL, TRANSIENT_STATUS, DownloadError, open_url

if TYPE_CHECKING:
    from pinner.model import Plan

REGISTRY_ENV = "PINNER_REGISTRY_URL"
# Docker Hub: references without a registry name docker.io, whose API is served by
# registry-1.docker.io (https://docs.docker.com/reference/api/registry/auth/); the token service
# is whatever its 401 challenge names.
DOCKER_HUB = ("docker.io", "index.docker.io")
DOCKER_HUB_API = "registry-1.docker.io"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)  # the multi-arch index first
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class RegistryError(DownloadError):
    """A registry could not be asked, or refused, or answered nonsense."""


@dataclass(frozen=True)
class Reference:
    registry: str  # "docker.io", "ghcr.io", "localhost:5000"
    repository: str  # "library/ubuntu", "astral-sh/uv"
    tag: str
    digest: str  # "" unless the reference carries one

    @property
    def api(self) -> str:
        """Base URL of the registry's API (or its override)."""
        override = os.environ.get(REGISTRY_ENV, "").strip()
        if override:
            return override.rstrip("/")
        host = DOCKER_HUB_API if self.registry in DOCKER_HUB else self.registry
        return f"https://{host}"


def parse(ref: str) -> Reference:
    """`[registry/]name[:tag][@digest]`, as docker reads it (no tag means `latest`)."""
    rest, _, digest = ref.strip().partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        msg = f"image {ref!r}: {digest!r} is not a sha256 digest"
        raise RegistryError(msg)
    name, tag = rest, "latest"
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = rest.rsplit(":", 1)
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", name
    if registry in DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not all(_COMPONENT.fullmatch(part) for part in path.split("/")) or not _TAG.fullmatch(tag):
        msg = f"image {ref!r} is not a valid image reference (registry/name:tag)"
        raise RegistryError(msg)
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


def digest_of(ref: str, *, stall: float = STALL, attempts: int = ATTEMPTS) -> str:
    """The digest (`sha256:...`) that the image reference's tag names now. Connection errors,
    stalls, 429 and 5xx answers are retried."""
    reference = parse(ref)
    if reference.digest:
        return reference.digest
    for attempt in range(attempts):
        try:
            return _ask(ref, reference, stall)
        except _TransientError as e:
            if attempt + 1 == attempts:
                raise _error(ref, e.url, e.what) from None
            time.sleep(download.BACKOFF * (attempt + 1))
    raise AssertionError  # pragma: no cover


class _TransientError(Exception):
    def __init__(self, url: str, what: str) -> None:
        super().__init__(what)
        self.url, self.what = url, what


def _ask(ref: str, reference: Reference, stall: float) -> str:
    url = f"{reference.api}/v2/{reference.repository}/manifests/{reference.tag}"
    token = ""
    for _ in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=_headers(token))
        try:
            with open_url(request, stall=stall) as response:
                found = response.headers.get("Docker-Content-Digest", "")
                if _DIGEST.fullmatch(found):
                    return str(found)
            return _digest_by_get(ref, url, token, stall)
        except urllib.error.HTTPError as e:
            e.close()  # its response holds the connection
            if e.code in TRANSIENT_STATUS:
                raise _TransientError(url, f"HTTP {e.code} {e.reason}") from None
            if e.code != 401 or token:
                raise _error(ref, url, f"HTTP {e.code} {e.reason}") from None
            token = _token(ref, reference, e.headers.get("WWW-Authenticate", ""), stall)
        except TimeoutError:
            raise _TransientError(url, f"no data for {stall:g} s (stalled)") from None
        except OSError as e:
            raise _TransientError(url, str(getattr(e, "reason", e))) from None
        except ValueError as e:
            raise _error(ref, url, str(e)) from None
    raise _error(ref, url, "the registry refused the token it issued")


def _headers(token: str) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "User-Agent": "pinner"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _digest_by_get(ref: str, url: str, token: str, stall: float) -> str:
    """Some registries send no digest header: the digest is then the manifest's own sha256."""
    request = urllib.request.Request(url, headers=_headers(token))
    with open_url(request, stall=stall) as response:
        found = response.headers.get("Docker-Content-Digest", "")
        body = response.read()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if found and found != digest:
        raise _error(ref, url, f"the manifest's sha256 is {digest}, the registry says {found}")
    return digest


def challenge(header: str) -> dict[str, str]:
    """The parameters of a `Bearer realm="...",service="...",scope="..."` challenge."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', params)}


def _token(ref: str, reference: Reference, header: str, stall: float) -> str:
    params = challenge(header)
    realm = params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise _error(ref, reference.api, f"401 without a bearer-token challenge ({header!r})")
    query = {"scope": params.get("scope") or f"repository:{reference.repository}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(sorted(query.items()))
    try:
        with open_url(
            urllib.request.Request(url, headers={"User-Agent": "pinner"}), stall=stall
        ) as r:
            answer = json.loads(r.read())
    except urllib.error.HTTPError as e:
        e.close()  # its response holds the connection
        if e.code in TRANSIENT_STATUS:
            raise _TransientError(realm, f"token service: HTTP {e.code} {e.reason}") from None
        raise _error(ref, realm, f"token service: HTTP {e.code} {e.reason}") from None
    except OSError as e:
        raise _TransientError(realm, f"token service: {getattr(e, 'reason', e)}") from None
    except ValueError as e:
        raise _error(ref, realm, f"token service: {e}") from None
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else ""
    if not isinstance(token, str) or not token:
        raise _error(ref, realm, "the token service answered without a token")
    return token


def _error(ref: str, url: str, what: str) -> RegistryError:
    return RegistryError(
        f"pin-images: cannot read the digest of {ref} ({url}): {what}\n"
        f"  fix: check the network, set {REGISTRY_ENV} to a registry mirror, "
        "or set pin-images = false"
    )


def pinned(ref: str, images: tuple[tuple[str, str], ...]) -> str:
    """The reference as recipes write it: `name:tag@sha256:...` when the plan pinned it."""
    digest = dict(images).get(ref, "")
    return f"{ref}@{digest}" if digest and "@" not in ref else ref


def pin_images(
    plan: Plan,
    refs: tuple[str, ...],
    *,
    previous: tuple[tuple[str, str], ...],
    refresh: bool,
    offline: bool,
) -> Plan:
    """The plan with the digest of each image reference in `plan.images`: the previous lock's
    digest while the reference is unchanged (unless `refresh`), else the registry's."""
    old = dict(previous)
    images: dict[str, str] = {}
    for ref in dict.fromkeys(r for r in refs if r and "@" not in r):
        if ref in old and (not refresh or offline):
            images[ref] = old[ref]
        elif offline:
            msg = (
                f"--offline: target {plan.target.name}: pin-images needs the digest of {ref}, "
                "which the lock does not record; run once without --offline"
            )
            raise RegistryError(msg)
        else:
            images[ref] = digest_of(ref)
    return replace(plan, images=tuple(sorted(images.items())))
