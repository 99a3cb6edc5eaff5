"""What the resolver's answer holds that no plan rule covers (issue 10, 3.): packages built
against torch that nothing ties to the torch chosen, and direct requirements that only an sdist
serves. Read from the files and the Requires-Dist of the resolved packages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pinner.model import Finding

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pinner.model import Plan
    from pinner.resolve.job import ResolvedPin

SDIST = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
# Compiled packages whose pairing with torch pinner's knowledge or plan already decides: the torch
# family itself, and bitsandbytes (its CUDA library is planned in pinner.plan.bitsandbytes).
PAIRED = ("bitsandbytes",)


def answer_findings(plan: Plan, pins: Sequence[ResolvedPin]) -> tuple[Finding, ...]:
    from pinner.knowledge.knowledge import load_knowledge
    from pinner.plan.extensions import is_extension
    from pinner.resolve.job import is_family_name

    kb = load_knowledge()
    planned = {e.name for e in plan.extensions}
    paired = _pinned_beside_torch(plan, pins)
    out: list[Finding] = []
    for pin in pins:
        names = [f.name for f in pin.files if f.name]
        if not names or pin.source == "local" or pin.name in planned:
            continue
        known = (
            is_family_name(pin.name)
            or is_extension(kb, pin.name)
            or bool(kb.extension_builds(pin.name))
            or pin.name in PAIRED
        )
        sdist_only = all(n.endswith(SDIST) for n in names)
        direct = any(v.startswith("-r ") for v in pin.via)
        if sdist_only and direct and not known:
            out.append(_sdist_only(plan, pin, names[0]))
        tied = _tied(plan, pin) or pin.name in paired
        if not known and not tied and _built_against_torch(pin, names, sdist_only):
            out.append(_unpaired(plan, pin, names[0], sdist_only))
    return tuple(out)


def _torch_requirements(pin: ResolvedPin) -> list[str]:
    return [
        r
        for r in pin.requires
        if re.match(r"\s*torch\s*(?:[<>=!~(;\[]|$)", r) and "extra" not in r.partition(";")[2]
    ]


def _built_against_torch(pin: ResolvedPin, names: list[str], sdist_only: bool) -> bool:
    """A platform wheel (compiled code) that requires torch or is named for it (torchcodec), or
    an sdist that requires torch (built on install, against the torch installed: deepspeed)."""
    platform = all(n.endswith(".whl") and not n.endswith("-any.whl") for n in names)
    requires = bool(_torch_requirements(pin))
    return (platform and (requires or pin.name.startswith("torch"))) or (sdist_only and requires)


def _tied(plan: Plan, pin: ResolvedPin) -> bool:
    """Whether the package's own torch requirement admits the chosen torch's minor release only."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    torch = Version(plan.torch.version)
    minor = (torch.major, torch.minor)
    around = [f"{minor[0]}.{minor[1] + 1}.0"] + ([f"{minor[0]}.{minor[1] - 1}.0"] * (minor[1] > 0))
    for text in _torch_requirements(pin):
        try:
            spec = Requirement(text.split(";")[0]).specifier
        except InvalidRequirement:
            continue
        if spec.contains(torch.public, prereleases=True) and not any(
            spec.contains(v, prereleases=True) for v in around
        ):
            return True
    return False


def _pinned_beside_torch(plan: Plan, pins: Sequence[ResolvedPin]) -> set[str]:
    """Packages that a package tied to the chosen torch minor pins exactly (`==`): that package
    pairs them with torch (vllm's `torch==2.14.0` beside an exact pin)."""
    from packaging.requirements import InvalidRequirement, Requirement

    from pinner.resolve.job import canonical

    out: set[str] = set()
    for pin in pins:
        if not _tied(plan, pin):
            continue
        for text in pin.requires:
            try:
                parsed = Requirement(text)
            except InvalidRequirement:
                continue
            exact = [s for s in parsed.specifier if s.operator in ("==", "===")]
            if exact and not any(s.version.endswith(".*") for s in exact):
                out.add(canonical(parsed.name))
    return out


def _unpaired(plan: Plan, pin: ResolvedPin, file: str, sdist_only: bool) -> Finding:
    how = "builds against torch when installed" if sdist_only else "ships code compiled for torch"
    return Finding(
        target=plan.target.name,
        severity="warning",
        code="torch-bound",
        message=f"{pin.name} {pin.version} {how}, and neither its requirements nor pinner's "
        f"knowledge tie it to torch {plan.torch.version}: it may fail to load next to it",
        fix=f"check which torch {pin.name} {pin.version} is built for, and pin torch (the "
        f"matrix's torch) or {pin.name} to a pair that match; `pinner verify` loads it",
        source=file,
    )


def _sdist_only(plan: Plan, pin: ResolvedPin, file: str) -> Finding:
    return Finding(
        target=plan.target.name,
        severity="warning",
        code="sdist-only",
        message=f"{pin.name} {pin.version} has no wheel for Python {plan.target.python} on "
        f"{plan.target.platform}, only the sdist {file}: every install builds it from source",
        fix=f"pin a {pin.name} release with a wheel for this target, or accept the build "
        "(the image then needs its compilers)",
        source=file,
    )
