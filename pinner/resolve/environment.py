"""The environment a resolver runs in: an allow-list, never the caller's whole environment.

uv and pip read index settings from their environment (`UV_INDEX`, `UV_EXTRA_INDEX_URL`,
`UV_FIND_LINKS`, `PIP_EXTRA_INDEX_URL`, ...): any of them would let a package from another index
into the lock under the default index's name. So a resolver sees only what it needs to reach the
network (proxies, certificates, credentials files), its cache folder, and pinner's one mirror
setting, `PINNER_INDEX_URL` (a mirror of the default index: transport, the hashes are the same).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

MIRROR = "PINNER_INDEX_URL"
KEPT = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TMP", "TEMP", "LANG", "LC_ALL", "LC_CTYPE",
        "SYSTEMROOT", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CACHE_HOME",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
        "http_proxy", "https_proxy", "all_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC",
        "UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_INSECURE_HOST_DISABLED", "UV_KEYRING_PROVIDER",
        "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS", "PIP_CACHE_DIR", "PIP_CERT",
        "PIP_CLIENT_CERT", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_CONFIG_FILE",
    }
)  # fmt: skip
# Index credentials for a mirror (uv: UV_INDEX_<NAME>_USERNAME / _PASSWORD) are kept too.
_CREDENTIALS = ("_USERNAME", "_PASSWORD")
# Prefixes of the variables that can change what a resolver resolves; named when ignored.
_WATCHED = ("UV_", "PIP_", "PIP_TOOLS_", "CUSTOM_COMPILE_COMMAND")


def resolver_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a resolver gets from `source` (default: os.environ)."""
    env = os.environ if source is None else source
    out = {k: v for k, v in env.items() if k in KEPT or _is_credential(k)}
    out["UV_PYTHON_DOWNLOADS"] = "never"  # never fetch an interpreter to resolve
    out["UV_NO_PROGRESS"] = "1"
    out["NO_COLOR"] = "1"
    out["PIP_CONFIG_FILE"] = os.devnull  # pip-compile: no pip.conf either
    return out


def ignored(source: Mapping[str, str] | None = None) -> list[str]:
    """The variables that are set and would steer a resolver, which pinner does not pass on."""
    env = os.environ if source is None else source
    return sorted(
        k
        for k in env
        if k.startswith(_WATCHED)
        and k not in KEPT
        and not _is_credential(k)
        and k not in ("UV_NO_PROGRESS", "UV_PYTHON_DOWNLOADS", "UV_NO_CONFIG", "UV_CACHE_DIR")
    )


def mirror(source: Mapping[str, str] | None = None) -> str:
    """The default index's mirror for this run ("" for the resolver's own default)."""
    env = os.environ if source is None else source
    url = env.get(MIRROR, "").strip()
    if url:
        checked_url(MIRROR, url)
    return url.rstrip("/")


def checked_url(name: str, url: str) -> str:
    """`url` when it is an http(s) or file URL without whitespace or control characters (a
    `{variant}` placeholder allowed)."""
    from pinner.download import redacted
    from pinner.errors import ConfigError

    plain = url.replace("{variant}", "v")
    if not plain.startswith(("https://", "http://", "file:")) or any(
        c.isspace() or ord(c) < 32 or ord(c) == 127 or c in "$`\\\"'{}" for c in plain
    ):
        msg = (
            f"{name}={redacted(url)!r}: not an http(s) or file URL without spaces or control "
            "characters"
        )
        raise ConfigError(msg)
    return url


def _is_credential(key: str) -> bool:
    return key.startswith("UV_INDEX_") and key.endswith(_CREDENTIALS)
