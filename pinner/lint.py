"""Checks of a resolved target against the knowledge: what the resolver cannot know."""

from __future__ import annotations

from packaging.version import Version

from pinner.knowledge import Knowledge, load_knowledge
from pinner.model import Finding, TargetLock


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
        builds = kb.extension_builds(package)
        if package in pins and builds:
            locked = Version(pins[package].version)
            if locked > Version(builds[0].version):
                out.append(
                    Finding(
                        target=name,
                        severity="warning",
                        code="newer-than-knowledge",
                        message=f"{package} {locked} is newer than pinner's knowledge ({kb.as_of}): "
                        "the CUDA major and torch build of its wheel are not verified; upgrade pinner",
                        fix=f"upgrade pinner, or pin {package} to a release it knows "
                        f"(<={builds[0].version})",
                        source=builds[0].source,
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
