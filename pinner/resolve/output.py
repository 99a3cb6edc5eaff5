"""Shared by the engines: parse a compiled requirements file; check that an index answers."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from pinner.errors import NetworkError
from pinner.resolve import canonical


@dataclass(frozen=True)
class Compiled:
    """One `name==version` block of pip-compile's output."""

    name: str
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+?)\s*(?:\\)?$"
)


def parse_compiled(text: str) -> tuple[Compiled, ...]:
    """`name==version` blocks with `--hash=` lines and `# via` / `# from` annotations (the
    output of `uv pip compile --generate-hashes --emit-index-annotation` and of pip-compile)."""
    pins: list[Compiled] = []
    name = version = ""
    hashes: list[str] = []
    via: list[str] = []
    in_via = False

    def flush() -> None:
        if name:
            pins.append(
                Compiled(
                    name=canonical(name),
                    version=version,
                    hashes=tuple(sorted(hashes)),
                    via=tuple(via),
                )
            )

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _PIN.match(line)
        if m and not raw.startswith((" ", "\t")):
            flush()
            name, version, hashes, via, in_via = m["name"], m["version"], [], [], False
            continue
        if line.startswith("--hash="):
            hashes.append(line.split("=", 1)[1].rstrip(" \\"))
        elif line.startswith("# via"):
            rest = line[len("# via") :].strip()
            in_via = not rest
            if rest:
                via.append(rest)
        elif line.startswith("# from "):
            in_via = False
        elif line.startswith("#   ") and in_via:
            via.append(line[1:].strip())
        elif line.startswith("#"):
            in_via = False
    flush()
    return tuple(pins)


def probe_index(url: str, target: str, timeout: float = 10.0) -> None:
    """Fail within seconds, with the ways out, when the PyTorch index does not answer."""
    probe = url.rstrip("/") + "/torch/"
    reason = ""
    for _ in range(2):
        try:
            with urllib.request.urlopen(
                urllib.request.Request(probe, method="GET"), timeout=timeout
            ) as r:
                if r.status < 400:
                    return
                reason = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            reason = f"HTTP {e.code}"
            if e.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = str(getattr(e, "reason", e))
    msg = (
        f"target {target}: cannot reach the PyTorch index {url} ({reason}).\n"
        "  fix: point pinner at a mirror (matrix key torch-index-url or PINNER_TORCH_INDEX_URL, "
        "a URL with {variant}), or run with --offline to use the existing lock and cache"
    )
    raise NetworkError(msg)


def page_hashes(url: str, timeout: float = 10.0) -> set[str]:
    """The `sha256:<hex>` of every file linked from a simple-index project page (PEP 503 puts
    the digest in each link's `#sha256=` fragment)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            page = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        msg = f"cannot read {url} ({getattr(e, 'reason', e)})"
        raise NetworkError(msg) from e
    return {f"sha256:{h.lower()}" for h in re.findall(r"#sha256=([0-9a-fA-F]{64})", page)}
