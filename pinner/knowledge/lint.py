"""Checks of a resolved target against the knowledge: what the resolver cannot know."""

from __future__ import annotations

from packaging.version import Version

from pinner.knowledge.knowledge import Knowledge, load_knowledge
from pinner.model import Finding, TargetLock


def newer_than_knowledge(kb: Knowledge, package: str, version: str) -> str:
    """ "torch 2.16.0 is newer than pinner's knowledge (2026-11-23): upgrade pinner" when
    `version` is newer than every release of `package` the knowledge holds (torch, xformers,
    vllm), else "". For the update PR body and `explain` notes of held-back releases."""
    if package == "torch":
        known = [r.version for r in kb.releases]
    else:
        known = [b.version for b in kb.extension_builds(package)]
    if not known or Version(version) <= max(Version(v) for v in known):
        return ""
    return f"{package} {version} is newer than pinner's knowledge ({kb.as_of}): upgrade pinner"


def lint_lock(tl: TargetLock) -> tuple[Finding, ...]:
    kb = load_knowledge()
    pins = {p.name: p for p in tl.pins}
    out: list[Finding] = []
    name = tl.plan.target.name
    known = kb.docs["packages"]["transformers_known"]
    if "transformers" in pins:
        version = Version(pins["transformers"].version)
        newest = Version(known["newest_line"])
        if (version.major, version.minor) > (newest.major, newest.minor):
            # the same words for every target: the run prints it once
            out.append(
                Finding(
                    target=name,
                    severity="note",
                    code="newer-than-knowledge",
                    message=f"transformers {version} is newer than pinner's knowledge "
                    f"({kb.as_of}): its import-time minimum torch is not verified; upgrade pinner",
                    fix="upgrade pinner, or pin transformers to a release it knows",
                    source=known["source"],
                )
            )
    for package in ("xformers", "vllm"):
        note = newer_than_knowledge(kb, package, pins[package].version) if package in pins else ""
        if note:
            latest = kb.extension_builds(package)[0]
            out.append(
                Finding(
                    target=name,
                    severity="warning",
                    code="newer-than-knowledge",
                    message=f"{note.removesuffix(': upgrade pinner')}: the CUDA major and torch "
                    "build of its wheel are not verified; upgrade pinner",
                    fix=f"upgrade pinner, or pin {package} to a release it knows (<={latest.version})",
                    source=latest.source,
                )
            )
    if "torchaudio" in pins:
        out += _torchaudio(kb, tl, pins["torchaudio"].version)
    return tuple(out)


def _torchaudio(kb: Knowledge, tl: TargetLock, locked: str) -> list[Finding]:
    """A locked torchaudio that neither pairs exactly with torch nor admits it by its range."""
    release = kb.release(tl.plan.torch.version)
    if release is None:
        return []
    plain = locked.split("+", maxsplit=1)[0]
    ok = plain == release.torchaudio or any(c.version == plain for c in release.torchaudio_ranged)
    if ok:
        return []
    return [
        Finding(
            target=tl.plan.target.name,
            severity="warning",
            code="torchaudio-mismatch",
            message=f"torchaudio {locked} is locked, but it is not built for torch "
            f"{release.version}; its extension may fail to load",
            fix="let pinner pair torchaudio (drop the torchaudio pin), or pin torch to the "
            "release that torchaudio is built for",
            source=" ".join(
                filter(None, [release.source, *(c.source for c in release.torchaudio_ranged)])
            ),
        )
    ]
