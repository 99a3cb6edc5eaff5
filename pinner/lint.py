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
            out.append(
                Finding(
                    target=name,
                    severity="warning",
                    code="transformers-unknown",
                    message=f"transformers {version} is newer than pinner's knowledge ({known['newest_line']}); "
                    "its minimum torch is not verified",
                    fix="check transformers' import-time torch minimum, or pin transformers",
                    source=known["source"],
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
