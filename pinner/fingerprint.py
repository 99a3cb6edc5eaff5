"""Fingerprints of a target's inputs and of rendered files. Standard library only: `pinner check`
computes them on every commit, so this module must stay cheap to import and run."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pinner import __version__
from pinner.safe import comment as one_line

KNOWLEDGE = Path(__file__).parent / "knowledge"
LATER_KEYS: dict[str, Any] = {"pin_images": False}  # Target fields added later: their defaults
KNOWLEDGE_FILES = (
    "gpus.toml",
    "torch.toml",
    "cuda.toml",
    "packages.toml",
    "extensions.toml",
    "verify.toml",
)


def package_digest(package: Mapping[str, Any]) -> str:
    """Integrity digest of one locked package: everything its entry says but the digest, in
    canonical JSON (files with every key, as the lock's dataclasses have them). The lock writes
    it; `check` recomputes it from the TOML."""
    data = {k: v for k, v in package.items() if k != "digest"}
    data["files"] = [
        {"name": f.get("name", ""), "hashes": list(f.get("hashes", [])), "url": f.get("url", "")}
        for f in package.get("files", [])
        if isinstance(f, Mapping)
    ]
    data["via"] = list(data.get("via", []))
    return sha256(json.dumps(data, sort_keys=True))


def sha256(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def relative(path: Path, root: Path) -> str:
    """A path as the lock and rendered files name it: relative to the project root when inside
    it, so nothing depends on where pinner ran."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def knowledge_digest() -> str:
    """Fingerprint of pinner's knowledge data files (read as bytes; nothing parsed)."""
    h = hashlib.sha256()
    for name in KNOWLEDGE_FILES:
        h.update((KNOWLEDGE / name).read_bytes())
    return "sha256:" + h.hexdigest()


def target_inputs(target: Mapping[str, Any], root: Path, knowledge_digest: str) -> str:
    """Fingerprint of everything a target's lock is computed from: its matrix table (defaults
    merged), the contents of its requirements files (and those they include), the knowledge and
    the pinner version."""
    from pinner.requirements import files_of

    # where a table sits is no input; keys added later count only when set, so locks made
    # before them stay fresh
    fields = {
        k: v
        for k, v in target.items()
        if k != "origin" and (k not in LATER_KEYS or v != LATER_KEYS[k])
    }
    h = hashlib.sha256()
    h.update(json.dumps(fields, sort_keys=True).encode())
    for path in files_of([(root / r).resolve() for r in target["requirements"]]):
        # relative to the root, beside it too (a monorepo's ../shared.in): never where the
        # project sits, or another clone's check would call the lock stale
        shown = Path(os.path.relpath(path, root.resolve())).as_posix()
        h.update(b"\0" + shown.encode() + b"\0" + path.read_bytes())
    h.update(f"\0knowledge={knowledge_digest}\0pinner={__version__}".encode())
    return "sha256:" + h.hexdigest()


def lock_sections(text: str) -> dict[str, str]:
    """The raw text of each `[targets.<name>]` section of a lock (sub-tables included)."""
    starts: list[tuple[str, int]] = []
    at = text.find("\n[targets.")
    while at >= 0:
        end = text.find("]", at)
        name = text[at + 10 : end]
        if "." not in name and text[end + 1 : end + 2] in ("\n", ""):
            starts.append((name, at + 1))
        at = text.find("\n[targets.", at + 1)
    return {
        name: text[start : starts[i + 1][1] if i + 1 < len(starts) else len(text)]
        for i, (name, start) in enumerate(starts)
    }


def artifact_inputs(section: str, templates_digest: str, installer: str) -> str:
    """Fingerprint of what a rendered file is made from: its target's lock section, the
    templates, the installer and the pinner version."""
    return sha256(f"{section}\0templates={templates_digest}\0installer={installer}\0{__version__}")


RENDERER = (
    "render.py",
    "safe.py",
    "verify.py",
    "verify_checks.py",
    "sbom.py",
    "pylock.py",
)  # code whose output is in the files


def templates_digest(folders: list[Path]) -> str:
    """Fingerprint of what renders the files: the templates (a project's own folder first) and
    the renderer's code, including the checks every verify_env.py embeds."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.glob("*.j2")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in RENDERER:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return "sha256:" + h.hexdigest()


def regenerate_command(target: str, installer: str, out: str = "pinned") -> str:
    """The command that regenerates a target's files; PINNER_CUSTOM_COMMAND overrides it (as
    pip-tools' CUSTOM_COMPILE_COMMAND does, for projects that wrap pinner in a script)."""
    import os

    custom = os.environ.get("PINNER_CUSTOM_COMMAND")
    if custom:
        return one_line(custom)  # it lands in a comment line: never a raw newline
    command = f"pinner generate --target {target}"
    if installer != "pip":
        command += f" --installer {installer}"
    if out != "pinned":
        import shlex

        command += f" --out {shlex.quote(one_line(out))}"  # copied into a shell: one word
    return command


# --- the seal of every rendered file -------------------------------------------------------------
#
# A rendered file starts with its preamble (a `#!` line, or a Dockerfile's `# syntax=` line), then
# the seal line, then two comment lines for people:
#
#   #!/usr/bin/env bash
#   # pinner: target=cpu installer=pip inputs=sha256:<64 hex> digest=sha256:<64 hex>
#   # Generated by pinner from pinner.toml (target cpu). Do not edit.
#   # Regenerate: pinner generate --target cpu
#   ...
#
# `digest` is the sha256 of every byte of the file except the 64 hex digits of its own value, so
# any change anywhere (above the seal too) is seen. `inputs` fingerprints what the file is
# rendered from. JSON artifacts carry the same fields as a "pinner" property; their digest covers
# the canonical JSON of the document with the digest value emptied.

SEAL = "# pinner: "
DIGEST = " digest=sha256:"
PREAMBLE_STARTS = (b"#!", b"# syntax=")
_HEX = frozenset(b"0123456789abcdef")


def seal(
    body: str, *, target: str, installer: str, inputs: str, preamble: str, source: str, command: str
) -> str:
    """The whole file: preamble, seal, do-not-edit lines, body; the digest covers all of it."""
    head = preamble + f"{SEAL}target={target} installer={installer} inputs={inputs}{DIGEST}"
    rest = (
        "\n"
        + f"# Generated by pinner from {one_line(source)} (target {target}). Do not edit.\n"
        + f"# Regenerate: {one_line(command)}\n"
        + body
    )
    digest = hashlib.sha256((head + rest).encode()).hexdigest()
    return head + digest + rest


def _seal_span(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the seal line at its fixed place: the first line, or the second when the
    first is a preamble. None when that line is no seal."""
    start = 0
    if data.startswith(PREAMBLE_STARTS):
        start = data.find(b"\n") + 1
        if start == 0:
            return None
    end = data.find(b"\n", start)
    if end < 0 or not data.startswith(SEAL.encode(), start):
        return None
    return start, end


def read_seal(data: bytes) -> tuple[dict[str, str], bool] | None:
    """(seal fields, whether the digest matches every byte) of a rendered file; None when the
    file carries no seal at its fixed place. Works on bytes: a file that is not UTF-8 any more
    is just a file whose digest no longer matches."""
    if data.startswith(b"{"):
        return _read_json_seal(data)
    span = _seal_span(data)
    if span is None:
        return None
    start, end = span
    line = data[start:end]
    fields = dict(
        p.split("=", 1) for p in line[len(SEAL) :].decode("ascii", "replace").split() if "=" in p
    )
    at = line.rfind(DIGEST.encode())
    value = line[at + len(DIGEST) :] if at >= 0 else b""
    if len(value) != 64 or not _HEX.issuperset(value):
        return fields, False
    cut = start + at + len(DIGEST)
    actual = hashlib.sha256(data[:cut] + data[cut + 64 :]).hexdigest()
    return fields, actual.encode() == value


def misplaced_seal(data: bytes) -> bool:
    """A seal line somewhere in the first lines, but not at its place (lines were added above)."""
    return SEAL.encode() in b"\n".join(data.split(b"\n", 8)[:8])


def unseal(text: str) -> tuple[dict[str, str], str] | None:
    """(seal fields, body after the header lines) of a rendered file; None without a seal."""
    if text.startswith("{"):
        return unseal_json(text)
    data = text.encode("utf-8", "surrogateescape")
    found = read_seal(data)
    span = _seal_span(data)
    if found is None or span is None:
        return None
    rest = text[len(data[: span[1]].decode("utf-8", "surrogateescape")) + 1 :]
    body = rest.split("\n", 2)[2] if rest.count("\n") >= 2 else ""
    return found[0], body


# --- JSON artifacts (the SBOM): no comments, so the seal is a property --------------------------

SEAL_PROPERTY = "pinner:seal"
GENERATED_PROPERTY = "pinner:generated"


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def seal_json(
    doc: dict[str, Any], *, target: str, installer: str, inputs: str, source: str, command: str
) -> str:
    """A JSON document sealed like a rendered file: `metadata.properties` ends with
    `pinner:generated` (the header's do-not-edit note) and `pinner:seal` (the header's fields);
    the body hash is taken over the canonical JSON without those two, as a header is not part
    of the body it seals."""
    properties = doc.setdefault("metadata", {}).setdefault("properties", [])
    body = canonical_json(doc)
    note = (
        f"Generated by pinner from {source} (target {target}). Do not edit. Regenerate: {command}"
    )
    fields = f"target={target} installer={installer} inputs={inputs} body={sha256(body)}"
    properties.append({"name": GENERATED_PROPERTY, "value": note})
    properties.append({"name": SEAL_PROPERTY, "value": fields})
    return canonical_json(doc)


def _read_json_seal(data: bytes) -> tuple[dict[str, str], bool] | None:
    """(seal fields, whether the body digest matches) of a sealed JSON artifact."""
    try:
        found = unseal_json(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError):
        return None
    if found is None:
        return None
    fields, body = found
    return fields, fields.get("body") == sha256(body)


def unseal_json(text: str) -> tuple[dict[str, str], str] | None:
    """(seal fields, canonical body without the header properties) of a sealed JSON file, None
    without a seal."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    properties = doc.get("metadata", {}).get("properties", []) if isinstance(doc, dict) else []
    if not isinstance(properties, list):
        return None
    seals = [p for p in properties if isinstance(p, dict) and p.get("name") == SEAL_PROPERTY]
    if len(seals) != 1 or not isinstance(seals[0].get("value"), str):
        return None
    properties[:] = [
        p
        for p in properties
        if not (isinstance(p, dict) and p.get("name") in (SEAL_PROPERTY, GENERATED_PROPERTY))
    ]
    fields = dict(p.split("=", 1) for p in seals[0]["value"].split() if "=" in p)
    return fields, canonical_json(doc)
