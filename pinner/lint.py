"""Checks of a resolved target against the knowledge: what the resolver cannot know."""

from __future__ import annotations

from packaging.version import Version

from pinner.knowledge import load_knowledge
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
    if "torchaudio" in pins and not any(c.startswith("torchaudio==") for c in tl.plan.companions):
        out.append(
            Finding(
                target=name,
                severity="warning",
                code="torchaudio-mismatch",
                message=f"torchaudio {pins['torchaudio'].version} is locked although no torchaudio "
                f"matches torch {tl.plan.torch.version}; its extension may fail to load",
                fix='keep torch below 2.12 (torch = "<2.12") if you need torchaudio',
                source="facts-addendum.md Q3",
            )
        )
    return tuple(out)
