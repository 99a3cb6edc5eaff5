"""Shared by the engines: parse a compiled requirements file; check that an index answers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinner.errors import NetworkError
from pinner.resolve.job import canonical


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
    """Fail within seconds, with the ways out, when the PyTorch index does not answer: the
    downloader's connect timeout, then at most `timeout` seconds without a byte (fewer when
    PINNER_STALL_TIMEOUT says so), naming the URL that did not answer."""
    import http.client
    import urllib.error
    import urllib.request

    from pinner.download import open_url, redacted, stall_timeout

    probe = url.rstrip("/") + "/torch/"
    stall = min(timeout, stall_timeout())
    reason = ""
    for _ in range(2):
        try:
            with open_url(urllib.request.Request(probe, method="GET"), stall=stall) as r:
                if r.status < 400:
                    return
                reason = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            e.close()
            reason = f"HTTP {e.code}"
            if e.code < 500:
                break
        except TimeoutError:
            reason = f"{redacted(probe)}: no answer for {stall:g} s (stalled)"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            why = getattr(e, "reason", e)
            reason = f"{redacted(probe)}: " + (
                f"no connection within {stall:g} s" if isinstance(why, TimeoutError) else str(why)
            )
    msg = (
        f"target {target}: cannot reach the PyTorch index {redacted(url)} ({reason}).\n"
        "  fix: point pinner at a mirror (matrix key torch-index-url or PINNER_TORCH_INDEX_URL, "
        "a URL with {variant}), or run with --offline to use the existing lock and cache"
    )
    raise NetworkError(msg)


def page_hashes(url: str, timeout: float | None = None) -> set[str]:
    """The `sha256:<hex>` of every file linked from a simple-index project page (PEP 503 puts
    the digest in each link's `#sha256=` fragment). Connect and no-progress timeouts; a
    NetworkError naming the URL otherwise."""
    from pinner.download import DownloadError, read_url

    try:
        page = read_url(url, stall=timeout).decode("utf-8", "replace")
    except DownloadError as e:
        raise NetworkError(str(e)) from None
    return {f"sha256:{h.lower()}" for h in re.findall(r"#sha256=([0-9a-fA-F]{64})", page)}
