"""Fingerprints of a target's inputs and of rendered files. Standard library only: `pinner check`
computes them on every commit, so this module must stay cheap to import and run."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pinner import __version__
from pinner.safe import comment as one_line

KNOWLEDGE = Path(__file__).parent.parent / "knowledge"
# Target fields added later, with their defaults: a lock made before them stays fresh
LATER_KEYS: dict[str, Any] = {"pin_images": False, "apt": (), "env": (), "indexes": ()}
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
    return input_digests(target, root, knowledge_digest)[0]


def input_digests(
    target: Mapping[str, Any],
    root: Path,
    knowledge_digest: str,
    seen: dict[Any, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(the target's combined input fingerprint, one digest per input): what the lock head keeps
    so `check` can name the input that changed. The files are read once for both; `seen` shares
    what was read between the targets of one run (many targets read the same files)."""
    seen = {} if seen is None else seen
    files: dict[str, str] = {}
    h = hashlib.sha256()
    h.update(_fields_json(target).encode())
    for shown, data, digest in _requirement_files(tuple(target["requirements"]), root, seen):
        files[shown] = digest
        h.update(b"\0" + shown.encode() + b"\0" + data)
    h.update(f"\0knowledge={knowledge_digest}\0pinner={__version__}".encode())
    fields = {k: v for k, v in target.items() if k not in ("origin", "torch_index_url")}
    table = {k: v for k, v in fields.items() if k not in LATER_KEYS or v != LATER_KEYS[k]}
    parts: dict[str, Any] = {
        "matrix": sha256(json.dumps(table, sort_keys=True)),
        "torch-index-url": str(target.get("torch_index_url", "")),
        "requirements": files,
        "knowledge": knowledge_digest,
        "knowledge-as-of": knowledge_as_of(),
        "pinner": __version__,
    }
    return "sha256:" + h.hexdigest(), parts


def _fields_json(target: Mapping[str, Any]) -> str:
    # where a table sits is no input; keys added later count only when set, so locks made
    # before them stay fresh
    fields = {
        k: v
        for k, v in target.items()
        if k != "origin" and (k not in LATER_KEYS or v != LATER_KEYS[k])
    }
    return json.dumps(fields, sort_keys=True)


def _requirement_files(
    requirements: tuple[str, ...], root: Path, seen: dict[Any, Any]
) -> list[tuple[str, bytes, str]]:
    """(path as the lock names it, bytes, digest) of every requirements file a target reads."""
    if requirements in seen:
        return seen[requirements]  # type: ignore[no-any-return]
    from pinner.load.requirements import files_of

    base = root.resolve()
    found = []
    for path in files_of([(root / r).resolve() for r in requirements]):
        # relative to the root, beside it too (a monorepo's ../shared.in): never where the
        # project sits, or another clone's check would call the lock stale
        shown = Path(os.path.relpath(path, base)).as_posix()
        data = path.read_bytes()
        found.append((shown, data, sha256(data)))
    seen[requirements] = found
    return found


@functools.lru_cache(maxsize=1)
def knowledge_as_of() -> str:
    """The knowledge date (the oldest file's `as_of`), read without parsing TOML."""
    dates = []
    for name in KNOWLEDGE_FILES:
        text = (KNOWLEDGE / name).read_text(encoding="utf-8")
        found = re.search(r'^as_of = "([^"]+)"', text, re.MULTILINE)
        if found:
            dates.append(found.group(1))
    return min(dates, default="")


def changed_inputs(
    recorded: Mapping[str, Any], current: Mapping[str, Any], source: str
) -> list[str]:
    """What changed between the input digests a lock entry records and the current ones, in
    words; [] when they agree. `source` names the matrix file. What the lock recorded is shown
    on one line, its control characters escaped (a hand-edited head may carry any)."""
    said: list[str] = []
    if recorded.get("matrix") != current["matrix"]:
        said.append(f"its matrix table in {source} changed")
    before, now = recorded.get("torch-index-url"), current["torch-index-url"]
    if before != now:
        said.append(f"torch-index-url changed ({one_line(before or 'unset')} -> {now})")
    old = recorded.get("requirements")
    old_files: Mapping[str, Any] = old if isinstance(old, Mapping) else {}
    new_files: Mapping[str, str] = current["requirements"]
    for path in sorted(set(old_files) | set(new_files)):
        if path not in new_files:
            said.append(f"{one_line(path)} is no longer read")
        elif path not in old_files:
            said.append(f"{path} is new")
        elif old_files[path] != new_files[path]:
            said.append(f"{path} changed")
    if recorded.get("knowledge") != current["knowledge"]:
        then, now = one_line(recorded.get("knowledge-as-of", "?")), current["knowledge-as-of"]
        dates = f"as of {then} -> {now}" if then != now else f"same date {now}, new content"
        said.append(f"pinner's knowledge changed ({dates})")
    if recorded.get("pinner") != current["pinner"]:
        said.append(
            f"pinner version changed ({one_line(recorded.get('pinner', '?'))} -> {current['pinner']})"
        )
    return said


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
    """Fingerprint of what a rendered file was made from, as an earlier pinner sealed every file
    of a target: its whole lock section, the templates, the installer and the pinner version.
    `check` reads it for a lock without `[renders]` tables; files are sealed with `file_inputs`."""
    return sha256(f"{section}\0templates={templates_digest}\0installer={installer}\0{__version__}")


def file_inputs(fields: str, template: str, installer: str) -> str:
    """Fingerprint of what one rendered file is made from: the digest of the lock fields it
    renders (the lock head keeps it, see `render_digests`), its template and the renderer's code,
    the installer and the pinner version. A change elsewhere in the lock leaves it alone."""
    return sha256(f"{fields}\0template={template}\0installer={installer}\0{__version__}")


# What each generated file renders from: groups of its target's lock entry (see `render_digests`).
# A file rendered from a template of the project's own renders from the whole section.
RENDERS_FROM: dict[str, tuple[str, ...]] = {
    "constraints.txt": ("target", "pins"),
    "torch-requirements.txt": ("plan", "steps", "pins:torch"),
    "requirements.txt": ("target", "pins:main"),
    "extensions.txt": ("plan", "pins:extension"),
    "Dockerfile": ("plan", "steps", "indexes"),
    "install.sh": ("plan", "steps", "indexes"),
    "modal_image.py": ("plan", "steps", "indexes"),
    "index-requirements.txt": ("plan", "pins", "indexes"),  # each index-<name>.txt
    "verify_env.py": ("plan", "pins"),
    "pylock.toml": ("plan", "pins", "indexes"),
    "sbom.cdx.json": ("section",),  # its serial number is derived from the section
}


def render_digests(entry: Mapping[str, Any], section: str) -> dict[str, str]:
    """The digest of what each file renders from, for a target's lock entry (the TargetLock as
    plain data) and its raw section text; `section` is the digest of the whole section."""
    plan = entry["plan"]
    pins = sorted(entry["pins"], key=lambda p: str(p["name"]))

    def layer(*names: str) -> list[Any]:
        return [p for p in pins if p["layer"] in names]

    groups: dict[str, Any] = {
        "target": plan["target"],
        "plan": plan,
        "pins": pins,
        "pins:torch": layer("torch"),
        "pins:main": layer("main", "build"),
        "pins:extension": layer("extension"),
        # what the install steps read from the packages besides the plan
        "steps": {
            "main": [p["name"] for p in layer("main", "build")],
            "build": [p["name"] for p in layer("build")],
            "extension": layer("extension"),
            # the project's own files the steps COPY and install (a local project, a wheel by path)
            "files": [[p["name"], p["url"]] for p in pins if p["source"] in ("local", "url")],
        },
        "indexes": [list(i) for i in entry.get("indexes", ())],
    }
    whole = sha256(section)
    out = {"section": whole}
    for file, uses in RENDERS_FROM.items():
        data = {use: groups[use] for use in uses if use != "section"}
        out[file] = whole if "section" in uses else sha256(json.dumps(data, sort_keys=True))
    return out


def template_digests(folders: list[Path], files: tuple[str, ...]) -> dict[str, tuple[str, bool]]:
    """For each file: (the digest of its template and the renderer's code, whether the project
    overrides its template). The packaged folder comes last in `folders`; a project's own
    templates may include one another, so all of them count for every file they could reach."""
    code = hashlib.sha256()
    for name in RENDERER:
        code.update(name.encode() + b"\0" + (Path(__file__).parent.parent / name).read_bytes())
    own = hashlib.sha256()
    for folder in folders[:-1]:
        for path in sorted(folder.glob("*.j2")):
            own.update(path.name.encode() + b"\0" + path.read_bytes())
    shared = code.hexdigest() + own.hexdigest()
    out = {}
    for file in files:
        h = hashlib.sha256(shared.encode())
        overridden = False
        for i, folder in enumerate(folders):
            path = folder / f"{file}.j2"
            if path.is_file():
                h.update(b"\0" + path.read_bytes())
                overridden = i < len(folders) - 1
                break
        out[file] = ("sha256:" + h.hexdigest(), overridden)
    return out


RENDERER = (
    "render/render.py",
    "safe.py",
    "verify/verify.py",
    "verify/checks.py",
    "render/sbom.py",
    "render/pylock.py",
)  # code whose output is in the files


def templates_digest(folders: list[Path]) -> str:
    """Fingerprint of what renders the files, as `artifact_inputs` (an earlier pinner's seal)
    takes it: every template (a project's own folder first) and the renderer's code, including
    the checks every verify_env.py embeds. Files are now sealed with `template_digests`."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.glob("*.j2")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in RENDERER:
        h.update(name.encode() + b"\0" + (Path(__file__).parent.parent / name).read_bytes())
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


# The two header properties as `canonical_json` writes them, last in `metadata.properties`.
_JSON_HEADER = re.compile(
    rb'(,|\[)\n *\{\n *"name": "pinner:generated",\n *"value": "(?:[^"\\\n]|\\.)*"\n *\},'
    rb'\n *\{\n *"name": "pinner:seal",\n *"value": "([^"\\\n]*)"\n *\}\n *\]'
)


def _read_json_seal(data: bytes) -> tuple[dict[str, str], bool] | None:
    """(seal fields, whether the body digest matches) of a sealed JSON artifact. Fast path (on
    every `check`): the file as pinner wrote it, the header properties cut out of the text, is
    the canonical body; anything else is parsed and re-encoded."""
    at = data.rfind(b'"name": "pinner:generated"')
    start = data.rfind(b"\n", 0, data.rfind(b"{", 0, at)) - 1
    m = _JSON_HEADER.match(data, start) if at > 0 and start > 0 else None
    if m is not None and data.count(b'"pinner:seal"') == 1:
        if m.group(1) == b",":  # other properties before them: the list closes after those
            closing = data[data.rfind(b"\n", 0, m.end()) : m.end()]  # "\n    ]"
            body = data[: m.start()] + closing + data[m.end() :]
        else:  # only them: an empty list
            body = data[: m.start()] + b"[]" + data[m.end() :]
        fields = dict(p.split("=", 1) for p in m.group(2).decode().split() if "=" in p)
        if fields.get("body") == sha256(body):
            return fields, True
    return _read_json_seal_slow(data)


def _read_json_seal_slow(data: bytes) -> tuple[dict[str, str], bool] | None:
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
