#!/usr/bin/env python3
"""Regenerate the derivable part of pinner's knowledge from the package index and the PyTorch index.

For maintainers only: the shipped data stays reviewed. The tool reads public indexes (or a mirror of
them), derives the facts below, compares them with pinner/knowledge/*.toml and prints a readable
diff, one line per fact ("+ torch 2.16.0: python 3.10 3.11 3.12 3.13 3.14 (torch-2.16.0-...whl)").
With --write it adds what is new to the TOML files (comments and order kept) and prints the unified
diff of each file it changed; the same inputs always give the same output.

What is read, and from where (every read is a public file a reviewer can open):
- torch releases and Python tags: the index's file list of `torch` (PEP 691 JSON, or PEP 503 HTML
  on a mirror); the upload date where the index gives one.
- PyPI's CUDA of each release: the `nvidia-cuda-runtime-cuXX==X.Y.*` or `cuda-toolkit==X.Y.*`
  pin in the METADATA of the Linux x86_64 / aarch64 wheels (PEP 658 `.metadata`, else the
  `*.dist-info/METADATA` zip member read by HTTP range requests).
- PyTorch-index variants: the local tags of `{torch-index}/{variant}/torch/` file lists for
  the variants named with --variant (default: those the knowledge already lists).
- arch lists: the zip member `torch/lib/libtorch_python.so` of one cp311 wheel per build, read by
  HTTP range requests (central directory, then the member's bytes); the arch string is the longest
  run of `sm_NN` / `compute_NN` words in it. Skipped unless --arches (hundreds of MB per build).
- companions' torch pins: `Requires-Dist: torch` in torchvision / torchaudio METADATA.
- transformers' import-time minimum torch: `transformers/utils/import_utils.py` of the newest
  wheel, pattern IMPORT_TIME (below); the tool fails loudly when the pattern is gone.
- accelerate's torch requirement: its wheel's METADATA.
- bitsandbytes' bundled CUDA libraries: `libbitsandbytes_cuda<NNN>.so` names in the wheel's
  central directory (range request, nothing else downloaded).
- xformers / vllm torch pins and CUDA major: METADATA, and xformers' `xformers/cpp_lib.json` member.

Usage: tools/refresh_knowledge.py [--index-url URL] [--torch-index-url URL] [--write] [--arches]
Exit status: 0 nothing new, 1 the knowledge is behind (diff printed), 2 usage or a broken source.
"""

from __future__ import annotations

import argparse
import difflib
import html.parser
import json
import re
import struct
import sys
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "pinner" / "knowledge"
PYPI = "https://pypi.org/simple/"
TORCH_INDEX = "https://download.pytorch.org/whl/"
IMPORT_TIME = re.compile(rb"Disabling PyTorch because PyTorch >= (\d+\.\d+) is required")
IMPORT_TIME_FILE = "transformers/utils/import_utils.py"
ARCH_MEMBER = "torch/lib/libtorch_python.so"
ARCH_RUN = re.compile(rb"(?:(?:sm|compute)_\d+[af]?)(?:[ ;](?:sm|compute)_\d+[af]?){2,}")
CUDA_PIN = re.compile(
    r"^(?:nvidia-cuda-runtime-cu\d+|cuda-toolkit)(?:\[[^\]]*\])?\s*\(?==\s*(\d+)\.(\d+)"
)
PRE = re.compile(r"(a|b|rc|dev)\d")
TIMEOUT = 60


class SourceError(Exception):
    """A source is unreachable or no longer has what the tool reads: say which, fail loudly."""


# --- reading indexes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    size: int | None
    uploaded: str  # "2026-10-28" or "" when the index does not say
    has_metadata: bool

    @property
    def version(self) -> str:
        return self.filename.split("-")[1]


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers=headers or {})
    if not url.startswith(("http://", "https://")):
        msg = f"{url}: not an http(s) URL"
        raise SourceError(msg)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.read(), response.headers.get("Content-Type", "")
    except OSError as e:
        msg = f"{url}: {e}"
        raise SourceError(msg) from e


def project_files(index: str, project: str) -> list[IndexFile]:
    """The files of `project` on a simple index: PEP 691 JSON where served, else PEP 503 HTML."""
    url = urllib.parse.urljoin(index, f"{project}/")
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    body, kind = _get(url, {"Accept": accept})
    if "json" in kind:
        data = json.loads(body)
        return sorted(
            (
                IndexFile(
                    filename=f["filename"],
                    url=urllib.parse.urljoin(url, f["url"]),
                    size=f.get("size"),
                    uploaded=str(f.get("upload-time", ""))[:10],
                    has_metadata=bool(f.get("core-metadata") or f.get("dist-info-metadata")),
                )
                for f in data["files"]
            ),
            key=lambda f: f.filename,
        )
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    out = []
    for link in parser.links:
        href = link.get("href") or ""
        name = urllib.parse.unquote(href.split("#")[0].rsplit("/", 1)[-1])
        meta = link.get("data-core-metadata") or link.get("data-dist-info-metadata")
        out.append(
            IndexFile(name, urllib.parse.urljoin(url, href.split("#")[0]), None, "", bool(meta))
        )
    return sorted(out, key=lambda f: f.filename)


def read_range(url: str, start: int, end: int | None = None) -> bytes:
    """Bytes start..end (inclusive) of a file; `start` < 0 asks for the last -start bytes."""
    spec = f"bytes={start}" if start < 0 else f"bytes={start}-{'' if end is None else end}"
    body, _ = _get(url, {"Range": spec})
    return body


def zip_members(url: str) -> dict[str, tuple[int, int, int]]:
    """The central directory of a remote zip (a wheel), read by range: {name: (offset, size, method)}.
    Two requests: the last 64 KiB (end-of-central-directory record), then the directory."""
    tail = read_range(url, -65536)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        msg = f"{url}: no zip end-of-central-directory record (no Range support?)"
        raise SourceError(msg)
    size, offset = struct.unpack("<II", tail[at + 12 : at + 20])
    directory = read_range(url, offset, offset + size - 1)
    members: dict[str, tuple[int, int, int]] = {}
    pos = 0
    while pos + 46 <= len(directory) and directory[pos : pos + 4] == b"PK\x01\x02":
        method = struct.unpack("<H", directory[pos + 10 : pos + 12])[0]
        csize = struct.unpack("<I", directory[pos + 20 : pos + 24])[0]
        nlen, elen, clen = struct.unpack("<HHH", directory[pos + 28 : pos + 34])
        local = struct.unpack("<I", directory[pos + 42 : pos + 46])[0]
        name = directory[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")
        members[name] = (local, csize, method)
        pos += 46 + nlen + elen + clen
    return members


def zip_member(url: str, member: tuple[int, int, int]) -> bytes:
    """One member's bytes: its local header, then exactly its compressed data (range requests)."""
    local, csize, method = member
    header = read_range(url, local, local + 29)
    nlen, elen = struct.unpack("<HH", header[26:30])
    start = local + 30 + nlen + elen
    data = read_range(url, start, start + csize - 1) if csize else b""
    return zlib.decompressobj(-15).decompress(data) if method == 8 else data


def wheel_metadata(file: IndexFile) -> str:
    """A wheel's METADATA: its PEP 658 file where the index has one, else the zip member."""
    if file.has_metadata:
        body, _ = _get(file.url + ".metadata")
        return body.decode("utf-8", "replace")
    members = zip_members(file.url)
    name = next(
        (n for n in members if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None
    )
    if name is None:
        msg = f"{file.url}: no *.dist-info/METADATA member"
        raise SourceError(msg)
    return zip_member(file.url, members[name]).decode("utf-8", "replace")


def requires(metadata: str) -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def torch_requirement(metadata: str) -> str:
    """The specifier of `Requires-Dist: torch ...` without markers, "" when absent."""
    for req in requires(metadata):
        match = re.match(r"^torch\b\s*\(?([^;)]*)\)?", req)
        if match and not req.startswith(("torchvision", "torchaudio", "torchcodec")):
            return match.group(1).replace(" ", "")
    return ""


def vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+", maxsplit=1)[0]))


# --- deriving facts ------------------------------------------------------------------------------


@dataclass
class Facts:
    """Derived facts, keyed for a stable order: key -> (value, source)."""

    items: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, key: str, value: str, source: str) -> None:
        self.items[key] = (value, source)

    def lines(self) -> list[str]:
        return [f"{k}: {v} ({s})" for k, (v, s) in sorted(self.items.items(), key=_fact_order)]


def _fact_order(item: tuple[str, tuple[str, str]]) -> tuple[Any, ...]:
    parts = item[0].split(" ")
    return tuple((vkey(p), p) if re.match(r"^\d", p) else ((), p) for p in parts)


def linux_wheels(files: list[IndexFile], machine: str) -> list[IndexFile]:
    return [
        f
        for f in files
        if f.filename.endswith(f"linux_{machine}.whl")
        or (f"_{machine}." in f.filename and "linux" in f.filename)
    ]


def derive_torch(index: str, facts: Facts, known: set[str]) -> list[str]:
    """torch releases: Python tags, date, PyPI's CUDA (x86_64, aarch64) for every new release."""
    files = project_files(index, "torch")
    versions = sorted(
        {
            f.version
            for f in files
            if f.filename.endswith(".whl") and not PRE.search(f.version) and "+" not in f.version
        },
        key=vkey,
    )
    new = [v for v in versions if v not in known]
    for version in new:
        mine = [f for f in files if f.version == version]
        x86 = linux_wheels(mine, "x86_64")
        if not x86:
            continue
        tags = sorted(
            {f.filename.split("-")[-3] for f in x86 if f.filename.split("-")[-3].startswith("cp")},
            key=vkey,
        )
        python = " ".join(f"{t[2]}.{t[3:]}" for t in tags)
        first = min(x86, key=lambda f: f.filename)
        facts.add(f"torch {version} python", python, first.filename)
        facts.add(
            f"torch {version} date",
            min((f.uploaded for f in mine if f.uploaded), default="unknown"),
            first.filename,
        )
        for machine, wheels in (("x86_64", x86), ("aarch64", linux_wheels(mine, "aarch64"))):
            if not wheels:
                continue
            wheel = next((f for f in wheels if "cp311" in f.filename), wheels[0])
            metadata = wheel_metadata(wheel)
            cuda = pypi_cuda(metadata, machine)
            facts.add(f"torch {version} pypi_cuda {machine}", cuda, wheel.filename)
            if machine == "x86_64":
                pins = [r.split(";")[0] for r in requires(metadata) if re.match(r"^triton\b", r)]
                triton = pins[0].removeprefix("triton").strip(" ()") if pins else "(none)"
                facts.add(f"torch {version} triton", triton, wheel.filename)
    return new


def pypi_cuda(metadata: str, machine: str) -> str:
    """CUDA X.Y of a torch wheel from its nvidia-* / cuda-toolkit pins ("" = a CPU-only wheel).
    A pin whose marker excludes this machine (platform_machine == "x86_64" on aarch64) counts not."""
    for req in requires(metadata):
        name_part, _, marker = req.partition(";")
        if "platform_machine" in marker and machine not in marker:
            continue
        match = CUDA_PIN.match(name_part.strip())
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return ""


def derive_variants(
    torch_index: str, variants: list[str], versions: list[str], facts: Facts
) -> None:
    """Which variants of the PyTorch index carry each version (x86_64 and aarch64 wheels)."""
    for variant in variants:
        try:
            files = project_files(urllib.parse.urljoin(torch_index, f"{variant}/"), "torch")
        except SourceError:
            continue  # a variant the index no longer serves
        for version in versions:
            local = f"{version}+{variant}"
            for machine in ("x86_64", "aarch64"):
                hits = [
                    f
                    for f in files
                    if f.version == local and machine in f.filename and "linux" in f.filename
                ]
                if hits:
                    facts.add(
                        f"torch {version} variant {machine} {variant}", "on the index", hits[0].url
                    )


def derive_arches(torch_index: str, variant: str, version: str, facts: Facts) -> None:
    """The arch string of one build: the zip member ARCH_MEMBER of its cp311 Linux x86_64 wheel."""
    files = project_files(urllib.parse.urljoin(torch_index, f"{variant}/"), "torch")
    wheel = next(
        (
            f
            for f in files
            if f.version.split("+")[0] == version
            and "cp311" in f.filename
            and "x86_64" in f.filename
        ),
        None,
    )
    if wheel is None:
        return
    members = zip_members(wheel.url)
    if ARCH_MEMBER not in members:
        msg = f"{wheel.url}: no {ARCH_MEMBER} member"
        raise SourceError(msg)
    runs = ARCH_RUN.findall(zip_member(wheel.url, members[ARCH_MEMBER]))
    if not runs:
        msg = f"{wheel.url}: {ARCH_MEMBER} holds no arch string"
        raise SourceError(msg)
    arches = max(runs, key=len).decode().replace(";", " ")
    facts.add(f"torch {version} arches {variant}", arches, wheel.url)


def derive_companions(index: str, known: dict[str, set[str]], facts: Facts) -> None:
    """New torchvision / torchaudio releases and the torch each admits (their METADATA)."""
    for name in ("torchvision", "torchaudio"):
        files = project_files(index, name)
        releases = sorted(
            {f.version for f in files if f.filename.endswith(".whl") and not PRE.search(f.version)},
            key=vkey,
        )
        for release in [r for r in releases if r not in known[name]][-4:]:
            wheel = next(
                (f for f in linux_wheels([f for f in files if f.version == release], "x86_64")),
                None,
            )
            if wheel is not None:
                facts.add(
                    f"{name} {release} torch",
                    torch_requirement(wheel_metadata(wheel)) or "(none)",
                    wheel.filename,
                )


def derive_transformers(index: str, facts: Facts) -> None:
    """The newest transformers' import-time minimum torch (IMPORT_TIME in IMPORT_TIME_FILE)."""
    files = [
        f
        for f in project_files(index, "transformers")
        if f.filename.endswith(".whl") and not PRE.search(f.version)
    ]
    if not files:
        msg = f"{index}: no transformers wheels"
        raise SourceError(msg)
    newest = max(files, key=lambda f: vkey(f.version))
    members = zip_members(newest.url)
    if IMPORT_TIME_FILE not in members:
        msg = f"{newest.filename}: {IMPORT_TIME_FILE} is gone; update IMPORT_TIME_FILE"
        raise SourceError(msg)
    match = IMPORT_TIME.search(zip_member(newest.url, members[IMPORT_TIME_FILE]))
    if match is None:
        msg = (
            f"{newest.filename}: {IMPORT_TIME_FILE} no longer matches {IMPORT_TIME.pattern!r}; "
            "read the file and update the pattern"
        )
        raise SourceError(msg)
    facts.add(f"transformers {newest.version} min_torch", match.group(1).decode(), newest.filename)
    accelerate = [
        f
        for f in project_files(index, "accelerate")
        if f.filename.endswith(".whl") and not PRE.search(f.version)
    ]
    if accelerate:
        wheel = max(accelerate, key=lambda f: vkey(f.version))
        facts.add(
            f"accelerate {wheel.version} torch",
            torch_requirement(wheel_metadata(wheel)),
            wheel.filename,
        )


def derive_bitsandbytes(index: str, known: set[str], facts: Facts) -> None:
    """Bundled libbitsandbytes_cuda<NNN>.so of each new release (the wheel's central directory)."""
    files = project_files(index, "bitsandbytes")
    for version in sorted(
        {f.version for f in files if not PRE.search(f.version)} - known, key=vkey
    ):
        wheel = next(
            (f for f in linux_wheels([f for f in files if f.version == version], "x86_64")), None
        )
        if wheel is None:
            continue
        libs = sorted(
            {
                m.group(1)
                for n in zip_members(wheel.url)
                if (m := re.search(r"libbitsandbytes_cuda(\d+)\.", n))
            },
            key=int,
        )
        facts.add(f"bitsandbytes {version} cuda", " ".join(libs), wheel.filename)


def derive_extension_builds(index: str, known: dict[str, set[str]], facts: Facts) -> None:
    """xformers / vllm: the torch each new release pins and the CUDA major it was built for."""
    for name in ("xformers", "vllm"):
        files = project_files(index, name)
        for version in sorted(
            {f.version for f in files if f.filename.endswith(".whl") and not PRE.search(f.version)}
            - known.get(name, set()),
            key=vkey,
        ):
            wheel = next(
                (f for f in linux_wheels([f for f in files if f.version == version], "x86_64")),
                None,
            )
            if wheel is None:
                continue
            meta = wheel_metadata(wheel)
            pin = torch_requirement(meta)
            cuda = "13" if "cu13" in meta else "12" if "cu12" in meta else ""
            built_for = ""
            if name == "xformers":
                members = zip_members(wheel.url)
                if "xformers/cpp_lib.json" in members:
                    info = json.loads(zip_member(wheel.url, members["xformers/cpp_lib.json"]))
                    built_for = str(info["version"]["torch"])
                    cuda = str(info["version"]["cuda"])[:-2]
            facts.add(
                f"{name} {version} build",
                f"torch{pin} cuda {cuda or '?'} built_for {built_for or '?'}",
                wheel.filename,
            )


# --- the shipped knowledge -----------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads((KNOWLEDGE / name).read_text(encoding="utf-8"))


def release_row(items: dict[str, tuple[str, str]], version: str) -> dict[str, Any]:
    """A [[release]] row for torch.toml from the derived facts: every field the loader needs, the
    index variants unverified (never offered) until a maintainer has reviewed them."""
    source = items[f"torch {version} python"][1]
    vision = [
        k.split()[1]
        for k, (v, _) in items.items()
        if k.startswith("torchvision ") and v == f"=={version}"
    ]
    x86 = sorted(
        (k.split()[-1], s)
        for k, (_, s) in items.items()
        if k.startswith(f"torch {version} variant x86_64 ")
    )
    arm = sorted(k.split()[-1] for k in items if k.startswith(f"torch {version} variant aarch64 "))
    return {
        "_table": "release",
        "version": version,
        "date": items[f"torch {version} date"][0],
        "python": items[f"torch {version} python"][0].split(),
        "pypi_cuda": items.get(f"torch {version} pypi_cuda x86_64", ("", ""))[0],
        "cxx11_abi": True,
        "numpy2": True,
        "triton": items.get(f"torch {version} triton", ("", ""))[0].replace("(none)", ""),
        "torchvision": vision[0] if vision else "",
        "torchaudio": "",
        "variants": [v for v, _ in x86],
        "variants_aarch64": arm,
        "pypi_cuda_aarch64": items.get(f"torch {version} pypi_cuda aarch64", ("", ""))[0],
        "variants_confidence": "unverified",
        # cite the public index, never the mirror the tool read
        "variants_source": " ".join([f"{TORCH_INDEX}{v}/torch/" for v, _ in x86] or [source]),
        "source": source,
        "confidence": "verified",
        "note": "added by tools/refresh_knowledge.py: review torchvision, cxx11_abi, numpy2 and the "
        "variants before setting variants_confidence",
    }


def write_new(facts: Facts, new_torch: list[str]) -> list[str]:
    """Append new torch releases to torch.toml (kept as reviewed data: variants unverified, never
    offered until a maintainer reads the index), new extension builds to extensions.toml and new
    bitsandbytes rows to packages.toml. Returns unified diffs of the files changed."""
    import tomlkit

    diffs = []
    items = facts.items
    edits: dict[str, list[dict[str, Any]]] = {
        "torch.toml": [],
        "extensions.toml": [],
        "packages.toml": [],
    }
    for version in new_torch:
        if f"torch {version} python" not in items:
            continue
        edits["torch.toml"].append(release_row(items, version))
    for key, (value, source) in sorted(items.items(), key=_fact_order):
        name, version, what = key.split(" ", 2)
        if what == "build":
            pin, _, rest = value.partition(" cuda ")
            cuda, _, built_for = rest.partition(" built_for ")
            edits["extensions.toml"].append(
                {
                    "_table": "extension_build",
                    "package": name,
                    "version": version,
                    "cuda": cuda,
                    "torch": pin.removeprefix("torch"),
                    "built_for": built_for,
                    "confidence": "verified",
                    "source": source,
                }
            )
        elif name == "bitsandbytes" and what == "cuda":
            edits["packages.toml"].append(
                {
                    "_table": "bitsandbytes",
                    "version": version,
                    "cuda": value.split(),
                    "source": source,
                }
            )
    for file, rows in edits.items():
        if not rows:
            continue
        path = KNOWLEDGE / file
        before = path.read_text(encoding="utf-8")
        doc = tomlkit.parse(before)
        for row in rows:
            table = row.pop("_table")
            doc.setdefault(table, tomlkit.aot()).append(tomlkit.item(row))
        after = tomlkit.dumps(doc)
        path.write_text(after, encoding="utf-8")
        diffs += difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/pinner/knowledge/{file}",
            f"b/pinner/knowledge/{file}",
        )
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index-url", default=PYPI, help="simple index (a PyPI mirror); default %(default)s"
    )
    parser.add_argument(
        "--torch-index-url", default=TORCH_INDEX, help="the PyTorch index root; default %(default)s"
    )
    parser.add_argument("--variant", action="append", help="index variant to list (repeatable)")
    parser.add_argument(
        "--arches", action="store_true", help="also read arch strings (large range reads)"
    )
    parser.add_argument("--write", action="store_true", help="add what is new to pinner/knowledge")
    args = parser.parse_args(argv)
    index = args.index_url.rstrip("/") + "/"
    torch_index = args.torch_index_url.rstrip("/") + "/"
    torch_doc, ext_doc, pkg_doc = load("torch.toml"), load("extensions.toml"), load("packages.toml")
    known_torch = {r["version"] for r in torch_doc["release"]}
    variants = args.variant or sorted({v for r in torch_doc["release"] for v in r["variants"]})
    facts = Facts()
    try:
        new = derive_torch(index, facts, known_torch)
        derive_variants(torch_index, variants, new, facts)
        if args.arches:
            for version in new:
                for variant in variants:
                    if f"torch {version} variant x86_64 {variant}" in facts.items:
                        derive_arches(torch_index, variant, version, facts)
        companions = {
            "torchvision": {r["torchvision"] for r in torch_doc["release"]},
            "torchaudio": {r["torchaudio"] for r in torch_doc["release"]}
            | {t["version"] for t in pkg_doc.get("torchaudio", [])},
        }
        derive_companions(index, companions, facts)
        derive_transformers(index, facts)
        derive_bitsandbytes(index, {b["version"] for b in pkg_doc.get("bitsandbytes", [])}, facts)
        known_builds: dict[str, set[str]] = {}
        for row in ext_doc.get("extension_build", []):
            known_builds.setdefault(row["package"], set()).add(row["version"])
        derive_extension_builds(index, known_builds, facts)
    except SourceError as e:
        print(f"refresh_knowledge: {e}", file=sys.stderr)
        return 2
    known_line = {t["first"]: t["min_torch"] for t in pkg_doc.get("transformers", [])}
    accelerate_min = {a["min_torch"] for a in pkg_doc.get("accelerate", [])}
    lines = [
        line
        for line in facts.lines()
        if not _already_known(line, known_line) and not _same_minimum(line, accelerate_min)
    ]
    as_of = min(str(load(n)["as_of"]) for n in ("torch.toml", "extensions.toml", "packages.toml"))
    for version in new:
        print(
            f"note: torch {version} is newer than pinner's knowledge ({as_of}): review and release"
        )
    for line in lines:
        print(f"+ {line}")
    if args.write:
        sys.stdout.writelines(write_new(facts, new))
    return 1 if lines else 0


def _same_minimum(line: str, minimums: set[str]) -> bool:
    """accelerate's `torch>=2.0.0` restates a known minimum ("2.0")."""
    match = re.match(r"accelerate \S+ torch: >=(\S+) ", line)
    return match is not None and any(
        _trim(vkey(match.group(1))) == _trim(vkey(m)) for m in minimums
    )


def _trim(key: tuple[int, ...]) -> tuple[int, ...]:
    while key and key[-1] == 0:
        key = key[:-1]
    return key


def _already_known(line: str, transformers_lines: dict[str, str]) -> bool:
    """Facts that only restate the shipped data (the transformers minimum of a known line)."""
    match = re.match(r"transformers (\S+) min_torch: (\S+)", line)
    if match is None:
        return False
    newest_line = max(transformers_lines, key=vkey, default="0")
    return vkey(match.group(1)) >= vkey(newest_line) and transformers_lines.get(
        newest_line
    ) == match.group(2)


if __name__ == "__main__":
    raise SystemExit(main())
