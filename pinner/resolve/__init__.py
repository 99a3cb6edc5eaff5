"""resolve: (Plan, Requirements, old lock) -> TargetLock, through an engine (uv or pip-tools).

Index rules: the torch family (torch, torchvision, torchaudio, triton and the CUDA libraries they
pull) comes only from the plan's PyTorch index; everything else only from the installer's
configured index. An index build's CUDA libraries are not known before resolving, so a first run
routes torch and its companions, and names the CUDA libraries they pulled; a second run routes
those too. The names are remembered in the lock, so a re-lock needs one run.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pinner.errors import ConfigError, ResolveError
from pinner.model import Layer, Pin, Plan, Requirements, TargetLock

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

FAMILY_ROOTS = ("torch", "torchvision", "torchaudio")
# Names that belong to the torch layer when torch (or a companion) pulls them.
FAMILY_PATTERNS = (
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "pytorch-triton*",
    "nvidia-*",
    "cuda-toolkit",
    "cuda-bindings",
    "cuda-pathfinder",
)
PLATFORMS = {"linux-x86_64": "x86_64-manylinux_2_28", "linux-aarch64": "aarch64-manylinux_2_28"}


@dataclass(frozen=True, kw_only=True)
class Job:
    """Everything an engine needs for one resolution (built from a plan; pure data)."""

    target: str
    python: str
    platform: str  # pinner's name: linux-x86_64
    root: Path  # project root: the engine runs there, so the project's installer config applies
    requirement_files: tuple[Path, ...]
    direct: tuple[str, ...]  # extra top-level requirements: torch family pins, build deps
    constraints: tuple[str, ...]
    torch_index: str  # "" when the torch build comes from the default index
    routed: tuple[str, ...]  # names that must come from torch_index (each is in `direct`)
    metadata: tuple[
        tuple[str, str, tuple[str, ...]], ...
    ]  # (name, version, requires) of sdist-only extensions
    preferences: tuple[tuple[str, str], ...]  # versions to keep (from the old lock)
    upgrade: bool
    offline: bool
    # routed names pinner adds only to route them (remembered from the old lock, or pulled by a
    # requirement): dropped from the result when nothing but pinner requires them
    optional: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ResolvedPin:
    name: str
    version: str
    hashes: tuple[str, ...]
    index: str  # URL the engine reports, "" when unknown
    via: tuple[str, ...]


class Resolver(Protocol):
    name: str

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]: ...


def get_resolver(name: str, cache: Path) -> Resolver:
    if name == "uv":
        from pinner.resolve.uv import UvResolver

        return UvResolver(cache)
    if name == "pip-tools":
        from pinner.resolve.piptools import PipToolsResolver

        return PipToolsResolver(cache)
    msg = f"--resolver: unknown engine {name!r}; use uv or pip-tools"
    raise ConfigError(msg)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_family_name(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in FAMILY_PATTERNS)


def build_job(
    plan: Plan,
    reqs: Requirements,
    root: Path,
    *,
    previous: TargetLock | None,
    upgrade: bool,
    offline: bool,
) -> Job:
    """The first job for a plan: routes torch and the companions the project asks for, plus the
    torch-layer names an earlier lock of the same torch build found."""
    torch = plan.torch
    names = {r.name for r in reqs.items}
    direct = [f"torch=={torch.pin}"]
    constraints = [f"torch=={torch.pin}"]
    for companion in plan.companions:
        constraints.append(companion)
        if companion.split("==")[0] in names:
            direct.append(companion)
    routed = [d.split("==")[0] for d in direct]
    optional = []
    if previous is not None and previous.plan.torch == torch and not torch.on_pypi:
        for old in previous.pins:
            if old.layer == "torch" and old.name not in routed:
                direct.append(f"{old.name}=={old.version}")
                routed.append(old.name)
                optional.append(old.name)
    constraints += [c.requirement for c in plan.constraints]
    metadata = []
    for ext in plan.extensions:
        constraints.append(f"{ext.name}=={ext.version}")
        if ext.version:
            metadata.append((ext.name, ext.version, ext.deps))
        direct += [
            d for d in ext.build_deps if canonical(re.split(r"[<>=!~ ;\[]", d)[0]) not in names
        ]
    preferences = (
        () if upgrade or previous is None else tuple((p.name, p.version) for p in previous.pins)
    )
    files = tuple(root / r for r in plan.target.requirements)
    if not torch.on_pypi and not plan.index_url:
        msg = f"{plan.target.origin}: the plan names no PyTorch index for {torch.pin}"
        raise ConfigError(msg)
    return Job(
        target=plan.target.name,
        python=plan.target.python,
        platform=plan.target.platform,
        root=root,
        requirement_files=files,
        direct=tuple(dict.fromkeys(direct)),
        constraints=tuple(dict.fromkeys(constraints)),
        torch_index="" if torch.on_pypi else plan.index_url,
        routed=tuple(dict.fromkeys(routed)) if not torch.on_pypi else (),
        metadata=tuple(metadata),
        preferences=preferences,
        upgrade=upgrade,
        offline=offline,
        optional=tuple(optional) if not torch.on_pypi else (),
    )


def family_closure(pins: Iterable[ResolvedPin]) -> set[str]:
    """Names pulled (transitively) by torch, torchvision or torchaudio."""
    children: dict[str, set[str]] = {}
    present = set()
    for pin in pins:
        present.add(pin.name)
        for parent in pin.via:
            children.setdefault(canonical(parent.split()[0]), set()).add(pin.name)
    seen = {r for r in FAMILY_ROOTS if r in present}
    todo = list(seen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def torch_layer(pins: Sequence[ResolvedPin]) -> set[str]:
    return {n for n in family_closure(pins) if is_family_name(n)}


def resolve_target(
    resolver: Resolver,
    plan: Plan,
    job: Job,
    inputs: str,
) -> TargetLock:
    """Run the engine (twice when an index build pulled CUDA libraries not yet routed, or a
    requirement pulled a companion such as torchvision that was not routed)."""
    try:
        pins = resolver.resolve(job)
    except ResolveError as e:
        # Sources route direct requirements only: a companion that a requirement pulls is
        # looked up on the default index, which lacks the index build (torchvision 0.28.0+cpu).
        pulled = [c for c in plan.companions if c not in job.direct and c in str(e)]
        if not job.torch_index or not pulled:
            raise
        names = tuple(c.split("==")[0] for c in pulled)
        job = replace(
            job,
            direct=job.direct + tuple(pulled),
            routed=job.routed + names,
            optional=job.optional + names,
        )
        pins = resolver.resolve(job)
    if job.torch_index:
        layer = torch_layer(pins)
        home = job.torch_index.rstrip("/")
        fetched = {p.name for p in pins if p.index.rstrip("/") == home}  # the engine says so
        missing = sorted(layer - set(job.routed) - fetched)
        if missing:
            versions = {p.name: p.version for p in pins}
            job = replace(
                job,
                direct=job.direct + tuple(f"{n}=={versions[n]}" for n in missing),
                routed=job.routed + tuple(missing),
            )
            pins = resolver.resolve(job)
    pins = _drop_unrequired(pins, job)
    _check_builds(plan, job, pins)
    return assemble(plan, job, pins, inputs)


def _drop_unrequired(pins: Sequence[ResolvedPin], job: Job) -> tuple[ResolvedPin, ...]:
    """Keep what the requirements, the plan and their dependencies need; drop optional routed
    names (and what only they pulled) that nothing else requires, such as a torchvision the
    old lock had but the requirements no longer pull."""
    if not job.optional:
        return tuple(pins)
    optional = set(job.optional)
    roots: set[str] = set()
    children: dict[str, set[str]] = {}
    for pin in pins:
        if not pin.via:
            roots.add(pin.name)
        for item in pin.via:
            text = item.strip()
            if text.startswith("-c "):
                continue  # a constraint is no reason to install
            if text.startswith("-r ") or (
                text.startswith("pinner-job") and pin.name not in optional
            ):
                roots.add(pin.name)
            elif not text.startswith("pinner-job"):
                parent = canonical(re.split(r"[\s\[]", text, maxsplit=1)[0])
                children.setdefault(parent, set()).add(pin.name)
    needed = set(roots)
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in needed:
                needed.add(child)
                todo.append(child)
    return tuple(p for p in pins if p.name in needed)


def _check_builds(plan: Plan, job: Job, pins: Sequence[ResolvedPin]) -> None:
    """The lock holds exactly the planned torch build. `torch==2.13.0` also matches
    `2.13.0+cpu` (PEP 440), which a default index that merges another index (some mirrors do)
    may offer; PyPI itself never serves local versions."""
    planned = {canonical(c.split("==")[0]): c.split("==")[1] for c in plan.companions}
    planned["torch"] = plan.torch.pin
    for pin in pins:
        want = planned.get(pin.name)
        if want is not None and pin.version != want:
            where = (
                f"the PyTorch index {job.torch_index}" if job.torch_index else "the default index"
            )
            msg = (
                f"target {job.target}: {where} gave {pin.name} {pin.version} for the planned "
                f"{pin.name}=={want}, another build.\n  fix: point the default index at PyPI or a "
                "plain mirror of it (one that does not merge the PyTorch index in); the PyTorch "
                "index belongs in torch-index-url"
            )
            raise ResolveError(msg)


def assemble(plan: Plan, job: Job, pins: Sequence[ResolvedPin], inputs: str) -> TargetLock:
    """Give every resolved package its layer and source index."""
    layer_torch = torch_layer(pins) | set(job.routed)
    extensions = {e.name: e for e in plan.extensions}
    build = {
        canonical(re.split(r"[<>=!~ ;\[]", d)[0]) for e in plan.extensions for d in e.build_deps
    }
    out = []
    for p in pins:
        if p.name in extensions:
            ext = extensions[p.name]
            if ext.strategy == "wheel":
                out.append(
                    Pin(
                        name=p.name,
                        version=p.version,
                        layer="extension",
                        index="url",
                        hashes=(f"sha256:{ext.sha256}",) if ext.sha256 else (),
                        via=_via(p.via, job),
                        url=ext.url,
                    )
                )
            else:
                out.append(
                    Pin(
                        name=p.name,
                        version=p.version,
                        layer="extension",
                        index="default",
                        hashes=p.hashes,
                        via=_via(p.via, job),
                    )
                )
            continue
        layer: Layer = "main"
        index = "default"
        if p.name in layer_torch:
            layer, index = "torch", job.torch_index or "default"
        elif p.name in build:
            layer = "build"
        out.append(
            Pin(
                name=p.name,
                version=p.version,
                hashes=p.hashes,
                index=index,
                layer=layer,
                via=_via(p.via, job),
            )
        )
    return TargetLock(plan=plan, pins=tuple(out), inputs=inputs, findings=())


def _via(via: Sequence[str], job: Job) -> tuple[str, ...]:
    """Engine annotations -> stable, host-independent text."""
    out = []
    for item in via:
        text = item.strip()
        if text.startswith(("-r ", "-c ")):
            path = Path(text[3:].strip())
            if path.name in ("constraints.txt", "requirements.in") and "jobs" in path.parts:
                continue  # pinner's own generated input, not a reason
            try:
                text = text[:3] + path.resolve().relative_to(job.root.resolve()).as_posix()
            except ValueError:
                text = text[:3] + path.name
        elif text.startswith("pinner-resolve") or "pinner-job" in text:
            text = "pinner plan"
        out.append(text)
    return tuple(sorted(dict.fromkeys(out)))
