"""Fingerprints of a target's inputs and of rendered files. Standard library only: `pinner check`
computes them on every commit, so this module must stay cheap to import and run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinner import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

KNOWLEDGE = Path(__file__).parent / "knowledge"
LATER_KEYS: dict[str, Any] = {"pin_images": False}  # Target fields added later: their defaults
KNOWLEDGE_FILES = ("gpus.toml", "torch.toml", "cuda.toml", "packages.toml", "extensions.toml")


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
        try:
            shown = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            shown = path.as_posix()
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
    "verify.py",
    "verify_checks.py",
    "sbom.py",
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
        return custom
    command = f"pinner generate --target {target}"
    if installer != "pip":
        command += f" --installer {installer}"
    if out != "pinned":
        command += f" --out {out}"
    return command


# --- the header of every rendered file -----------------------------------------------------------

SEAL = "# pinner: "


def seal(
    body: str, *, target: str, installer: str, inputs: str, preamble: str, source: str, command: str
) -> str:
    """Prefix a rendered body with the do-not-edit header; the body hash catches hand edits."""
    return (
        preamble
        + f"# Generated by pinner from {source} (target {target}). Do not edit.\n"
        + f"# Regenerate: {command}\n"
        + f"{SEAL}target={target} installer={installer} inputs={inputs} body={sha256(body)}\n"
        + body
    )


def unseal(text: str) -> tuple[dict[str, str], str] | None:
    """(header fields, body) of a rendered file, None when it has no pinner header."""
    if text.startswith("{"):
        return unseal_json(text)
    start = 0
    for _ in range(6):
        end = text.find("\n", start)
        if end < 0:
            return None
        line = text[start:end]
        if line.startswith(SEAL):
            fields = dict(p.split("=", 1) for p in line[len(SEAL) :].split() if "=" in p)
            return fields, text[end + 1 :]
        start = end + 1
    return None


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
